#!/usr/bin/python3
"""PyTorch twins of `deno task bench train --vs-torch` (lib/bench/train.ts): the same DiT
(tools/dit_reference.py, the official models.py), fp32, torch.set_num_threads(2), AdamW and EMA, the SiT
loss (linear interpolant, velocity target, logit-normal t), and the Heun sampler with classifier-free
guidance on the first half of the steps (cfg_mode all).

Usage: /usr/bin/python3 tools/bench_torch.py '<json spec>'
  → one JSON line {"items_per_s": ..., "ms": ..., "cpu_ms": ...} (cpu_ms: process CPU time per step/run)
spec: {"kind": "train"|"sample", "depth", "hidden", "heads", "patch", "input_size", "in_channels",
       "learn_sigma", "num_classes", "batch", "steps" (timed iterations), "threads" (default 2),
       "sample_steps", "cfg_scale"}
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_reference import DiT  # noqa: E402


def build(s):
    return DiT(input_size=s["input_size"], patch_size=s["patch"], in_channels=s["in_channels"],
               hidden_size=s["hidden"], depth=s["depth"], num_heads=s["heads"],
               num_classes=s["num_classes"], learn_sigma=s["learn_sigma"])


def bench_train(s):
    model = build(s)
    params = [p for p in model.parameters() if p.requires_grad]
    ema = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
    B, C, H = s["batch"], s["in_channels"], s["input_size"]

    def step():
        x1 = torch.randn(B, C, H, H)
        noise = torch.randn(B, C, H, H)
        y = torch.randint(0, s["num_classes"], (B,))
        t = torch.sigmoid(torch.randn(B))
        tt = t.view(B, 1, 1, 1)
        xt = tt * x1 + (1 - tt) * noise
        out = model(xt, t, y)
        v = out[:, :C]
        mse = ((v - (x1 - noise)) ** 2).mean(dim=(1, 2, 3))
        loss = mse.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            cur = list(model.parameters())
            torch._foreach_mul_(ema, 0.9999)
            torch._foreach_add_(ema, cur, alpha=1 - 0.9999)
        return float(loss)

    step()
    step()
    times = []
    c0 = time.process_time()
    for _ in range(s["steps"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu_ms = (time.process_time() - c0) * 1000 / s["steps"]
    times.sort()
    ms = times[len(times) // 2] * 1000
    return {"ms": ms, "items_per_s": B * 1000 / ms, "cpu_ms": cpu_ms}


@torch.no_grad()
def bench_sample(s):
    """Times `steps` Heun steps (guided on the first half) of a batch; img/s of the full `sample_steps` run."""
    model = build(s).eval()
    B, C, H = s["batch"], s["in_channels"], s["input_size"]
    scale = s["cfg_scale"]
    null = s["num_classes"]
    y = torch.randint(0, s["num_classes"], (B,))
    yy = torch.cat([y, torch.full((B,), null)])

    def vel(x, t, guided):
        tv = torch.full((B,), t)
        if not guided:
            return model(x, tv, y)[:, :C]
        out = model(torch.cat([x, x]), torch.cat([tv, tv]), yy)
        cond, uncond = out[:B, :C], out[B:, :C]
        return uncond + scale * (cond - uncond)

    def run(n):
        x = torch.randn(B, C, H, H)
        for k in range(n):
            t0, t1 = k / n, (k + 1) / n
            guided = k / n < 0.5
            v0 = vel(x, t0, guided)
            xe = x + (t1 - t0) * v0
            v1 = vel(xe, t1, guided)
            x = x + (t1 - t0) / 2 * (v0 + v1)
        return x

    n = s["steps"]
    run(2)
    t0 = time.perf_counter()
    c0 = time.process_time()
    run(n)
    sec = (time.perf_counter() - t0) * s["sample_steps"] / n
    cpu = (time.process_time() - c0) * s["sample_steps"] / n
    return {"ms": sec * 1000, "items_per_s": B / sec, "cpu_ms": cpu * 1000}


def main():
    s = json.loads(sys.argv[1])
    torch.manual_seed(0)
    torch.set_num_threads(s.get("threads", 2))
    r = bench_train(s) if s["kind"] == "train" else bench_sample(s)
    r["torch"] = torch.__version__
    print(json.dumps(r))


if __name__ == "__main__":
    main()
