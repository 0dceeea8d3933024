/**
 * Benchmarks of the normalisation / reduction ops at DiT-S/2 sizes (x [32, 256, 384], conditioning
 * [32, 384]): LayerNorm, adaLN modulation and the fused LayerNorm+modulate, forward and backward, the gated
 * residual, softmax and cross-entropy over 1001 classes, and the full sum of 16M elements; and the small
 * VAE's 3×3 conv2d and GroupNorm (x [16, 8, 32, 32]), forward and backward; and one AdamW step plus one
 * EMA update over the main job's parameters (DiT-L/4-mini, 1.29M in 52 tensors), in wall-clock time per
 * step (copies and their recording included). Throughput in MB/s counts the bytes each op must move at
 * least (its inputs read once and its outputs written once).
 *
 * `deno task bench ops [--quick]`.
 * @module
 */

import { getRuntime, type Runtime } from "../gpu/runtime.ts";
import { backward } from "../tensor/backward.ts";
import { conv2d } from "../tensor/ops/conv.ts";
import { groupNorm } from "../tensor/ops/groupnorm.ts";
import { addGated, layerNorm, layerNormModulate, modulate } from "../tensor/ops/layernorm.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import { numel, type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { AdamW, EMA } from "../tensor/optim.ts";
import { trainCases } from "./train.ts";
import { paramSpecs } from "../models/dit.ts";
import { type BenchOptions, type BenchResult, caseFilter } from "./types.ts";

function randomData(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = (a / 4294967296 - 0.5) * 3.4;
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A timing: median and minimum over the iterations, and which clock measured it. */
interface Timing {
  ms: number;
  minMs: number;
  timer: string;
}

/**
 * Times the GPU work `body` records after it calls `start()` (everything `body` makes is disposed at
 * the end of its scope): GPU timestamps where the adapter has them, else wall-clock from `start()` to
 * completion (which then also counts the GPU work recorded before `start()`). One untimed warm-up run.
 */
async function measure(r: Runtime, body: (start: () => void) => void, iters: number): Promise<Timing> {
  const once = async (timed: boolean) => {
    await r.sync();
    let t0 = performance.now();
    tidy(() =>
      body(() => {
        if (timed) r.startTiming(); // flushes the work recorded so far, untimed
        t0 = performance.now();
      })
    );
    await r.sync();
    const wall = performance.now() - t0;
    const g = timed ? await r.stopTiming() : null;
    return { wall, g };
  };
  await once(false);
  const gpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < iters; i++) {
    const { wall: w, g } = await once(true);
    wall.push(w);
    if (g !== null && g > 0) gpu.push(g);
  }
  const xs = gpu.length === iters ? gpu : wall;
  return { ms: median(xs), minMs: Math.min(...xs), timer: gpu.length === iters ? "gpu" : "wall" };
}

/** Times a forward op. */
function timeForward(r: Runtime, run: () => void, iters: number): Promise<Timing> {
  return measure(r, (start) => {
    start();
    run();
  }, iters);
}

/**
 * Times the backward of `fn(leaves)` with the seed gradient `g`: the forward is recorded in the same scope
 * (its saved tensors live there) but before the timer starts. Without GPU timestamps the forward's time is
 * subtracted instead.
 */
async function timeBackward(
  r: Runtime,
  leaves: Tensor[],
  fn: (xs: Tensor[]) => Tensor,
  g: Tensor,
  iters: number,
): Promise<Timing> {
  const both = await measure(r, (start) => {
    for (const x of leaves) x.requiresGrad = true;
    if (!r.hasTimestamps) start();
    const y = fn(leaves);
    if (r.hasTimestamps) start();
    backward(y, g);
    for (const x of leaves) {
      x.grad?.dispose();
      x.grad = null;
      x.requiresGrad = false;
    }
  }, iters);
  if (both.timer === "gpu") return both;
  const fwd = await timeForward(r, () => void fn(leaves), iters);
  return { ms: Math.max(both.ms - fwd.ms, 0), minMs: Math.max(both.minMs - fwd.minMs, 0), timer: "wall" };
}

