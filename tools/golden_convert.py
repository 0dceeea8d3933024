#!/usr/bin/python3
"""Checks tools/convert_dit_checkpoint.py on small U-ViTs, an MDT and a DiT with long skips (random weights,
the reference modules of tools/uvit_reference.py and tools/mdt_reference.py), and writes the fixtures of
tests/models/convert_test.ts: each model is saved as the official code saves it (.pt: a plain state dict, the
MDT as a {"model", "ema", "opt", "args"} training checkpoint with its relative_position_index buffers, one
U-ViT with conv=False), converted to tests/fixtures/convert/<name>.safetensors, converted back to .pt and
loaded into a fresh reference model with strict=True (every tensor must come back bit for bit, and the
forward with it). <name>_io.safetensors holds the inputs and the reference's float64 forward, which the
test compares with ditflow's forward of the converted file; golden_convert.json the configs. Unsupported
U-ViT and MDT features must be refused, naming the feature.

Run: /usr/bin/python3 tools/golden_convert.py
"""
import copy
import json
import os
import sys
import tempfile

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_dit_checkpoint import infer_config, pt_to_safetensors, safetensors_to_pt  # noqa: E402
from gen_safetensors_fixtures import raw, serialize  # noqa: E402
from mdt_reference import MDT  # noqa: E402
from uvit_reference import DiTSkips, UViT  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "convert")

CASES = {
    "uvit": ("uvit", dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=4, num_heads=2,
                          num_classes=10)),
    "uvit_noconv": ("uvit", dict(input_size=8, patch_size=4, in_channels=3, hidden_size=12, depth=2, num_heads=2,
                                 num_classes=5, conv=False)),
    "mdt": ("mdt", dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=4, num_heads=2,
                        num_classes=10, learn_sigma=True, decode_layer=2)),
    "dit_skips": ("dit", dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=4, num_heads=2,
                              num_classes=10, block="adaLN-Zero")),
}


def build(arch, cfg):
    if arch == "mdt":
        return MDT(**cfg)
    if arch == "dit":
        return DiTSkips(**cfg)
    m = UViT(**{k: v for k, v in cfg.items() if k != "conv"})
    if not cfg.get("conv", True):
        m.final_layer = nn.Identity()
    return m


def refused(sd, what):
    try:
        infer_config(sd, heads=2)
    except SystemExit as e:
        assert what in str(e), f"{e} does not name {what}"
        return
    raise AssertionError(f"a state dict with {what} was accepted")


def check_refusals(uvit_sd, mdt_sd):
    t = torch.zeros(1)
    refused({**uvit_sd, "time_embed.0.weight": t}, "mlp_time_embed=True")
    refused({**uvit_sd, "mid_block.attn.qkv.bias": t}, "qkv_bias=True")
    refused({**uvit_sd, "context_embed.weight": t}, "text-conditioned")
    refused({k: v for k, v in uvit_sd.items() if k != "label_emb.weight"}, "unconditional")
    refused({k: v for k, v in uvit_sd.items() if "skip_linear" not in k}, "skip=False")
    refused({k.replace("en_inblocks", "blocks"): v for k, v in mdt_sd.items()}, "MDTv1")


def main():
    os.makedirs(OUT, exist_ok=True)
    summary = {}
    sds = {}
    tmp = tempfile.mkdtemp()
    for i, (name, (arch, cfg)) in enumerate(CASES.items()):
        torch.manual_seed(2468 + i)
        model = build(arch, cfg)
        with torch.no_grad():
            for k, p in model.named_parameters():
                if k != "pos_embed" or arch != "dit":
                    p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1))
        sd = model.state_dict()
        sds[name] = sd
        pt = os.path.join(tmp, f"{name}.pt")
        if arch == "mdt":  # the EMA weights must be the ones picked
            other = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
            torch.save({"model": other, "ema": sd, "opt": {}, "args": {"model": "MDTv2_S_2"}}, pt)
        else:
            torch.save(sd, pt)
        st = os.path.join(OUT, f"{name}.safetensors")
        pt_to_safetensors(pt, st, heads=None if arch == "mdt" else cfg["num_heads"])

        back = os.path.join(tmp, f"{name}.back.pt")
        safetensors_to_pt(st, back)
        sd2 = torch.load(back)
        assert list(sorted(sd2)) == list(sorted(sd)), set(sd2) ^ set(sd)
        for k, v in sd.items():
            assert v.dtype == sd2[k].dtype and torch.equal(v, sd2[k]), k
        fresh = build(arch, cfg)
        fresh.load_state_dict(sd2, strict=True)

        N = 3
        x = torch.randn(N, cfg["in_channels"], cfg["input_size"], cfg["input_size"])
        t = torch.tensor([0, 517, 999])
        y = torch.tensor([1, cfg["num_classes"], 3])  # includes the null class
        with torch.no_grad():
            roundtrip = float((fresh(x, t, y) - model(x, t, y)).abs().max())
            out64 = copy.deepcopy(model).double()(x.double(), t, y)
        assert roundtrip == 0, roundtrip
        tensors = {"x": raw(x), "t": raw(t.to(torch.int32)), "y": raw(y.to(torch.int32)), "out": raw(out64.float())}
        with open(os.path.join(OUT, f"{name}_io.safetensors"), "wb") as f:
            f.write(serialize(tensors, {"format": "ditflow-golden"}))
        summary[name] = {"arch": arch, "config": cfg, "roundtrip_max_abs": roundtrip}
        print(f"{name}: converted, back to .pt bit for bit (forward max |Δ| {roundtrip})")
    check_refusals(sds["uvit"], sds["mdt"])
    with open(os.path.join(OUT, "golden_convert.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
