#!/usr/bin/python3
"""A PyTorch twin of ditflow's main job (pipelines/mnist.yaml): the same DiT, trained on the same latents,
sampled the same way, written as a ditflow dataset artifact so that ditflow decodes and scores it with the
same VAE and LeNet (tools/twin_eval.ts). It is an oracle for one claim of issue 12 (item 2): at this budget
the ε-prediction DDPM recipe is far behind the velocity (SiT) objective, and ditflow's DDPM path is not
defective. Nothing here imports ditflow; the only shared things are the latents file and the definitions.

Objectives (``--objective``):

- ``ddpm``: a transcription of guided-diffusion's ``gaussian_diffusion.py`` and ``respace.py`` as DiT uses
  them (``create_diffusion(timestep_respacing="")`` for training, ``"ddim50"`` for sampling): linear betas
  1e-4..0.02 over 1000 steps, ε-prediction, learned-range variance, loss = mse + vb (vb on a frozen mean,
  ``LossType.MSE``, so no rescaling), t ~ U{0..999}; DDIM sampling with eta 0, clip_denoised False.
- ``sit``: the SiT linear interpolant x_t = t·x1 + (1−t)·x0 (data x1 at t=1, noise x0), velocity target
  x1 − x0, t ~ U[0, 1] (or ``--t-sampling logit-normal``: t = sigmoid(n), n ~ N(0, 1)), plain MSE; Heun
  ODE sampling from t=0 to t=1 on the uniform grid k/N (as lib/diffusion/sit.ts).

Both guide every output channel that carries ε or v (ditflow's ``cfg_mode: all``): the batch is doubled
with the null class, out = u + s·(c − u) on the first 4 channels, the variance channels from the
conditional half (the official ``forward_with_cfg`` with the 3-channel slice widened to 4).

Model: DiT-B/2 of ditflow's ``mini`` family (hidden 96, depth 2, 4 heads, patch 2, mlp ratio 4) on
8×8×4 latents, 10 classes + the null class, class dropout 0.1, learn_sigma True (8 output channels; the
SiT objective ignores the last 4, as ditflow and the official SiT do). tools/dit_reference.py's DiT (the
official models.py) with the official ``initialize_weights``.

Training as the main job: AdamW lr 2e-3, betas (0.9, 0.999), weight decay 0, batch 64 drawn with
replacement (as ditflow's trainer; the official DiT iterates shuffled epochs), 3000 steps, EMA 0.999
starting as a copy of the init weights, class dropout applied to the labels before the forward (the
official LabelEmbedder does it inside). Sampling from the EMA weights: 300 samples, labels cycling 0..9,
guidance scale 3, DDIM-50 (ddpm) or Heun-50 (sit).

Commands (tools/twin_compare.sh runs them and tools/twin_eval.ts scores the output):

    /usr/bin/python3 tools/twin_mnist.py --latents PATH/out/latents --objective ddpm --out /tmp/twin/ddpm
    /usr/bin/python3 tools/twin_mnist.py --latents PATH/out/latents --objective sit --out /tmp/twin/sit
    deno run -A tools/twin_eval.ts --pipeline pipelines/mnist.yaml --cache /work/main/.ditflow \
        --samples /tmp/twin/ddpm

Run with Debian's system python (/usr/bin/python3, python3-torch). Reads and writes safetensors with a
small reader/writer here (JSON header + numpy), not the ``safetensors`` package.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

# libgomp's default busy-waiting makes 2 OpenMP threads ~40× slower when other processes share the 2
# cores (measured: 1.7 s against 0.11 s per step); passive waiting keeps them fast. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_reference import DiT  # noqa: E402


# ---------------------------------------------------------------------------------------------------------
# safetensors, as lib/io/safetensors.ts writes it (the official layout; metadata keys sorted)
# ---------------------------------------------------------------------------------------------------------

_DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64, "U32": np.uint32, "I32": np.int32,
           "U8": np.uint8}
# Descending order of the official Dtype enum for the dtypes used here (widest first).
_RANK = {"F64": 0, "I64": 0, "F32": 1, "U32": 1, "I32": 1, "U8": 2}


def read_safetensors(path):
    """Returns ({name: ndarray}, metadata dict) of a safetensors file."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(buf[base + b: base + e], dtype=dt).reshape(info["shape"]).copy()
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    """Writes {name: (dtype, ndarray)} with string metadata, byte for byte as ditflow's writer does."""
    names = sorted(tensors, key=lambda k: (_RANK[tensors[k][0]], k.encode("utf-8")))
    parts = []
    if metadata is not None:
        kv = [json.dumps(k, ensure_ascii=False) + ":" + json.dumps(metadata[k], ensure_ascii=False)
              for k in sorted(metadata, key=lambda k: k.encode("utf-8"))]
        parts.append('"__metadata__":{' + ",".join(kv) + "}")
    chunks = []
    offset = 0
    for name in names:
        dtype, arr = tensors[name]
        data = np.ascontiguousarray(arr, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")).tobytes()
        parts.append(json.dumps(name) + ':{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'
                     % (dtype, ",".join(str(s) for s in arr.shape), offset, offset + len(data)))
        chunks.append(data)
        offset += len(data)
    header = ("{" + ",".join(parts) + "}").encode("utf-8")
    padded = (len(header) + 7) // 8 * 8
    header += b" " * (padded - len(header))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", padded))
        f.write(header)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def compact_json(v):
    """JSON.stringify's output for plain data."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def read_dataset(dir_or_file):
    """A ditflow dataset artifact (lib/data/artifact.ts): x F32 [N,C,H,W], y U32 [N], metadata."""
    path = dir_or_file if dir_or_file.endswith(".safetensors") else os.path.join(dir_or_file, "data.safetensors")
    tensors, md = read_safetensors(path)
    if md.get("format") != "ditflow-dataset-v1":
        raise SystemExit(f"{path} is not a ditflow dataset artifact (format {md.get('format')})")
    return tensors["x"], tensors["y"], md


def write_dataset(out_dir, x, y, num_classes, class_names, space, info):
    """Writes a dataset artifact exactly as writeDataArtifact (lib/data/artifact.ts) does."""
    write_safetensors(os.path.join(out_dir, "data.safetensors"), {
        "x": ("F32", x.astype(np.float32)),
        "y": ("U32", y.astype(np.uint32)),
    }, {
        "format": "ditflow-dataset-v1",
        "space": space,
        "num_classes": str(num_classes),
        "class_names": compact_json(class_names),
        "info": compact_json(info),
    })


# ---------------------------------------------------------------------------------------------------------
# The model: DiT-B/2 of the `mini` family, with the official initialize_weights
# ---------------------------------------------------------------------------------------------------------

MINI = {"S": (2, 48, 2), "B": (2, 96, 4), "L": (4, 128, 4), "XL": (5, 144, 6)}  # depth, hidden, heads


def initialize_weights(model):
    """The official DiT.initialize_weights (pos_embed is already the fixed sin-cos table)."""
    def _basic_init(module):
        if isinstance(module, nn.Linear):
            torch.nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.constant_(module.bias, 0)
    model.apply(_basic_init)
    w = model.x_embedder.proj.weight.data
    nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
    nn.init.constant_(model.x_embedder.proj.bias, 0)
    nn.init.normal_(model.y_embedder.embedding_table.weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[0].weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[2].weight, std=0.02)
    for block in model.blocks:
        nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
        nn.init.constant_(block.adaLN_modulation[-1].bias, 0)
    nn.init.constant_(model.final_layer.adaLN_modulation[-1].weight, 0)
    nn.init.constant_(model.final_layer.adaLN_modulation[-1].bias, 0)
    nn.init.constant_(model.final_layer.linear.weight, 0)
    nn.init.constant_(model.final_layer.linear.bias, 0)


def mini_dit(name, input_size, in_channels, num_classes, class_dropout, learn_sigma):
    size, patch = name.replace("DiT-", "").split("/")
    depth, hidden, heads = MINI[size]
    model = DiT(input_size=input_size, patch_size=int(patch), in_channels=in_channels, hidden_size=hidden,
                depth=depth, num_heads=heads, mlp_ratio=4.0, class_dropout_prob=class_dropout,
                num_classes=num_classes, learn_sigma=learn_sigma)
    initialize_weights(model)
    return model


@torch.no_grad()
def update_ema(ema_model, model, decay):
    """The official update_ema: ema = decay·ema + (1 − decay)·param, for every parameter."""
    ema_params = dict(ema_model.named_parameters())
    for name, param in model.named_parameters():
        ema_params[name].mul_(decay).add_(param.data, alpha=1 - decay)


# ---------------------------------------------------------------------------------------------------------
# guided-diffusion: losses.py
# ---------------------------------------------------------------------------------------------------------

def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL divergence between two gaussians (guided-diffusion losses.normal_kl)."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + ((mean1 - mean2) ** 2) * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, *, means, log_scales):
    """Log-likelihood of data in [-1, 1] discretised to 256 bins (guided-diffusion losses.py)."""
    assert x.shape == means.shape == log_scales.shape
    centered_x = x - means
    inv_stdv = torch.exp(-log_scales)
    plus_in = inv_stdv * (centered_x + 1.0 / 255.0)
    cdf_plus = approx_standard_normal_cdf(plus_in)
    min_in = inv_stdv * (centered_x - 1.0 / 255.0)
    cdf_min = approx_standard_normal_cdf(min_in)
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    log_probs = torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )
    assert log_probs.shape == x.shape
    return log_probs


def mean_flat(tensor):
    return tensor.mean(dim=list(range(1, len(tensor.shape))))


# ---------------------------------------------------------------------------------------------------------
# guided-diffusion: gaussian_diffusion.py (EPSILON, LEARNED_RANGE, LossType.MSE) and respace.py
# ---------------------------------------------------------------------------------------------------------

def get_named_beta_schedule(schedule_name, num_diffusion_timesteps):
    if schedule_name != "linear":
        raise NotImplementedError(schedule_name)
    scale = 1000 / num_diffusion_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_diffusion_timesteps, dtype=np.float64)


def _extract_into_tensor(arr, timesteps, broadcast_shape):
    """A float64 table gathered at `timesteps`, cast to float32 and broadcast (as the reference)."""
    res = torch.from_numpy(arr).to(device=timesteps.device)[timesteps].float()
    while len(res.shape) < len(broadcast_shape):
        res = res[..., None]
    return res + torch.zeros(broadcast_shape, device=timesteps.device)


class GaussianDiffusion:
    """guided-diffusion's GaussianDiffusion restricted to what DiT uses: ε-prediction, learned-range
    variance, loss MSE (+ vb because the variance is learned), no timestep rescaling."""

    def __init__(self, betas):
        self.betas = betas = np.array(betas, dtype=np.float64)
        assert len(betas.shape) == 1 and (betas > 0).all() and (betas <= 1).all()
        self.num_timesteps = int(betas.shape[0])
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:])
        ) if len(self.posterior_variance) > 1 else np.array([])
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)

    def q_sample(self, x_start, t, noise):
        return (_extract_into_tensor(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
                + _extract_into_tensor(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise)

    def q_posterior_mean_variance(self, x_start, x_t, t):
        posterior_mean = (_extract_into_tensor(self.posterior_mean_coef1, t, x_t.shape) * x_start
                          + _extract_into_tensor(self.posterior_mean_coef2, t, x_t.shape) * x_t)
        posterior_variance = _extract_into_tensor(self.posterior_variance, t, x_t.shape)
        posterior_log_variance_clipped = _extract_into_tensor(self.posterior_log_variance_clipped, t, x_t.shape)
        return posterior_mean, posterior_variance, posterior_log_variance_clipped

    def _wrap_model(self, model):
        return model

    def p_mean_variance(self, model, x, t, clip_denoised=False, model_kwargs=None):
        """p(x_{t−1} | x_t) for LEARNED_RANGE / EPSILON; `model` returns [N, 2C, H, W]."""
        model_kwargs = model_kwargs or {}
        B, C = x.shape[:2]
        model_output = self._wrap_model(model)(x, t, **model_kwargs)
        assert model_output.shape == (B, C * 2, *x.shape[2:])
        model_output, model_var_values = torch.split(model_output, C, dim=1)
        min_log = _extract_into_tensor(self.posterior_log_variance_clipped, t, x.shape)
        max_log = _extract_into_tensor(np.log(self.betas), t, x.shape)
        frac = (model_var_values + 1) / 2  # model_var_values is [-1, 1] for [min_var, max_var]
        model_log_variance = frac * max_log + (1 - frac) * min_log
        model_variance = torch.exp(model_log_variance)

        def process_xstart(x):
            return x.clamp(-1, 1) if clip_denoised else x

        pred_xstart = process_xstart(self._predict_xstart_from_eps(x_t=x, t=t, eps=model_output))
        model_mean, _, _ = self.q_posterior_mean_variance(x_start=pred_xstart, x_t=x, t=t)
        return {"mean": model_mean, "variance": model_variance, "log_variance": model_log_variance,
                "pred_xstart": pred_xstart}

    def _predict_xstart_from_eps(self, x_t, t, eps):
        return (_extract_into_tensor(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
                - _extract_into_tensor(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * eps)

    def _predict_eps_from_xstart(self, x_t, t, pred_xstart):
        return ((_extract_into_tensor(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - pred_xstart)
                / _extract_into_tensor(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape))

    # --- sampling: DDIM (eta 0 by default) ---

    def ddim_sample(self, model, x, t, clip_denoised=False, model_kwargs=None, eta=0.0):
        out = self.p_mean_variance(model, x, t, clip_denoised=clip_denoised, model_kwargs=model_kwargs)
        # Re-derive ε in case x_start was clipped.
        eps = self._predict_eps_from_xstart(x, t, out["pred_xstart"])
        alpha_bar = _extract_into_tensor(self.alphas_cumprod, t, x.shape)
        alpha_bar_prev = _extract_into_tensor(self.alphas_cumprod_prev, t, x.shape)
        sigma = (eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
                 * torch.sqrt(1 - alpha_bar / alpha_bar_prev))
        noise = torch.randn_like(x)
        mean_pred = (out["pred_xstart"] * torch.sqrt(alpha_bar_prev)
                     + torch.sqrt(1 - alpha_bar_prev - sigma ** 2) * eps)
        nonzero_mask = (t != 0).float().view(-1, *([1] * (len(x.shape) - 1)))  # no noise when t == 0
        sample = mean_pred + nonzero_mask * sigma * noise
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def ddim_sample_loop(self, model, shape, noise=None, clip_denoised=False, model_kwargs=None, eta=0.0):
        img = noise if noise is not None else torch.randn(*shape)
        for i in list(range(self.num_timesteps))[::-1]:
            t = torch.tensor([i] * shape[0])
            with torch.no_grad():
                img = self.ddim_sample(model, img, t, clip_denoised=clip_denoised,
                                       model_kwargs=model_kwargs, eta=eta)["sample"]
        return img

    # --- training ---

    def _vb_terms_bpd(self, model, x_start, x_t, t, clip_denoised=False, model_kwargs=None):
        """The variational bound term in bits per dim: KL(q ‖ p) for t > 0, the decoder NLL at t = 0."""
        true_mean, _, true_log_variance_clipped = self.q_posterior_mean_variance(x_start=x_start, x_t=x_t, t=t)
        out = self.p_mean_variance(model, x_t, t, clip_denoised=clip_denoised, model_kwargs=model_kwargs)
        kl = normal_kl(true_mean, true_log_variance_clipped, out["mean"], out["log_variance"])
        kl = mean_flat(kl) / np.log(2.0)
        decoder_nll = -discretized_gaussian_log_likelihood(
            x_start, means=out["mean"], log_scales=0.5 * out["log_variance"])
        assert decoder_nll.shape == x_start.shape
        decoder_nll = mean_flat(decoder_nll) / np.log(2.0)
        output = torch.where((t == 0), decoder_nll, kl)
        return {"output": output, "pred_xstart": out["pred_xstart"]}

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None):
        """LossType.MSE with a learned-range variance: loss = mse(ε, ε̂) + vb (mean detached)."""
        model_kwargs = model_kwargs or {}
        if noise is None:
            noise = torch.randn_like(x_start)
        x_t = self.q_sample(x_start, t, noise=noise)
        terms = {}
        model_output = model(x_t, t, **model_kwargs)
        B, C = x_t.shape[:2]
        assert model_output.shape == (B, C * 2, *x_t.shape[2:])
        model_output, model_var_values = torch.split(model_output, C, dim=1)
        # Learn the variance using the variational bound, but don't let it affect our mean prediction.
        frozen_out = torch.cat([model_output.detach(), model_var_values], dim=1)
        terms["vb"] = self._vb_terms_bpd(model=lambda *args, r=frozen_out: r, x_start=x_start, x_t=x_t, t=t,
                                         clip_denoised=False)["output"]
        target = noise  # ModelMeanType.EPSILON
        assert model_output.shape == target.shape == x_start.shape
        terms["mse"] = mean_flat((target - model_output) ** 2)
        terms["loss"] = terms["mse"] + terms["vb"]
        return terms


def space_timesteps(num_timesteps, section_counts):
    """guided-diffusion respace.space_timesteps ("ddimN" or comma-separated counts)."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired_count = int(section_counts[len("ddim"):])
            for i in range(1, num_timesteps):
                if len(range(0, num_timesteps, i)) == desired_count:
                    return set(range(0, num_timesteps, i))
            raise ValueError(f"cannot create exactly {num_timesteps} steps with an integer stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start_idx = 0
    all_steps = []
    for i, section_count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < section_count:
            raise ValueError(f"cannot divide section of {size} steps into {section_count}")
        frac_stride = 1 if section_count <= 1 else (size - 1) / (section_count - 1)
        cur_idx = 0.0
        taken_steps = []
        for _ in range(section_count):
            taken_steps.append(start_idx + round(cur_idx))
            cur_idx += frac_stride
        all_steps += taken_steps
        start_idx += size
    return set(all_steps)


class _WrappedModel:
    """DiT's respace._WrappedModel: maps respaced indices to the original timesteps (no rescaling)."""

    def __init__(self, model, timestep_map):
        self.model = model
        self.timestep_map = timestep_map

    def __call__(self, x, ts, **kwargs):
        map_tensor = torch.tensor(self.timestep_map, device=ts.device, dtype=ts.dtype)
        return self.model(x, map_tensor[ts], **kwargs)


class SpacedDiffusion(GaussianDiffusion):
    """A diffusion process that skips steps of a base process (respace.SpacedDiffusion)."""

    def __init__(self, use_timesteps, betas):
        self.use_timesteps = set(use_timesteps)
        self.timestep_map = []
        base = GaussianDiffusion(betas)
        last_alpha_cumprod = 1.0
        new_betas = []
        for i, alpha_cumprod in enumerate(base.alphas_cumprod):
            if i in self.use_timesteps:
                new_betas.append(1 - alpha_cumprod / last_alpha_cumprod)
                last_alpha_cumprod = alpha_cumprod
                self.timestep_map.append(i)
        super().__init__(np.array(new_betas))

    def _wrap_model(self, model):
        if isinstance(model, _WrappedModel):
            return model
        return _WrappedModel(model, self.timestep_map)


def create_diffusion(timestep_respacing, diffusion_steps=1000):
    """DiT's create_diffusion with its defaults (linear, learn_sigma, no KL loss, no rescaling)."""
    betas = get_named_beta_schedule("linear", diffusion_steps)
    if timestep_respacing is None or timestep_respacing == "":
        timestep_respacing = [diffusion_steps]
    return SpacedDiffusion(space_timesteps(diffusion_steps, timestep_respacing), betas)


# ---------------------------------------------------------------------------------------------------------
# SiT: linear interpolant, velocity objective, Heun ODE
# ---------------------------------------------------------------------------------------------------------

def sit_training_losses(model, x1, t, y, noise):
    """mean over C,H,W of (v̂(x_t, t) − (x1 − x0))², x_t = t·x1 + (1 − t)·x0 with noise x0."""
    tt = t.view(-1, 1, 1, 1)
    xt = tt * x1 + (1 - tt) * noise
    ut = x1 - noise
    out = model(xt, t, y)
    C = x1.shape[1]
    v = out[:, :C]  # learn_sigma: the second half is not trained by this objective
    return {"mse": mean_flat((v - ut) ** 2), "loss": mean_flat((v - ut) ** 2)}


def sample_t(n, how, gen):
    if how == "uniform":
        return torch.rand(n, generator=gen)
    if how == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=gen))
    raise ValueError(how)


