#!/usr/bin/python3
"""Convert a Stable Diffusion VAE to the diffusers-format safetensors that ditflow loads.

  /usr/bin/python3 tools/convert_vae_checkpoint.py vae-ft-ema-560000-ema-pruned.ckpt sd-vae-ft-ema.safetensors
  /usr/bin/python3 tools/convert_vae_checkpoint.py v1-5-pruned-emaonly.ckpt sd-vae.safetensors   # whole SD checkpoint
  /usr/bin/python3 tools/convert_vae_checkpoint.py diffusion_pytorch_model.bin sd-vae-ft-mse.safetensors

Inputs:
* a CompVis/LDM checkpoint (.ckpt/.pt/.pth with a "state_dict", or a bare state dict), either the
  standalone VAE (keys encoder.down.0.block.0..., the vae-ft-ema/-mse .ckpt releases) or a whole Stable
  Diffusion checkpoint (keys under first_stage_model.): renamed to diffusers' names following diffusers'
  convert_ldm_vae_checkpoint (the decoder's up blocks are listed in reverse; attention q/k/v/proj_out
  1×1 convolutions become to_q/to_k/to_v/to_out.0 linear weights);
* a diffusers state dict (.bin, keys encoder.down_blocks...): written as is (old attention names
  query/key/value/proj_attn are renamed to to_q/to_k/to_v/to_out.0).
The output holds F32 tensors and metadata {"source", "scaling_factor": "0.18215"}.
Run with Debian's system python (torch): /usr/bin/python3.
"""
import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import raw, serialize  # noqa: E402

ATTN_OLD = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
ATTN_LDM = {"q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0", "norm": "group_norm"}


def resnet_rename(rest):
    return rest.replace("nin_shortcut", "conv_shortcut")


def ldm_to_diffusers(sd):
    out = {}
    n_up = 1 + max((int(m.group(1)) for k in sd for m in [re.match(r"decoder\.up\.(\d+)\.", k)] if m), default=-1)
    for k, v in sd.items():
        nk = None
        m = re.match(r"(encoder|decoder)\.(conv_in|conv_out)\.(.*)", k)
        if m:
            nk = f"{m.group(1)}.{m.group(2)}.{m.group(3)}"
        m = re.match(r"(encoder|decoder)\.norm_out\.(.*)", k)
        if m:
            nk = f"{m.group(1)}.conv_norm_out.{m.group(2)}"
        m = re.match(r"encoder\.down\.(\d+)\.block\.(\d+)\.(.*)", k)
        if m:
            nk = f"encoder.down_blocks.{m.group(1)}.resnets.{m.group(2)}.{resnet_rename(m.group(3))}"
        m = re.match(r"encoder\.down\.(\d+)\.downsample\.conv\.(.*)", k)
        if m:
            nk = f"encoder.down_blocks.{m.group(1)}.downsamplers.0.conv.{m.group(2)}"
        m = re.match(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.*)", k)
        if m:
            nk = f"decoder.up_blocks.{n_up - 1 - int(m.group(1))}.resnets.{m.group(2)}.{resnet_rename(m.group(3))}"
        m = re.match(r"decoder\.up\.(\d+)\.upsample\.conv\.(.*)", k)
        if m:
            nk = f"decoder.up_blocks.{n_up - 1 - int(m.group(1))}.upsamplers.0.conv.{m.group(2)}"
        m = re.match(r"(encoder|decoder)\.mid\.block_(\d)\.(.*)", k)
        if m:
            nk = f"{m.group(1)}.mid_block.resnets.{int(m.group(2)) - 1}.{resnet_rename(m.group(3))}"
        m = re.match(r"(encoder|decoder)\.mid\.attn_1\.(q|k|v|proj_out|norm)\.(.*)", k)
        if m:
            nk = f"{m.group(1)}.mid_block.attentions.0.{ATTN_LDM[m.group(2)]}.{m.group(3)}"
            if m.group(2) != "norm" and v.dim() == 4:
                v = v[:, :, 0, 0]
        if k.startswith("quant_conv.") or k.startswith("post_quant_conv."):
            nk = k
        if nk is None:
            raise SystemExit(f"unexpected key in the LDM VAE checkpoint: {k}")
        out[nk] = v
    return out


def diffusers_fix(sd):
    out = {}
    for k, v in sd.items():
        m = re.match(r"(.*\.attentions\.0)\.(query|key|value|proj_attn)\.(.*)", k)
        if m:
            k = f"{m.group(1)}.{ATTN_OLD[m.group(2)]}.{m.group(3)}"
            if v.dim() == 4:
                v = v[:, :, 0, 0]
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    a = ap.parse_args()
    if not os.path.exists(a.src):
        raise SystemExit(f"{a.src}: no such file (expected a VAE .ckpt/.pt/.bin)")
    ck = torch.load(a.src, map_location="cpu")
    if isinstance(ck, dict) and "state_dict" in ck:
        ck = ck["state_dict"]
    if any(k.startswith("first_stage_model.") for k in ck):
        ck = {k[len("first_stage_model."):]: v for k, v in ck.items() if k.startswith("first_stage_model.")}
    ck = {k: v for k, v in ck.items() if not k.startswith("loss.")}  # LDM training-loss modules
    sd = ldm_to_diffusers(ck) if any(k.startswith("encoder.down.") for k in ck) else diffusers_fix(ck)
    tensors = {k: raw(v.detach().float().contiguous()) for k, v in sd.items()}
    data = serialize(tensors, {"source": os.path.basename(a.src), "scaling_factor": "0.18215"})
    tmp = a.dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, a.dst)
    print(f"wrote {a.dst}: {len(sd)} tensors, {sum(v.numel() for v in sd.values()):,} parameters")


if __name__ == "__main__":
    main()
