#!/usr/bin/python3
"""Golden values for ditflow's bilinear resize (lib/tensor/ops/resize.ts) from PyTorch.

Run with Debian's system Python (torch 1.13, CPU):

    /usr/bin/python3 tools/golden_resize.py

Writes tests/fixtures/golden/resize.json: for each case the input (float32 values), the output of
F.interpolate(x, size=(ho, wo), mode="bilinear", align_corners=False) computed in float32 (ATen's float
index arithmetic, which the WGSL kernel follows), and the input gradient for a fixed random cotangent
(autograd, float32). Cases cover upsampling by non-integer factors (MNIST 28 -> 75, the smallest Inception
input), downsampling, mixed directions, identity and one-pixel dims.
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261127)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def case(name, shape, size):
    x = torch.randn(*shape, dtype=torch.float32).requires_grad_()
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    g = torch.randn(*y.shape, dtype=torch.float32)
    (y * g).sum().backward()
    return dict(name=name, x=flat(x), x_shape=list(shape), size=list(size), out=flat(y),
                out_shape=list(y.shape), cot=flat(g), dx=flat(x.grad))


cases = [
    case("up 28x28 -> 75x75 (MNIST to the smallest Inception input)", (1, 1, 28, 28), (75, 75)),
    case("mixed 7x9 -> 31x5", (1, 2, 7, 9), (31, 5)),
    case("down 13x11 -> 5x7", (2, 2, 13, 11), (5, 7)),
    case("down by 2 exactly 8x8 -> 4x4", (1, 3, 8, 8), (4, 4)),
    case("identity 6x5", (1, 1, 6, 5), (6, 5)),
    case("one-pixel dims 1x5 -> 3x12", (1, 2, 1, 5), (3, 12)),
    case("to one pixel 6x4 -> 1x1", (1, 1, 6, 4), (1, 1)),
]

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden", "resize.json")
with open(out, "w") as f:
    json.dump({"generator": "tools/golden_resize.py", "torch": torch.__version__, "cases": cases}, f)
print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(cases)} cases)")
