#!/usr/bin/python3
"""Golden values for ditflow's attention ops from PyTorch.

Run with Debian's system Python (torch 1.13, CPU):

    /usr/bin/python3 tools/golden_attention.py

Writes tests/fixtures/golden/attention.json. torch 1.13 has no scaled_dot_product_attention, so attention is
written out explicitly, softmax(q @ k^T * scale, dim=-1) @ v, in float64, and the input gradients for a fixed
cotangent come from autograd. Inputs are rounded to float32 first (what the GPU sees).

Cases:
* `attention`: q [B, H, Tq, Dh], k, v [B, H, Tk, Dh] -> o [B, H, Tq, Dh]; grads of q, k, v.
* `qkv`: the DiT attention layer without its Linear layers, as in the official DiT/timm `Attention`:
  qkv.reshape(B, N, 3, H, Dh).permute(2, 0, 3, 1, 4) -> q, k, v; attention; o.transpose(1, 2).reshape(B, N, D);
  grad of qkv.
"""

import json
import os

import torch

torch.manual_seed(1234)


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale).float().double()


def attn(q, k, v, scale):
    p = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
    return p @ v


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def attention_case(name, B, H, Tq, Tk, Dh, scale=None, qscale=1.0):
    q = rnd(B, H, Tq, Dh, scale=qscale).requires_grad_()
    k = rnd(B, H, Tk, Dh, scale=qscale).requires_grad_()
    v = rnd(B, H, Tk, Dh).requires_grad_()
    s = Dh ** -0.5 if scale is None else scale
    o = attn(q, k, v, s)
    g = rnd(*o.shape)
    o.backward(g)
    case = {
        "name": name,
        "kind": "attention",
        "shape": {"B": B, "H": H, "Tq": Tq, "Tk": Tk, "Dh": Dh},
        "inputs": {"q": flat(q), "k": flat(k), "v": flat(v)},
        "cotangent": flat(g),
        "output": flat(o),
        "grads": {"q": flat(q.grad), "k": flat(k.grad), "v": flat(v.grad)},
    }
    if scale is not None:
        case["scale"] = scale
    return case


def qkv_case(name, B, T, H, Dh):
    D = H * Dh
    qkv = rnd(B, T, 3 * D).requires_grad_()
    q, k, v = qkv.reshape(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4).unbind(0)
    o = attn(q, k, v, Dh ** -0.5)
    y = o.transpose(1, 2).reshape(B, T, D)
    g = rnd(*y.shape)
    y.backward(g)
    return {
        "name": name,
        "kind": "qkv",
        "shape": {"B": B, "T": T, "H": H, "Dh": Dh},
        "inputs": {"qkv": flat(qkv)},
        "cotangent": flat(g),
        "output": flat(y),
        "grads": {"qkv": flat(qkv.grad)},
    }


def main():
    cases = [
        attention_case("self-attention B2 H2 T7 Dh8", 2, 2, 7, 7, 8),
        attention_case("cross-attention Tq9 Tk2 Dh16, scale 0.2", 1, 2, 9, 2, 16, scale=0.2),
        attention_case("Dh72 Tq3 Tk5, peaked logits", 1, 1, 3, 5, 72, qscale=2.0),
        qkv_case("DiT layer: split, attend, merge B2 T5 H2 Dh8", 2, 5, 2, 8),
    ]
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden", "attention.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    doc = {
        "generator": "tools/golden_attention.py",
        "torch": torch.__version__,
        "dtype": "float64 (inputs rounded to float32)",
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(out)} ({os.path.getsize(out)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
