/**
 * `deno task bench train [--vs-torch] [--profile]`: training-step throughput of the trainer itself
 * (lib/train/dit_trainer.ts: batch draws, forward, backward, AdamW, EMA, the loss of each step read back
 * while the next is recorded) in images/s, with the GPU time per step and the peak
 * pooled GPU memory, for the main job's model (pipelines/mnist.yaml), the scaling study's `mini` models
 * and DiT-S/2; and the main job's sampler (Heun, classifier-free guidance on the first half, batch 500).
 * Every config trains with the SiT loss (logit-normal t), the main job's objective.
 *
 * `--vs-torch`: runs each config's PyTorch twin (tools/bench_torch.py on tools/dit_reference.py, fp32,
 * at 2 threads and at 1 thread, the faster counts) right after it, when /usr/bin/python3 has torch; rows
 * then carry `torch_items_per_s`, `torch_threads` and `ratio_vs_torch` (wall clock), and `cpu_ratio_vs_torch`
 * (images per CPU-second of ditflow over torch's: on a shared machine the fairer of the two).
 * `--profile`: prints the per-op GPU time of one step of each config (stderr).
 * @module
 */

import { getRuntime } from "../gpu/runtime.ts";
import { type DiTConfig, ditConfig, gflops } from "../models/config.ts";
import { DiT } from "../models/dit.ts";
import { Generator } from "../tensor/rng.ts";
import { initRngFor } from "../train/init_rng.ts";
import { type TrainData, trainDiT } from "../train/dit_trainer.ts";
import { sampleModel } from "../stages/sample.ts";
import { type BenchOptions, type BenchResult, caseFilter } from "./types.ts";

const PYTHON = "/usr/bin/python3";

/** Whether Debian's python3 with torch is present (the twin of `--vs-torch`). */
export async function hasTorch(): Promise<boolean> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

/** The system BLAS that Debian's torch links (an alternative: reference BLAS, OpenBLAS, BLIS...). */
const SYSTEM_BLAS = "/usr/lib/x86_64-linux-gnu/libblas.so.3";

/**
 * The resolved path of the system BLAS when it is Debian's reference implementation (the only one that
 * `apt-get install python3-torch` brings, ~10× slower than OpenBLAS for torch's GEMMs); null otherwise or
 * where there is no such file.
 */
export async function referenceBlas(): Promise<string | null> {
  try {
    const real = await Deno.realPath(SYSTEM_BLAS);
    return /\/blas\/libblas\.so/.test(real) ? real : null;
  } catch {
    return null;
  }
}

/**
 * Runs the PyTorch twin of one config (tools/bench_torch.py) with `threads` threads and returns its img/s.
 * OMP_WAIT_POLICY=PASSIVE: on a shared machine torch's spinning OpenMP threads otherwise lose 10-30× (a
 * B/2-mini step measured 4075 ms instead of 164 ms at load average 13).
 */
export async function torchTwin(
  spec: Record<string, unknown>,
  threads = 2,
): Promise<{ items_per_s: number; cpu_ms: number }> {
  const script = new URL("../../tools/bench_torch.py", import.meta.url).pathname;
  const out = await new Deno.Command(PYTHON, {
    args: [script, JSON.stringify({ ...spec, threads })],
    stderr: "inherit",
    env: { OMP_WAIT_POLICY: "PASSIVE" },
  }).output();
  if (!out.success) throw new Error(`tools/bench_torch.py failed for ${JSON.stringify(spec)}`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

function torchSpec(cfg: DiTConfig, batch: number): Record<string, unknown> {
  return {
    depth: cfg.depth,
    hidden: cfg.hiddenSize,
    heads: cfg.numHeads,
    patch: cfg.patchSize,
    input_size: cfg.inputSize,
    in_channels: cfg.inChannels,
    learn_sigma: cfg.learnSigma,
    num_classes: cfg.numClasses,
    batch,
  };
}

/**
 * CPU time (user + system, all threads: llvmpipe's workers run in this process) in ms, from
 * /proc/self/stat; null where unavailable. On a shared machine it moves far less than wall time.
 */
export function processCpuMs(): number | null {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) * 10; // utime, stime in ticks of 10 ms (USER_HZ 100)
  } catch {
    return null;
  }
}

/** Prints a per-op GPU profile (largest first) to the log. */
function logProfile(
  opts: BenchOptions,
  name: string,
  p: { totalMs: number; ops: { label: string; ms: number; count: number }[] } | null,
): void {
  if (!p) return;
  // Per-tensor optimizer labels ("AdamW blocks.0...") grouped by their first word.
  const grouped = new Map<string, { label: string; ms: number; count: number }>();
  for (const o of p.ops) {
    const label = /^(AdamW|EMA|zero grad)\b/.exec(o.label)?.[1] ?? o.label;
    const e = grouped.get(label) ?? { label, ms: 0, count: 0 };
    e.ms += o.ms;
    e.count += o.count;
    grouped.set(label, e);
  }
  p = { totalMs: p.totalMs, ops: [...grouped.values()].sort((a, b) => b.ms - a.ms) };
  opts.log(
    `profile ${name}: ${p.totalMs.toFixed(1)} ms GPU, ${p.ops.reduce((a, o) => a + o.count, 0)} dispatches`,
  );
  for (const o of p.ops.slice(0, 40)) {
    opts.log(`  ${o.ms.toFixed(2).padStart(9)} ms ${String(o.count).padStart(5)}×  ${o.label}`);
  }
}

