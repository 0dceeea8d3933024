/**
 * The in-memory form of one decoded 8-bit image: interleaved channels, rows top to bottom (HWC), the
 * layout PIL, sharp and numpy (`np.array(pil_image)`) use.
 * @module
 */

import { DataError } from "./errors.ts";

/** One 8-bit image, `height × width × channels` bytes in HWC order. */
export interface RawImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Channels per pixel: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). */
  channels: number;
  /** `height * width * channels` bytes, HWC. */
  data: Uint8Array;
}

/** Throws a {@link DataError} unless `img` is well formed (positive integer sizes, matching byte length). */
export function checkRawImage(img: RawImage, what = "image"): void {
  const { width, height, channels, data } = img;
  for (const [k, v] of [["width", width], ["height", height], ["channels", channels]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new DataError(`${what}: ${k} must be a positive integer, got ${v}`);
    }
  }
  if (channels > 4) throw new DataError(`${what}: at most 4 channels are supported, got ${channels}`);
  if (data.length !== width * height * channels) {
    throw new DataError(
      `${what}: expected ${width}×${height}×${channels} = ${
        width * height * channels
      } bytes, got ${data.length}`,
    );
  }
}

/** Copies the `width × height` window at (`left`, `top`) out of `img`; the window must lie inside it. */
export function cropRaw(img: RawImage, left: number, top: number, width: number, height: number): RawImage {
  if (
    left < 0 || top < 0 || left + width > img.width || top + height > img.height || width < 1 || height < 1
  ) {
    throw new DataError(
      `crop ${width}×${height} at (${left}, ${top}) does not fit in a ${img.width}×${img.height} image`,
    );
  }
  const c = img.channels;
  const out = new Uint8Array(width * height * c);
  const rowBytes = width * c;
  for (let y = 0; y < height; y++) {
    const src = ((top + y) * img.width + left) * c;
    out.set(img.data.subarray(src, src + rowBytes), y * rowBytes);
  }
  return { width, height, channels: c, data: out };
}
