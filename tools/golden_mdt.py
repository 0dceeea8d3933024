#!/usr/bin/python3
"""Golden outputs and gradients of small MDTs (random weights), with and without a training mask, for
tests/models/mdt_test.ts: tests/fixtures/mdt/<name>.safetensors holds the state dict (official names, without
the relative_position_index buffers), the inputs, the mask uniforms (`__inputs__.noise`, `__inputs__.ratio_u`:
ditflow rebuilds the mask from them), the float64 outputs of the full and the masked forward and the
gradients of sum(out_masked · w); golden_mdt.json the configs and key orders.

Run: /usr/bin/python3 tools/golden_mdt.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import raw, serialize  # noqa: E402
from mdt_reference import MDT, random_masking  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "mdt")
MASK_RATIO = 0.3

CONFIGS = {
    "mdt": dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=4, num_heads=2, num_classes=10,
                learn_sigma=False, decode_layer=2),
    "mdt_sigma_nodecoder": dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=2, num_heads=2,
                                num_classes=10, learn_sigma=True, decode_layer=0),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    summary = {}
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        torch.manual_seed(777 + i)
        model = MDT(**cfg)
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1))
        N = 3
        T = (cfg["input_size"] // cfg["patch_size"]) ** 2
        x = torch.randn(N, cfg["in_channels"], cfg["input_size"], cfg["input_size"])
        t = torch.tensor([0, 517, 999])
        y = torch.tensor([1, cfg["num_classes"], 3])
        noise = torch.rand(N, T)
        ratio_u = torch.rand(1)
        ids_keep, ids_restore, mask = random_masking(noise, MASK_RATIO + 0.2 * float(ratio_u))
        m64 = model.double()
        with torch.no_grad():
            full = m64(x.double(), t, y).float()
        m64.zero_grad()
        out64 = m64(x.double(), t, y, ids_keep, ids_restore, mask.double())
        w = torch.randn(out64.shape, dtype=torch.float64)
        (out64 * w).sum().backward()
        grads = {k: p.grad.detach().float().contiguous() for k, p in m64.named_parameters() if p.grad is not None}
        model = model.float()
        sd = {k: v for k, v in model.state_dict().items() if not k.endswith("relative_position_index")}
        tensors = {k: raw(v.detach().float().contiguous()) for k, v in sd.items()}
        for k, g in grads.items():
            tensors["__grads__." + k] = raw(g)
        tensors["__inputs__.w"] = raw(w.float())
        tensors["__inputs__.x"] = raw(x)
        tensors["__inputs__.t"] = raw(t.to(torch.int32))
        tensors["__inputs__.y"] = raw(y.to(torch.int32))
        tensors["__inputs__.noise"] = raw(noise)
        tensors["__inputs__.ratio_u"] = raw(ratio_u)
        tensors["__inputs__.ids_keep"] = raw(ids_keep.to(torch.int32).contiguous())
        tensors["__outputs__.full"] = raw(full)
        tensors["__outputs__.masked"] = raw(out64.detach().float())
        meta = {"config": json.dumps(cfg, sort_keys=True), "format": "ditflow-golden"}
        with open(os.path.join(OUT, f"{name}.safetensors"), "wb") as f:
            f.write(serialize(tensors, meta))
        summary[name] = {"config": cfg, "mask_ratio": MASK_RATIO, "keys": list(sd.keys()),
                         "keep": int(ids_keep.shape[1])}
    with open(os.path.join(OUT, "golden_mdt.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
