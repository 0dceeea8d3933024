/**
 * Peak signal-to-noise ratio of reconstructions of images in [-1, 1].
 * @module
 */

/**
 * Mean PSNR (dB) over images of `n` values each, with values in [-1, 1] (peak-to-peak 2) and the
 * reconstruction clamped to that range first: 10·log10(4 / mse) per image, averaged.
 */
export function psnr(ref: Float32Array, rec: Float32Array, per: number): number {
  if (ref.length !== rec.length || ref.length % per !== 0) {
    throw new Error(`psnr: ${ref.length} and ${rec.length} values do not form images of ${per}`);
  }
  const count = ref.length / per;
  let total = 0;
  for (let k = 0; k < count; k++) {
    let e = 0;
    for (let i = k * per; i < (k + 1) * per; i++) {
      const r = Math.min(1, Math.max(-1, rec[i]));
      e += (r - ref[i]) ** 2;
    }
    total += 10 * Math.log10(4 / Math.max(e / per, 1e-12));
  }
  return total / count;
}
