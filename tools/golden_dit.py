#!/usr/bin/python3
"""Golden outputs of small DiTs (every conditioning block) for ditflow's interop tests.

For each config: random weights (every parameter random, adaLN included, so no block is the identity),
written as safetensors with the official key names (tests/fixtures/dit/<name>.safetensors, written with
the port of the official safetensors writer in tools/gen_safetensors_fixtures.py), plus inputs and the
PyTorch forward output (float64 reference run) in the same file under `__inputs__.*`/`__outputs__.*`
keys that ditflow strips before loading.

Run: /usr/bin/python3 tools/golden_dit.py
Verify a checkpoint that ditflow wrote: /usr/bin/python3 tools/golden_dit.py --verify FILE
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_reference import DiT  # noqa: E402
from gen_safetensors_fixtures import raw, serialize  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "dit")

CONFIGS = {
    "adaln_zero": dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=2, num_heads=2,
                       num_classes=10, block="adaLN-Zero"),
    "adaln_zero_p4_nosigma": dict(input_size=8, patch_size=4, in_channels=4, hidden_size=12, depth=1, num_heads=2,
                                  num_classes=5, learn_sigma=False, block="adaLN-Zero"),
    "adaln": dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=2, num_heads=2, num_classes=10,
                  block="adaLN"),
    "cross_attention": dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=2, num_heads=2,
                            num_classes=10, block="cross-attention"),
    "in_context": dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=2, num_heads=2,
                       num_classes=10, block="in-context"),
}


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt = {"F32": "<f4", "I32": "<i4"}[v["dtype"]]
        s, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(b[base + s:base + e], dtype=dt).copy()).reshape(v["shape"])
    return out, header.get("__metadata__", {})


def main():
    os.makedirs(OUT, exist_ok=True)
    summary = {}
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        torch.manual_seed(1234 + i)
        model = DiT(**cfg)
        with torch.no_grad():
            for k, p in model.named_parameters():
                if k != "pos_embed":
                    p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1))
        model.eval()
        N = 3
        x = torch.randn(N, cfg["in_channels"], cfg["input_size"], cfg["input_size"])
        t = torch.tensor([0, 517, 999])
        y = torch.tensor([1, cfg["num_classes"], 3])  # includes the null class
        m64 = model.double()
        # Output and the gradient of sum(out * w) with respect to every parameter, in float64.
        m64.zero_grad()
        out64 = m64(x.double(), t, y)
        w = torch.randn(out64.shape, dtype=torch.float64)
        (out64 * w).sum().backward()
        out = out64.detach().float()
        grads = {k: p.grad.detach().float().contiguous() for k, p in m64.named_parameters() if p.grad is not None}
        model = model.float()
        tensors = {k: raw(v.detach().float().contiguous()) for k, v in model.state_dict().items()}
        tensors["__inputs__.w"] = raw(w.float())
        for k, g in grads.items():
            tensors["__grads__." + k] = raw(g)
        tensors["__inputs__.x"] = raw(x)
        tensors["__inputs__.t"] = raw(t.to(torch.int32))
        tensors["__inputs__.y"] = raw(y.to(torch.int32))
        tensors["__outputs__.out"] = raw(out)
        meta = {"config": json.dumps(cfg, sort_keys=True), "format": "ditflow-golden"}
        with open(os.path.join(OUT, f"{name}.safetensors"), "wb") as f:
            f.write(serialize(tensors, meta))
        summary[name] = {"config": cfg, "keys": list(model.state_dict().keys()),
                         "out_norm": float(out.norm())}
    with open(os.path.join(OUT, "golden_dit.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("wrote", os.path.normpath(OUT))


def verify(path):
    """Loads a checkpoint that ditflow wrote into the PyTorch DiT (strict) and re-runs its stored inputs."""
    sd, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    model = DiT(**cfg)
    weights = {k: v for k, v in sd.items() if not k.startswith("__")}
    model.load_state_dict(weights, strict=True)
    x, t, y = sd["__inputs__.x"], sd["__inputs__.t"].long(), sd["__inputs__.y"].long()
    with torch.no_grad():
        out = model.double()(x.double(), t, y).float()
    want = sd["__outputs__.out"]
    rel = float((out - want).norm() / want.norm())
    print(json.dumps({"file": path, "relative_error": rel}))
    return 0 if rel < 1e-4 else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--verify":
        sys.exit(verify(sys.argv[2]))
    main()