/** LayerNorm / modulate / gated residual / softmax / 16M-element sum timings at DiT-S/2 sizes. */
export async function benchOps(opts: BenchOptions): Promise<BenchResult[]> {
  const r = await getRuntime();
  const adapter = r.adapter.description;
  const soft = r.adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(adapter);
  const iters = opts.quick ? 1 : soft ? 5 : 20;
  const [n, t, d] = [opts.quick ? 4 : 32, 256, 384];
  const size = n * t * d;
  const results: BenchResult[] = [];
  const x = tensor(randomData(size, 1), [n, t, d]).keep();
  const res = tensor(randomData(size, 2), [n, t, d]).keep();
  const gy = tensor(randomData(size, 3), [n, t, d]).keep();
  const shift = tensor(randomData(n * d, 4), [n, d]).keep();
  const scale = tensor(randomData(n * d, 5), [n, d]).keep();
  const tag = `[${n}, ${t}, ${d}]`;
  const push = (name: string, m: Timing, bytes: number) => {
    results.push({
      name,
      ms: m.ms,
      mbps: bytes / (m.ms * 1e3),
      adapter,
      timer: m.timer,
      min_ms: m.minMs,
      best_mbps: bytes / (m.minMs * 1e3),
      iters,
    });
    opts.log(`${name}: ${m.ms.toFixed(3)} ms (min ${m.minMs.toFixed(3)})`);
  };
  const wanted = caseFilter(opts);
  const run = async (name: string, time: () => Promise<Timing>, bytes: number) => {
    if (wanted(name)) push(name, await time(), bytes);
  };
  const B = 4 * size; // bytes of one [N, T, D] tensor
  const C = 4 * n * d; // bytes of one [N, D] tensor

  await run(`layerNorm fwd ${tag}`, () => timeForward(r, () => void layerNorm(x), iters), 2 * B);
  await run(`layerNorm bwd ${tag}`, () => timeBackward(r, [x], ([a]) => layerNorm(a), gy, iters), 3 * B);
  await run(
    `modulate fwd ${tag}`,
    () => timeForward(r, () => void modulate(x, shift, scale), iters),
    2 * B + 2 * C,
  );
  await run(
    `modulate bwd ${tag}`,
    () => timeBackward(r, [x, shift, scale], ([a, b, c]) => modulate(a, b, c), gy, iters),
    3 * B + 3 * C,
  );
  await run(
    `layerNormModulate fwd ${tag}`,
    () => timeForward(r, () => void layerNormModulate(x, shift, scale), iters),
    2 * B + 2 * C,
  );
  await run(
    `layerNormModulate bwd ${tag}`,
    () => timeBackward(r, [x, shift, scale], ([a, b, c]) => layerNormModulate(a, b, c), gy, iters),
    3 * B + 3 * C,
  );
  await run(
    `addGated fwd ${tag}`,
    () => timeForward(r, () => void addGated(res, x, shift), iters),
    3 * B + C,
  );
  await run(
    `addGated bwd ${tag}`,
    () => timeBackward(r, [res, x, shift], ([a, b, c]) => addGated(a, b, c), gy, iters),
    3 * B + C,
  );
  const sm = x.view([n * t, d]);
  await run(`softmax fwd [${n * t}, ${d}]`, () => timeForward(r, () => void softmax(sm), iters), 2 * B);
  sm.dispose();

  // The small VAE's convolution and GroupNorm (im2col + matmul + bias; 8 groups of one channel).
  {
    const [vn, vc, vh] = [opts.quick ? 2 : 16, 8, 32];
    const vsize = vn * vc * vh * vh;
    const xv = tensor(randomData(vsize, 7), [vn, vc, vh, vh]).keep();
    const gv = tensor(randomData(vsize, 8), [vn, vc, vh, vh]).keep();
    const wv = tensor(randomData(vc * vc * 9, 9).map((v) => v * 0.1), [vc, vc, 3, 3]).keep();
    const bv = tensor(randomData(vc, 10), [vc]).keep();
    const V = 4 * vsize;
    const vtag = `[${vn}, ${vc}, ${vh}, ${vh}]`;
    const conv = ([a, w, b]: Tensor[]) => conv2d(a, w, b, { padding: 1 });
    await run(`conv2d 3x3 fwd ${vtag}`, () => timeForward(r, () => void conv([xv, wv, bv]), iters), 2 * V);
    await run(`conv2d 3x3 bwd ${vtag}`, () => timeBackward(r, [xv, wv, bv], conv, gv, iters), 3 * V);
    const gn = ([a, w, b]: Tensor[]) => groupNorm(a, 8, w, b);
    const gw = tensor(randomData(vc, 11), [vc]).keep();
    await run(`groupNorm fwd ${vtag} g8`, () => timeForward(r, () => void gn([xv, gw, bv]), iters), 2 * V);
    await run(`groupNorm bwd ${vtag} g8`, () => timeBackward(r, [xv, gw, bv], gn, gv, iters), 3 * V);
    for (const v of [xv, gv, wv, bv, gw]) v.dispose();
  }

  // AdamW + EMA over the main job's parameters (fixed gradients): wall clock over `steps` steps.
  const specs = paramSpecs(trainCases(soft)[0].cfg); // the main job's model (one definition: train.ts)
  const elements = specs.reduce((a, sp) => a + numel(sp.shape), 0);
  const optName = `AdamW + EMA step, DiT-L/4-mini (${elements} params, ${specs.length} tensors)`;
  if (wanted(optName)) {
    const ps = specs.map((sp, i) =>
      tensor(randomData(numel(sp.shape), 20 + i), sp.shape, "f32", sp.name).keep()
    );
    const gs = specs.map((sp, i) => tensor(randomData(numel(sp.shape), 90 + i), sp.shape).keep());
    const opt = new AdamW(ps, { lr: 1e-4 });
    const ema = EMA.copyOf(ps, 0.9999);
    const steps = opts.quick ? 2 : 20;
    const runSteps = async () => {
      await r.sync();
      const t0 = performance.now();
      for (let k = 0; k < steps; k++) {
        ps.forEach((p, i) => p.grad = gs[i]);
        opt.step();
        ps.forEach((p) => p.grad = null);
        ema.update(ps);
      }
      await r.sync();
      return (performance.now() - t0) / steps;
    };
    await runSteps();
    const times = [];
    for (let k = 0; k < (opts.quick ? 1 : 3); k++) times.push(await runSteps());
    const m = { ms: median(times), minMs: Math.min(...times), timer: "wall" };
    if (elements !== 1288256 || ps.length !== 52) {
      throw new Error(`ops bench: ${optName} has ${elements} params`);
    }
    push(optName, m, 36 * elements);
    opt.dispose();
    ema.dispose();
    for (const v of [...ps, ...gs]) v.dispose();
  }

  const big = (opts.quick ? 1 : 16) << 20;
  const xs = tensor(randomData(big, 6), [big]).keep();
  await run(`sum ${big / (1 << 20)}M elements`, () => timeForward(r, () => void sum(xs), iters), 4 * big);
  for (const v of [x, res, gy, shift, scale, xs]) v.dispose();
  return results;
}
