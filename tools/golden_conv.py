#!/usr/bin/python3
"""Golden values for ditflow's conv2d and nearest upsampling from PyTorch.

Run with Debian's system Python (torch 1.13, CPU):

    /usr/bin/python3 tools/golden_conv.py

Writes tests/fixtures/golden/conv.json. Everything is computed in float64 from inputs rounded to float32
(what the GPU sees); input gradients come from autograd with a fixed random cotangent.

Cases: torch.nn.functional.conv2d with symmetric padding, SD's Downsample2D (F.pad(x, (0, 1, 0, 1)) then a
stride-2 3x3 conv without padding; `padding` is written as [top, bottom, left, right]), 1x1 convs, odd sizes;
F.interpolate(mode="nearest") upsampling; F.group_norm (key `group_norm`, for tests/tensor/groupnorm_test.ts).
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261124)


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale).float().double()


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def conv_case(name, xs, ws, stride, padding, bias=True):
    """padding: [top, bottom, left, right]."""
    x = rnd(*xs).requires_grad_()
    w = rnd(*ws, scale=0.3).requires_grad_()
    b = rnd(ws[0]).requires_grad_() if bias else None
    top, bottom, left, right = padding
    xp = F.pad(x, (left, right, top, bottom))
    y = F.conv2d(xp, w, b, stride=stride)
    g = rnd(*y.shape)
    (y * g).sum().backward()
    return dict(name=name, op="conv", x=flat(x), x_shape=list(xs), w=flat(w), w_shape=list(ws),
                b=flat(b) if bias else None, stride=stride, padding=padding, out=flat(y),
                out_shape=list(y.shape), cot=flat(g), dx=flat(x.grad), dw=flat(w.grad),
                db=flat(b.grad) if bias else None)


def upsample_case(name, xs, factor):
    x = rnd(*xs).requires_grad_()
    y = F.interpolate(x, scale_factor=factor, mode="nearest")
    g = rnd(*y.shape)
    (y * g).sum().backward()
    return dict(name=name, op="upsample", factor=factor, x=flat(x), x_shape=list(xs), w=[], w_shape=[], b=None,
                stride=1, padding=[0, 0, 0, 0], out=flat(y), out_shape=list(y.shape), cot=flat(g),
                dx=flat(x.grad), dw=None, db=None)


def group_norm_case(name, shape, groups, eps=1e-6):
    x = rnd(*shape, scale=2.0).requires_grad_()
    c = shape[1]
    w = (1 + 0.5 * rnd(c)).requires_grad_()
    b = rnd(c).requires_grad_()
    y = F.group_norm(x, groups, w, b, eps)
    g = rnd(*y.shape)
    (y * g).sum().backward()
    return dict(name=name, x=flat(x), shape=list(shape), groups=groups, eps=eps, w=flat(w), b=flat(b), out=flat(y),
                cot=flat(g), dx=flat(x.grad), dw=flat(w.grad), db=flat(b.grad))


def main():
    cases = [
        conv_case("3x3 same, odd sizes", [2, 3, 7, 5], [4, 3, 3, 3], 1, [1, 1, 1, 1]),
        conv_case("SD downsample: pad (0,1,0,1), stride 2", [1, 4, 8, 8], [4, 4, 3, 3], 2, [0, 1, 0, 1]),
        conv_case("stride 2 asymmetric, odd sizes, no bias", [2, 3, 7, 9], [2, 3, 3, 3], 2, [0, 1, 0, 1], False),
        conv_case("1x1", [2, 6, 3, 5], [5, 6, 1, 1], 1, [0, 0, 0, 0]),
        upsample_case("nearest x2", [2, 3, 3, 5], 2),
    ]
    group_norm = [
        group_norm_case("32 groups (VAE default)", [2, 64, 3, 3], 32),
        group_norm_case("8 groups, odd sizes", [1, 16, 5, 7], 8),
        group_norm_case("eps 1e-5, 2 groups", [2, 4, 3, 5], 2, 1e-5),
    ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden", "conv.json")
    with open(out, "w") as f:
        json.dump({"generator": "tools/golden_conv.py", "torch": torch.__version__, "cases": cases, "group_norm": group_norm}, f)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
