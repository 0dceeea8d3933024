#!/usr/bin/python3
"""Golden values for lib/tensor/optim.ts from PyTorch (float32, CPU).

Run with Debian's system Python (it has torch 1.13):

    /usr/bin/python3 tools/golden_optim.py

Writes tests/fixtures/golden/optim.json:

* `adamw`: torch.optim.AdamW (single-tensor path, foreach=False) for 5 steps with weight_decay 0 and 0.01
  on three float32 parameters with fixed float32 gradients; parameter 1 gets no gradient at step 2 (index
  1), so its step count lags (torch skips parameters whose .grad is None). After every step: params,
  exp_avg, exp_avg_sq.
* `ema`: DiT's update_ema (`ema.mul_(decay).add_(p, alpha=1 - decay)`), starting as a copy, over 5 fixed
  parameter snapshots, for decay 0.9 and 0.9999.
* `clip`: torch.nn.utils.clip_grad_norm_ with max_norm 1.0 (clips) and 100.0 (does not clip): the total
  norm and the gradients afterwards.
"""

import json
import os

import torch

torch.manual_seed(1234)
SHAPES = [[13, 4], [37], [3]]
STEPS = 5


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


init = [torch.randn(s, dtype=torch.float32) for s in SHAPES]
grads = [[torch.randn(s, dtype=torch.float32) * (0.1 + 0.5 * k) for s in SHAPES] for k in range(STEPS)]
MISSING = (1, 1)  # (step, param) without gradient


def run_adamw(wd):
    ps = [torch.nn.Parameter(x.clone()) for x in init]
    opt = torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, foreach=False)
    traj = []
    for k in range(STEPS):
        for j, p in enumerate(ps):
            p.grad = None if (k, j) == MISSING else grads[k][j].clone()
        opt.step()
        traj.append({
            "params": [flat(p) for p in ps],
            "exp_avg": [flat(opt.state[p]["exp_avg"]) for p in ps],
            "exp_avg_sq": [flat(opt.state[p]["exp_avg_sq"]) for p in ps],
            "step": [int(opt.state[p]["step"].item()) for p in ps],
        })
    return {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": wd, "trajectory": traj}


@torch.no_grad()
def update_ema(ema_params, params, decay):
    # DiT train.py update_ema, on lists instead of named parameters
    for e, p in zip(ema_params, params):
        e.mul_(decay).add_(p.data, alpha=1 - decay)


def run_ema(decay):
    snaps = [[init[j] + 0.3 * (k + 1) * grads[k][j] for j in range(len(SHAPES))] for k in range(STEPS)]
    ema = [x.clone() for x in init]
    update_ema(ema, init, 0)  # DiT starts the EMA as a copy
    traj = []
    for k in range(STEPS):
        update_ema(ema, snaps[k], decay)
        traj.append([flat(e) for e in ema])
    return {"decay": decay, "snapshots": [[flat(x) for x in s] for s in snaps], "trajectory": traj}


def run_clip(max_norm):
    ps = [torch.nn.Parameter(x.clone()) for x in init]
    for p, g in zip(ps, grads[0]):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm)
    return {"max_norm": max_norm, "total_norm": float(total), "grads_before": [flat(g) for g in grads[0]],
            "grads_after": [flat(p.grad) for p in ps]}


out = {
    "torch": torch.__version__,
    "shapes": SHAPES,
    "init": [flat(x) for x in init],
    "grads": [[flat(g) for g in gs] for gs in grads],
    "missing": list(MISSING),
    "adamw": [run_adamw(0.0), run_adamw(0.01)],
    "ema": [run_ema(0.9), run_ema(0.9999)],
    "clip": [run_clip(1.0), run_clip(100.0)],
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden", "optim.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump(out, f)
print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")
