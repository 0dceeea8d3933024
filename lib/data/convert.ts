/**
 * Pixel-value conversions between 8-bit images and the model's float range, each reproducing the float32
 * arithmetic of the PyTorch code it stands for (every intermediate rounded to float32 as torch does), so
 * values are bit-identical to the reference pipeline's:
 * - {@link uint8ToUnit}: torchvision `ToTensor()` then `Normalize([0.5]*C, [0.5]*C)` (DiT's `train.py`
 *   transform): `((u / 255) - 0.5) / 0.5` in float32, so 0 → -1, 255 → 1.
 * - {@link toUint8}: DiT's evaluation convention (`sample_ddp.py`), `clamp(127.5·x + 128, 0, 255)` then
 *   `.to(torch.uint8)`, which truncates. It inverts {@link uint8ToUnit} exactly (u → u for all 256 values).
 * - {@link hwcToChw} / {@link chwToHwc}: layout changes between decoded images (HWC) and tensors (CHW).
 * @module
 */

import { DataError } from "./errors.ts";
import type { RawImage } from "./raw_image.ts";

const UNIT_LUT = (() => {
  const t = new Float32Array(256);
  for (let u = 0; u < 256; u++) t[u] = Math.fround(Math.fround(u / 255) - 0.5) * 2;
  return t;
})();

/**
 * Maps bytes to [-1, 1] exactly as torchvision's `ToTensor` + `Normalize(0.5, 0.5)` do in float32
 * (float32 `u / 255`, minus 0.5, divided by 0.5). Writes into `out` when given (same length).
 */
export function uint8ToUnit(u8: Uint8Array, out: Float32Array = new Float32Array(u8.length)): Float32Array {
  if (out.length !== u8.length) {
    throw new DataError(`uint8ToUnit: out has ${out.length} elements, expected ${u8.length}`);
  }
  for (let i = 0; i < u8.length; i++) out[i] = UNIT_LUT[u8[i]];
  return out;
}

/** The float value {@link uint8ToUnit} gives byte `u` (0–255). */
export function unitValue(u: number): number {
  return UNIT_LUT[u];
}

/**
 * DiT's sample-to-byte conversion: `torch.clamp(127.5 * x + 128.0, 0, 255).to(torch.uint8)` in float32
 * (multiply, round to float32, add, clamp, truncate). NaN maps to 0 (torch leaves it undefined).
 */
export function toUint8(x: ArrayLike<number>, out: Uint8Array = new Uint8Array(x.length)): Uint8Array {
  if (out.length !== x.length) {
    throw new DataError(`toUint8: out has ${out.length} elements, expected ${x.length}`);
  }
  for (let i = 0; i < x.length; i++) {
    const v = Math.fround(Math.fround(127.5 * Math.fround(x[i])) + 128);
    out[i] = v > 0 ? (v < 255 ? Math.trunc(v) : 255) : 0;
  }
  return out;
}

/** HWC bytes of `img` as CHW bytes (a new array, `channels × height × width`). */
export function hwcToChw(img: RawImage, out: Uint8Array = new Uint8Array(img.data.length)): Uint8Array {
  const { width: w, height: h, channels: c, data } = img;
  if (out.length !== data.length) {
    throw new DataError(`hwcToChw: out has ${out.length} bytes, expected ${data.length}`);
  }
  const plane = w * h;
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < c; k++) out[k * plane + p] = data[p * c + k];
  }
  return out;
}

/** CHW bytes (`channels × height × width`) as an HWC {@link RawImage}. */
export function chwToHwc(chw: Uint8Array, channels: number, height: number, width: number): RawImage {
  const plane = width * height;
  if (chw.length !== plane * channels) {
    throw new DataError(
      `chwToHwc: expected ${channels}×${height}×${width} = ${plane * channels} bytes, got ${chw.length}`,
    );
  }
  const data = new Uint8Array(chw.length);
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < channels; k++) data[p * channels + k] = chw[k * plane + p];
  }
  return { width, height, channels, data };
}