/**
 * Measures steady-state training steps of one config: the trainer itself ({@link trainDiT}, so the loop of
 * lib/train/loop.ts: host batch draws, SiT loss with logit-normal t, backward, AdamW, EMA, the loss of
 * each step read back while the next is recorded) on random latents. Steps 1-2 compile every pipeline;
 * with `--profile` step 3 is profiled per op; then `steps` steps are timed, from the loss of one step to the
 * loss of the step `steps` later.
 */
export async function benchTrainStep(
  cfg: DiTConfig,
  batch: number,
  steps: number,
  name: string,
  opts?: BenchOptions,
): Promise<BenchResult> {
  const rt = await getRuntime();
  const warm = 2 + (opts?.profile ? 1 : 0);
  const g = new Generator(1);
  const count = 256;
  const data: TrainData = {
    x: g.normalCpu(count * cfg.inChannels * cfg.inputSize * cfg.inputSize),
    y: Uint32Array.from({ length: count }, (_, i) => i % cfg.numClasses),
    shape: [cfg.inChannels, cfg.inputSize, cfg.inputSize],
    count,
    numClasses: cfg.numClasses,
  };
  // onStep(k) runs once step k's loss is back, after step k + 1 was recorded and before step k + 2 is:
  // what starts at onStep(k) covers the commands of steps k + 2 on.
  const timing: { profile?: ReturnType<typeof rt.stopProfile>; gpu?: ReturnType<typeof rt.stopProfile> } = {};
  let t0 = 0, ms = 0, cpu0: number | null = null, cpu1: number | null = null, d0 = 0, d1 = 0;
  const res = await trainDiT(data, {
    model: cfg,
    seed: 0,
    steps: warm + steps + 1,
    batch_size: batch,
    objective: "sit",
    t_sampling: "logit-normal",
    lr: 1e-4,
    ema_decay: 0.9999,
    log_every: warm + steps + 1,
  }, {
    onStep(s) {
      if (opts?.profile && s.step === 1) rt.startTiming(true);
      if (opts?.profile && s.step === 2) timing.profile = rt.stopProfile();
      if (s.step === warm) {
        cpu0 = processCpuMs();
        d0 = rt.stats().dispatches;
        rt.startTiming();
        t0 = performance.now();
      }
      if (s.step === warm + steps) {
        ms = (performance.now() - t0) / steps;
        timing.gpu = rt.stopProfile();
        cpu1 = processCpuMs();
        d1 = rt.stats().dispatches;
      }
    },
  });
  if (opts && timing.profile) logProfile(opts, name, await timing.profile);
  const gpuMs = (await timing.gpu)?.totalMs ?? 0;
  const peak = rt.pool.stats().peak;
  res.model.dispose();
  return {
    name,
    ms,
    items_per_s: (batch * 1000) / ms,
    unit: "img",
    gpu_ms: gpuMs / steps,
    cpu_ms: cpu0 === null || cpu1 === null ? undefined : (cpu1 - cpu0) / steps,
    dispatches: (d1 - d0) / steps,
    batch,
    model: cfg.name,
    gflops_per_img_fwd: Number(gflops(cfg).toFixed(3)),
    peak_pool_mib: Math.round(peak / 2 ** 20),
    adapter: rt.adapter.description,
  };
}

/**
 * Measures the main job's sampler: `steps` Heun steps (guided, scale 3, all channels, on the first half)
 * of a batch, scaled to a `sampleSteps`-step run; img/s = batch / seconds of the full run.
 */
export async function benchSample(
  cfg: DiTConfig,
  batch: number,
  steps: number,
  sampleSteps: number,
  name: string,
  opts?: BenchOptions,
): Promise<BenchResult> {
  const rt = await getRuntime();
  const model = DiT.init(cfg, initRngFor(0));
  const labels = Uint32Array.from({ length: batch }, (_, i) => i % cfg.numClasses);
  const run = (n: number) =>
    sampleModel(model, labels, {
      sampler: "heun",
      steps: n,
      seed: 0,
      objective: "sit",
      cfg_scale: 2,
      cfg_mode: "all",
      cfg_interval: [0, 0.5],
    });
  await run(2);
  if (opts?.profile) {
    rt.startTiming(true);
    await run(2);
    logProfile(opts, name, await rt.stopProfile());
  }
  rt.startTiming();
  const c0 = processCpuMs();
  const t0 = performance.now();
  await run(steps);
  const sec = ((performance.now() - t0) / 1000) * sampleSteps / steps;
  const c1 = processCpuMs();
  const gpuMs = (await rt.stopTiming()) ?? 0;
  model.dispose();
  return {
    name,
    ms: sec * 1000,
    items_per_s: batch / sec,
    unit: "img",
    gpu_ms: gpuMs * sampleSteps / steps,
    cpu_ms: c0 === null || c1 === null ? undefined : (c1 - c0) * sampleSteps / steps,
    batch,
    model: cfg.name,
    adapter: rt.adapter.description,
  };
}

