/**
 * Matmul benchmark: GFLOP/s (2·M·N·K / time) of square matmuls, of the DiT-S/2 linear layers at batch
 * 32 (8192 tokens), of a small DiT on 32×32 pixels (hidden 96, 2048 tokens; adaLN on 32 rows) and of the
 * latent DiTs of the MNIST pipelines (few rows: 256 and 128 tokens), each forward (x·Wᵀ) and the two
 * backward products (dY·W and dYᵀ·X).
 *
 * Timing: GPU timestamps around the one compute pass of each matmul where the adapter has them
 * (`Runtime.startTiming`/`stopTiming`), else wall clock from submit to `queue.onSubmittedWorkDone`. One
 * warm-up run (pipeline compile, buffer allocation) is excluded; the result is the median of the timed
 * runs (10 on GPUs; on CPU adapters 9, 5, 3 or 2 as one run grows to seconds, and no warm-up for a multi-second
 * problem whose pipeline an earlier case already compiled and ran).
 *
 * On CPU adapters (llvmpipe) the machine may be shared, so each result also carries `gflops_cpu`: the
 * FLOPs over the process CPU time of the median run divided by the number of cores, i.e. the rate with
 * every core to itself (equal to `gflops` on an idle machine with perfect scaling; higher when other
 * processes took CPU time).
 * @module
 */

import process from "node:process";
import { getRuntime, type Runtime } from "../gpu/runtime.ts";
import { isCpuAdapter, matmul, type MatmulPlan, planMatmul } from "../tensor/ops/matmul.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { type BenchOptions, type BenchResult, caseFilter } from "./types.ts";

interface Case {
  name: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}

function square(n: number): Case {
  return { name: `matmul ${n}x${n}x${n}`, M: n, N: n, K: n, transA: false, transB: false };
}

/** The three products of a Linear layer on `rows` rows: forward x·Wᵀ, dx = dy·W and dW = dyᵀ·x. */
function linearCases(prefix: string, rows: number, layers: [string, number, number][]): Case[] {
  const out: Case[] = [];
  for (const [layer, inF, outF] of layers) {
    // forward y = x·Wᵀ: x [rows, in], W [out, in]
    out.push({ name: `${prefix} ${layer} fwd x·Wᵀ`, M: rows, N: outF, K: inF, transA: false, transB: true });
    // dx = dy·W: dy [rows, out], W [out, in]
    out.push({ name: `${prefix} ${layer} dx dy·W`, M: rows, N: inF, K: outF, transA: false, transB: false });
    // dW = dyᵀ·x: dy [rows, out] read transposed, x [rows, in]
    out.push({ name: `${prefix} ${layer} dW dyᵀ·x`, M: outF, N: inF, K: rows, transA: true, transB: false });
  }
  return out;
}

/** DiT-S/2 linears at batch 32 (T = 256 tokens): rows = 8192, (in, out) of qkv, fc1, fc2. */
function ditCases(): Case[] {
  return linearCases("dit", 8192, [["qkv", 384, 1152], ["fc1", 384, 1536], ["fc2", 1536, 384]]);
}

/**
 * The small DiT of the default MNIST job (hidden 96, 64 tokens of 32×32×1 with patch 4) at batch 32:
 * rows = 2048 for qkv, fc1 and fc2, and the adaLN modulation (one row per image: rows = 32, 96 → 6·96).
 */
function smallDitCases(): Case[] {
  return [
    ...linearCases("small-dit", 2048, [["qkv", 96, 288], ["fc1", 96, 384], ["fc2", 384, 96]]),
    ...linearCases("small-dit", 32, [["adaLN", 96, 576]]),
  ];
}

/**
 * The DiTs of the MNIST pipelines on 8×8×4 latents with patch 4 (4 tokens per image): the main job's
 * DiT-L/4-mini at batch 64 (hidden 128; 256 token rows, adaLN on 64 image rows) and the scaling study's
 * DiT-XL/4-mini at batch 32 (hidden 144; 128 token rows, adaLN on 32).
 */
function latentDitCases(): Case[] {
  return [
    ...linearCases("L/4 b64", 256, [["qkv", 128, 384], ["proj", 128, 128], ["fc1", 128, 512], [
      "fc2",
      512,
      128,
    ]]),
    ...linearCases("L/4 b64", 64, [["adaLN", 128, 768]]),
    ...linearCases("XL/4 b32", 128, [["qkv", 144, 432], ["proj", 144, 144], ["fc1", 144, 576], [
      "fc2",
      576,
      144,
    ]]),
    ...linearCases("XL/4 b32", 32, [["adaLN", 144, 864]]),
  ];
}

