#!/usr/bin/python3
"""Convert pytorch-fid's FID Inception weights to the safetensors file that ditflow's FID stages load.

The weights cannot be downloaded by ditflow. Get them yourself (about 91 MB):

    mkdir -p weights
    curl -L -o weights/pt_inception-2015-12-05-6726825d.pth \\
        https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

(or copy them from a machine where pytorch-fid has run: ~/.cache/torch/hub/checkpoints/), then convert:

    /usr/bin/python3 tools/convert_inception_checkpoint.py \\
        weights/pt_inception-2015-12-05-6726825d.pth weights/pt_inception-2015-12-05-6726825d.safetensors

and point the `fid-ref` / `fid` stages at the output (`extractor: inception`,
`weights: weights/pt_inception-2015-12-05-6726825d.safetensors`, a path relative to the pipeline file).

The input is a plain state dict (a port of TF's inception-2015-12-05 graph to torchvision's Inception3 with
1008 classes, no aux logits). The converter loads it into the FID Inception of tools/inception_reference.py
with strict key and shape checks (as pytorch-fid's `fid_inception_v3()` does), drops the
`*.num_batches_tracked` counters, and writes every other tensor as F32 under its own name
(`Conv2d_1a_3x3.conv.weight`, `Conv2d_1a_3x3.bn.running_mean`, ..., `fc.weight`, `fc.bias`).

Metadata: source (file name), source_sha256, format "ditflow-inception-v3-fid", and feature_extractor: the name
the FID stages report beside every number. torch.hub names files `<name>-<first 8+ hex digits of the
sha256>.<ext>`; when the input's sha256 starts with 6726825d (the published file) the name is
"inception-v3-fid", otherwise "inception-v3-fid-unverified-<sha256[:8]>" (or whatever --name says), so that
scores from other weights are never labelled as standard FIDs.

Run with Debian's system Python (torch 1.13, torchvision 0.14): /usr/bin/python3.
"""
import argparse
import hashlib
import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import raw, serialize  # noqa: E402
from inception_reference import FID_WEIGHTS_URL, fid_inception_v3  # noqa: E402

PUBLISHED_SHA256_PREFIX = "6726825d"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="pt_inception-2015-12-05-6726825d.pth (a state dict)")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--name", help="feature_extractor name to record (default: from the sha256, see above)")
    a = ap.parse_args()
    if not os.path.exists(a.src):
        raise SystemExit(
            f"{a.src}: no such file. Expected pytorch-fid's FID Inception weights; download them from\n"
            f"  {FID_WEIGHTS_URL}\n(see the top of this script)")
    digest = sha256_of(a.src)
    sd = torch.load(a.src, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise SystemExit(f"{a.src}: expected a state dict, got {type(sd).__name__}")
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    net = fid_inception_v3()
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(
            f"{a.src} is not the FID Inception-v3 (1008 classes, no aux logits): "
            f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
    if a.name:
        name = a.name
    elif digest.startswith(PUBLISHED_SHA256_PREFIX):
        name = "inception-v3-fid"
    else:
        name = f"inception-v3-fid-unverified-{digest[:8]}"
        print(f"warning: sha256 {digest[:16]}... does not start with {PUBLISHED_SHA256_PREFIX} (the published "
              f"file's); recording feature_extractor = {name}", file=sys.stderr)
    tensors = {k: raw(v.detach().float().contiguous()) for k, v in sd.items()}
    meta = {"source": os.path.basename(a.src), "source_sha256": digest, "format": "ditflow-inception-v3-fid",
            "feature_extractor": name}
    data = serialize(tensors, meta)
    os.makedirs(os.path.dirname(os.path.abspath(a.dst)), exist_ok=True)
    tmp = a.dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, a.dst)
    print(f"wrote {a.dst}: {len(sd)} tensors, {sum(v.numel() for v in sd.values()):,} parameters, "
          f"feature_extractor = {name}")


if __name__ == "__main__":
    main()
