#!/usr/bin/python3
"""Golden values for ditflow's diffusion schedule, computed exactly as guided-diffusion / DiT does.

Run with Debian's system python (numpy): /usr/bin/python3 tools/golden_diffusion.py
Writes tests/fixtures/golden/diffusion_schedule.json.

The code below follows openai/guided-diffusion (gaussian_diffusion.py get_named_beta_schedule("linear"),
GaussianDiffusion.__init__, respace.py space_timesteps and SpacedDiffusion), which DiT vendors unchanged.
"""
import json
import os

import numpy as np


def linear_betas(num_diffusion_timesteps):
    scale = 1000 / num_diffusion_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_diffusion_timesteps, dtype=np.float64)


def tables(betas):
    betas = np.array(betas, dtype=np.float64)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    ac_next = np.append(ac[1:], 0.0)
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    post_log_var_clipped = np.log(np.append(post_var[1], post_var[1:])) if len(post_var) > 1 else np.array([])
    return {
        "betas": betas,
        "alphasCumprod": ac,
        "alphasCumprodPrev": ac_prev,
        "alphasCumprodNext": ac_next,
        "sqrtAlphasCumprod": np.sqrt(ac),
        "sqrtOneMinusAlphasCumprod": np.sqrt(1.0 - ac),
        "logOneMinusAlphasCumprod": np.log(1.0 - ac),
        "sqrtRecipAlphasCumprod": np.sqrt(1.0 / ac),
        "sqrtRecipm1AlphasCumprod": np.sqrt(1.0 / ac - 1),
        "posteriorVariance": post_var,
        "posteriorLogVarianceClipped": post_log_var_clipped,
        "posteriorMeanCoef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posteriorMeanCoef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
    }


def space_timesteps(num_timesteps, section_counts):
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            desired_count = int(section_counts[len("ddim"):])
            for i in range(1, num_timesteps):
                if len(range(0, num_timesteps, i)) == desired_count:
                    return set(range(0, num_timesteps, i))
            raise ValueError("cannot create exactly %d steps with an integer stride" % desired_count)
        section_counts = [int(x) for x in section_counts.split(",")]
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start_idx = 0
    all_steps = []
    for i, section_count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < section_count:
            raise ValueError("cannot divide section of %d steps into %d" % (size, section_count))
        if section_count <= 1:
            frac_stride = 1
        else:
            frac_stride = (size - 1) / (section_count - 1)
        cur_idx = 0.0
        taken_steps = []
        for _ in range(section_count):
            taken_steps.append(start_idx + round(cur_idx))
            cur_idx += frac_stride
        all_steps += taken_steps
        start_idx += size
    return set(all_steps)


def spaced(spec, T=1000):
    base = tables(linear_betas(T))
    use = space_timesteps(T, spec) if spec else set(range(T))
    last = 1.0
    new_betas = []
    tmap = []
    for i, a in enumerate(base["alphasCumprod"]):
        if i in use:
            new_betas.append(1 - a / last)
            last = a
            tmap.append(i)
    t = tables(np.array(new_betas))
    t["timestepMap"] = np.array(tmap)
    return t


def main():
    out = {}
    for spec in ["", "250", "ddim50", "10,15,20"]:
        t = spaced(spec)
        out[spec or "full"] = {k: [float(x) for x in v] for k, v in t.items()}
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden", "diffusion_schedule.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()


# ---- training loss terms (guided-diffusion gaussian_diffusion.py training_losses, LossType.MSE,
# ModelVarType.LEARNED_RANGE, ModelMeanType.EPSILON), for a fixed model output -------------------------
def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + np.exp(logvar1 - logvar2) + ((mean1 - mean2) ** 2) * np.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * np.power(x, 3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    centered_x = x - means
    inv_stdv = np.exp(-log_scales)
    plus_in = inv_stdv * (centered_x + 1.0 / 255.0)
    cdf_plus = approx_standard_normal_cdf(plus_in)
    min_in = inv_stdv * (centered_x - 1.0 / 255.0)
    cdf_min = approx_standard_normal_cdf(min_in)
    log_cdf_plus = np.log(np.clip(cdf_plus, 1e-12, None))
    log_one_minus_cdf_min = np.log(np.clip(1.0 - cdf_min, 1e-12, None))
    cdf_delta = cdf_plus - cdf_min
    return np.where(x < -0.999, log_cdf_plus,
                    np.where(x > 0.999, log_one_minus_cdf_min, np.log(np.clip(cdf_delta, 1e-12, None))))


def loss_golden():
    rng = np.random.default_rng(7)
    T = tables(linear_betas(1000))
    N, C, H, W = 5, 4, 4, 4
    t = np.array([0, 1, 17, 500, 999])
    x0 = np.clip(rng.standard_normal((N, C, H, W)) * 0.5, -0.99, 0.99)
    noise = rng.standard_normal((N, C, H, W))
    out = rng.standard_normal((N, 2 * C, H, W)) * 0.5
    out[:, C:] = np.tanh(out[:, C:])  # v in [-1, 1]
    b = lambda a: a[t].reshape(N, 1, 1, 1)
    x_t = b(T["sqrtAlphasCumprod"]) * x0 + b(T["sqrtOneMinusAlphasCumprod"]) * noise
    eps, v = out[:, :C], out[:, C:]
    mse = ((noise - eps) ** 2).mean(axis=(1, 2, 3))
    min_log = b(T["posteriorLogVarianceClipped"])
    max_log = b(np.log(T["betas"]))
    frac = (v + 1) / 2
    model_log_variance = frac * max_log + (1 - frac) * min_log
    pred_xstart = b(T["sqrtRecipAlphasCumprod"]) * x_t - b(T["sqrtRecipm1AlphasCumprod"]) * eps
    model_mean = b(T["posteriorMeanCoef1"]) * pred_xstart + b(T["posteriorMeanCoef2"]) * x_t
    true_mean = b(T["posteriorMeanCoef1"]) * x0 + b(T["posteriorMeanCoef2"]) * x_t
    true_log_var = b(T["posteriorLogVarianceClipped"])
    kl = normal_kl(true_mean, true_log_var, model_mean, model_log_variance).mean(axis=(1, 2, 3)) / np.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_variance).mean(axis=(1, 2, 3)) / np.log(2.0)
    vb = np.where(t == 0, nll, kl)
    f = lambda a: [float(v) for v in np.asarray(a).reshape(-1)]
    return {"t": [int(v) for v in t], "shape": [N, C, H, W], "x0": f(x0), "noise": f(noise), "out": f(out),
            "mse": f(mse), "vb": f(vb), "loss": float((mse + vb).mean())}


if __name__ == "__main__":
    p = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden", "diffusion_loss.json")
    with open(p, "w") as fh:
        json.dump(loss_golden(), fh)
    print("wrote", os.path.normpath(p))
