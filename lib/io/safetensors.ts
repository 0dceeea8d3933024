/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors).
 *
 * Layout: an 8-byte little-endian u64 `N`, then `N` bytes of UTF-8 JSON header
 * `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}`, then the byte
 * buffer; `data_offsets` are relative to the start of the byte buffer, which must be covered exactly.
 *
 * The writer reproduces the official writer (`safetensors/src/tensor.rs`, `prepare` and `serialize`) byte for
 * byte:
 * - tensors are sorted by dtype in descending order of the `Dtype` enum (which is declared in increasing
 *   alignment, so the widest dtypes come first and every tensor stays aligned), then by name (byte order);
 * - the header is compact JSON (serde_json: no spaces), `__metadata__` first when given, then the tensors in
 *   buffer order, each as `{"dtype":..,"shape":[..],"data_offsets":[b,e]}`;
 * - the header is padded with spaces (0x20) to a multiple of 8 bytes, so the buffer starts 8-aligned.
 *
 * One deliberate, documented difference: the official writer stores `__metadata__` in a Rust `HashMap` and
 * writes its keys in random order (safetensors issue #584), so files with two or more metadata keys are not
 * reproducible even between two runs of the official writer. This writer sorts metadata keys by byte order
 * (the order proposed upstream in safetensors PR #790); with zero or one key the output is identical to the
 * official writer's.
 *
 * The reader validates as the official reader does (`SafeTensors::read_metadata` and `Metadata::validate`):
 * header length within the file and at most 100 MB, UTF-8, valid JSON, known dtypes, offsets that start at 0
 * and are contiguous when sorted, `dtype size × shape = byte length`, and a buffer end equal to the file end.
 * Every error is a {@link SafetensorsError} whose message starts with the file name.
 *
 * All multi-byte data is little-endian; this module refuses to run on a big-endian host.
 * @module
 */

/** Every dtype of the official `Dtype` enum, in its declared order (increasing alignment). */
export const DTYPE_ORDER = [
  "BOOL",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F8_E4M3FNUZ",
  "F8_E5M2FNUZ",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "C64",
  "F64",
  "I64",
  "U64",
] as const;

/** A safetensors dtype name as written in the header. */
export type Dtype = typeof DTYPE_ORDER[number];

/** Sub-byte dtypes: recognised, but neither read nor written by this module. */
const SUB_BYTE: ReadonlySet<string> = new Set(["F4", "F6_E2M3", "F6_E3M2"]);

const RANK: ReadonlyMap<string, number> = new Map(DTYPE_ORDER.map((d, i) => [d, i]));

const SIZE: Readonly<Record<Dtype, number>> = {
  BOOL: 1,
  F4: 0,
  F6_E2M3: 0,
  F6_E3M2: 0,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  F8_E4M3FNUZ: 1,
  F8_E5M2FNUZ: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  C64: 8,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Largest header the official reader accepts (`MAX_HEADER_SIZE`, 100,000,000 bytes). */
export const MAX_HEADER_SIZE = 100_000_000;

/** Size in bytes of one element of `dtype`; throws for sub-byte and unknown dtypes. */
export function dtypeSize(dtype: string): number {
  if (!RANK.has(dtype)) throw new Error(`unknown safetensors dtype ${JSON.stringify(dtype)}`);
  if (SUB_BYTE.has(dtype)) throw new Error(`sub-byte safetensors dtype ${dtype} is not supported`);
  return SIZE[dtype as Dtype];
}

/** Whether `s` names a dtype of the official enum. */
export function isDtype(s: string): s is Dtype {
  return RANK.has(s);
}

/** Any typed array (the data of a tensor). */
export type TypedArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/** The typed array that {@link SafetensorsFile.get} returns for each dtype. */
export interface DtypeArrayMap {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  F8_E5M2: Uint8Array;
  F8_E4M3: Uint8Array;
  F8_E8M0: Uint8Array;
  F8_E4M3FNUZ: Uint8Array;
  F8_E5M2FNUZ: Uint8Array;
  I16: Int16Array;
  U16: Uint16Array;
  /** Raw IEEE half bits; use {@link SafetensorsFile.getF32} for values. */
  F16: Uint16Array;
  /** Raw bfloat16 bits; use {@link SafetensorsFile.getF32} for values. */
  BF16: Uint16Array;
  I32: Int32Array;
  U32: Uint32Array;
  F32: Float32Array;
  /** Interleaved (re, im) float32 pairs: length is twice the element count. */
  C64: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
}

/** Where and what one tensor is, as read from the header. */
export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** [begin, end) byte offsets relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

/**
 * One tensor to write. `data` is either the natural typed array of the dtype (see {@link DtypeArrayMap}: a
 * Float32Array for F32, a BigInt64Array for I64, a Uint16Array of raw bits for F16/BF16, ...), a Uint8Array of
 * exactly the raw little-endian bytes, or, for F16 and BF16 only, a Float32Array that is rounded to nearest
 * even. Its element count must equal the product of `shape` (`[]` is a scalar, one element).
 */
export interface TensorInput {
  dtype: Dtype;
  shape: readonly number[];
  data: TypedArray;
}

/** Error raised for malformed or unsupported safetensors data; `source` names the file. */
export class SafetensorsError extends Error {
  constructor(readonly source: string, detail: string) {
    super(`${source}: ${detail}`);
    this.name = "SafetensorsError";
  }
}

function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error("safetensors: big-endian hosts are not supported");
  }
}

// ---------------------------------------------------------------------------------------------------------
// Half-precision conversions

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits → number. Exact. */
export function f16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits → number. Exact. */
export function bf16BitsToNumber(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0];
}

