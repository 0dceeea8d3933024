/**
 * PNG encoder and a minimal decoder (https://www.w3.org/TR/png/), zlib from `node:zlib`.
 *
 * Encoder: 8-bit gray, gray + alpha, RGB or RGBA, not interlaced, one IDAT chunk. Each scanline gets the
 * filter libpng's default heuristic would pick (the one with the smallest sum of absolute signed bytes).
 *
 * Decoder: every colour type at bit depth 8, and gray or palette at 1, 2 or 4 bits (gray scaled to 0–255);
 * palette images are expanded to RGB, or RGBA when a tRNS chunk is present (a gray or RGB tRNS colour key
 * is ignored); not interlaced; no 16-bit. CRCs and the zlib stream are checked. Enough for tests and for reading back what {@link encodePng} writes; use sharp for anything else.
 * @module
 */

import { deflateSync, inflateSync } from "node:zlib";
import { DataError } from "./errors.ts";
import { checkRawImage, type RawImage } from "./raw_image.ts";

/** The 8-byte PNG signature. */
export const PNG_SIGNATURE: Uint8Array = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309 / ITU-T V.42, the PNG and zlib-gzip CRC) of `bytes`, continuing from `crc`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const COLOR_TYPE_BY_CHANNELS = [-1, 0, 4, 2, 6];
const CHANNELS_BY_COLOR_TYPE: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** Options of {@link encodePng}. */
export interface PngEncodeOptions {
  /** zlib level 0–9 (default 6, zlib's and libpng's default). */
  level?: number;
  /** Scanline filters: "adaptive" (default, libpng's heuristic) or "none" (filter type 0 on every row). */
  filter?: "adaptive" | "none";
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Writes filter type `f` for `row` (previous row `prev`, `bpp` bytes per pixel) into `out`. */
function filterRow(f: number, row: Uint8Array, prev: Uint8Array | null, bpp: number, out: Uint8Array): void {
  const n = row.length;
  for (let i = 0; i < n; i++) {
    const a = i >= bpp ? row[i - bpp] : 0;
    const b = prev ? prev[i] : 0;
    const c = prev && i >= bpp ? prev[i - bpp] : 0;
    let p = 0;
    if (f === 1) p = a;
    else if (f === 2) p = b;
    else if (f === 3) p = (a + b) >>> 1;
    else if (f === 4) p = paeth(a, b, c);
    out[i] = (row[i] - p) & 0xff;
  }
}

/** Encodes an 8-bit image (1–4 channels, HWC) as PNG bytes. */
export function encodePng(img: RawImage, options: PngEncodeOptions = {}): Uint8Array {
  checkRawImage(img, "encodePng");
  const { width, height, channels, data } = img;
  const level = options.level ?? 6;
  const stride = width * channels;
  const filtered = new Uint8Array(height * (stride + 1));
  const trial = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? data.subarray((y - 1) * stride, y * stride) : null;
    const dst = filtered.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    let best = 0;
    if (options.filter !== "none") {
      let bestSum = Infinity;
      for (let f = 0; f < 5; f++) {
        filterRow(f, row, prev, channels, trial);
        let sum = 0;
        for (let i = 0; i < stride; i++) sum += trial[i] < 128 ? trial[i] : 256 - trial[i];
        if (sum < bestSum) {
          bestSum = sum;
          best = f;
        }
      }
    }
    filtered[y * (stride + 1)] = best;
    filterRow(best, row, prev, channels, dst);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = COLOR_TYPE_BY_CHANNELS[channels];
  const idat = new Uint8Array(deflateSync(filtered, { level }));
  const parts = [PNG_SIGNATURE, chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Decodes a non-interlaced 8-bit PNG into a {@link RawImage} (palette images expanded, see the module
 * doc). `name` is used in error messages. Throws a {@link DataError} on anything malformed or unsupported.
 */
export function decodePng(bytes: Uint8Array, name = "PNG"): RawImage {
  const fail = (msg: string): never => {
    throw new DataError(`${name}: ${msg}`, { path: name });
  };
  if (bytes.length < 8 || !PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    fail("not a PNG file (bad signature)");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let width = 0, height = 0, colorType = -1, depth = 8, sawEnd = false;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) fail(`truncated chunk header at byte ${pos}`);
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 12 + len > bytes.length) fail(`chunk ${type} at byte ${pos} runs past the end of the file`);
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + len)) !== dv.getUint32(pos + 8 + len)) {
      fail(`CRC mismatch in chunk ${type} at byte ${pos}`);
    }
    pos += 12 + len;
    if (type === "IHDR") {
      if (len !== 13) fail("IHDR must be 13 bytes");
      const h = new DataView(body.buffer, body.byteOffset, 13);
      width = h.getUint32(0);
      height = h.getUint32(4);
      depth = body[8];
      colorType = body[9];
      if (!(colorType in CHANNELS_BY_COLOR_TYPE)) fail(`invalid colour type ${colorType}`);
      const lowOk = (colorType === 0 || colorType === 3) && (depth === 1 || depth === 2 || depth === 4);
      if (depth !== 8 && !lowOk) {
        fail(`bit depth ${depth} with colour type ${colorType} is not supported by this minimal decoder`);
      }
      if (body[10] !== 0 || body[11] !== 0) fail("unknown compression or filter method");
      if (body[12] !== 0) fail("interlaced PNGs are not supported by this minimal decoder");
      if (width < 1 || height < 1) fail(`invalid size ${width}×${height}`);
    } else if (type === "PLTE") palette = body.slice();
    else if (type === "tRNS") trns = body.slice();
    else if (type === "IDAT") idat.push(body);
    else if (type === "IEND") {
      sawEnd = true;
      break;
    } else if (!(type.charCodeAt(0) & 0x20)) fail(`unknown critical chunk ${type}`);
  }
  if (colorType < 0) fail("missing IHDR");
  if (!sawEnd) fail("missing IEND (truncated file?)");
  if (idat.length === 0) fail("no IDAT chunk");
  if (colorType === 3 && !palette) fail("palette image without PLTE");
  const samples = CHANNELS_BY_COLOR_TYPE[colorType];
  const bpp = depth === 8 ? samples : 1; // filter byte distance (1 for sub-byte depths)
  const stride = depth === 8 ? width * samples : Math.ceil((width * depth) / 8);
  let raw: Uint8Array;
  try {
    const joined = new Uint8Array(idat.reduce((s, c) => s + c.length, 0));
    let o = 0;
    for (const c of idat) {
      joined.set(c, o);
      o += c.length;
    }
    raw = new Uint8Array(inflateSync(joined));
  } catch (e) {
    return fail(`corrupt image data (zlib: ${(e as Error).message})`);
  }
  if (raw.length < height * (stride + 1)) {
    fail(`image data too short: ${raw.length} < ${height * (stride + 1)} bytes`);
  }
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const o = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? px[o + i - bpp] : 0;
      const b = y > 0 ? px[o - stride + i] : 0;
      const c = y > 0 && i >= bpp ? px[o - stride + i - bpp] : 0;
      let p: number;
      switch (f) {
        case 0:
          p = 0;
          break;
        case 1:
          p = a;
          break;
        case 2:
          p = b;
          break;
        case 3:
          p = (a + b) >>> 1;
          break;
        case 4:
          p = paeth(a, b, c);
          break;
        default:
          return fail(`invalid filter type ${f} on row ${y}`);
      }
      px[o + i] = (src[i] + p) & 0xff;
    }
  }
  let px8 = px;
  if (depth < 8) {
    // Unpack sub-byte samples (most significant bits first); gray is scaled to 0–255.
    px8 = new Uint8Array(width * height);
    const mask = (1 << depth) - 1;
    const scale = colorType === 0 ? 255 / mask : 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const bit = x * depth;
        const v = (px[y * stride + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
        px8[y * width + x] = v * scale;
      }
    }
  }
  if (colorType !== 3) return { width, height, channels: samples, data: px8 };
  const pal = palette!;
  const outC = trns ? 4 : 3;
  const out = new Uint8Array(width * height * outC);
  for (let i = 0; i < width * height; i++) {
    const idx = px8[i];
    if (idx * 3 + 2 >= pal.length) fail(`palette index ${idx} out of range (${pal.length / 3} entries)`);
    out[i * outC] = pal[idx * 3];
    out[i * outC + 1] = pal[idx * 3 + 1];
    out[i * outC + 2] = pal[idx * 3 + 2];
    if (outC === 4) out[i * 4 + 3] = idx < trns!.length ? trns![idx] : 255;
  }
  return { width, height, channels: outC, data: out };
}