function randomTensor(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 4294967296 - 0.5;
  }
  return tensor(data, shape);
}

/**
 * Runs `fn` once untimed (unless `warm` is false), then `reps` times timed; returns the median milliseconds
 * and the median process CPU milliseconds.
 */
async function timeRuns(
  runtime: Runtime,
  fn: () => Tensor,
  reps: number,
  warm = true,
): Promise<{ ms: number; cpuMs: number }> {
  if (warm) fn().dispose();
  await runtime.sync();
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage();
    if (runtime.hasTimestamps) {
      runtime.startTiming();
      const t = fn();
      const ms = await runtime.stopTiming();
      t.dispose();
      times.push(ms ?? NaN);
    } else {
      const t0 = performance.now();
      const t = fn();
      runtime.flush();
      await runtime.device.queue.onSubmittedWorkDone();
      times.push(performance.now() - t0);
      t.dispose();
    }
    const c1 = process.cpuUsage(c0);
    cpu.push((c1.user + c1.system) / 1000);
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
  return { ms: median(times), cpuMs: median(cpu) };
}

function describePlan(p: MatmulPlan): string {
  const c = p.constants;
  const tile = p.kernel === "tile4"
    ? `${c.BM}x${c.BN}x${c.BK}`
    : `${c.TM}x${4 * c.TN}` + (p.lc ? ` lanes ${p.lc}x${c.WX / p.lc}` : "");
  return `${p.kernel} ${tile}` + (p.splits > 1 ? ` split-K ${p.splits}` : "");
}

/** The matmul benchmark (registered as `matmul` in `lib/bench/main.ts`). */
export async function benchMatmul(opts: BenchOptions): Promise<BenchResult[]> {
  const runtime = await getRuntime();
  const adapter = runtime.adapter.description;
  const timing = runtime.hasTimestamps ? "gpu-timestamps" : "wall-clock";
  const cpuAdapter = isCpuAdapter();
  const sizes = opts.quick ? [512, 1024] : [512, 1024, 2048, 4096];
  const cases = [
    ...sizes.map(square),
    ...(opts.quick ? ditCases().slice(0, 3) : ditCases()),
    ...(opts.quick ? smallDitCases().slice(0, 3) : smallDitCases()),
    ...(opts.quick ? latentDitCases().slice(0, 3) : latentDitCases()),
  ];
  const results: BenchResult[] = [];
  const warmed = new Set<string>();
  const wanted = caseFilter(opts);
  for (const c of cases) {
    if (!wanted(c.name)) continue;
    const flops = 2 * c.M * c.N * c.K;
    // Enough runs for a stable median, fewer where one run takes seconds (CPU adapters). A problem whose
    // pipeline an earlier case already compiled and ran needs no warm-up when one run takes seconds.
    const reps = opts.quick ? 2 : !cpuAdapter ? 10 : flops > 5e10 ? 2 : flops > 5e9 ? 3 : flops > 5e8 ? 5 : 9;
    const a = randomTensor(c.transA ? [c.K, c.M] : [c.M, c.K], 1);
    const b = randomTensor(c.transB ? [c.N, c.K] : [c.K, c.N], 2);
    const plan = planMatmul(c.M, c.N, c.K, c.transA, c.transB);
    const key = plan.entry + JSON.stringify(plan.constants);
    const warm = !warmed.has(key) || !cpuAdapter || flops < 5e10;
    warmed.add(key);
    opts.log(`matmul bench: ${c.name} (${c.M}x${c.N}x${c.K}, ${describePlan(plan)}) ...`);
    const { ms, cpuMs } = await timeRuns(
      runtime,
      () => matmul(a, b, { transA: c.transA, transB: c.transB }),
      reps,
      warm,
    );
    a.dispose();
    b.dispose();
    const cores = navigator.hardwareConcurrency || 1;
    results.push({
      name: c.name,
      gflops: flops / ms / 1e6,
      ms,
      ...(cpuAdapter ? { gflops_cpu: flops / (cpuMs / cores) / 1e6 } : {}),
      adapter,
      shape: `${c.M}x${c.N}x${c.K}`,
      trans: `${c.transA ? "T" : "N"}${c.transB ? "T" : "N"}`,
      kernel: describePlan(plan),
      timing,
      runs: reps,
      warmup: warm ? 1 : 0,
    });
  }
  return results;
}