/** number → IEEE binary16 bits, rounding the float32 value to nearest even (as `torch.half()`). */
export function numberToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const man = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 | (man >>> 13) : 0); // inf / NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    // Subnormal half (or zero): value = m · 2^-24 with m = round(full · 2^(e-1-13)).
    if (e < -10) return sign; // below half the smallest subnormal → ±0
    const full = man | 0x800000;
    const shift = 14 - e; // 14..24
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (m & 1))) m++;
    return sign | m; // m may carry into the smallest normal, which is the right encoding
  }
  let h = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // carry may reach inf: correct
  return sign | h;
}

/** number → bfloat16 bits, rounding the float32 value to nearest even (as PyTorch's `round_to_nearest_even`). */
export function numberToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  if (Number.isNaN(f32Scratch[0])) return 0x7fc0 | ((u >>> 16) & 0x8000);
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------------------------------------
// Header

const encoder = new TextEncoder();

/** Compares strings by their UTF-8 bytes (Rust `String` order). */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const ab = encoder.encode(a);
  const bb = encoder.encode(b);
  const n = Math.min(ab.length, bb.length);
  for (let i = 0; i < n; i++) if (ab[i] !== bb[i]) return ab[i] - bb[i];
  return ab.length - bb.length;
}

interface ParsedHeader {
  metadata: Record<string, string> | undefined;
  /** Tensors in buffer order. */
  order: string[];
  infos: Map<string, TensorInfo>;
  /** Byte offset of the data buffer in the file: 8 + N. */
  dataStart: number;
  /** Length of the data buffer in bytes. */
  dataLength: number;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Validates the 8-byte prefix and returns the header length N. `fileSize` is the size of the whole file.
 */
function checkPrefix(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) {
    throw new SafetensorsError(source, `file is ${fileSize} bytes, too small for the 8-byte header length`);
  }
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError(
      source,
      `header length ${n} bytes exceeds the maximum of ${MAX_HEADER_SIZE} bytes (corrupt file or not safetensors)`,
    );
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new SafetensorsError(
      source,
      `header length ${len} bytes goes beyond the end of the file (${fileSize} bytes, ` +
        `so at most ${fileSize - 8} header bytes)`,
    );
  }
  return len;
}

