#!/usr/bin/python3
"""Golden values for ditflow's max/avg pooling and ReLU from PyTorch.

Run with Debian's system Python (torch 1.13, CPU):

    /usr/bin/python3 tools/golden_pool.py

Writes tests/fixtures/golden/pool.json. Forward and input gradients (autograd with a fixed random cotangent)
are computed in float64 from inputs rounded to float32 (what the GPU sees). Cases: F.max_pool2d (LeNet's
2x2/2, Inception's 3x3/2 and 3x3/1 pad 1, a tie case whose windows hold equal values: the gradient goes to
the first maximum), F.avg_pool2d with count_include_pad True and False (Inception's FID blocks use
3x3/1 pad 1 count_include_pad=False), F.relu.
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261125)


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale).float().double()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def case(name, op, x, kernel=0, stride=0, padding=0, include_pad=True):
    x = x.clone().requires_grad_()
    if op == "max":
        y = F.max_pool2d(x, kernel, stride, padding)
    elif op == "avg":
        y = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=include_pad)
    else:
        y = F.relu(x)
    g = rnd(*y.shape)
    (y * g).sum().backward()
    return dict(name=name, op=op, kernel=kernel, stride=stride, padding=padding, include_pad=include_pad,
                x=flat(x), x_shape=list(x.shape), out=flat(y), out_shape=list(y.shape), cot=flat(g),
                dx=flat(x.grad))


cases = [
    case("max 2x2/2 (LeNet)", "max", rnd(2, 3, 8, 8), 2, 2, 0),
    case("max 3x3/2 odd size", "max", rnd(1, 2, 9, 7), 3, 2, 0),
    case("max 3x3/1 pad 1 (FID InceptionE_2)", "max", rnd(2, 2, 5, 6), 3, 1, 1),
    case("max 3x3/2 pad 1 ties", "max", torch.randint(-2, 3, (1, 2, 7, 7)).double(), 3, 2, 1),
    case("avg 3x3/1 pad 1 count_include_pad=False (FID)", "avg", rnd(2, 3, 6, 5), 3, 1, 1, False),
    case("avg 3x3/1 pad 1 count_include_pad=True", "avg", rnd(1, 2, 6, 5), 3, 1, 1, True),
    case("avg 2x2/2", "avg", rnd(2, 2, 6, 6), 2, 2, 0, True),
    case("avg 3x3/2 pad 1 count_include_pad=False", "avg", rnd(1, 3, 7, 8), 3, 2, 1, False),
    case("relu", "relu", rnd(2, 3, 4, 5)),
]

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden", "pool.json")
with open(out, "w") as f:
    json.dump({"generator": "tools/golden_pool.py", "torch": torch.__version__, "cases": cases}, f)
print(f"wrote {out} ({os.path.getsize(out)} bytes, {len(cases)} cases)")
