#!/usr/bin/python3
"""Golden values for lib/tensor/ops/layout.ts from PyTorch.

Run with Debian's system Python (it has torch 1.13):

    /usr/bin/python3 tools/golden_layout.py

Writes tests/fixtures/golden/layout.json. Inputs are float32 random values (exactly representable in the
f32 the GPU sees) computed on in float64; for every case: the inputs, the op's arguments, the output, a
fixed cotangent and the input gradients (vector-Jacobian products from torch autograd).

* patchify: the (c, i, j)-ordered patches, plus the patch-embedding conv `F.conv2d(x, W, b, stride=p)`
  as tokens [N, T, D], which must equal patches @ W.view(D, C*p*p).T + b.
* unpatchify: the official DiT code verbatim (models.py, DiT.unpatchify).
* gather_rows: index_select with repeated and unused rows.
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20240607)
f64 = torch.float64


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float32).to(f64)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def case(name, inputs, fn, args, grad=True):
    """inputs: list of tensors (float64; integer tensors are passed through without gradients)."""
    xs = [t.clone().requires_grad_(grad and t.is_floating_point()) for t in inputs]
    y = fn(*xs)
    w = rnd(*y.shape) if y.is_floating_point() else None
    out = {"name": name, "args": args,
           "inputs": [{"shape": list(t.shape), "data": flat(t)} for t in inputs],
           "output": {"shape": list(y.shape), "data": flat(y)}}
    if w is not None and grad:
        y.backward(w)
        out["cotangent"] = flat(w)
        out["grads"] = [flat(x.grad) if x.grad is not None else None for x in xs]
    return out


# The official DiT unpatchify (facebookresearch/DiT models.py), with self.out_channels / patch size as
# arguments.
def unpatchify_official(x, p, c):
    """
    x: (N, T, patch_size**2 * C)
    imgs: (N, H, W, C)
    """
    h = w = int(x.shape[1] ** 0.5)
    assert h * w == x.shape[1]

    x = x.reshape(shape=(x.shape[0], h, w, p, p, c))
    x = torch.einsum('nhwpqc->nchpwq', x)
    imgs = x.reshape(shape=(x.shape[0], c, h * p, h * p))
    return imgs


def patchify_ref(x, p):
    n, c, hh, ww = x.shape
    h, w = hh // p, ww // p
    return x.reshape(n, c, h, p, w, p).permute(0, 2, 4, 1, 3, 5).reshape(n, h * w, c * p * p)


cases = []
cases.append(case("permute", [rnd(2, 3, 4, 2)], lambda x: x.permute(2, 0, 3, 1), {"dims": [2, 0, 3, 1]}))
cases.append(case("transpose", [rnd(3, 4, 5)], lambda x: x.transpose(0, 2), {"d0": 0, "d1": 2}))
cases.append(case("concat", [rnd(2, 3, 4), rnd(2, 1, 4), rnd(2, 5, 4)], lambda a, b, c: torch.cat([a, b, c], 1),
                  {"axis": 1}))
# split: only pieces 0 and 2 reach the output, so piece 1's slot of the gradient is zero
cases.append(case("split", [rnd(3, 10)], lambda x: torch.cat([x.split([2, 5, 3], 1)[k] for k in (2, 0)], 1),
                  {"sizes": [2, 5, 3], "axis": 1, "use": [2, 0]}))
cases.append(case("chunk", [rnd(7, 4)], lambda x: torch.cat(x.chunk(3, 0)[::-1], 0), {"n": 3, "axis": 0}))
cases.append(case("narrow", [rnd(4, 6, 3)], lambda x: x.narrow(1, 2, 3), {"axis": 1, "start": 2, "length": 3}))
cases.append(case("flip", [rnd(2, 3, 4)], lambda x: x.flip(2), {"axis": 2}))
cases.append(case("flip0", [rnd(5, 3)], lambda x: x.flip(0), {"axis": 0}))
cases.append(case("patchify", [rnd(2, 4, 4, 6)], lambda x: patchify_ref(x, 2), {"p": 2}))
cases.append(case("patchify4", [rnd(1, 3, 8, 12)], lambda x: patchify_ref(x, 4), {"p": 4}))
cases.append(case("unpatchify", [rnd(2, 4, 2 * 2 * 8)], lambda x: unpatchify_official(x, 2, 8), {"p": 2, "c": 8}))
cases.append(case("unpatchify4", [rnd(1, 4, 4 * 4 * 3)], lambda x: unpatchify_official(x, 4, 3), {"p": 4, "c": 3}))
idx = torch.tensor([4, 1, 4, 0, 4, 2, 1], dtype=torch.int64)
cases.append(case("gather_rows", [rnd(5, 3, 2)], lambda x: x.index_select(0, idx), {"idx": idx.tolist()}))
mask = torch.tensor([[1], [0], [1]], dtype=torch.bool)
cases.append(case("where", [rnd(3, 4), rnd(4)], lambda a, b: torch.where(mask, a, b),
                  {"mask": [1, 0, 1], "mask_shape": [3, 1]}))

# patch embedding: conv2d(stride p) == Linear on (c, i, j)-flattened patches
x = rnd(2, 4, 4, 6)
wt = rnd(6, 4, 2, 2)
bias = rnd(6)
conv = F.conv2d(x, wt, bias, stride=2).flatten(2).transpose(1, 2)  # [N, T, D]
patch_embed = {"x": {"shape": list(x.shape), "data": flat(x)},
               "weight": {"shape": list(wt.shape), "data": flat(wt)},
               "bias": flat(bias), "p": 2,
               "tokens": {"shape": list(conv.shape), "data": flat(conv)}}

out = {"torch": torch.__version__, "cases": cases, "patch_embed": patch_embed}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden", "layout.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump(out, f)
print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")
