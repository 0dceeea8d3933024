/**
 * Running a trained VAE over in-memory images: matching channel counts, batched encoding to posterior
 * statistics, the latent scale factor (1 / std of the posterior means, LDM's `scale_by_std`) and batched
 * reconstruction through the posterior mean.
 * @module
 */

import type { AutoencoderKL } from "./autoencoder_kl.ts";
import { noGrad } from "../tensor/autograd.ts";
import { tensor, tidy } from "../tensor/tensor.ts";

/** Expands 1-channel images to `channels` (gray replicated) or checks that the channels match. */
export function matchChannels(
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  channels: number,
  what: string,
): Float32Array {
  const [C, H, W] = shape;
  if (C === channels) return x;
  if (C !== 1) throw new Error(`${what}: the images have ${C} channels but the VAE expects ${channels}`);
  const plane = H * W;
  const out = new Float32Array(count * channels * plane);
  for (let n = 0; n < count; n++) {
    const src = x.subarray(n * plane, (n + 1) * plane);
    for (let c = 0; c < channels; c++) out.set(src, (n * channels + c) * plane);
  }
  return out;
}

/**
 * Runs the encoder over `count` images (NCHW, [C, H, W] each) in batches and calls `each` with the
 * posterior mean and std of every batch (host arrays, [n, L, h, w]) and its first index.
 */
export async function encodeBatches(
  model: AutoencoderKL,
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  batchSize: number,
  each: (mean: Float32Array, std: Float32Array, first: number, n: number) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const [C, H, W] = shape;
  const per = C * H * W;
  for (let lo = 0; lo < count; lo += batchSize) {
    signal?.throwIfAborted();
    const n = Math.min(batchSize, count - lo);
    const { m, s } = noGrad(() =>
      tidy(() => {
        const post = model.encode(tensor(x.subarray(lo * per, (lo + n) * per), [n, C, H, W]));
        return { m: post.mean, s: post.std };
      })
    );
    const mean = await m.data();
    const std = await s.data();
    m.dispose();
    s.dispose();
    await each(mean, std, lo, n);
  }
}

/** 1 / std of all posterior-mean values of `x` (LDM's `scale_by_std`), with the std itself. */
export async function latentScaleFactor(
  model: AutoencoderKL,
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  batchSize = 32,
): Promise<{ scaleFactor: number; std: number }> {
  let n = 0, s = 0, s2 = 0;
  await encodeBatches(model, x, shape, count, batchSize, (m) => {
    for (let i = 0; i < m.length; i++) {
      s += m[i];
      s2 += m[i] * m[i];
    }
    n += m.length;
  });
  const mu = s / n;
  const std = Math.sqrt(Math.max(0, (s2 - n * mu * mu) / Math.max(1, n - 1)));
  if (!(std > 0) || !Number.isFinite(std)) {
    throw new Error(`the posterior means have std ${std}; cannot derive a scale factor`);
  }
  return { scaleFactor: 1 / std, std };
}

/** Reconstructs images through the posterior mean (decode(mode)), in batches; returns NCHW floats. */
export async function reconstruct(
  model: AutoencoderKL,
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  batchSize = 32,
): Promise<Float32Array> {
  const [C, H, W] = shape;
  const per = C * H * W;
  const out = new Float32Array(count * per);
  for (let lo = 0; lo < count; lo += batchSize) {
    const n = Math.min(batchSize, count - lo);
    const r = noGrad(() =>
      tidy(() => model.forward(tensor(x.subarray(lo * per, (lo + n) * per), [n, C, H, W])).recon)
    );
    out.set(await r.data(), lo * per);
    r.dispose();
  }
  return out;
}
