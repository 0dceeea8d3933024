/**
 * NumPy `.npy` (format version 1.0) and `.npz` (a zip of `.npy` files, stored without compression) writing
 * and reading, for the sample batches that the ADM evaluator (guided-diffusion's `evaluator.py`, which DiT
 * uses) reads: `arr_0`, NHWC uint8. {@link samplesToNhwcU8} converts images in [-1, 1] as the reference
 * sampling scripts do: clamp(127.5·x + 128, 0, 255) truncated to an integer.
 * @module
 */

/** An array to store: its dtype (NumPy's `descr`), shape and data. */
export interface NpyArray {
  /** `|u1`, `<f4`, `<f8`, `<i8`, `<u4`, `<i4`. */
  descr: "|u1" | "<f4" | "<f8" | "<i8" | "<u4" | "<i4";
  shape: number[];
  data: Uint8Array | Float32Array | Float64Array | BigInt64Array | Uint32Array | Int32Array;
}

const ITEMSIZE: Record<NpyArray["descr"], number> = {
  "|u1": 1,
  "<f4": 4,
  "<f8": 8,
  "<i8": 8,
  "<u4": 4,
  "<i4": 4,
};

/** The bytes of a `.npy` file (format 1.0; the header is padded so that the data starts 64-byte aligned). */
export function encodeNpy(a: NpyArray): Uint8Array {
  const n = a.shape.reduce((x, y) => x * y, 1);
  if (a.data.length !== n) throw new Error(`npy: ${a.data.length} values do not fill shape [${a.shape}]`);
  if (a.data.BYTES_PER_ELEMENT !== ITEMSIZE[a.descr]) {
    throw new Error(`npy: a ${a.data.constructor.name} cannot hold dtype ${a.descr}`);
  }
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(", ")})`;
  let dict = `{'descr': '${a.descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + dict.length + 1) % 64);
  dict += " ".repeat(pad % 64) + "\n";
  if (dict.length > 65535) throw new Error("npy: header too long for format 1.0");
  const head = new Uint8Array(10 + dict.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0); // \x93NUMPY v1.0
  new DataView(head.buffer).setUint16(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) head[10 + i] = dict.charCodeAt(i);
  const body = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** A parsed `.npy` file: dtype, shape, and the raw little-endian data bytes. */
export interface ParsedNpy {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  data: Uint8Array;
}

/** Parses a `.npy` file (format 1.0 or 2.0); throws on a malformed header. */
export function decodeNpy(bytes: Uint8Array): ParsedNpy {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || !magic.every((b, i) => bytes[i] === b)) throw new Error("npy: bad magic");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + hlen));
  if ((start + hlen) % 16 !== 0) throw new Error(`npy: data offset ${start + hlen} is not 16-byte aligned`);
  if (!header.endsWith("\n")) throw new Error("npy: header does not end with a newline");
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fo = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const sh = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fo || sh === undefined) throw new Error(`npy: malformed header ${JSON.stringify(header)}`);
  const shape = sh.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  return { descr, fortranOrder: fo === "True", shape, data: bytes.subarray(start + hlen) };
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE 802.3, as zip uses). */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * The bytes of a `.npz` file holding `arrays` (name → array; stored as `name.npy`), a zip without
 * compression (method 0), as `np.savez` writes. Entries must stay below 4 GiB (no zip64).
 */
export function encodeNpz(arrays: Record<string, NpyArray>): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  // DOS time/date of 1980-01-01 00:00 (fixed, so that the file is a function of the arrays only).
  const dosTime = 0;
  const dosDate = (0 << 9) | (1 << 5) | 1;
  const names = Object.keys(arrays);
  for (const name of names) {
    const fname = enc.encode(`${name}.npy`);
    const body = encodeNpy(arrays[name]);
    if (body.length >= 0xffffffff || offset >= 0xffffffff) {
      throw new Error("npz: entries over 4 GiB need zip64");
    }
    const crc = crc32(body);
    const local = new Uint8Array(30 + fname.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true); // version needed
    lv.setUint16(6, 0, true); // flags
    lv.setUint16(8, 0, true); // stored
    lv.setUint16(10, dosTime, true);
    lv.setUint16(12, dosDate, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, body.length, true);
    lv.setUint16(26, fname.length, true);
    lv.setUint16(28, 0, true);
    local.set(fname, 30);
    const cd = new Uint8Array(46 + fname.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true); // version made by
    cv.setUint16(6, 20, true); // version needed
    cv.setUint16(8, 0, true);
    cv.setUint16(10, 0, true);
    cv.setUint16(12, dosTime, true);
    cv.setUint16(14, dosDate, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, body.length, true);
    cv.setUint16(28, fname.length, true);
    // extra length, comment length, disk number, internal attributes: 0
    cv.setUint32(38, 0o100644 << 16, true); // external attributes: a regular file
    cv.setUint32(42, offset, true);
    cd.set(fname, 46);
    parts.push(local, body);
    central.push(cd);
    offset += local.length + body.length;
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, names.length, true);
  ev.setUint16(10, names.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + cdSize + end.length);
  let p = 0;
  for (const c of [...parts, ...central, end]) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

/** Writes a `.npz` file (see {@link encodeNpz}). */
export async function writeNpz(path: string, arrays: Record<string, NpyArray>): Promise<void> {
  await Deno.writeFile(path, encodeNpz(arrays));
}

/**
 * Parses a `.npz` (zip) file by its central directory: name (without `.npy`) → parsed array. Only stored
 * (uncompressed) entries are supported; CRCs are checked.
 */
export function decodeNpz(bytes: Uint8Array): Map<string, ParsedNpy> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("npz: no end of central directory record");
  const count = dv.getUint16(eocd + 10, true);
  let p = dv.getUint32(eocd + 16, true);
  const out = new Map<string, ParsedNpy>();
  const dec = new TextDecoder();
  for (let e = 0; e < count; e++) {
    if (dv.getUint32(p, true) !== 0x02014b50) throw new Error(`npz: bad central directory entry at ${p}`);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    const size = dv.getUint32(p + 20, true);
    const nlen = dv.getUint16(p + 28, true);
    const xlen = dv.getUint16(p + 30, true);
    const clen = dv.getUint16(p + 32, true);
    const local = dv.getUint32(p + 42, true);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nlen));
    p += 46 + nlen + xlen + clen;
    if (method !== 0) {
      throw new Error(`npz: entry ${name} is compressed (method ${method}); only stored is supported`);
    }
    if (dv.getUint32(local, true) !== 0x04034b50) throw new Error(`npz: bad local header for ${name}`);
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    const body = bytes.subarray(start, start + size);
    if (crc32(body) !== crc) throw new Error(`npz: CRC mismatch in ${name}`);
    out.set(name.replace(/\.npy$/, ""), decodeNpy(body));
  }
  return out;
}

/**
 * Images x [N, C, H, W] in [-1, 1] (flat) as NHWC uint8, the ADM evaluator's sample format, converted as
 * DiT's `sample_ddp.py` does: `torch.clamp(127.5 * x + 128.0, 0, 255).to(torch.uint8)` (truncation).
 */
export function samplesToNhwcU8(x: Float32Array, n: number, c: number, h: number, w: number): Uint8Array {
  const out = new Uint8Array(n * h * w * c);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++) {
          const v = 127.5 * x[((i * c + ch) * h + y) * w + xx] + 128;
          out[((i * h + y) * w + xx) * c + ch] = v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v);
        }
      }
    }
  }
  return out;
}