@torch.no_grad()
def heun_sample(model_fn, x, steps):
    """Heun's method (predictor-corrector) on the grid k/steps from t=0 (noise) to t=1 (data)."""
    grid = [k / steps for k in range(steps + 1)]
    n = x.shape[0]
    for k in range(steps):
        t0, t1 = grid[k], grid[k + 1]
        dt = t1 - t0
        v0 = model_fn(x, torch.full((n,), t0))
        x_euler = x + dt * v0
        v1 = model_fn(x_euler, torch.full((n,), t1))
        x = x + dt / 2 * (v0 + v1)
    return x


# ---------------------------------------------------------------------------------------------------------
# Classifier-free guidance on every ε / v channel (ditflow's cfg_mode `all`)
# ---------------------------------------------------------------------------------------------------------

def forward_with_cfg_all(model, x, t, y, cfg_scale, guided_channels):
    """The official forward_with_cfg with the 3-channel slice widened to `guided_channels` (all of ε)."""
    half = x[: len(x) // 2]
    combined = torch.cat([half, half], dim=0)
    model_out = model.forward(combined, t, y)
    eps, rest = model_out[:, :guided_channels], model_out[:, guided_channels:]
    cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
    half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps)
    eps = torch.cat([half_eps, half_eps], dim=0)
    return torch.cat([eps, rest], dim=1)


# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latents", required=True, help="the latents artifact dir (or its data.safetensors)")
    ap.add_argument("--out", required=True, help="output dir: a ditflow dataset artifact of the samples")
    ap.add_argument("--objective", choices=["ddpm", "sit"], default="ddpm")
    ap.add_argument("--t-sampling", choices=["uniform", "logit-normal"], default="uniform",
                    help="SiT timestep distribution")
    ap.add_argument("--model", default="DiT-B/2", help="a size of ditflow's mini family")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--class-dropout", type=float, default=0.1)
    ap.add_argument("--num-samples", type=int, default=300)
    ap.add_argument("--sample-steps", type=int, default=50, help="DDIM steps (ddpm) or Heun steps (sit)")
    ap.add_argument("--cfg", type=float, default=3.0, help="guidance scale on all channels (1: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--noise-from", help="start sampling from this x_T (a safetensors with `noise` [N,C,H,W], "
                    "as tools/twin_crosscheck.ts writes it) instead of fresh noise")
    ap.add_argument("--sample-from", help="skip training: sample these weights (a state dict .pt, or a "
                    "safetensors with the official keys such as ditflow's model.safetensors)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    x_np, y_np, md = read_dataset(args.latents)
    if md.get("space") != "latents":
        print(f"warning: the input holds {md.get('space')}, not latents", file=sys.stderr)
    N, C, H, W = x_np.shape
    num_classes = int(md["num_classes"])
    class_names = json.loads(md.get("class_names", "[]"))
    data_x = torch.from_numpy(x_np)
    data_y = torch.from_numpy(y_np.astype(np.int64))
    print(f"latents: {N} × [{C}, {H}, {W}], {num_classes} classes, std {x_np.std():.4f}", flush=True)

    model = mini_dit(args.model, H, C, num_classes, args.class_dropout, learn_sigma=True)
    ema = mini_dit(args.model, H, C, num_classes, args.class_dropout, learn_sigma=True)
    ema.load_state_dict(model.state_dict())  # EMA starts as a copy
    ema.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay)
    diffusion = create_diffusion("")
    print(f"{args.model}-mini: {n_params:,} params; objective {args.objective}"
          f"{' (' + args.t_sampling + ')' if args.objective == 'sit' else ''}; {args.steps} steps, "
          f"batch {args.batch_size}, lr {args.lr}, EMA {args.ema}, seed {args.seed}", flush=True)

    if args.sample_from:
        if args.sample_from.endswith(".safetensors"):
            sd = {k: torch.from_numpy(v) for k, v in read_safetensors(args.sample_from)[0].items()}
        else:
            sd = torch.load(args.sample_from, map_location="cpu")
        ema.load_state_dict(sd, strict=True)
        args.steps = 0
        print(f"sampling the weights of {args.sample_from} (no training)", flush=True)

    model.train()
    B = args.batch_size
    losses = []
    t_start = time.perf_counter()
    for step in range(args.steps):
        idx = torch.randint(0, N, (B,), generator=gen)
        x = data_x[idx]
        y = data_y[idx].clone()
        drop = torch.rand(B, generator=gen) < args.class_dropout
        y[drop] = num_classes  # the null class
        noise = torch.randn(x.shape, generator=gen)
        if args.objective == "ddpm":
            t = torch.randint(0, diffusion.num_timesteps, (B,), generator=gen)
            terms = diffusion.training_losses(model, x, t, dict(y=y), noise=noise)
        else:
            t = sample_t(B, args.t_sampling, gen)
            terms = sit_training_losses(model, x, t, y, noise)
        loss = terms["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        update_ema(ema, model, args.ema)
        rec = {"step": step + 1, "loss": loss.item(), "mse": terms["mse"].mean().item()}
        if "vb" in terms:
            rec["vb"] = terms["vb"].mean().item()
        if not math.isfinite(rec["loss"]):
            raise SystemExit(f"training diverged at step {step + 1}")
        losses.append(rec)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            el = time.perf_counter() - t_start
            tail = losses[-args.log_every:]
            mean_loss = sum(r["loss"] for r in tail) / len(tail)
            print(f"step {step + 1}/{args.steps} loss {mean_loss:.4f} (last {rec['loss']:.4f}"
                  f"{', vb %.4f' % rec['vb'] if 'vb' in rec else ''}) {(step + 1) * B / el:.1f} img/s",
                  flush=True)
    train_seconds = time.perf_counter() - t_start
    img_per_s = args.steps * B / train_seconds if args.steps else 0.0

    # --- sampling from the EMA weights ---
    ema.eval()
    S = args.num_samples
    labels = torch.arange(S) % num_classes
    torch.manual_seed(args.seed)
    z = torch.randn(S, C, H, W, generator=torch.Generator().manual_seed(args.seed + 1))
    if args.noise_from:
        z = torch.from_numpy(read_safetensors(args.noise_from)[0]["noise"]).reshape(S, C, H, W)
    t0 = time.perf_counter()
    guided = args.cfg != 1.0
    with torch.no_grad():
        if args.objective == "ddpm":
            sampler = create_diffusion(f"ddim{args.sample_steps}")
            if guided:
                zz = torch.cat([z, z], 0)
                yy = torch.cat([labels, torch.full_like(labels, num_classes)], 0)

                def fn(x, t, y):
                    return forward_with_cfg_all(ema, x, t, y, args.cfg, C)
                out = sampler.ddim_sample_loop(fn, zz.shape, noise=zz, model_kwargs=dict(y=yy), eta=0.0)
                samples = out[:S]
            else:
                samples = sampler.ddim_sample_loop(ema.forward, z.shape, noise=z, model_kwargs=dict(y=labels),
                                                   eta=0.0)
        else:
            if guided:
                yy = torch.cat([labels, torch.full_like(labels, num_classes)], 0)

                def vfn(x, t):
                    xx = torch.cat([x, x], 0)
                    out = forward_with_cfg_all(ema, xx, torch.cat([t, t], 0), yy, args.cfg, C)
                    return out[:S, :C]
            else:
                def vfn(x, t):
                    return ema(x, t, labels)[:, :C]
            samples = heun_sample(vfn, z, args.sample_steps)
    sample_seconds = time.perf_counter() - t0
    samples_np = samples.numpy().astype(np.float32)
    print(f"sampled {S} in {sample_seconds:.1f}s; sample std {samples_np.std():.4f} "
          f"(data {x_np.std():.4f})", flush=True)

    sampler_name = "ddim" if args.objective == "ddpm" else "heun"
    info = {
        "twin": "tools/twin_mnist.py",
        "torch": torch.__version__,
        "objective": args.objective,
        "t_sampling": args.t_sampling if args.objective == "sit" else None,
        "model": f"{args.model}-mini",
        "params": n_params,
        "steps": args.steps,
        "batch_size": B,
        "lr": args.lr,
        "ema_decay": args.ema,
        "seed": args.seed,
        "sampler": sampler_name,
        "sample_steps": args.sample_steps,
        "cfg_scale": args.cfg,
        "cfg_mode": "all",
        "weights": "ema",
        "sample_from": args.sample_from,
        "noise_from": args.noise_from,
        "latents": os.path.abspath(args.latents),
        "latents_info": json.loads(md.get("info", "{}")),
    }
    write_dataset(args.out, samples_np, labels.numpy(), num_classes,
                  class_names or [str(i) for i in range(num_classes)], "latents", info)
    tail = losses[-max(1, len(losses) // 10):]
    summary = {
        "objective": args.objective, "t_sampling": info["t_sampling"], "lr": args.lr, "seed": args.seed,
        "steps": args.steps, "batch_size": B, "ema": args.ema, "cfg": args.cfg, "sampler": sampler_name,
        "sample_steps": args.sample_steps, "params": n_params,
        "final_loss": sum(r["loss"] for r in tail) / len(tail) if tail else None,
        "train_seconds": train_seconds, "img_per_s": img_per_s, "sample_seconds": sample_seconds,
        "threads": args.threads, "torch": torch.__version__,
    }
    torch.save(ema.state_dict(), os.path.join(args.out, "ema.pt"))  # official key names
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump({**summary, "losses": losses}, f)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
