#!/usr/bin/python3
"""Golden values for ditflow's FID Inception-v3 (lib/models/inception.ts) from PyTorch/torchvision.

Run with Debian's system Python (torch 1.13, torchvision 0.14, CPU), not the pyenv python3 on PATH:

    /usr/bin/python3 tools/golden_inception.py [--check-only]

The network is torchvision's `inception_v3(weights=None, aux_logits=False, num_classes=1008,
init_weights=False)` patched into the FID variant exactly as pytorch-fid's `fid_inception_v3()` does
(src/pytorch_fid/inception.py): Mixed_5b/5c/5d -> FIDInceptionA, Mixed_6b-6e -> FIDInceptionC, Mixed_7b ->
FIDInceptionE_1, Mixed_7c -> FIDInceptionE_2; tools/inception_reference.py re-implements pytorch-fid's
patched blocks (its package cannot be installed here). Features are taken like pytorch-fid's
`InceptionV3` (blocks 0-3): resize to the input size with F.interpolate(bilinear, align_corners=False),
2x - 1, the network up to the adaptive average pool (pool3, 2048-d); the logits are the model's `fc` applied
to pool3 (eval mode, so dropout is the identity), and the "unbiased" logits pool3 @ fc.weight.T.

Weights are not stored anywhere: every tensor of the state dict (conv weights, BN weight/bias/running
mean/running var, fc) comes from a counter-based integer hash of (tensor name, element index) that
lib/models/inception.ts (`syntheticInceptionState`) reproduces bit for bit:

    fnv1a32(name bytes) = k0;  k = mix(k0 ^ seed)
    h = mix(mix((i + k) mod 2^32) ^ k)          mix = lowbias32 (x ^= x>>16; x *= 0x7feb352d;
    u = (h >> 8) / 2^24  in [0, 1)              x ^= x>>15; x *= 0x846ca68b; x ^= x>>16, mod 2^32)
    v = 2u - 1           in [-1, 1)

and per tensor kind (float64, then rounded to float32):
    conv.weight          v * GAIN * sqrt(6 / fan_in)            (He-uniform scaled by GAIN)
    bn.weight            0.75 + 0.5 u
    bn.bias              0.1 v
    bn.running_mean      0.1 v
    bn.running_var       0.5 + u                                 (> 0)
    fc.weight            v * sqrt(3 / 2048)
    fc.bias              0.5 v

so that the BatchNorm folding of the TypeScript loader is really exercised (no identity statistics).

Writes tests/fixtures/inception/golden.safetensors (inputs and expected outputs, F32) and
tests/fixtures/inception/golden.json (the cases, the state-dict names and shapes of the patched torchvision
model, activation statistics). Cases:
  rgb:  2 x 3 x 64 x 64 images in [0, 1] (smooth random patterns), resized to 299 (the real FID path);
  gray: 1 x 1 x 28 x 28 image in [0, 1] (MNIST-like), replicated to 3 channels, resized to 75 (the
        smallest input Inception-v3 accepts; exercises the size option).
"""

import json
import os
import sys

import numpy as np
import torch
import torchvision

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import raw, serialize  # noqa: E402
from inception_reference import fid_inception_v3, pool3  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "inception")

SEED = 20261126
GAIN = 0.95


# --- the deterministic weight recipe (mirrored by syntheticInceptionState in lib/models/inception.ts) --------

def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def mix(x):
    """lowbias32 on a uint32 value or array (held in uint64 so that the products do not overflow)."""
    m = np.uint64(0xFFFFFFFF)
    x = np.asarray(x, dtype=np.uint64) & m
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & m
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & m
    x ^= x >> np.uint64(16)
    return x


def uniform01(name, n, seed=SEED):
    k = np.uint64(int(mix(fnv1a32(name) ^ seed)))
    i = np.arange(n, dtype=np.uint64)
    h = mix(mix((i + k) & np.uint64(0xFFFFFFFF)) ^ k)
    return (h >> np.uint64(8)).astype(np.float64) / 16777216.0