/** Parses and validates the JSON header (`headerBytes` are the N bytes after the prefix). */
function parseHeaderJson(headerBytes: Uint8Array, fileSize: number, source: string): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(source, "header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SafetensorsError(source, "header JSON is not an object");
  }
  const dataStart = 8 + headerBytes.length;
  const dataLength = fileSize - dataStart;
  let metadata: Record<string, string> | undefined;
  const entries: [string, TensorInfo][] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null) continue; // serde reads `null` as an absent Option
      if (typeof value !== "object" || Array.isArray(value)) {
        throw new SafetensorsError(source, "__metadata__ is not an object of strings");
      }
      const kv = Object.entries(value as Record<string, unknown>);
      for (const [k, v] of kv) {
        if (typeof v !== "string") {
          throw new SafetensorsError(source, `__metadata__ value of ${JSON.stringify(k)} is not a string`);
        }
      }
      metadata = Object.fromEntries(kv) as Record<string, string>; // fromEntries: safe for "__proto__" keys
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new SafetensorsError(source, `${where}: entry is not an object`);
    }
    const { dtype, shape, data_offsets: offs } = value as Record<string, unknown>;
    if (typeof dtype !== "string") {
      throw new SafetensorsError(source, `${where}: missing or non-string dtype`);
    }
    if (!RANK.has(dtype)) {
      throw new SafetensorsError(
        source,
        `${where}: unknown dtype ${JSON.stringify(dtype)} (known: ${DTYPE_ORDER.join(", ")})`,
      );
    }
    if (SUB_BYTE.has(dtype)) {
      throw new SafetensorsError(source, `${where}: sub-byte dtype ${dtype} is not supported by this reader`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new SafetensorsError(
        source,
        `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
      );
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) {
      throw new SafetensorsError(
        source,
        `${where}: data_offsets must be two non-negative integers, got ${JSON.stringify(offs)}`,
      );
    }
    entries.push([name, {
      dtype: dtype as Dtype,
      shape: shape as number[],
      dataOffsets: [offs[0], offs[1]],
    }]);
  }
  // Validate as Metadata::validate: sorted by offsets, contiguous from 0, size consistent, ends at file end.
  entries.sort((a, b) =>
    a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]
  );
  let pos = 0;
  for (const [name, info] of entries) {
    const [b, e] = info.dataOffsets;
    const where = `tensor ${JSON.stringify(name)}`;
    if (e < b) {
      throw new SafetensorsError(source, `${where}: data_offsets [${b}, ${e}] end before they begin`);
    }
    if (b !== pos) {
      throw new SafetensorsError(
        source,
        b < pos
          ? `${where}: data_offsets [${b}, ${e}] overlap the previous tensor, which ends at ${pos}`
          : `${where}: data_offsets [${b}, ${e}] are not contiguous: a gap of ${
            b - pos
          } bytes after offset ${pos}`,
      );
    }
    if (e > dataLength) {
      throw new SafetensorsError(
        source,
        `${where}: data_offsets [${b}, ${e}] go beyond the end of the data buffer (${dataLength} bytes)`,
      );
    }
    let count = 1;
    for (const d of info.shape) count *= d;
    const nbytes = count * SIZE[info.dtype];
    if (!Number.isSafeInteger(nbytes)) {
      throw new SafetensorsError(source, `${where}: shape ${JSON.stringify(info.shape)} overflows`);
    }
    if (nbytes !== e - b) {
      throw new SafetensorsError(
        source,
        `${where}: dtype ${info.dtype} (${SIZE[info.dtype]} bytes) × shape ${JSON.stringify(info.shape)} = ` +
          `${nbytes} bytes, but data_offsets [${b}, ${e}] span ${e - b} bytes`,
      );
    }
    pos = e;
  }
  if (pos !== dataLength) {
    throw new SafetensorsError(
      source,
      `tensors cover ${pos} bytes but the data buffer after the header is ${dataLength} bytes ` +
        `(${dataLength > pos ? "trailing bytes" : "truncated file"})`,
    );
  }
  return {
    metadata,
    order: entries.map((e) => e[0]),
    infos: new Map(entries),
    dataStart,
    dataLength,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Reading

/** A parsed safetensors file: its header, plus the whole file in one buffer that tensors are views of. */
export class SafetensorsFile {
  readonly #infos: Map<string, TensorInfo>;
  readonly #order: string[];
  readonly #data: Uint8Array;

  /** @internal Use {@link parseSafetensors} or {@link readSafetensors}. */
  constructor(
    /** The file name (or the name given to {@link parseSafetensors}), used in error messages. */
    readonly source: string,
    /** The `__metadata__` map, or `undefined` when the header has none. */
    readonly metadata: Readonly<Record<string, string>> | undefined,
    header: ParsedHeader,
    /** The whole file. */
    readonly bytes: Uint8Array,
  ) {
    this.#infos = header.infos;
    this.#order = header.order;
    this.#data = bytes.subarray(header.dataStart);
    this.headerLength = header.dataStart - 8;
  }

  /** N, the JSON header's length in bytes (including padding). */
  readonly headerLength: number;

  /** Tensor names in buffer order. */
  names(): string[] {
    return [...this.#order];
  }

  /** Whether the file holds a tensor called `name`. */
  has(name: string): boolean {
    return this.#infos.has(name);
  }

  /** Dtype, shape and offsets of `name`; throws if absent. */
  info(name: string): TensorInfo {
    const info = this.#infos.get(name);
    if (!info) {
      const some = this.#order.slice(0, 8).map((n) => JSON.stringify(n)).join(", ");
      throw new SafetensorsError(
        this.source,
        `no tensor ${JSON.stringify(name)} (${this.#order.length} tensors: ${some}` +
          `${this.#order.length > 8 ? ", ..." : ""})`,
      );
    }
    return { dtype: info.dtype, shape: [...info.shape], dataOffsets: [...info.dataOffsets] };
  }

  /** Number of elements of `name` (1 for a scalar). */
  numel(name: string): number {
    return this.info(name).shape.reduce((a, b) => a * b, 1);
  }

  /** The raw little-endian bytes of `name`: a view into the file buffer (no copy). */
  raw(name: string): Uint8Array {
    const [b, e] = this.info(name).dataOffsets;
    return this.#data.subarray(b, e);
  }

  /**
   * The data of `name` as the natural typed array of its dtype (see {@link DtypeArrayMap}). This is a view
   * into the file buffer (writes go through to it) when the data is aligned for the element type, which the
   * official writer guarantees; otherwise it is a copy.
   */
  get<D extends keyof DtypeArrayMap = keyof DtypeArrayMap>(name: string): DtypeArrayMap[D] {
    const info = this.info(name);
    const raw = this.raw(name);
    return viewAs(info.dtype, raw) as DtypeArrayMap[D];
  }

  /**
   * The data of `name` converted to float32 values: F32 is returned as a view (see {@link get}); F16, BF16,
   * F64 and the integer and BOOL dtypes are converted into a new array (I64/U64 through `Number`). F8 and C64
   * are refused.
   */
  getF32(name: string): Float32Array {
    const info = this.info(name);
    if (info.dtype === "F32") return this.get<"F32">(name);
    return convert(info.dtype, this.raw(name), Float32Array, this.source, name);
  }

  /**
   * The data of `name` converted to float64 values: F64 is returned as a view (see {@link get}), other
   * real dtypes are converted into a new array (exact for all but I64/U64 beyond 2^53).
   */
  getF64(name: string): Float64Array {
    const info = this.info(name);
    if (info.dtype === "F64") return this.get<"F64">(name);
    return convert(info.dtype, this.raw(name), Float64Array, this.source, name);
  }

  /** All tensors as {@link TensorInput}s (raw-byte views), e.g. to write them again. */
  tensors(): Record<string, TensorInput> {
    const out: Record<string, TensorInput> = {};
    for (const name of this.#order) {
      const info = this.#infos.get(name)!;
      out[name] = { dtype: info.dtype, shape: [...info.shape], data: this.raw(name) };
    }
    return out;
  }
}

type Ctor<T> = { new (buf: ArrayBufferLike, off: number, len: number): T; BYTES_PER_ELEMENT: number };

function ctorFor(dtype: Dtype): Ctor<TypedArray> {
  switch (dtype) {
    case "I8":
      return Int8Array;
    case "I16":
      return Int16Array;
    case "U16":
    case "F16":
    case "BF16":
      return Uint16Array;
    case "I32":
      return Int32Array;
    case "U32":
      return Uint32Array;
    case "F32":
    case "C64":
      return Float32Array;
    case "F64":
      return Float64Array;
    case "I64":
      return BigInt64Array;
    case "U64":
      return BigUint64Array;
    default:
      return Uint8Array;
  }
}

function viewAs(dtype: Dtype, raw: Uint8Array): TypedArray {
  const C = ctorFor(dtype);
  const k = C.BYTES_PER_ELEMENT;
  if (raw.byteOffset % k === 0) return new C(raw.buffer, raw.byteOffset, raw.byteLength / k);
  const copy = new Uint8Array(raw.byteLength);
  copy.set(raw);
  return new C(copy.buffer, 0, raw.byteLength / k);
}

function convert<T extends Float32Array | Float64Array>(
  dtype: Dtype,
  raw: Uint8Array,
  Out: { new (n: number): T },
  source: string,
  name: string,
): T {
  const src = viewAs(dtype, raw);
  const out = new Out(src.length);
  switch (dtype) {
    case "F16": {
      const s = src as Uint16Array;
      for (let i = 0; i < s.length; i++) out[i] = f16BitsToNumber(s[i]);
      return out;
    }
    case "BF16": {
      const s = src as Uint16Array;
      for (let i = 0; i < s.length; i++) out[i] = bf16BitsToNumber(s[i]);
      return out;
    }
    case "I64":
    case "U64": {
      const s = src as BigInt64Array | BigUint64Array;
      for (let i = 0; i < s.length; i++) out[i] = Number(s[i]);
      return out;
    }
    case "C64":
    case "F8_E5M2":
    case "F8_E4M3":
    case "F8_E8M0":
    case "F8_E4M3FNUZ":
    case "F8_E5M2FNUZ":
      throw new SafetensorsError(
        source,
        `tensor ${JSON.stringify(name)}: cannot convert dtype ${dtype} to real`,
      );
    default:
      out.set(src as Exclude<TypedArray, BigInt64Array | BigUint64Array>);
      return out;
  }
}

/**
 * Parses a whole safetensors file held in memory. The returned tensors are views into `bytes`.
 * @param sourceName names the data in error messages (default `"<memory>"`).
 */
export function parseSafetensors(bytes: Uint8Array, sourceName = "<memory>"): SafetensorsFile {
  assertLittleEndian();
  const n = checkPrefix(bytes, bytes.length, sourceName);
  const header = parseHeaderJson(bytes.subarray(8, 8 + n), bytes.length, sourceName);
  return new SafetensorsFile(sourceName, header.metadata, header, bytes);
}

const READ_CHUNK = 64 << 20;

async function readFully(file: Deno.FsFile, into: Uint8Array, source: string): Promise<void> {
  let off = 0;
  while (off < into.length) {
    const n = await file.read(into.subarray(off, Math.min(into.length, off + READ_CHUNK)));
    if (n === null) {
      throw new SafetensorsError(source, `file ended after ${off} of ${into.length} expected bytes`);
    }
    off += n;
  }
}

/**
 * Reads and validates a safetensors file. The header is validated before the data is read, and the whole
 * file is read once into a single buffer that every tensor is a view of, so peak memory is the file size
 * (a 2.7 GB checkpoint needs 2.7 GB, not twice that).
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  assertLittleEndian();
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const prefix = new Uint8Array(Math.min(8, size));
  await readFully(file, prefix, path);
  const n = checkPrefix(prefix, size, path);
  const bytes = new Uint8Array(size);
  bytes.set(prefix);
  await readFully(file, bytes.subarray(8, 8 + n), path);
  const header = parseHeaderJson(bytes.subarray(8, 8 + n), size, path);
  await readFully(file, bytes.subarray(8 + n), path);
  return new SafetensorsFile(path, header.metadata, header, bytes);
}

/** The header of a safetensors file, read without its data. */
export interface SafetensorsHeader {
  source: string;
  metadata: Readonly<Record<string, string>> | undefined;
  /** Tensors in buffer order. */
  tensors: { name: string; info: TensorInfo }[];
  /** N, the JSON header's length in bytes. */
  headerLength: number;
  /** Size of the whole file in bytes. */
  fileSize: number;
}

/** Reads and validates only the header of a safetensors file (cheap, even for multi-GB checkpoints). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const prefix = new Uint8Array(Math.min(8, size));
  await readFully(file, prefix, path);
  const n = checkPrefix(prefix, size, path);
  const hb = new Uint8Array(n);
  await readFully(file, hb, path);
  const header = parseHeaderJson(hb, size, path);
  return {
    source: path,
    metadata: header.metadata,
    tensors: header.order.map((name) => ({ name, info: header.infos.get(name)! })),
    headerLength: n,
    fileSize: size,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Writing

/** Natural typed-array constructor names accepted for each dtype (besides raw Uint8Array bytes). */
function acceptsNatural(dtype: Dtype, data: TypedArray): boolean {
  switch (dtype) {
    case "BOOL":
    case "U8":
    case "F8_E5M2":
    case "F8_E4M3":
    case "F8_E8M0":
    case "F8_E4M3FNUZ":
    case "F8_E5M2FNUZ":
      return data instanceof Uint8Array;
    case "I8":
      return data instanceof Int8Array;
    case "I16":
      return data instanceof Int16Array;
    case "U16":
    case "F16":
    case "BF16":
      return data instanceof Uint16Array;
    case "I32":
      return data instanceof Int32Array;
    case "U32":
      return data instanceof Uint32Array;
    case "F32":
    case "C64":
      return data instanceof Float32Array;
    case "F64":
      return data instanceof Float64Array;
    case "I64":
      return data instanceof BigInt64Array;
    case "U64":
      return data instanceof BigUint64Array;
    default:
      return false;
  }
}

/** Returns the little-endian bytes of one tensor (a view when possible), validating it. */
function tensorBytes(name: string, t: TensorInput, source: string): Uint8Array {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!RANK.has(t.dtype)) {
    throw new SafetensorsError(source, `${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
  }
  if (SUB_BYTE.has(t.dtype)) {
    throw new SafetensorsError(source, `${where}: sub-byte dtype ${t.dtype} is not supported by this writer`);
  }
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegInt)) {
    throw new SafetensorsError(
      source,
      `${where}: shape must be non-negative integers, got ${JSON.stringify(t.shape)}`,
    );
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  const nbytes = count * SIZE[t.dtype];
  const d = t.data;
  let bytes: Uint8Array;
  if ((t.dtype === "F16" || t.dtype === "BF16") && d instanceof Float32Array) {
    const bits = new Uint16Array(d.length);
    const f = t.dtype === "F16" ? numberToF16Bits : numberToBf16Bits;
    for (let i = 0; i < d.length; i++) bits[i] = f(d[i]);
    bytes = new Uint8Array(bits.buffer);
  } else if (acceptsNatural(t.dtype, d) || d instanceof Uint8Array) {
    bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  } else {
    throw new SafetensorsError(
      source,
      `${where}: ${d?.constructor?.name ?? typeof d} cannot hold dtype ${t.dtype} ` +
        `(give the natural typed array or raw Uint8Array bytes)`,
    );
  }
  if (bytes.byteLength !== nbytes) {
    throw new SafetensorsError(
      source,
      `${where}: dtype ${t.dtype} × shape ${JSON.stringify(t.shape)} needs ${nbytes} bytes, ` +
        `data has ${bytes.byteLength}`,
    );
  }
  return bytes;
}

interface Prepared {
  header: Uint8Array;
  chunks: Uint8Array[];
  total: number;
}

/** Port of the official `prepare`: sort, assign offsets, build and pad the header. */
function prepare(
  tensors: Record<string, TensorInput>,
  metadata: Record<string, string> | undefined,
  source: string,
): Prepared {
  assertLittleEndian();
  const names = Object.keys(tensors);
  for (const n of names) {
    if (!n.isWellFormed()) {
      throw new SafetensorsError(source, `tensor name ${JSON.stringify(n)} is not valid Unicode`);
    }
    if (n === "__metadata__") {
      throw new SafetensorsError(source, `"__metadata__" is reserved and cannot name a tensor`);
    }
  }
  // Sort by descending dtype (enum order), then by name: `right.dtype().cmp(&left.dtype()).then(lname.cmp(rname))`.
  names.sort((a, b) => (RANK.get(tensors[b].dtype)! - RANK.get(tensors[a].dtype)!) || compareUtf8(a, b));
  const chunks: Uint8Array[] = [];
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    const kv: string[] = [];
    for (const k of keys) {
      const v = metadata[k];
      if (typeof v !== "string") {
        throw new SafetensorsError(source, `metadata value of ${JSON.stringify(k)} is not a string`);
      }
      if (!k.isWellFormed() || !v.isWellFormed()) {
        throw new SafetensorsError(source, `metadata entry ${JSON.stringify(k)} is not valid Unicode`);
      }
      kv.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${kv.join(",")}}`);
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const bytes = tensorBytes(name, t, source);
    chunks.push(bytes);
    parts.push(
      `${JSON.stringify(name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(",")}],` +
        `"data_offsets":[${offset},${offset + bytes.byteLength}]}`,
    );
    offset += bytes.byteLength;
  }
  const json = encoder.encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, chunks, total: header.length + offset };
}

/**
 * Serializes tensors and optional `__metadata__` into one buffer laid out as the official writer lays it out
 * (see the module documentation). `metadata: undefined` writes no `__metadata__`; `{}` writes an empty one.
 */
export function serializeSafetensors(
  tensors: Record<string, TensorInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  const p = prepare(tensors, metadata, "<serialize>");
  const out = new Uint8Array(p.total);
  out.set(p.header, 0);
  let pos = p.header.length;
  for (const c of p.chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    off += await file.write(bytes.subarray(off, Math.min(bytes.length, off + READ_CHUNK)));
  }
}

/**
 * Writes tensors and optional metadata to `path` (same bytes as {@link serializeSafetensors}) without
 * building the whole file in memory. The write is atomic: the data goes to a temporary file in the same
 * directory, which is then renamed over `path`; on failure the temporary file is removed.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorInput>,
  metadata?: Record<string, string>,
): Promise<void> {
  const p = prepare(tensors, metadata, path);
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    {
      using file = await Deno.open(tmp, { write: true, create: true, truncate: true });
      await writeAll(file, p.header);
      for (const c of p.chunks) await writeAll(file, c);
      await file.syncData();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
