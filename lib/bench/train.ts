/**
 * `deno task bench train`: training-step throughput (forward, backward, AdamW, EMA) in images/s for the
 * embedded default's model and for DiT-S/2 (and, on a GPU, DiT-B/2 and DiT-XL/2) on 32×32×4 latents,
 * with the GPU time per step and the peak pooled GPU memory.
 * @module
 */

import { getRuntime } from "../gpu/runtime.ts";
import { type DiTConfig, ditConfig, gflops } from "../models/config.ts";
import { DiT } from "../models/dit.ts";
import { createSchedule } from "../diffusion/schedule.ts";
import { trainingLosses } from "../diffusion/gaussian.ts";
import { backward } from "../tensor/backward.ts";
import { tensor, tidy } from "../tensor/tensor.ts";
import { Generator } from "../tensor/rng.ts";
import { AdamW, EMA } from "../tensor/optim.ts";
import { initRngFor } from "../train/init_rng.ts";
import type { BenchOptions, BenchResult } from "./types.ts";

/** Measures steady-state training steps of one config at one batch size. */
export async function benchTrainStep(
  cfg: DiTConfig,
  batch: number,
  steps: number,
  name: string,
): Promise<BenchResult> {
  const rt = await getRuntime();
  const model = DiT.init(cfg, initRngFor(0));
  const opt = new AdamW(model.trainable(), { lr: 1e-4 });
  const ema = EMA.copyOf([...model.params.values()], 0.9999);
  const s = createSchedule("");
  const g = new Generator(1);
  const den = { inChannels: cfg.inChannels, learnSigma: cfg.learnSigma, forward: model.forward.bind(model) };
  const shape = [batch, cfg.inChannels, cfg.inputSize, cfg.inputSize];
  const step = async () => {
    const loss = tidy(() => {
      const y = tensor(Uint32Array.from({ length: batch }, (_, i) => i % cfg.numClasses), [batch], "u32");
      const t = Array.from(g.randintCpu(batch, 1000));
      const r = trainingLosses(den, s, g.normal(shape), t, y, g.normal(shape));
      backward(r.loss);
      return r.loss;
    });
    opt.step();
    opt.zeroGrad();
    ema.update([...model.params.values()]);
    await loss.item();
    loss.dispose();
  };
  await step(); // compiles every pipeline
  await step();
  const times: number[] = [];
  let gpuMs = 0;
  for (let i = 0; i < steps; i++) {
    rt.startTiming();
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
    gpuMs += (await rt.stopTiming()) ?? 0;
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  const peak = rt.pool.stats().peak;
  model.dispose();
  opt.dispose();
  ema.dispose();
  return {
    name,
    ms,
    items_per_s: (batch * 1000) / ms,
    unit: "img",
    gpu_ms: gpuMs / steps,
    batch,
    model: cfg.name,
    gflops_per_img_fwd: Number(gflops(cfg).toFixed(3)),
    peak_pool_mib: Math.round(peak / 2 ** 20),
    adapter: rt.adapter.description,
  };
}

/** The training benchmark. */
export async function benchTrain(opts: BenchOptions): Promise<BenchResult[]> {
  const rt = await getRuntime();
  const cpu = rt.adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(rt.adapter.description);
  const out: BenchResult[] = [];
  const mnist = ditConfig("DiT-S/4", {
    inputSize: 32,
    inChannels: 1,
    numClasses: 10,
    depth: 4,
    hiddenSize: 96,
    numHeads: 4,
  });
  opts.log("train: the embedded default's model (MNIST 32×32×1, depth 4, hidden 96, patch 4)");
  out.push(await benchTrainStep(mnist, 32, opts.quick ? 2 : 5, "train step mnist-default b32"));
  const s2 = ditConfig("DiT-S/2");
  opts.log("train: DiT-S/2 on 32×32×4 latents");
  out.push(
    await benchTrainStep(s2, cpu ? 4 : 32, opts.quick || cpu ? 2 : 10, `train step DiT-S/2 b${cpu ? 4 : 32}`),
  );
  if (!cpu && !opts.quick) {
    for (const name of ["DiT-B/2", "DiT-XL/2"]) {
      opts.log(`train: ${name}`);
      out.push(await benchTrainStep(ditConfig(name), 32, 5, `train step ${name} b32`));
    }
  }
  return out;
}
