#!/usr/bin/python3
"""Golden values for ditflow's matmul and linear ops from PyTorch.

Run with Debian's system Python (torch 1.13, CPU):

    /usr/bin/python3 tools/golden_matmul.py

Writes tests/fixtures/golden/matmul.json. Everything is computed in float64 from inputs rounded to float32
(what the GPU sees); input gradients come from autograd with a fixed random cotangent.

Cases:
* `matmul`: torch.matmul(op(a), op(b)) where op transposes the last two dims when `transA` / `transB` is set
  (a is stored [..., K, M] then, b [..., N, K]); batched, and with a broadcast 2-D operand.
* `linear`: torch.nn.functional.linear(x, weight, bias) with x [..., in], weight [out, in], bias [out] or none.
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20240611)


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float64).float().double()


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def matmul_case(name, a_shape, b_shape, trans_a=False, trans_b=False):
    a = rnd(*a_shape).requires_grad_()
    b = rnd(*b_shape).requires_grad_()
    opa = a.transpose(-2, -1) if trans_a else a
    opb = b.transpose(-2, -1) if trans_b else b
    y = torch.matmul(opa, opb)
    g = rnd(*y.shape)
    y.backward(g)
    return {
        "name": name,
        "kind": "matmul",
        "transA": trans_a,
        "transB": trans_b,
        "shapes": {"a": list(a_shape), "b": list(b_shape), "y": list(y.shape)},
        "inputs": {"a": flat(a), "b": flat(b)},
        "cotangent": flat(g),
        "output": flat(y),
        "grads": {"a": flat(a.grad), "b": flat(b.grad)},
    }


def linear_case(name, x_shape, out_features, bias=True):
    in_features = x_shape[-1]
    x = rnd(*x_shape).requires_grad_()
    w = rnd(out_features, in_features).requires_grad_()
    b = rnd(out_features).requires_grad_() if bias else None
    y = F.linear(x, w, b)
    g = rnd(*y.shape)
    y.backward(g)
    case = {
        "name": name,
        "kind": "linear",
        "shapes": {"x": list(x_shape), "weight": [out_features, in_features], "y": list(y.shape)},
        "inputs": {"x": flat(x), "weight": flat(w)},
        "cotangent": flat(g),
        "output": flat(y),
        "grads": {"x": flat(x.grad), "weight": flat(w.grad)},
    }
    if bias:
        case["shapes"]["bias"] = [out_features]
        case["inputs"]["bias"] = flat(b)
        case["grads"]["bias"] = flat(b.grad)
    return case


def main():
    cases = [
        matmul_case("NN 2-D vec4", [12, 16], [16, 8]),
        matmul_case("NT 2-D odd", [7, 9], [5, 9], trans_b=True),
        matmul_case("TN 2-D", [20, 12], [20, 8], trans_a=True),
        matmul_case("TT 2-D odd", [9, 6], [3, 9], trans_a=True, trans_b=True),
        matmul_case("NN batched", [3, 8, 12], [3, 12, 4]),
        matmul_case("TT batched", [2, 12, 8], [2, 4, 12], trans_a=True, trans_b=True),
        matmul_case("NN batched a, 2-D b", [2, 3, 5, 8], [8, 4]),
        matmul_case("TN batched a, 2-D b", [3, 8, 4], [8, 12], trans_a=True),
        matmul_case("NT 2-D a, batched b", [4, 8], [3, 6, 8], trans_b=True),
        linear_case("linear 2-D with bias", [6, 12], 8),
        linear_case("linear 3-D with bias", [2, 5, 8], 12),
        linear_case("linear 3-D odd without bias", [3, 4, 7], 5, bias=False),
        linear_case("linear 3-D odd with bias", [2, 33, 9], 6),
    ]
    out = {
        "generator": "tools/golden_matmul.py",
        "torch": torch.__version__,
        "dtype": "float64 from float32-rounded inputs",
        "cases": cases,
    }
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "fixtures", "golden", "matmul.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
