/**
 * `deno task bench encode`: VAE encode throughput (images/s through the encoder and posterior mean) of
 * ditflow's small VAE (SMALL_VAE: 32×32×3 → 8×8×4), and of the decoder, with the GPU time per batch.
 * @module
 */

import { getRuntime } from "../gpu/runtime.ts";
import { AutoencoderKL, SMALL_VAE } from "../models/autoencoder_kl.ts";
import { noGrad } from "../tensor/autograd.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { initRngFor } from "../train/init_rng.ts";
import { type BenchOptions, type BenchResult, caseFilter } from "./types.ts";

/** Times `fn` (one batch) after a warm-up; returns the median wall time and the mean GPU time. */
async function timeBatches(fn: () => Tensor, iters: number): Promise<{ ms: number; gpuMs: number }> {
  const rt = await getRuntime();
  const once = async () => {
    const t = noGrad(() => tidy(fn));
    await t.data();
    t.dispose();
  };
  await once(); // compiles the pipelines
  const times: number[] = [];
  let gpuMs = 0;
  for (let i = 0; i < iters; i++) {
    rt.startTiming();
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
    gpuMs += (await rt.stopTiming()) ?? 0;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], gpuMs: gpuMs / iters };
}

/** The encode benchmark. */
export async function benchEncode(opts: BenchOptions): Promise<BenchResult[]> {
  const rt = await getRuntime();
  const cpu = rt.adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(rt.adapter.description);
  const batch = cpu ? 8 : 64;
  const iters = opts.quick || cpu ? 2 : 10;
  const model = AutoencoderKL.init(SMALL_VAE, initRngFor(0));
  const x = Float32Array.from({ length: batch * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37));
  const z = Float32Array.from({ length: batch * 4 * 8 * 8 }, (_, i) => Math.cos(i * 0.11));
  const out: BenchResult[] = [];
  const wanted = caseFilter(opts);
  const [encName, decName] = [`vae encode SMALL_VAE 32x32 b${batch}`, `vae decode SMALL_VAE 8x8x4 b${batch}`];
  try {
    if (wanted(encName)) {
      opts.log(`encode: SMALL_VAE, batch ${batch}`);
      const e = await timeBatches(() => model.encode(tensor(x, [batch, 3, 32, 32])).mean, iters);
      out.push({
        name: encName,
        ms: e.ms,
        items_per_s: (batch * 1000) / e.ms,
        unit: "img",
        gpu_ms: e.gpuMs,
        batch,
        adapter: rt.adapter.description,
      });
    }
    if (wanted(decName)) {
      opts.log(`decode: SMALL_VAE, batch ${batch}`);
      const d = await timeBatches(() => model.decode(tensor(z, [batch, 4, 8, 8])), iters);
      out.push({
        name: decName,
        ms: d.ms,
        items_per_s: (batch * 1000) / d.ms,
        unit: "img",
        gpu_ms: d.gpuMs,
        batch,
        adapter: rt.adapter.description,
      });
    }
  } finally {
    model.dispose();
  }
  return out;
}
