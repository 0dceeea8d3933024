/**
 * `deno task bench inception`: feature-extraction throughput of the FID extractors, in images/s from host
 * images to host features (upload, forward, one read-back per batch, as the `fid-ref`/`fid` stages run
 * them):
 * - the FID Inception-v3 (lib/models/inception.ts) on 3×64×64 images resized to 299×299 (pool3 and the
 *   1008 unbiased logits), with deterministic synthetic weights (the real ones are not needed for
 *   timing; the network is the same), plus the GPU time per batch;
 * - the `classifier` extractor, the LeNet-5 of `train-classifier` (84-d features of 1×32×32 images).
 * On a GPU machine run it beside pytorch-fid (`python -m pytorch_fid --batch-size B` over a folder of PNGs
 * reports its own images/s) for a comparison of the same network.
 * @module
 */

import { getRuntime } from "../gpu/runtime.ts";
import {
  inceptionFeatures,
  inceptionGflops,
  inceptionMaxBatch,
  InceptionV3,
  syntheticInceptionState,
} from "../models/inception.ts";
import { LeNet, LENET_DEFAULTS, lenetFeatures } from "../models/lenet.ts";
import { type BenchOptions, type BenchResult, caseFilter } from "./types.ts";

/** Median wall time of `iters` calls of `fn` after one warm-up call (which compiles the pipelines). */
async function timeIt(fn: () => Promise<unknown>, iters: number): Promise<{ ms: number; gpuMs: number }> {
  const rt = await getRuntime();
  await fn();
  const times: number[] = [];
  let gpuMs = 0;
  for (let i = 0; i < iters; i++) {
    rt.startTiming();
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    gpuMs += (await rt.stopTiming()) ?? 0;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], gpuMs: gpuMs / iters };
}

/** The inception benchmark. */
export async function benchInception(opts: BenchOptions): Promise<BenchResult[]> {
  const rt = await getRuntime();
  const cpu = rt.adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(rt.adapter.description);
  const adapter = rt.adapter.description;
  const out: BenchResult[] = [];
  const wanted = caseFilter(opts);

  const batch = opts.quick ? 2 : Math.min(inceptionMaxBatch(299), cpu ? 4 : 16);
  const iters = opts.quick ? 1 : 3;
  const iname = `inception-v3-fid features 299x299 b${batch}`;
  const net = wanted(iname) ? InceptionV3.fromState(syntheticInceptionState()) : null;
  if (net) opts.log(`inception: synthetic FID Inception-v3, batch ${batch}, 3×64×64 → 299×299`);
  if (net) {
    try {
      const x = Float32Array.from({ length: batch * 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37));
      const images = { data: x, shape: [batch, 3, 64, 64] as [number, number, number, number] };
      const t = await timeIt(() => inceptionFeatures(net, images, { batch, logits: "unbiased" }), iters);
      out.push({
        name: iname,
        ms: t.ms,
        items_per_s: (batch * 1000) / t.ms,
        unit: "img",
        gflops: (inceptionGflops(299) * batch * 1000) / t.ms,
        gpu_ms: t.gpuMs,
        batch,
        adapter,
      });
    } finally {
      net.dispose();
    }
  }

  const lb = opts.quick ? 500 : 2000;
  const lname = `lenet-mnist features 32x32 (${lb} img, b500)`;
  if (!wanted(lname)) return out;
  opts.log(`classifier: LeNet-5 (lenet-mnist), ${lb} images of 1×32×32, batch 500`);
  const lenet = LeNet.init(LENET_DEFAULTS, 0);
  try {
    const x = Float32Array.from({ length: lb * 32 * 32 }, (_, i) => Math.sin(i * 0.11));
    const t = await timeIt(() => lenetFeatures(lenet, x, lb), opts.quick ? 1 : 3);
    out.push({
      name: lname,
      ms: t.ms,
      items_per_s: (lb * 1000) / t.ms,
      unit: "img",
      gpu_ms: t.gpuMs,
      batch: 500,
      adapter,
    });
  } finally {
    lenet.dispose();
  }
  return out;
}
