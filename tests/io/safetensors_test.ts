/**
 * Tests of lib/io/safetensors.ts against fixtures written by tools/gen_safetensors_fixtures.py (a port of the
 * official writer, checked there against the official Rust tests' byte strings) and against those byte strings
 * directly.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "../helpers/assert.ts";
import {
  bf16BitsToNumber,
  type Dtype,
  f16BitsToNumber,
  numberToBf16Bits,
  numberToF16Bits,
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  serializeSafetensors,
  type TensorInput,
  writeSafetensors,
} from "../../lib/io/safetensors.ts";

const FIX = new URL("../fixtures/safetensors/", import.meta.url);
const fixturePath = (name: string) => new URL(name, FIX).pathname;

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  sha256: string;
  values: (number | string)[];
}
interface ExpectedFile {
  sha256: string;
  size: number;
  canonical: boolean;
  metadata: Record<string, string> | null;
  tensors: Record<string, ExpectedTensor>;
}
const expected = JSON.parse(await Deno.readTextFile(fixturePath("expected.json")));
const rounding = expected.rounding as { f32_bits: number[]; f16_bits: number[]; bf16_bits: number[] };
const files = Object.entries(expected).filter(([k]) => k.endsWith(".safetensors")) as [
  string,
  ExpectedFile,
][];

async function sha256(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", b.slice()));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** Plain object with keys sorted, for order-insensitive comparison. */
function sortKeys<T>(o: Record<string, T> | null | undefined): Record<string, T> | null {
  return o ? Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : null;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function firstDiff(a: Uint8Array, b: Uint8Array): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `first difference at byte ${i}`;
  return `lengths ${a.length} vs ${b.length}`;
}

/** Fresh random float32 data (never zeros). */
function randF32(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * 10 ** (Math.random() * 6 - 3);
  return a;
}

