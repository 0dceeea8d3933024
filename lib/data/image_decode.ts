/**
 * Image file decoding with sharp (libvips), to 8-bit RGB as PIL's `Image.open(path).convert("RGB")` gives
 * it (the loader of torchvision's `ImageFolder` and of DiT's training script):
 * - embedded ICC profiles are ignored (PIL does not colour-manage), EXIF orientation is not applied (PIL's
 *   `open` does not rotate), alpha is dropped without compositing, gray is replicated to three channels;
 * - JPEG (4:4:4, 4:2:2, 4:2:0, gray) and WebP decode to the same bytes as Pillow 9.4 with libjpeg-turbo
 *   2.1 / libwebp 1.2 (pinned by `tests/data/center_crop_test.ts`);
 * - 16-bit RGB PNGs: both keep the high byte (checked by hand); known differences, rare in practice:
 *   CMYK JPEGs (PIL inverts naively, libvips converts) and 16-bit gray PNGs (PIL clips its `I;16` values
 *   to 255, libvips keeps the high byte).
 *
 * Truncated or undecodable files throw a {@link DataError} naming the file. The default strictness,
 * sharp's `failOn: "error"`, fails on truncated data and decode errors but, like PIL, not on libjpeg
 * warnings such as "extraneous bytes before marker".
 * @module
 */

import sharp from "sharp";
import { DataError } from "./errors.ts";
import type { RawImage } from "./raw_image.ts";

/** sharp's decode strictness levels, least to most strict. */
export type FailOn = "none" | "truncated" | "error" | "warning";

/** Options of {@link decodeImageFile}. */
export interface DecodeOptions {
  /** When to reject damaged pixel data (default "error"; see the module doc). */
  failOn?: FailOn;
}

/** Decodes `input` (a path, or the file's bytes with `name` for messages) to 8-bit RGB, HWC. */
export async function decodeImage(
  input: string | Uint8Array,
  name?: string,
  options: DecodeOptions = {},
): Promise<RawImage> {
  const label = name ?? (typeof input === "string" ? input : "image");
  try {
    const { data, info } = await sharp(input, { failOn: options.failOn ?? "error", ignoreIcc: true })
      .removeAlpha()
      .toColourspace("srgb")
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (info.channels === 1) {
      const rgb = new Uint8Array(bytes.length * 3);
      for (let i = 0; i < bytes.length; i++) rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = bytes[i];
      bytes = rgb;
    } else if (info.channels !== 3) {
      throw new Error(`unexpected ${info.channels} channels after conversion to RGB`);
    }
    return { width: info.width, height: info.height, channels: 3, data: bytes };
  } catch (e) {
    throw new DataError(`cannot decode image ${label}: ${(e as Error).message}`, { path: label, cause: e });
  }
}

/** Decodes the image file at `path` to 8-bit RGB (see {@link decodeImage}). */
export function decodeImageFile(path: string, options: DecodeOptions = {}): Promise<RawImage> {
  return decodeImage(path, path, options);
}
