/**
 * Deterministic test images, generated identically by `tools/golden_center_crop.py` (`pattern`), so the
 * golden fixtures need not store their inputs; `golden.json` pins each input's sha256.
 */
import { createHash } from "node:crypto";
import type { RawImage } from "../../lib/data/raw_image.ts";

function hash32(x: number, y: number, c: number, seed: number): number {
  let h = (Math.imul(x, 0x9e3779b1) ^ Math.imul(y, 0x85ebca77) ^ Math.imul(c + 1 + seed * 7, 0xc2b2ae3d)) >>>
    0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  h = (h ^ (h >>> 12)) >>> 0;
  h = Math.imul(h, 0x297a2d39) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  return h;
}

/** HWC test image: 8×8 blocks of noise, gradient, hard edges and smooth diagonals. */
export function pattern(w: number, h: number, ch: number, seed: number): RawImage {
  const data = new Uint8Array(w * h * ch);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const region = ((x >> 3) + (y >> 3) + seed) % 4;
      for (let c = 0; c < ch; c++) {
        let v: number;
        if (region === 0) v = hash32(x, y, c, seed) & 255;
        else if (region === 1) v = (Math.floor((x * 255) / Math.max(w - 1, 1)) + c * 40) % 256;
        else if (region === 2) v = (x + y + c) & 4 ? 230 : 20;
        else v = (x * 3 + y * 5 + c * 70) & 255;
        data[(y * w + x) * ch + c] = v;
      }
    }
  }
  return { width: w, height: h, channels: ch, data };
}

/** Parses a golden.json input key such as "37x29x3s1". */
export function patternFromKey(key: string): RawImage {
  const m = /^(\d+)x(\d+)x(\d+)s(\d+)$/.exec(key);
  if (!m) throw new Error(`bad pattern key ${key}`);
  return pattern(+m[1], +m[2], +m[3], +m[4]);
}

/** Hex SHA-256. */
export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Describes where two byte arrays first differ (for failure messages), or "" if equal. */
export function firstDiff(a: Uint8Array, b: Uint8Array, width: number, channels: number): string {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  let n = 0, first = -1, maxd = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      if (first < 0) first = i;
      n++;
      maxd = Math.max(maxd, Math.abs(a[i] - b[i]));
    }
  }
  if (n === 0) return "";
  const p = Math.floor(first / channels);
  return `${n} bytes differ (max |Δ| ${maxd}); first at x=${p % width}, y=${Math.floor(p / width)}, c=${
    first % channels
  }: ${a[first]} vs ${b[first]}`;
}