Deno.test("serialize reproduces the official Rust tests' bytes", () => {
  // safetensors/src/tensor.rs, test_serialization
  const data = new Float32Array([0, 1, 2, 3, 4, 5]);
  const out = serializeSafetensors({ "attn.0": { dtype: "F32", shape: [1, 2, 3], data } });
  const want = [
    64,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    123,
    34,
    97,
    116,
    116,
    110,
    46,
    48,
    34,
    58,
    123,
    34,
    100,
    116,
    121,
    112,
    101,
    34,
    58,
    34,
    70,
    51,
    50,
    34,
    44,
    34,
    115,
    104,
    97,
    112,
    101,
    34,
    58,
    91,
    49,
    44,
    50,
    44,
    51,
    93,
    44,
    34,
    100,
    97,
    116,
    97,
    95,
    111,
    102,
    102,
    115,
    101,
    116,
    115,
    34,
    58,
    91,
    48,
    44,
    50,
    52,
    93,
    125,
    125,
    0,
    0,
    0,
    0,
    0,
    0,
    128,
    63,
    0,
    0,
    0,
    64,
    0,
    0,
    64,
    64,
    0,
    0,
    128,
    64,
    0,
    0,
    160,
    64,
  ];
  assertEquals([...out], want);
  // test_serialization_forced_alignement: 7 spaces of padding
  const out2 = serializeSafetensors({ attn0: { dtype: "F32", shape: [1, 1, 2, 3], data } });
  const want2 = [
    72,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    123,
    34,
    97,
    116,
    116,
    110,
    48,
    34,
    58,
    123,
    34,
    100,
    116,
    121,
    112,
    101,
    34,
    58,
    34,
    70,
    51,
    50,
    34,
    44,
    34,
    115,
    104,
    97,
    112,
    101,
    34,
    58,
    91,
    49,
    44,
    49,
    44,
    50,
    44,
    51,
    93,
    44,
    34,
    100,
    97,
    116,
    97,
    95,
    111,
    102,
    102,
    115,
    101,
    116,
    115,
    34,
    58,
    91,
    48,
    44,
    50,
    52,
    93,
    125,
    125,
    32,
    32,
    32,
    32,
    32,
    32,
    32,
    0,
    0,
    0,
    0,
    0,
    0,
    128,
    63,
    0,
    0,
    0,
    64,
    0,
    0,
    64,
    64,
    0,
    0,
    128,
    64,
    0,
    0,
    160,
    64,
  ];
  assertEquals([...out2], want2);
  // test_empty, without and with metadata
  assertEquals([...serializeSafetensors({})], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  const want3 = [
    40,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    123,
    34,
    95,
    95,
    109,
    101,
    116,
    97,
    100,
    97,
    116,
    97,
    95,
    95,
    34,
    58,
    123,
    34,
    102,
    114,
    97,
    109,
    101,
    119,
    111,
    114,
    107,
    34,
    58,
    34,
    112,
    116,
    34,
    125,
    125,
    32,
    32,
    32,
    32,
    32,
  ];
  assertEquals([...serializeSafetensors({}, { framework: "pt" })], want3);
  // and the official tests' deserialization cases parse
  const ser = new TextEncoder().encode(
    '8\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}\x00\x00\x00\x00',
  );
  const f = parseSafetensors(ser);
  assertEquals(f.info("test").shape, []);
  assertEquals([...f.get<"I32">("test")], [0]);
  const padded = new Uint8Array([6, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x0d, 0x20, 0x09, 0x0a]);
  assertEquals(parseSafetensors(padded).names(), []);
});

for (const [fname, exp] of files) {
  Deno.test(`reads fixture ${fname} exactly`, async () => {
    const path = fixturePath(fname);
    const f = await readSafetensors(path);
    assertEquals(await sha256(f.bytes), exp.sha256, "file hash");
    assertEquals(sortKeys(f.metadata), sortKeys(exp.metadata), "metadata");
    assertEquals(f.names().slice().sort(), Object.keys(exp.tensors).sort(), "names");
    for (const [name, t] of Object.entries(exp.tensors)) {
      const info = f.info(name);
      assertEquals(info.dtype, t.dtype, name);
      assertEquals(info.shape, t.shape, name);
      assertEquals(await sha256(f.raw(name)), t.sha256, `${name} bytes`);
      assertEquals(f.numel(name), t.shape.reduce((a, b) => a * b, 1));
      const arr = f.get(name);
      if (exp.canonical) {
        assert(arr.byteOffset % arr.BYTES_PER_ELEMENT === 0 && arr.buffer === f.bytes.buffer);
      }
      const n = t.values.length;
      if (t.dtype === "I64" || t.dtype === "U64") {
        assertEquals([...(arr as BigInt64Array).slice(0, n)].map(String), t.values, name);
      } else if (["F16", "BF16", "F32", "F64"].includes(t.dtype)) {
        const v32 = f.getF32(name);
        const v64 = f.getF64(name);
        for (let i = 0; i < n; i++) {
          assertEquals(v64[i], t.values[i], `${name}[${i}] f64`);
          assertEquals(v32[i], Math.fround(t.values[i] as number), `${name}[${i}] f32`);
        }
      } else {
        assertEquals([...(arr as Int32Array).slice(0, n)], t.values, name);
        assertEquals(
          [...f.getF32(name).slice(0, n)],
          t.values.map((v) => Math.fround(v as number)),
          `${name} f32`,
        );
        assertEquals([...f.getF64(name).slice(0, n)], t.values, `${name} f64`);
      }
    }
    const h = await readSafetensorsHeader(path);
    assertEquals(h.fileSize, exp.size);
    assertEquals(h.tensors.map((t) => t.name), f.names());
    assertEquals(sortKeys(h.metadata), sortKeys(exp.metadata));
  });

  if (exp.canonical) {
    Deno.test(`writing ${fname}'s tensors + metadata gives identical bytes`, async () => {
      const src = await readSafetensors(fixturePath(fname));
      const meta = exp.metadata === null ? undefined : exp.metadata;
      // from raw bytes
      const a = serializeSafetensors(src.tensors(), meta);
      assert(bytesEqual(a, src.bytes), `raw: ${firstDiff(a, src.bytes)}`);
      // from natural typed arrays, given in reverse order
      const natural: Record<string, TensorInput> = {};
      for (const name of src.names().reverse()) {
        const i = src.info(name);
        natural[name] = { dtype: i.dtype, shape: i.shape, data: src.get(name) };
      }
      const b = serializeSafetensors(natural, meta);
      assert(bytesEqual(b, src.bytes), `natural: ${firstDiff(b, src.bytes)}`);
      // through a file
      const dir = await Deno.makeTempDir();
      try {
        const out = `${dir}/out.safetensors`;
        await writeSafetensors(out, natural, meta);
        const c = await Deno.readFile(out);
        assert(bytesEqual(c, src.bytes), `file: ${firstDiff(c, src.bytes)}`);
        assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["out.safetensors"]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("unaligned foreign layout: copies on read, canonical on rewrite", async () => {
  const f = await readSafetensors(fixturePath("unaligned.safetensors"));
  assertEquals(f.headerLength % 2, 1);
  assertEquals(f.names(), ["first.u8", "then.f32", "last.f64"]);
  const x = f.get<"F32">("then.f32");
  assert(x instanceof Float32Array && x.buffer !== f.bytes.buffer, "misaligned F32 must be a copy");
  const re = parseSafetensors(serializeSafetensors(f.tensors()));
  assertEquals(re.names(), ["last.f64", "then.f32", "first.u8"]);
  assertEquals(re.headerLength % 8, 0);
  for (const n of f.names()) assertEquals([...re.getF64(n)], [...f.getF64(n)], n);
});

Deno.test("round trip of fresh random tensors of every writable dtype", async () => {
  const n = 37;
  const f32 = randF32(n);
  const f64 = new Float64Array(n).map(() => Math.random() * 1e6 - 5e5);
  const i64 = new BigInt64Array(n).map(() => BigInt(Math.floor(Math.random() * 2 ** 53)) * 1000n - 2n ** 60n);
  const i32 = new Int32Array(n).map(() => (Math.random() * 2 ** 32) | 0);
  const u8 = new Uint8Array(n).map(() => 1 + Math.floor(Math.random() * 255));
  const tensors: Record<string, TensorInput> = {
    "w.f32": { dtype: "F32", shape: [n], data: f32 },
    "w.f64": { dtype: "F64", shape: [1, n], data: f64 },
    "w.i64": { dtype: "I64", shape: [n, 1], data: i64 },
    "w.i32": { dtype: "I32", shape: [n], data: i32 },
    "w.u8": { dtype: "U8", shape: [n], data: u8 },
    "w.f16": { dtype: "F16", shape: [n], data: f32 },
    "w.bf16": { dtype: "BF16", shape: [n], data: f32 },
    "s": { dtype: "F32", shape: [], data: new Float32Array([Math.PI]) },
    "z": { dtype: "F64", shape: [4, 0], data: new Float64Array(0) },
  };
  const meta = { seed: String(Math.random()), "ключ": "значение" };
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/rt.safetensors`;
    await writeSafetensors(path, tensors, meta);
    const f = await readSafetensors(path);
    assertEquals(f.metadata, meta);
    assertEquals([...f.get<"F32">("w.f32")], [...f32]);
    assertEquals([...f.get<"F64">("w.f64")], [...f64]);
    assertEquals([...f.get<"I64">("w.i64")].map(String), [...i64].map(String));
    assertEquals([...f.get<"I32">("w.i32")], [...i32]);
    assertEquals([...f.get<"U8">("w.u8")], [...u8]);
    const h = f.getF32("w.f16");
    const b = f.getF32("w.bf16");
    for (let i = 0; i < n; i++) {
      assertEquals(h[i], f16BitsToNumber(numberToF16Bits(f32[i])));
      assert(Math.abs(h[i] - f32[i]) <= Math.abs(f32[i]) * 2 ** -11 + 2 ** -25, `f16 ${f32[i]} → ${h[i]}`);
      assert(Math.abs(b[i] - f32[i]) <= Math.abs(f32[i]) * 2 ** -8, `bf16 ${f32[i]} → ${b[i]}`);
    }
    assertEquals([...f.get("s")], [Math.fround(Math.PI)]);
    assertEquals(f.info("s").shape, []);
    assertEquals(f.info("z").shape, [4, 0]);
    assertEquals(f.get("z").length, 0);
    // Overwriting is atomic and leaves no temporary file.
    await writeSafetensors(path, { only: { dtype: "F32", shape: [2], data: randF32(2) } });
    assertEquals((await readSafetensors(path)).names(), ["only"]);
    assertEquals([...Deno.readDirSync(dir)].length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("half-precision conversions match torch's rounding", () => {
  const f = new Float32Array(new Int32Array(rounding.f32_bits).buffer);
  for (let i = 0; i < f.length; i++) {
    assertEquals(numberToF16Bits(f[i]), rounding.f16_bits[i], `f16 of ${f[i]}`);
    assertEquals(numberToBf16Bits(f[i]), rounding.bf16_bits[i], `bf16 of ${f[i]}`);
  }
  // every finite f16/bf16 bit pattern survives number → bits
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) !== 0x7c00) assertEquals(numberToF16Bits(f16BitsToNumber(h)), h);
    if ((h & 0x7f80) !== 0x7f80) assertEquals(numberToBf16Bits(bf16BitsToNumber(h)), h);
  }
  assert(Number.isNaN(f16BitsToNumber(numberToF16Bits(NaN))));
  assert(Number.isNaN(bf16BitsToNumber(numberToBf16Bits(NaN))));
});

Deno.test("chunked read of a file larger than the 64 MiB read chunk", async () => {
  const n = (80 << 20) / 4;
  const big = randF32(n);
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/big.safetensors`;
    await writeSafetensors(path, {
      big: { dtype: "F32", shape: [n], data: big },
      tail: { dtype: "U8", shape: [3], data: new Uint8Array([7, 8, 9]) },
    });
    const f = await readSafetensors(path);
    const got = f.get<"F32">("big");
    assert(got.buffer === f.bytes.buffer, "zero-copy view");
    for (let i = 0; i < n; i += 9973) assertEquals(got[i], big[i]);
    assertEquals(got[n - 1], big[n - 1]);
    assertEquals([...f.get("tail")], [7, 8, 9]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Malformed files

const enc = new TextEncoder();

/** A file with header `json` (as given, unpadded) followed by `dataLen` bytes. */
function build(json: string, dataLen: number, headerLen?: number): Uint8Array {
  const h = enc.encode(json);
  const out = new Uint8Array(8 + h.length + dataLen).fill(1, 8 + h.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? h.length), true);
  out.set(h, 8);
  return out;
}

const T = (dtype: string, shape: number[], b: number, e: number) =>
  `{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[${b},${e}]}`;

const malformed: [string, Uint8Array, string[]][] = [
  ["too small", new Uint8Array(5), ["5 bytes, too small"]],
  ["header length beyond file", build(`{"a":${T("F32", [2], 0, 8)}}`, 8, 1000), [
    "header length 1000",
    "beyond the end",
  ]],
  [
    "header length too large",
    (() => {
      const b = build("{}", 0);
      b[7] = 0xff;
      return b;
    })(),
    ["exceeds the maximum"],
  ],
  [
    "not UTF-8",
    (() => {
      const b = build('{"a"}', 0);
      b[10] = 0xff;
      return b;
    })(),
    ["not valid UTF-8"],
  ],
  ["invalid JSON", build(`{"a":${T("F32", [2], 0, 8)}`, 8), ["not valid JSON"]],
  ["JSON not an object", build("[1,2]", 0), ["not an object"]],
  ["unknown dtype", build(`{"a":${T("F128", [2], 0, 32)}}`, 32), ['tensor "a"', 'unknown dtype "F128"']],
  ["bad shape", build(`{"a":${T("F32", [2], 0, 8).replace("[2]", "[-2]")}}`, 8), ["shape must be"]],
  ["bad offsets", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, 8), [
    "data_offsets must be two",
  ]],
  ["size mismatch", build(`{"a":${T("F32", [2, 2], 0, 8)}}`, 8), [
    'tensor "a"',
    "F32 (4 bytes) × shape [2,2] = 16 bytes",
    "span 8 bytes",
  ]],
  ["gap", build(`{"a":${T("F32", [2], 0, 8)},"b":${T("F32", [1], 12, 16)}}`, 16), [
    'tensor "b"',
    "not contiguous",
  ]],
  ["overlap", build(`{"a":${T("F32", [2], 0, 8)},"b":${T("F32", [2], 4, 12)}}`, 12), [
    'tensor "b"',
    "overlap",
  ]],
  ["not starting at 0", build(`{"a":${T("F32", [2], 4, 12)}}`, 12), ['tensor "a"', "gap of 4 bytes"]],
  ["end before begin", build(`{"a":${T("F32", [0], 8, 0)}}`, 8), ["end before they begin"]],
  ["out of bounds", build(`{"a":${T("F32", [4], 0, 16)}}`, 8), [
    'tensor "a"',
    "beyond the end of the data buffer (8 bytes)",
  ]],
  ["trailing bytes", build(`{"a":${T("F32", [2], 0, 8)}}`, 12), ["cover 8 bytes", "12 bytes", "trailing"]],
  ["overflowing shape", build(`{"a":${T("F32", [2 ** 40, 2 ** 40], 0, 8)}}`, 8), ["overflows"]],
  ["non-string metadata", build(`{"__metadata__":{"k":1}}`, 0), ['__metadata__ value of "k"']],
];

for (const [what, bytes, fragments] of malformed) {
  Deno.test(`malformed (${what}) gives a clear error naming the source`, () => {
    const e = assertThrows(
      () => parseSafetensors(bytes, "bad.safetensors"),
      "bad.safetensors: ",
      ...fragments,
    );
    assert(e instanceof SafetensorsError && e.source === "bad.safetensors");
  });
}

Deno.test("malformed files on disk: the error names the path, read and header-only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [what, bytes, fragments] of malformed) {
      const path = `${dir}/${what.replaceAll(" ", "_")}.safetensors`;
      await Deno.writeFile(path, bytes);
      await assertRejects(() => readSafetensors(path), `${path}: `, ...fragments);
      await assertRejects(() => readSafetensorsHeader(path), `${path}: `);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lookup and writer errors are clear", async () => {
  const f = parseSafetensors(
    serializeSafetensors({ a: { dtype: "F32", shape: [1], data: randF32(1) } }),
    "x.st",
  );
  assertThrows(() => f.info("b"), 'x.st: no tensor "b"', '"a"');
  assertThrows(
    () => serializeSafetensors({ a: { dtype: "F32", shape: [3], data: randF32(2) } }),
    'tensor "a"',
    "needs 12 bytes, data has 8",
  );
  assertThrows(
    () => serializeSafetensors({ a: { dtype: "I64", shape: [2], data: randF32(2) } }),
    "Float32Array cannot hold dtype I64",
  );
  assertThrows(
    () => serializeSafetensors({ a: { dtype: "Q4" as Dtype, shape: [1], data: new Uint8Array(1) } }),
    "unknown dtype",
  );
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(
      () =>
        writeSafetensors(`${dir}/missing/dir/x.safetensors`, {
          a: { dtype: "U8", shape: [1], data: new Uint8Array([5]) },
        }),
    );
    assertEquals([...Deno.readDirSync(dir)].length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