/** One training config of the benchmark. */
interface TrainCase {
  name: string;
  cfg: DiTConfig;
  batch: number;
}

/** The configs: the main job's model, the scaling study's mini models, DiT-S/2. */
export function trainCases(cpu: boolean): TrainCase[] {
  const latent = { inputSize: 8, inChannels: 4, numClasses: 10 };
  const cases: TrainCase[] = [{
    name: "main job DiT-L/4-mini 8x8x4 b64",
    cfg: ditConfig("DiT-L/4", { ...latent, learnSigma: false }, "mini"),
    batch: 64,
  }];
  for (const size of ["S", "B", "L", "XL"]) {
    for (const patch of [4, 2, 1]) {
      const cfg = ditConfig(`DiT-${size}/${patch}`, { ...latent, learnSigma: false }, "mini");
      cases.push({ name: `scaling ${cfg.name} 8x8x4 b32`, cfg, batch: 32 });
    }
  }
  cases.push({ name: `DiT-S/2 32x32x4 b${cpu ? 8 : 32}`, cfg: ditConfig("DiT-S/2"), batch: cpu ? 8 : 32 });
  return cases;
}

/** The training (and sampling) benchmark. */
export async function benchTrain(opts: BenchOptions): Promise<BenchResult[]> {
  const rt = await getRuntime();
  const cpu = rt.adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(rt.adapter.description);
  const vsTorch = opts.vsTorch ? await hasTorch() : false;
  if (opts.vsTorch && !vsTorch) opts.log(`train: ${PYTHON} has no torch; no PyTorch twins`);
  const refBlas = vsTorch ? await referenceBlas() : null;
  if (refBlas) {
    opts.log(
      `train: PyTorch runs on Debian's reference BLAS (${SYSTEM_BLAS} → ${refBlas}), about 10× ` +
        "slower than it can be: install libopenblas0-pthread for a fair comparison",
    );
  }
  const wanted = caseFilter(opts);
  const out: BenchResult[] = [];
  const withTwin = async (r: BenchResult, spec: Record<string, unknown>) => {
    if (vsTorch) {
      // The stronger of torch at 2 threads (the spec) and at 1 thread (faster on a loaded machine).
      const t2 = await torchTwin(spec, 2);
      const t1 = await torchTwin(spec, 1);
      const best = t2.items_per_s >= t1.items_per_s ? t2 : t1;
      const tps = best.items_per_s;
      r.torch_items_per_s = tps;
      r.torch_threads = best === t2 ? 2 : 1;
      // Images per CPU-second on both sides: what a shared machine's load moves least.
      if (typeof r.cpu_ms === "number" && r.cpu_ms > 0) {
        const batch = r.batch as number;
        r.cpu_ratio_vs_torch = Number(((batch / r.cpu_ms) / (batch / best.cpu_ms)).toFixed(3));
      }
      r.ratio_vs_torch = Number((r.items_per_s! / tps).toFixed(3));
      opts.log(
        `  ${r.name}: ditflow ${r.items_per_s!.toFixed(1)} img/s, torch ${
          tps.toFixed(1)
        } img/s, ratio ${r.ratio_vs_torch} (per CPU-second ${r.cpu_ratio_vs_torch})`,
      );
    } else opts.log(`  ${r.name}: ditflow ${r.items_per_s!.toFixed(1)} img/s`);
    out.push(r);
  };
  for (const c of trainCases(cpu)) {
    if (!wanted(c.name)) continue;
    const big = c.cfg.inputSize > 8;
    const steps = opts.quick ? 2 : big ? 3 : 7;
    opts.log(`train: ${c.name}`);
    const r = await benchTrainStep(c.cfg, c.batch, steps, `train ${c.name}`, opts);
    await withTwin(r, { kind: "train", ...torchSpec(c.cfg, c.batch), steps });
  }
  const main = trainCases(cpu)[0].cfg;
  const sname = "sample main job heun cfg b500";
  if (wanted(sname)) {
    opts.log(`sample: ${sname} (4 of 25 Heun steps timed, scaled)`);
    const r = await benchSample(main, 500, opts.quick ? 2 : 4, 25, sname, opts);
    await withTwin(r, {
      kind: "sample",
      ...torchSpec(main, 500),
      steps: opts.quick ? 2 : 4,
      sample_steps: 25,
      cfg_scale: 3,
    });
  }
  return out;
}
