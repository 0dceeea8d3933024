#!/usr/bin/python3
"""Golden outputs and gradients of small U-ViTs and DiTs with long skips (random weights), for
tests/models/uvit_test.ts: tests/fixtures/uvit/<name>.safetensors holds the state dict (official names),
the inputs (`__inputs__.*`), the float64 forward (`__outputs__.out`) and the gradients of sum(out · w)
(`__grads__.<param>`); golden_uvit.json the configs and key orders.

Run: /usr/bin/python3 tools/golden_uvit.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import raw, serialize  # noqa: E402
from uvit_reference import DiTSkips, UViT  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "uvit")

CONFIGS = {
    "uvit": ("uvit", dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=4, num_heads=2,
                          num_classes=10)),
    "uvit_p4_depth3": ("uvit", dict(input_size=8, patch_size=4, in_channels=3, hidden_size=12, depth=3,
                                    num_heads=2, num_classes=5)),
    "dit_skips": ("dit", dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=4, num_heads=2,
                              num_classes=10, block="adaLN-Zero")),
    "dit_skips_depth3": ("dit", dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=3,
                                     num_heads=2, num_classes=10, learn_sigma=False, block="adaLN-Zero")),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    summary = {}
    for i, (name, (arch, cfg)) in enumerate(CONFIGS.items()):
        torch.manual_seed(4321 + i)
        model = UViT(**cfg) if arch == "uvit" else DiTSkips(**cfg)
        with torch.no_grad():
            for k, p in model.named_parameters():
                if k != "pos_embed" or arch == "uvit":
                    p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1))
        N = 3
        x = torch.randn(N, cfg["in_channels"], cfg["input_size"], cfg["input_size"])
        t = torch.tensor([0, 517, 999])
        y = torch.tensor([1, cfg["num_classes"], 3])  # includes the null class
        m64 = model.double()
        m64.zero_grad()
        out64 = m64(x.double(), t, y)
        w = torch.randn(out64.shape, dtype=torch.float64)
        (out64 * w).sum().backward()
        grads = {k: p.grad.detach().float().contiguous() for k, p in m64.named_parameters() if p.grad is not None}
        model = model.float()
        tensors = {k: raw(v.detach().float().contiguous()) for k, v in model.state_dict().items()}
        for k, g in grads.items():
            tensors["__grads__." + k] = raw(g)
        tensors["__inputs__.w"] = raw(w.float())
        tensors["__inputs__.x"] = raw(x)
        tensors["__inputs__.t"] = raw(t.to(torch.int32))
        tensors["__inputs__.y"] = raw(y.to(torch.int32))
        tensors["__outputs__.out"] = raw(out64.detach().float())
        full = dict(cfg, arch=arch)
        meta = {"config": json.dumps(full, sort_keys=True), "format": "ditflow-golden"}
        with open(os.path.join(OUT, f"{name}.safetensors"), "wb") as f:
            f.write(serialize(tensors, meta))
        summary[name] = {"config": full, "keys": list(model.state_dict().keys()),
                         "out_norm": float(out64.norm())}
    with open(os.path.join(OUT, "golden_uvit.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
