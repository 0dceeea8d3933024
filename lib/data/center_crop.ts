/**
 * The ADM center crop: guided-diffusion's `center_crop_arr` (`guided_diffusion/image_datasets.py`), which
 * DiT's `train.py` copies verbatim. Reproduced here byte for byte (checked against the Python function on
 * Pillow 9.4 by `tests/data/center_crop_test.ts`):
 *
 * ```python
 * while min(*pil_image.size) >= 2 * image_size:
 *     pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
 * scale = image_size / min(*pil_image.size)
 * pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
 * arr = np.array(pil_image)
 * crop_y = (arr.shape[0] - image_size) // 2
 * crop_x = (arr.shape[1] - image_size) // 2
 * return arr[crop_y : crop_y + image_size, crop_x : crop_x + image_size]
 * ```
 *
 * Details that matter for exactness: `round` is Python's round-half-to-even on the double `x * scale`
 * ({@link pythonRound}); PIL's `resize` to the current size is a plain copy (so an image whose short side is
 * already `image_size` is only cropped); the resamplers are Pillow's ({@link pilResize}), not sharp's.
 * @module
 */

import { DataError } from "./errors.ts";
import { pilResize } from "./pil_resample.ts";
import { checkRawImage, cropRaw, type RawImage } from "./raw_image.ts";

/** Python 3's `round(x)` for a double: nearest integer, ties to even. */
export function pythonRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** One step of the crop as {@link admCenterCropPlan} describes it. */
export type CenterCropStep =
  | { op: "box-halve"; from: [number, number]; to: [number, number] }
  | { op: "bicubic"; from: [number, number]; to: [number, number] }
  | { op: "crop"; left: number; top: number; size: number };

/**
 * The steps {@link admCenterCrop} takes for a `width × height` image (sizes as `[width, height]`), without
 * touching pixels: useful to report or test the geometry. A bicubic step is listed only when the size
 * changes (PIL copies otherwise).
 */
export function admCenterCropPlan(width: number, height: number, size: number): CenterCropStep[] {
  if (!Number.isInteger(size) || size < 1) {
    throw new DataError(`center crop: size must be a positive integer, got ${size}`);
  }
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new DataError(`center crop: invalid image size ${width}×${height}`);
  }
  const steps: CenterCropStep[] = [];
  let w = width, h = height;
  while (Math.min(w, h) >= 2 * size) {
    const nw = Math.floor(w / 2), nh = Math.floor(h / 2);
    steps.push({ op: "box-halve", from: [w, h], to: [nw, nh] });
    w = nw;
    h = nh;
  }
  const scale = size / Math.min(w, h);
  const nw = pythonRound(w * scale), nh = pythonRound(h * scale);
  if (nw !== w || nh !== h) steps.push({ op: "bicubic", from: [w, h], to: [nw, nh] });
  if (nw < size || nh < size) {
    // Unreachable for positive integer sizes (the short side scales to exactly `size`); numpy would
    // silently return a smaller array here, we refuse.
    throw new DataError(`center crop: resized ${width}×${height} to ${nw}×${nh}, smaller than ${size}`);
  }
  steps.push({ op: "crop", left: Math.floor((nw - size) / 2), top: Math.floor((nh - size) / 2), size });
  return steps;
}

/**
 * guided-diffusion's `center_crop_arr(pil_image, size)` on an 8-bit image (normally RGB): box-halve while
 * the short side is at least `2·size`, bicubic-resize the short side to `size`, then take the central
 * `size × size` window. Returns a new `size × size` image with the input's channel count.
 */
export function admCenterCrop(img: RawImage, size: number): RawImage {
  checkRawImage(img, "center crop input");
  let cur = img;
  for (const step of admCenterCropPlan(img.width, img.height, size)) {
    if (step.op === "crop") cur = cropRaw(cur, step.left, step.top, step.size, step.size);
    else cur = pilResize(cur, step.to[0], step.to[1], step.op === "box-halve" ? "box" : "bicubic");
  }
  return cur;
}
