/**
 * Attention benchmarks: forward and forward+backward of the fused attention at DiT-S/2 and DiT-XL/2 shapes
 * (256 tokens: 32×32 latents, patch 2). Effective GFLOP/s count 4·B·H·Tq·Tk·Dh flops for the forward and
 * 2.5× that for the backward (the backward's score recomputation is not counted). `ms` is GPU time from
 * timestamp queries where the adapter has them (else wall time); on software adapters the results also
 * carry the process CPU time per iteration (`cpu_ms`, `gflop_per_cpu_s`), which other load on the machine
 * disturbs less. `first_call_ms` includes compiling the pipelines.
 *
 * `deno task bench attention [--quick]`.
 * @module
 */

import { getRuntime, type Runtime } from "../gpu/runtime.ts";
import { backward } from "../tensor/backward.ts";
import { attention, type AttentionTiles, setAttentionTiles } from "../tensor/ops/attention.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { type BenchOptions, type BenchResult, caseFilter } from "./types.ts";

interface Config {
  name: string;
  b: number;
  h: number;
  t: number;
  dh: number;
}

function randomData(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = (a / 4294967296 - 0.5) * 3.4; // uniform, variance ≈ 1
  }
  return out;
}

/**
 * CPU time of this process in ms (Linux /proc; null elsewhere). On a software adapter such as llvmpipe the
 * "GPU" is this process's threads, and CPU time is a measure that other processes on the machine disturb
 * much less than wall time.
 */
function cpuTimeMs(): number | null {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, at 100 ticks a second
  } catch {
    return null;
  }
}

/**
 * Times `fn` (recorded GPU work), GPU timestamps where available; returns the median ms, the median wall
 * ms, the mean process CPU ms and the wall ms of the first (warm-up) call, which includes compiling the
 * pipelines.
 */
async function time(
  r: Runtime,
  fn: () => void,
  iters: number,
): Promise<{ ms: number; wallMs: number; cpuMs: number | null; firstMs: number; timer: string }> {
  const f0 = performance.now();
  fn(); // warm-up: pipelines, buffer pool
  await r.sync();
  const firstMs = performance.now() - f0;
  const gpu: number[] = [];
  const wall: number[] = [];
  const c0 = cpuTimeMs();
  for (let i = 0; i < iters; i++) {
    r.startTiming();
    const t0 = performance.now();
    fn();
    await r.sync();
    wall.push(performance.now() - t0);
    const g = await r.stopTiming();
    if (g !== null && g > 0) gpu.push(g);
  }
  const c1 = cpuTimeMs();
  const cpuMs = c0 !== null && c1 !== null ? (c1 - c0) / iters : null;
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const wallMs = med(wall);
  return gpu.length === iters
    ? { ms: med(gpu), wallMs, cpuMs, firstMs, timer: "gpu" }
    : { ms: wallMs, wallMs, cpuMs, firstMs, timer: "wall" };
}

/**
 * Tile settings tried by the benchmark; the first is the default. On software adapters only the default:
 * llvmpipe compiles the looping form of the kernels very slowly (minutes at Dh 64).
 */
function tileVariants(quick: boolean, soft: boolean): Partial<AttentionTiles>[] {
  if (quick || soft) return [{}];
  return [{}, { fwdRQ: 2, dqRQ: 2, dkdvRQ: 2 }, { mode: "dispatch" }];
}

/** Forward and forward+backward attention timings at DiT-S/2 and DiT-XL/2 shapes. */
export async function benchAttention(opts: BenchOptions): Promise<BenchResult[]> {
  const r = await getRuntime();
  const adapter = r.adapter.description;
  const soft = r.adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(adapter);
  const small = opts.quick || soft;
  const configs: Config[] = [
    { name: "DiT-S/2", b: opts.quick ? 4 : 32, h: 6, t: 256, dh: 64 },
    { name: "DiT-XL/2", b: small ? 4 : 32, h: 16, t: 256, dh: 72 },
  ];
  const iters = opts.quick ? 1 : soft ? 3 : 10;
  const results: BenchResult[] = [];
  const wanted = caseFilter(opts);
  for (const c of configs) {
    for (const tv of tileVariants(opts.quick, soft)) {
      const tag = `${c.name} B${c.b} H${c.h} T${c.t} Dh${c.dh}` +
        (Object.keys(tv).length ? ` ${JSON.stringify(tv)}` : "");
      // The three rows share their measurements: the case runs when any of them is wanted (lib/bench/main.ts
      // drops the rows the filter excludes).
      if (!["fwd", "fwd+bwd", "bwd"].some((what) => wanted(`attention ${what} ${tag}`))) continue;
      const prev = setAttentionTiles(tv);
      try {
        const shape = [c.b, c.h, c.t, c.dh];
        const n = c.b * c.h * c.t * c.dh;
        const [q, k, v, g] = [1, 2, 3, 4].map((s) => tensor(randomData(n, s), shape).keep());
        const fwdFlops = 4 * c.b * c.h * c.t * c.t * c.dh;
        opts.log(`attention ${tag}: forward`);
        const fwd = await time(r, () => tidy(() => void attention(q, k, v)), iters);
        opts.log(`attention ${tag}: forward+backward`);
        const both = await time(r, () =>
          tidy(() => {
            const leaves = [q, k, v].map((x) => {
              x.requiresGrad = true;
              return x;
            });
            const y = attention(leaves[0], leaves[1], leaves[2]);
            backward(y, g);
            for (const x of leaves) {
              x.grad?.dispose();
              x.grad = null;
              x.requiresGrad = false;
            }
          }), iters);
        const common = { adapter, timer: fwd.timer, batch: c.b, heads: c.h, tokens: c.t, head_dim: c.dh };
        results.push({
          name: `attention fwd ${tag}`,
          ms: fwd.ms,
          gflops: fwdFlops / (fwd.ms * 1e6),
          wall_ms: fwd.wallMs,
          ...(soft && fwd.cpuMs !== null
            ? { cpu_ms: fwd.cpuMs, gflop_per_cpu_s: fwdFlops / (fwd.cpuMs * 1e6) }
            : {}),
          first_call_ms: fwd.firstMs,
          ...common,
        });
        results.push({
          name: `attention fwd+bwd ${tag}`,
          ms: both.ms,
          gflops: (3.5 * fwdFlops) / (both.ms * 1e6),
          wall_ms: both.wallMs,
          ...(soft && both.cpuMs !== null
            ? { cpu_ms: both.cpuMs, gflop_per_cpu_s: (3.5 * fwdFlops) / (both.cpuMs * 1e6) }
            : {}),
          first_call_ms: both.firstMs,
          ...common,
        });
        const bwdMs = both.ms - fwd.ms;
        results.push({
          name: `attention bwd ${tag}`,
          ms: bwdMs,
          gflops: (2.5 * fwdFlops) / (bwdMs * 1e6),
          ...common,
        });
        for (const t of [q, k, v, g] as Tensor[]) t.dispose();
      } finally {
        setAttentionTiles(prev);
      }
    }
  }
  return results;
}
