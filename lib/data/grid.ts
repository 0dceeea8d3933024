/**
 * Sample grids: torchvision's `make_grid` + `save_image` with `normalize=True, value_range=(-1, 1)` (what
 * DiT's `sample.py` calls), reproduced byte for byte (checked against torchvision 0.14 by
 * `tests/data/grid_test.ts`):
 * - one-channel images are replicated to RGB; the output is always an RGB PNG, as torchvision's;
 * - values are clamped to `valueRange`, shifted and divided by `max(hi - lo, 1e-5)`, then
 *   `trunc(clamp(v·255 + 0.5, 0, 255))`, every step in float32;
 * - `xmaps = min(nrow, n)` columns, `ceil(n / xmaps)` rows, `padding` pixels around and between tiles
 *   filled with `padValue` (in the normalised [0, 1] scale; 0 = black); a batch of one image is written
 *   without padding (torchvision returns it unchanged).
 * @module
 */

import { writeFileAtomic } from "./atomic_write.ts";
import { DataError } from "./errors.ts";
import { encodePng } from "./png.ts";
import type { RawImage } from "./raw_image.ts";

/** A float batch, NCHW. */
export interface NchwBatch {
  /** `n × C × H × W` values. */
  data: Float32Array;
  /** `[n, C, H, W]`, C ∈ {1, 3}. */
  shape: readonly [number, number, number, number];
}

/** Options of {@link makeGrid} and {@link saveGrid}. */
export interface GridOptions {
  /** Pixels around and between tiles (default 2). */
  padding?: number;
  /** Fill of the padding in normalised [0, 1] units (default 0, black). */
  padValue?: number;
  /** Value range mapped to [0, 255] (default [-1, 1]). */
  valueRange?: readonly [number, number];
}

const f32 = Math.fround;

/** Tiles `batch` into one RGB image, `nrow` images per row (see the module doc for the exact rules). */
export function makeGrid(batch: NchwBatch, nrow = 8, options: GridOptions = {}): RawImage {
  const [n, c, h, w] = batch.shape;
  if (![n, c, h, w].every((v) => Number.isInteger(v) && v > 0)) {
    throw new DataError(`makeGrid: shape must be four positive integers, got [${batch.shape}]`);
  }
  if (c !== 1 && c !== 3) throw new DataError(`makeGrid: images must have 1 or 3 channels, got ${c}`);
  if (batch.data.length !== n * c * h * w) {
    throw new DataError(
      `makeGrid: shape [${batch.shape}] needs ${n * c * h * w} values, got ${batch.data.length}`,
    );
  }
  if (!Number.isInteger(nrow) || nrow < 1) {
    throw new DataError(`makeGrid: nrow must be a positive integer, got ${nrow}`);
  }
  const padding = options.padding ?? 2;
  if (!Number.isInteger(padding) || padding < 0) {
    throw new DataError(`makeGrid: padding must be a non-negative integer, got ${padding}`);
  }
  const [lo, hi] = options.valueRange ?? [-1, 1];
  const lo32 = f32(lo), hi32 = f32(hi);
  const div = f32(Math.max(hi - lo, 1e-5));
  const toByte = (v: number): number => {
    const t = f32(f32(f32(v) * 255) + 0.5);
    return t > 0 ? (t < 255 ? Math.trunc(t) : 255) : 0;
  };
  const norm = (x: number): number => {
    let v = x < lo32 ? lo32 : x > hi32 ? hi32 : x; // NaN stays NaN (torch clamp), then maps to 0 below
    v = f32(f32(v - lo32) / div);
    return toByte(v);
  };
  const padByte = toByte(options.padValue ?? 0);
  const pad = n === 1 ? 0 : padding;
  const xmaps = Math.min(nrow, n);
  const ymaps = Math.ceil(n / xmaps);
  const W = (w + pad) * xmaps + pad, H = (h + pad) * ymaps + pad;
  const out = new Uint8Array(W * H * 3).fill(padByte);
  const plane = h * w;
  for (let k = 0; k < n; k++) {
    const gx = (k % xmaps) * (w + pad) + pad, gy = Math.floor(k / xmaps) * (h + pad) + pad;
    const base = k * c * plane;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = ((gy + y) * W + gx + x) * 3;
        for (let ch = 0; ch < 3; ch++) {
          out[o + ch] = norm(batch.data[base + (c === 1 ? 0 : ch) * plane + y * w + x]);
        }
      }
    }
  }
  return { width: W, height: H, channels: 3, data: out };
}

/**
 * Writes the {@link makeGrid} of `batch` (NCHW, values in [-1, 1] by default) to `path` as a PNG,
 * atomically (temp file + rename; the parent folder is created if missing).
 */
export async function saveGrid(
  batch: NchwBatch,
  nrow: number,
  path: string,
  options: GridOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodePng(makeGrid(batch, nrow, options)));
}

/** Writes an 8-bit image to `path` as a PNG, atomically. */
export async function savePng(img: RawImage, path: string): Promise<void> {
  await writeFileAtomic(path, encodePng(img));
}
