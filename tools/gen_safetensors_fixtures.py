#!/usr/bin/python3
"""Generate the safetensors test fixtures in tests/fixtures/safetensors/.

Run with Debian's system Python (it has torch):

    /usr/bin/python3 tools/gen_safetensors_fixtures.py

The `safetensors` Python package is not installable here, so `serialize` below is a faithful port of the
official writer, huggingface/safetensors `safetensors/src/tensor.rs`:

* `prepare`: tensors are sorted with
  `right.dtype().cmp(&left.dtype()).then(lname.cmp(rname))`, i.e. by descending position in the `Dtype` enum
  (declared in increasing alignment) and then by name (Rust `String` order = UTF-8 byte order); offsets are
  assigned in that order; the header is `serde_json::to_string` of the metadata (compact, no spaces), padded
  with b' ' to a multiple of 8 (`let extra = (8 - metadata_buf.len() % 8) % 8`).
* `impl Serialize for Metadata`: `"__metadata__"` first (only when given), then each tensor in buffer order
  as `{"dtype":..,"shape":[..],"data_offsets":[b,e]}` (field order of `struct TensorInfo`).
* `serialize`: `n.to_le_bytes()` (u64) + header + each tensor's bytes.
* The Python binding (`safetensors.torch.save_file`) hands the Rust writer each tensor's raw little-endian
  bytes (`_tobytes`), dtype and shape, and `metadata` as `Option<HashMap<String, String>>`.

serde_json and `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` escape strings identically
(`\\"`, `\\\\`, `\\b \\f \\n \\r \\t`, other control characters as lowercase `\\u00xx`, everything else raw
UTF-8).

Metadata key order: the official writer iterates a Rust `HashMap`, so with two or more keys its key order is
random (safetensors issue #584); this port (like ditflow's writer) sorts keys by UTF-8 bytes, the order
proposed in safetensors PR #790. With zero or one key the output is the official writer's exactly.

The port is checked against the byte strings in the official Rust tests (`test_serialization`,
`test_serialization_forced_alignement`, `test_empty`) before anything is written.

Outputs: *.safetensors fixtures and expected.json (sha256 of each file and of each tensor's bytes, dtype,
shape, metadata and sample values).
"""

import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "safetensors")

# `enum Dtype` of safetensors/src/tensor.rs, in declared order (increasing alignment).
DTYPE_ORDER = [
    "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
    "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
]
RANK = {d: i for i, d in enumerate(DTYPE_ORDER)}

TORCH_DTYPE = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
NUMPY_DTYPE = {np.dtype("uint16"): "U16", np.dtype("uint32"): "U32", np.dtype("uint64"): "U64"}


def serialize(tensors, metadata=None):
    """tensors: {name: (dtype_str, shape_list, raw_le_bytes)}; metadata: None or {str: str}."""
    items = sorted(tensors.items(), key=lambda kv: (-RANK[kv[1][0]], kv[0].encode("utf-8")))
    header = {}
    if metadata is not None:
        header["__metadata__"] = dict(sorted(metadata.items(), key=lambda kv: kv[0].encode("utf-8")))
    offset = 0
    for name, (dtype, shape, data) in items:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    buf = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    buf += b" " * ((8 - len(buf) % 8) % 8)
    return struct.pack("<Q", len(buf)) + buf + b"".join(d for _, (_, _, d) in items)


def raw(t):
    """(dtype, shape, bytes) of a torch tensor or numpy array, as `_tobytes` gives them (little-endian)."""
    if isinstance(t, np.ndarray):
        a = np.ascontiguousarray(t).astype(t.dtype.newbyteorder("<"), copy=False)
        return NUMPY_DTYPE[t.dtype], list(t.shape), a.tobytes()
    t = t.contiguous()
    dtype = TORCH_DTYPE[t.dtype]
    if t.dtype == torch.bfloat16:
        b = t.view(torch.int16).numpy().tobytes()
    else:
        b = t.numpy().tobytes()
    assert sys.byteorder == "little"
    return dtype, list(t.shape), b


