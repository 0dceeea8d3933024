#!/usr/bin/python3
"""Convert DiT checkpoints between PyTorch (.pt) and safetensors, keeping the official key names.

  /usr/bin/python3 tools/convert_dit_checkpoint.py DiT-XL-2-256x256.pt dit-xl-2-256.safetensors
  /usr/bin/python3 tools/convert_dit_checkpoint.py ckpt.safetensors ckpt.pt

A .pt input may be a plain state dict (the released DiT-XL-2-256x256.pt / 512x512.pt) or a training
checkpoint of the official train.py ({"model", "ema", "opt", "args"}): --key picks which (default: "ema" if
present, else "model"). The model config (depth, hidden size, heads, patch size, classes, learned sigma,
latent size) is inferred from the shapes and stored in the safetensors metadata as `ditflow_config`, so
`ditflow` can build the model without being told. Pass --heads if the hidden size is not one of the paper's
(the head count cannot be read off the shapes).

Run with Debian's system python (torch): /usr/bin/python3.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import raw, serialize  # noqa: E402

PAPER_HEADS = {384: 6, 768: 12, 1024: 16, 1152: 16}


def infer_config(sd, heads=None):
    w = sd["x_embedder.proj.weight"]
    hidden, in_ch, p, _ = w.shape
    tokens = sd["pos_embed"].shape[1]
    depth = 1 + max(int(m.group(1)) for k in sd for m in [re.match(r"blocks\.(\d+)\.", k)] if m)
    out_dim = sd["final_layer.linear.weight"].shape[0]
    out_ch = out_dim // (p * p)
    rows = sd["y_embedder.embedding_table.weight"].shape[0]
    if "blocks.0.adaLN_modulation.1.weight" in sd:
        block = "adaLN-Zero" if sd["blocks.0.adaLN_modulation.1.weight"].shape[0] == 6 * hidden else "adaLN"
    elif "blocks.0.cross_attn.q.weight" in sd:
        block = "cross-attention"
    else:
        block = "in-context"
    num_heads = heads or PAPER_HEADS.get(hidden)
    if num_heads is None:
        raise SystemExit(f"hidden size {hidden} is not one of the paper's: pass --heads")
    grid = int(round(tokens ** 0.5))
    mlp_hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
    return {
        "name": "custom", "inputSize": grid * p, "patchSize": p, "inChannels": in_ch, "hiddenSize": hidden,
        "depth": depth, "numHeads": num_heads, "mlpRatio": mlp_hidden / hidden,
        "numClasses": rows - 1, "classDropoutProb": 0.1, "learnSigma": out_ch == 2 * in_ch, "block": block,
    }


def pt_to_safetensors(src, dst, key=None, heads=None):
    ck = torch.load(src, map_location="cpu")
    if isinstance(ck, dict) and ("model" in ck or "ema" in ck) and "pos_embed" not in ck:
        k = key or ("ema" if "ema" in ck else "model")
        print(f"using checkpoint[{k!r}]", file=sys.stderr)
        ck = ck[k]
    sd = {k: v.detach().float().contiguous() for k, v in ck.items()}
    cfg = infer_config(sd, heads)
    data = serialize({k: raw(v) for k, v in sd.items()}, {"ditflow_config": json.dumps(cfg), "source": os.path.basename(src)})
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dst)
    print(json.dumps({"wrote": dst, "tensors": len(sd), "params": int(sum(v.numel() for v in sd.values())), "config": cfg}))


def safetensors_to_pt(src, dst):
    with open(src, "rb") as f:
        b = f.read()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8:8 + n])
    base = 8 + n
    sd = {}
    for k, v in header.items():
        if k == "__metadata__" or k.startswith("__"):
            continue
        if v["dtype"] != "F32":
            raise SystemExit(f"{src}: tensor {k} is {v['dtype']}; only F32 checkpoints are converted")
        s, e = v["data_offsets"]
        sd[k] = torch.from_numpy(np.frombuffer(b[base + s:base + e], dtype="<f4").copy()).reshape(v["shape"])
    torch.save(sd, dst)
    print(json.dumps({"wrote": dst, "tensors": len(sd)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", help='which entry of a training checkpoint ("ema" or "model")')
    ap.add_argument("--heads", type=int, help="attention heads (only needed for non-paper hidden sizes)")
    a = ap.parse_args()
    if not os.path.exists(a.src):
        raise SystemExit(f"{a.src}: no such file")
    if a.src.endswith(".safetensors"):
        safetensors_to_pt(a.src, a.dst)
    else:
        pt_to_safetensors(a.src, a.dst, a.key, a.heads)


if __name__ == "__main__":
    main()
