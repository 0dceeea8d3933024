#!/usr/bin/python3
"""Golden outputs of a tiny random-weight AutoencoderKL for ditflow's interop test (tests/models/vae_test.ts).

Config: block_out_channels [8, 16], layers_per_block 1, latent_channels 4, norm_num_groups 4, 16x16x3 inputs
(every parameter random, GroupNorm affine included; channels this small keep the fixture < 400 KB). Writes tests/fixtures/vae/tiny.safetensors with diffusers'
key names (the port of the official safetensors writer in tools/gen_safetensors_fixtures.py) plus inputs and
float64-reference outputs under `__inputs__.*` / `__outputs__.*`, which ditflow strips before loading:
  __inputs__.x [2, 3, 16, 16], __inputs__.z [2, 4, 8, 8] (decoder input), __inputs__.noise [2, 4, 8, 8]
  __outputs__.mean, __outputs__.logvar (encode), __outputs__.sample (mean + std * noise), __outputs__.decode
  (decode(z)), __outputs__.kl [2]
  __inputs__.w [2, 3, 16, 16] (a cotangent) and __grads__.<name>: gradients of
  loss = sum(decode(sample(noise)) * w) + 0.01 * sum(kl) with respect to x and a few parameters (GRAD_KEYS).

Run: /usr/bin/python3 tools/golden_vae.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import raw, serialize  # noqa: E402
from vae_reference import AutoencoderKL  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "vae")
CONFIG = dict(in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1, latent_channels=4,
              norm_num_groups=4)


GRAD_KEYS = [
    "encoder.conv_in.weight", "encoder.down_blocks.0.downsamplers.0.conv.weight",
    "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "encoder.mid_block.attentions.0.to_q.weight",
    "encoder.mid_block.attentions.0.group_norm.weight", "quant_conv.bias", "post_quant_conv.weight",
    "decoder.mid_block.attentions.0.to_out.0.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight",
    "decoder.up_blocks.1.resnets.0.norm1.bias", "decoder.conv_out.weight",
]


def entry(t):
    return raw(t.detach().float().contiguous())


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(5150)
    model = AutoencoderKL(**CONFIG)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if "norm" in k and k.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) * (1.0 / fan_in) ** 0.5)
    model.eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = torch.randn(2, 4, 8, 8)
    noise = torch.randn(2, 4, 8, 8)
    m64 = model.double()
    with torch.no_grad():
        post = m64.encode(x.double())
        dec = m64.decode(z.double())
        sample = post.sample(noise.double())
        kl = post.kl()
    w = torch.randn(2, 3, 16, 16)
    xg = x.double().requires_grad_()
    post_g = m64.encode(xg)
    loss = (m64.decode(post_g.sample(noise.double())) * w.double()).sum() + 0.01 * post_g.kl().sum()
    loss.backward()
    params = dict(m64.named_parameters())
    grads = {"__grads__.x": entry(xg.grad)}
    grads.update({f"__grads__.{k}": entry(params[k].grad) for k in GRAD_KEYS})
    state = {k: v for k, v in model.float().state_dict().items()}
    tensors = {k: entry(v) for k, v in state.items()}
    tensors.update({
        "__inputs__.x": entry(x), "__inputs__.z": entry(z), "__inputs__.noise": entry(noise),
        "__outputs__.mean": entry(post.mean), "__outputs__.logvar": entry(post.logvar),
        "__outputs__.sample": entry(sample), "__outputs__.decode": entry(dec), "__outputs__.kl": entry(kl),
        "__inputs__.w": entry(w),
    })
    tensors.update(grads)
    meta = {"config": json.dumps(CONFIG), "generator": "tools/golden_vae.py"}
    path = os.path.join(OUT, "tiny.safetensors")
    with open(path, "wb") as f:
        f.write(serialize(tensors, meta))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    print("keys:", len(state), "e.g.", [k for k in state][:3], "...")


if __name__ == "__main__":
    main()