def synthetic_value(name, shape):
    n = int(np.prod(shape)) if shape else 1
    u = uniform01(name, n)
    v = 2.0 * u - 1.0
    if name.endswith("conv.weight"):
        fan_in = int(np.prod(shape[1:]))
        x = v * (GAIN * np.sqrt(6.0 / fan_in))
    elif name.endswith("bn.weight"):
        x = 0.75 + 0.5 * u
    elif name.endswith("bn.bias"):
        x = 0.1 * v
    elif name.endswith("bn.running_mean"):
        x = 0.1 * v
    elif name.endswith("bn.running_var"):
        x = 0.5 + u
    elif name == "fc.weight":
        x = v * np.sqrt(3.0 / shape[1])
    elif name == "fc.bias":
        x = 0.5 * v
    else:
        raise SystemExit(f"no recipe for {name}")
    return torch.from_numpy(x.astype(np.float32).reshape(shape))


def smooth_images(n, c, h, w, rng):
    """Images in [0, 1]: sums of a few random low-frequency waves plus a little noise."""
    yy, xx = np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")
    out = np.zeros((n, c, h, w))
    for i in range(n):
        for ch in range(c):
            img = np.zeros((h, w))
            for _ in range(4):
                fy, fx, ph = rng.uniform(0.5, 4), rng.uniform(0.5, 4), rng.uniform(0, 2 * np.pi)
                img += rng.uniform(0.3, 1) * np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
            img += 0.1 * rng.standard_normal((h, w))
            out[i, ch] = (img - img.min()) / (img.max() - img.min())
    return out.astype(np.float32)


def main():
    check_only = "--check-only" in sys.argv
    torch.set_num_threads(2)
    net = fid_inception_v3()
    sd = net.state_dict()
    names = [(k, list(v.shape)) for k, v in sd.items() if not k.endswith("num_batches_tracked")]
    new_sd = {k: synthetic_value(k, shape) for k, shape in names}
    missing, unexpected = net.load_state_dict(new_sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    rng = np.random.default_rng(SEED)
    cases = {
        "rgb": (smooth_images(2, 3, 64, 64, rng), 299),
        "gray": (smooth_images(1, 1, 28, 28, rng), 75),
    }
    tensors = {}
    meta_cases = []
    with torch.no_grad():
        for name, (x, size) in cases.items():
            xt = torch.from_numpy(x)
            x3 = xt.repeat(1, 3, 1, 1) if xt.shape[1] == 1 else xt
            p = pool3(net, x3, size)
            logits = net.fc(p)
            unbiased = p @ net.fc.weight.T
            print(f"{name}: pool3 mean {p.mean():.4f} std {p.std():.4f} max {p.max():.4f}; "
                  f"logits std {logits.std():.4f}; per-image pool3 norms {p.norm(dim=1).tolist()}")
            tensors[f"{name}.x"] = raw(xt.contiguous())
            tensors[f"{name}.pool3"] = raw(p.contiguous())
            tensors[f"{name}.logits"] = raw(logits.contiguous())
            tensors[f"{name}.logits_unbiased"] = raw(unbiased.contiguous())
            meta_cases.append(dict(name=name, shape=list(x.shape), size=size, input_range="[0,1]",
                                   pool3_mean=float(p.mean()), pool3_std=float(p.std()),
                                   logits_std=float(logits.std())))
    if check_only:
        return
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "tools/golden_inception.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "seed": str(SEED), "gain": repr(GAIN)}
    data = serialize(tensors, meta)
    with open(os.path.join(OUT, "golden.safetensors"), "wb") as f:
        f.write(data)
    info = {"generator": "tools/golden_inception.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "seed": SEED, "gain": GAIN, "cases": meta_cases,
            "state_dict": [{"name": k, "shape": s} for k, s in names],
            "samples": {k: [float(v) for v in new_sd[k].reshape(-1)[:4]] for k in
                        ["Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.bias"]}}
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {OUT}/golden.safetensors ({len(data)} bytes) and golden.json ({len(names)} tensors)")


if __name__ == "__main__":
    main()