def sample(t, limit=64):
    """The first `limit` flattened values as JSON-safe numbers (64-bit integers as strings)."""
    if isinstance(t, np.ndarray):
        flat = t.reshape(-1)[:limit].tolist()
        return [str(v) for v in flat] if t.dtype == np.uint64 else flat
    flat = t.reshape(-1)[:limit]
    if t.dtype in (torch.float16, torch.bfloat16):
        return flat.float().tolist()  # exact in float32
    if t.dtype == torch.int64:
        return [str(v) for v in flat.tolist()]
    if t.dtype == torch.bool:
        return [int(v) for v in flat.tolist()]
    return flat.tolist()


def check_port():
    """The port reproduces the byte strings of the official Rust tests."""
    data = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    out = serialize({"attn.0": ("F32", [1, 2, 3], data)})
    want = bytes([
        64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
        116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
        58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
        101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
        0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ])
    assert out == want, "test_serialization"
    out = serialize({"attn0": ("F32", [1, 1, 2, 3], data)})
    assert out[:8] == bytes([72, 0, 0, 0, 0, 0, 0, 0]) and out[8 + 65:8 + 72] == b" " * 7, "forced alignment"
    assert serialize({}) == bytes([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]), "test_empty"
    want = bytes([
        40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
        95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
        116, 34, 125, 125, 32, 32, 32, 32, 32,
    ])
    assert serialize({}, {"framework": "pt"}) == want, "test_empty with metadata"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def main():
    check_port()
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20240611)
    rng = np.random.default_rng(20240611)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(dtype)

    def randint(lo, hi, *shape, dtype):
        return torch.randint(lo, hi, shape, generator=g, dtype=torch.int64).to(dtype)

    mixed = {
        "blocks.0.attn.qkv.weight": randn(12, 4),
        "blocks.0.attn.qkv.bias": randn(12),
        "blocks.10.mlp.fc1.weight": randn(3, 5, 7),
        "blocks.2.mlp.fc1.weight": randn(2, 3, dtype=torch.float64),
        "Pos_embed": randn(1, 4, 3, dtype=torch.float64),
        "half.weight": randn(5, 5, dtype=torch.float16) * 10,
        "half.tiny": torch.tensor([6e-8, -6e-8, 1e-5, 65504.0, -0.0, 3.140625], dtype=torch.float16),
        "brain.weight": randn(4, 6, dtype=torch.bfloat16) * 100,
        "ids.long": torch.tensor([2**62 + 12345, -(2**62) - 7, 0, 1, -1, 2**53 + 1], dtype=torch.int64),
        "steps": randint(-(2**31), 2**31 - 1, 3, 3, dtype=torch.int32),
        "shorts": randint(-(2**15), 2**15 - 1, 7, dtype=torch.int16),
        "bytes.i8": randint(-128, 127, 9, dtype=torch.int8),
        "bytes.u8": randint(0, 255, 2, 5, dtype=torch.uint8),
        "mask": randint(0, 2, 11, dtype=torch.bool),
        "scalar.f32": randn(),  # shape []
        "scalar.i64": torch.tensor(-42, dtype=torch.int64),
        "empty.f32": randn(0, 3),  # zero-sized
        "empty.u8": torch.zeros(2, 0, 4, dtype=torch.uint8),
        "ünïcode.wëight": randn(3),
        "u16": rng.integers(0, 2**16, size=(5,), dtype=np.uint16),
        "u32": rng.integers(0, 2**32, size=(2, 2), dtype=np.uint32),
        "u64": rng.integers(2**63, 2**64 - 1, size=(3,), dtype=np.uint64, endpoint=True),
    }
    mixed_meta = {
        "format": "pt",
        "note": 'quote " backslash \\ newline \n tab \t ctrl \x01 ünïcode ✓',
        "config": json.dumps({"depth": 28, "hidden": 1152, "patch": 2}),
    }
    single = {
        "x_embedder.proj.weight": randn(8, 4, 2, 2),
        "x_embedder.proj.bias": randn(8),
        "t_embedder.mlp.0.weight": randn(8, 6, dtype=torch.float16),
        "y_embedder.embedding_table.weight": randn(11, 8, dtype=torch.bfloat16),
    }
    plain = {"a": randn(3, 3, dtype=torch.float64), "b": randint(0, 1000, 4, dtype=torch.int64), "c": randn(5)}

    files = {
        "mixed.safetensors": (mixed, mixed_meta),
        "single_meta.safetensors": (single, {"format": "pt"}),
        "no_meta.safetensors": (plain, None),
        "empty_meta.safetensors": ({"only": randn(2)}, {}),
        "empty.safetensors": ({}, None),
    }
    expected = {}
    for fname, (tensors, meta) in files.items():
        raws = {k: raw(v) for k, v in tensors.items()}
        blob = serialize(raws, meta)
        with open(os.path.join(OUT, fname), "wb") as f:
            f.write(blob)
        expected[fname] = {
            "sha256": sha(blob),
            "size": len(blob),
            "canonical": True,
            "metadata": meta,
            "tensors": {
                k: {"dtype": raws[k][0], "shape": raws[k][1], "sha256": sha(raws[k][2]), "values": sample(v)}
                for k, v in tensors.items()
            },
        }

    # A file as another writer might lay it out: insertion order, odd header length, misaligned data.
    odd = {
        "first.u8": randint(0, 255, 2, dtype=torch.uint8),
        "then.f32": randn(5),
        "last.f64": randn(2, 2, dtype=torch.float64),
    }
    header, off, datas = {}, 0, []
    for k, v in odd.items():
        d, s, b = raw(v)
        header[k] = {"dtype": d, "shape": s, "data_offsets": [off, off + len(b)]}
        off += len(b)
        datas.append(b)
    hb = json.dumps(header, indent=None).encode()  # default separators: spaces
    if len(hb) % 2 == 0:
        hb += b"\n"  # odd length on purpose
    blob = struct.pack("<Q", len(hb)) + hb + b"".join(datas)
    start = 8 + len(hb)
    assert (start + header["then.f32"]["data_offsets"][0]) % 4 and (start + header["last.f64"]["data_offsets"][0]) % 8
    with open(os.path.join(OUT, "unaligned.safetensors"), "wb") as f:
        f.write(blob)
    expected["unaligned.safetensors"] = {
        "sha256": sha(blob),
        "size": len(blob),
        "canonical": False,
        "metadata": None,
        "tensors": {
            k: {"dtype": raw(v)[0], "shape": raw(v)[1], "sha256": sha(raw(v)[2]), "values": sample(v)}
            for k, v in odd.items()
        },
    }

    # Float32 -> F16 / BF16 rounding as torch does it (round to nearest even), over all magnitudes,
    # subnormals, overflow and exact ties.
    x = torch.cat([
        randn(64) * torch.pow(2.0, torch.randint(-30, 20, (64,), generator=g).double()).float(),
        randn(16) * 1e-6, randn(16) * 7e4,
        torch.tensor([2049.0, 2051.0, 1 + 2**-11, 1 + 3 * 2**-11, 2**-25, 2**-25 * 1.5, 2**-24 * 1.5, 65520.0,
                      65519.0, 1 + 2**-8, 1 + 3 * 2**-8, 3.4e38, -0.0, float("inf"), float("-inf")]),
    ]).float()
    expected["rounding"] = {
        "f32_bits": x.view(torch.int32).tolist(),
        "f16_bits": [v & 0xFFFF for v in x.half().view(torch.int16).tolist()],
        "bf16_bits": [v & 0xFFFF for v in x.bfloat16().view(torch.int16).tolist()],
    }

    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(expected) - 1} fixtures + expected.json to {os.path.normpath(OUT)} ({total} bytes)")


if __name__ == "__main__":
    main()
