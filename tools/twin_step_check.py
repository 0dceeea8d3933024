#!/usr/bin/python3
"""One DDPM training step, ditflow against the PyTorch twin: the same weights, the same batch of real
latents (x0, labels with some null-class drops, timesteps including 0, noise), the loss terms per sample
and the gradient of every trainable parameter. Checks ditflow's training path (lib/diffusion/gaussian.ts
trainingLosses + its autograd) against tools/twin_mnist.py's transcription of guided-diffusion, including
the stop-gradient on the mean in the vb term: the report also gives the distance to the gradients that a
vb term *without* the stop-gradient would give, so one sees that the check can tell the two apart.

    /usr/bin/python3 tools/twin_step_check.py --weights /tmp/twin/ddpm_lr2e-3_s0/ema.safetensors \\
        --latents PATH/out/latents

WEIGHTS is a DiT model file with ditflow_config metadata (tools/convert_dit_checkpoint.py --heads 4 turns
the twin's ema.pt into one). Runs `deno run -A tools/twin_step_check.ts` for ditflow's side. Prints JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_mnist as tm  # noqa: E402


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--latents", required=True)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    tensors, md = tm.read_safetensors(args.weights)
    cfg = json.loads(md["ditflow_config"])
    model = tm.DiT(input_size=cfg["inputSize"], patch_size=cfg["patchSize"], in_channels=cfg["inChannels"],
                   hidden_size=cfg["hiddenSize"], depth=cfg["depth"], num_heads=cfg["numHeads"],
                   mlp_ratio=cfg["mlpRatio"], num_classes=cfg["numClasses"], learn_sigma=cfg["learnSigma"])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)

    x_all, y_all, _ = tm.read_dataset(args.latents)
    g = torch.Generator().manual_seed(args.seed)
    B = args.batch_size
    idx = torch.randint(0, x_all.shape[0], (B,), generator=g)
    x0 = torch.from_numpy(x_all)[idx]
    y = torch.from_numpy(y_all.astype(np.int64))[idx]
    y[torch.rand(B, generator=g) < 0.1] = cfg["numClasses"]
    t = torch.randint(0, 1000, (B,), generator=g)
    t[:4] = torch.tensor([0, 1, 2, 999])  # the decoder NLL (t = 0) and both ends
    noise = torch.randn(x0.shape, generator=g)

    diffusion = tm.create_diffusion("")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def step(stop_gradient):
        model.zero_grad(set_to_none=True)
        if stop_gradient:
            terms = diffusion.training_losses(model, x0, t, dict(y=y), noise=noise)
        else:  # the same loss with the vb term's mean *not* detached (what a missing detach would train)
            x_t = diffusion.q_sample(x0, t, noise)
            out = model(x_t, t, y)
            eps = out[:, :x0.shape[1]]
            vb = diffusion._vb_terms_bpd(lambda *a, r=out: r, x0, x_t, t)["output"]
            mse = tm.mean_flat((noise - eps) ** 2)
            terms = {"mse": mse, "vb": vb, "loss": mse + vb}
        terms["loss"].mean().backward()
        return ({k: v.detach().numpy().copy() for k, v in terms.items()},
                {n: p.grad.detach().numpy().copy() for n, p in params.items()})

    ref_terms, ref_grads = step(True)
    _, nodetach_grads = step(False)

    with tempfile.TemporaryDirectory() as tmp:
        batch = os.path.join(tmp, "batch.safetensors")
        out = os.path.join(tmp, "out.safetensors")
        tm.write_safetensors(batch, {
            "x0": ("F32", x0.numpy()), "noise": ("F32", noise.numpy()),
            "y": ("I32", y.numpy().astype(np.int32)), "t": ("I32", t.numpy().astype(np.int32)),
        }, None)
        subprocess.run(["deno", "run", "-A", os.path.join(root, "tools", "twin_step_check.ts"),
                        os.path.abspath(args.weights), batch, out], check=True, cwd=root)
        got, _ = tm.read_safetensors(out)

    grads = {n: rel_err(got[f"grad.{n}"], ref_grads[n]) for n in ref_grads}
    grads_vs_nodetach = {n: rel_err(got[f"grad.{n}"], nodetach_grads[n]) for n in ref_grads}
    missing = [n for n in ref_grads if f"grad.{n}" not in got]
    report = {
        "weights": args.weights,
        "batch": B,
        "t_included": [0, 1, 2, 999],
        "loss": {"ditflow": float(got["loss"][0]), "pytorch": float(ref_terms["loss"].mean())},
        "mse_max_rel_err": rel_err(got["mse"], ref_terms["mse"]),
        "vb_max_rel_err": rel_err(got["vb"], ref_terms["vb"]),
        "vb_t0": {"ditflow": float(got["vb"][0]), "pytorch": float(ref_terms["vb"][0])},
        "grad_max_rel_err": max(grads.values()),
        "grad_worst_param": max(grads, key=grads.get),
        "grad_min_rel_err_vs_no_stop_gradient": min(grads_vs_nodetach.values()),
        "grad_max_rel_err_vs_no_stop_gradient": max(grads_vs_nodetach.values()),
        "params_checked": len(grads),
        "params_missing_grad": missing,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
