#!/usr/bin/python3
"""Convert DiT-family checkpoints (DiT, DiT with long skips, U-ViT, MDTv2) between PyTorch (.pt, .pth) and
safetensors, keeping the official key names.

  /usr/bin/python3 tools/convert_dit_checkpoint.py DiT-XL-2-256x256.pt dit-xl-2-256.safetensors
  /usr/bin/python3 tools/convert_dit_checkpoint.py imagenet256_uvit_large.pth uvit-l-2.safetensors
  /usr/bin/python3 tools/convert_dit_checkpoint.py mdt_xl2_v2_ckpt.pt mdt-xl-2.safetensors
  /usr/bin/python3 tools/convert_dit_checkpoint.py ckpt.safetensors ckpt.pt

The backbone is recognised by its keys and its config inferred from the shapes, then stored in the
safetensors metadata as `ditflow_config`, so `ditflow` builds the model without being told:
- DiT (facebookresearch/DiT models.py): x_embedder, blocks.i, final_layer; the conditioning block from the
  blocks' keys; `blocks.i.skip_linear` in the last ⌊depth/2⌋ blocks makes it ditflow's DiT with long skips.
- U-ViT (baofff/U-ViT libs/uvit.py): in_blocks.i, mid_block, out_blocks.i.skip_linear, label_emb, and a
  pos_embed over the 2 extra tokens (label, time) and the patches; depth = 2·len(in_blocks). ditflow's U-ViT
  is the class-conditional one with qkv_bias=False and mlp_time_embed=False (all of the official ImageNet
  configs); an unconditional or text-conditioned U-ViT, a time_embed MLP, a qkv bias or out_blocks without
  skip_linear are refused, naming the feature. conv=False (no final_layer, as U-ViT-H/2) gets the identity
  3×3 convolution, the same function, which the conversion back drops while it is still the identity.
  ditflow computes timm's erf GELU in its tanh form (see lib/models/uvit.ts).
- MDTv2 (sail-sg/MDT masked_diffusion/models.py): en_inblocks, en_outblocks, de_blocks, sideblocks,
  decoder_pos_embed, mask_token; the head count from the relative position bias tables. The int64
  relative_position_index buffers are dropped (ditflow computes them) and rebuilt on the way back. MDTv1
  (blocks, decoder_blocks) is refused.

A .pt input may be a plain state dict (DiT-XL-2-256x256.pt, U-ViT's nnet_ema.pth, MDT's ema_*.pt and
mdt_xl2_v2_ckpt.pt) or a training checkpoint as DiT's train.py writes it ({"model", "ema", "opt", "args"}):
--key picks which (default: "ema" if present, else "model"). What the shapes cannot tell: the head count of a
DiT or U-ViT (known for the papers' widths 384, 512, 768, 1024 and 1152; else pass --heads), whether the last
label row is the null class of classifier-free guidance (assumed, as in DiT, MDT and U-ViT's latent ImageNet
models; pass --classes N when the table has exactly N rows, e.g. --classes 1000 for U-ViT's ImageNet-64),
and MDT's mask ratio (ditflow's default 0.3). tools/golden_convert.py checks conversions both ways.

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
from mdt_reference import RelativePositionBias  # noqa: E402

# Heads by width: DiT and MDT S, B, L, XL (384 ... 1152) and U-ViT S, M, L, H (512, 768, 1024, 1152).
KNOWN_HEADS = {384: 6, 512: 8, 768: 12, 1024: 16, 1152: 16}
# Metadata marking a U-ViT final_layer that the conversion added (the source had conv=False).
ADDED_CONV = ("uvit_final_layer", "added identity (the source has conv=False)")


def unsupported(what):
    raise SystemExit(f"unsupported: {what}")


def count(sd, prefix):
    """How many `prefix.{i}.` blocks the state dict has."""
    ids = [int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"\.(\d+)\.", k)] if m]
    return 1 + max(ids) if ids else 0


def labels(rows, classes):
    """numClasses and classDropoutProb of a label table with `rows` rows (the last one the null class unless
    --classes says there are as many classes as rows)."""
    if classes is None or classes == rows - 1:
        return {"numClasses": rows - 1, "classDropoutProb": 0.1}
    if classes == rows:
        return {"numClasses": rows, "classDropoutProb": 0.0}
    raise SystemExit(f"--classes {classes} does not fit a label table of {rows} rows")


def heads_of(hidden, heads):
    n = heads or KNOWN_HEADS.get(hidden)
    if n is None:
        raise SystemExit(f"hidden size {hidden} is not one of the papers': pass --heads")
    return n


def common(sd, patch_key, tokens, hidden_key, out_key):
    """The fields every backbone reads off the patch embedding, token count, MLP and output layer."""
    hidden, in_ch, p, _ = sd[patch_key].shape
    grid = int(round(tokens ** 0.5))
    if grid * grid != tokens:
        raise SystemExit(f"{tokens} patch tokens are not a square grid")
    return {
        "name": "custom", "inputSize": grid * p, "patchSize": p, "inChannels": in_ch, "hiddenSize": hidden,
        "mlpRatio": sd[hidden_key].shape[0] / hidden, "learnSigma": sd[out_key].shape[0] // (p * p) == 2 * in_ch,
    }


def dit_config(sd, heads, classes):
    cfg = common(sd, "x_embedder.proj.weight", sd["pos_embed"].shape[1], "blocks.0.mlp.fc1.weight",
                 "final_layer.linear.weight")
    hidden = cfg["hiddenSize"]
    depth = count(sd, "blocks")
    if "blocks.0.adaLN_modulation.1.weight" in sd:
        block = "adaLN-Zero" if sd["blocks.0.adaLN_modulation.1.weight"].shape[0] == 6 * hidden else "adaLN"
    elif "blocks.0.cross_attn.q.weight" in sd:
        block = "cross-attention"
    else:
        block = "in-context"
    cfg.update(depth=depth, numHeads=heads_of(hidden, heads), block=block,
               **labels(sd["y_embedder.embedding_table.weight"].shape[0], classes))
    skips = [i for i in range(depth) if f"blocks.{i}.skip_linear.weight" in sd]
    if skips:
        if skips != list(range(depth - depth // 2, depth)):
            unsupported(f"skip_linear in blocks {skips}: ditflow's long skips feed the last ⌊depth/2⌋ blocks")
        cfg["skips"] = True
    return cfg


def uvit_config(sd, heads, classes):
    for key, what in [("context_embed.weight", "a text-conditioned U-ViT (context_embed)"),
                      ("time_embed.0.weight", "a U-ViT with mlp_time_embed=True (time_embed MLP)"),
                      ("mid_block.attn.qkv.bias", "a U-ViT with qkv_bias=True")]:
        if key in sd:
            unsupported(f"{what}; ditflow's U-ViT has qkv_bias=False, mlp_time_embed=False and class labels")
    if "label_emb.weight" not in sd:
        unsupported("an unconditional U-ViT (num_classes=-1, no label_emb); ditflow's U-ViT is class-conditional")
    half = count(sd, "in_blocks")
    if half == 0 or count(sd, "out_blocks") != half or "out_blocks.0.skip_linear.weight" not in sd:
        unsupported("a U-ViT without ⌊depth/2⌋ in_blocks and as many out_blocks with skip_linear (skip=False)")
    cfg = common(sd, "patch_embed.proj.weight", sd["pos_embed"].shape[1] - 2, "mid_block.mlp.fc1.weight",
                 "decoder_pred.weight")
    if cfg["learnSigma"]:
        unsupported("a U-ViT with a learned variance (decoder_pred predicts ε only)")
    cfg.update(depth=2 * half, numHeads=heads_of(cfg["hiddenSize"], heads), block="adaLN-Zero", arch="uvit",
               **labels(sd["label_emb.weight"].shape[0], classes))
    return cfg


def mdt_config(sd, classes):
    if "en_inblocks.0.attn.qkv.weight" not in sd:
        unsupported("an MDTv1 state dict (blocks, decoder_blocks); ditflow's MDT is MDTv2")
    half, decode = count(sd, "en_inblocks"), count(sd, "de_blocks")
    if count(sd, "en_outblocks") != half or count(sd, "sideblocks") != 1:
        unsupported("an MDT whose en_outblocks are not as many as its en_inblocks, or not one sideblock")
    cfg = common(sd, "x_embedder.proj.weight", sd["pos_embed"].shape[1], "en_inblocks.0.mlp.fc1.weight",
                 "final_layer.linear.weight")
    table = sd["en_inblocks.0.attn.rel_pos_bias.relative_position_bias_table"]
    cfg.update(depth=2 * half + decode, numHeads=table.shape[1], block="adaLN-Zero", arch="mdt",
               decodeLayers=decode, **labels(sd["y_embedder.embedding_table.weight"].shape[0], classes))
    return cfg


def infer_config(sd, heads=None, classes=None):
    """The ditflow config of an official state dict, by its keys: DiT (with or without skips), U-ViT or MDT."""
    if "en_inblocks.0.attn.qkv.weight" in sd or "decoder_pos_embed" in sd:
        return mdt_config(sd, classes)
    if "mid_block.attn.qkv.weight" in sd:
        return uvit_config(sd, heads, classes)
    if "x_embedder.proj.weight" in sd and "blocks.0.attn.qkv.weight" in sd:
        return dit_config(sd, heads, classes)
    raise SystemExit(f"not a DiT, U-ViT or MDT state dict (keys: {', '.join(list(sd)[:6])}, ...)")


def identity_conv(c):
    w = torch.zeros(c, c, 3, 3)
    w[range(c), range(c), 1, 1] = 1
    return w


def pt_to_safetensors(src, dst, key=None, heads=None, classes=None):
    ck = torch.load(src, map_location="cpu")
    if isinstance(ck, dict) and ("model" in ck or "ema" in ck) and "pos_embed" not in ck:
        k = key or ("ema" if "ema" in ck else "model")
        print(f"using checkpoint[{k!r}]", file=sys.stderr)
        ck = ck[k]
    sd = {k: v.detach().float().contiguous() for k, v in ck.items() if not k.endswith(".relative_position_index")}
    cfg = infer_config(sd, heads, classes)
    meta = {"ditflow_config": json.dumps(cfg), "source": os.path.basename(src)}
    if cfg.get("arch") == "uvit" and "final_layer.weight" not in sd:
        c = cfg["inChannels"]
        sd["final_layer.weight"], sd["final_layer.bias"] = identity_conv(c), torch.zeros(c)
        meta[ADDED_CONV[0]] = ADDED_CONV[1]
    data = serialize({k: raw(v) for k, v in sd.items()}, meta)
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
    meta = header.get("__metadata__", {})
    base = 8 + n
    sd = {}
    for k, v in header.items():
        if k == "__metadata__" or k.startswith("__"):
            continue
        if v["dtype"] != "F32":
            raise SystemExit(f"{src}: tensor {k} is {v['dtype']}; only F32 checkpoints are converted")
        s, e = v["data_offsets"]
        sd[k] = torch.from_numpy(np.frombuffer(b[base + s:base + e], dtype="<f4").copy()).reshape(v["shape"])
    cfg = json.loads(meta.get("ditflow_config", "{}"))
    if cfg.get("arch") == "mdt":  # the official model's relative_position_index buffers, after their tables
        g = cfg["inputSize"] // cfg["patchSize"]
        index = RelativePositionBias(g, cfg["numHeads"]).relative_position_index
        out = {}
        for k, v in sd.items():
            out[k] = v
            if k.endswith(".relative_position_bias_table"):
                out[k.replace("relative_position_bias_table", "relative_position_index")] = index.clone()
        sd = out
    if meta.get(ADDED_CONV[0]) == ADDED_CONV[1]:
        c = sd["final_layer.bias"].shape[0]
        if torch.equal(sd["final_layer.weight"], identity_conv(c)) and not sd["final_layer.bias"].any():
            del sd["final_layer.weight"], sd["final_layer.bias"]
        else:
            print("final_layer changed since the conversion added it: kept (build the U-ViT with conv=True)",
                  file=sys.stderr)
    torch.save(sd, dst)
    print(json.dumps({"wrote": dst, "tensors": len(sd)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", help='which entry of a training checkpoint ("ema" or "model")')
    ap.add_argument("--heads", type=int, help="attention heads (DiT and U-ViT of non-paper hidden sizes)")
    ap.add_argument("--classes", type=int, help="number of classes when the label table has no null row")
    a = ap.parse_args()
    if not os.path.exists(a.src):
        raise SystemExit(f"{a.src}: no such file")
    if a.src.endswith(".safetensors"):
        safetensors_to_pt(a.src, a.dst)
    else:
        pt_to_safetensors(a.src, a.dst, a.key, a.heads, a.classes)


if __name__ == "__main__":
    main()
