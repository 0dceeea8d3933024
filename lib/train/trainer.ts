/**
 * Training a DiT on an in-memory dataset of latents (or images): AdamW, EMA (starts as a copy),
 * class dropout to the null class, optional horizontal flip, DDPM (mse + vb) or SiT objectives, live
 * progress and a loss log, periodic checkpoints with everything needed for an exact resume (model, EMA,
 * optimizer moments, step, RNG state), and a stop on a non-finite loss that keeps the last good checkpoint.
 *
 * Determinism: every random draw (batch indices, flips, label dropout, timesteps, noise) comes from one
 * counter-based Philox stream whose position is saved in checkpoints, so a run stopped at step k and
 * resumed reaches bit-identical weights to an uninterrupted run on the same adapter.
 * @module
 */

import { type DiTConfig, paramCount } from "../models/config.ts";
import { DiT, type HostTensor } from "../models/dit.ts";
import { createSchedule } from "../diffusion/schedule.ts";
import { trainingLosses } from "../diffusion/gaussian.ts";
import { sitLoss } from "../diffusion/sit.ts";
import { Generator, type GeneratorState } from "../tensor/rng.ts";
import { AdamW, EMA } from "../tensor/optim.ts";
import { backward } from "../tensor/backward.ts";
import { noGrad } from "../tensor/autograd.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { tensor, tidy } from "../tensor/tensor.ts";
import { getRuntime } from "../gpu/runtime.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";

/** An in-memory dataset: NCHW float data and labels. */
export interface TrainData {
  x: Float32Array;
  y: Uint32Array;
  /** [C, H, W] */
  shape: [number, number, number];
  count: number;
  numClasses: number;
}

/** Training hyper-parameters. */
export interface TrainOptions {
  model: DiTConfig;
  objective: "ddpm" | "sit";
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  betas: [number, number];
  emaDecay: number;
  /** Random horizontal flip of each sample. */
  flip: boolean;
  seed: number;
  /** Save a checkpoint every this many steps (0: only at the end). */
  ckptEvery: number;
  /** Directory for checkpoints (resumed from when it holds one). */
  ckptDir?: string;
  /** Log a line every this many steps. */
  logEvery: number;
}

/** Defaults of the official training recipe (batch size scaled to the task at hand). */
export const TRAIN_DEFAULTS = {
  objective: "ddpm" as const,
  lr: 1e-4,
  weightDecay: 0,
  betas: [0.9, 0.999] as [number, number],
  emaDecay: 0.9999,
  flip: false,
  seed: 0,
  ckptEvery: 0,
  logEvery: 50,
};

/** Progress of one step. */
export interface StepInfo {
  step: number;
  total: number;
  loss: number;
  mse: number;
  vb: number | null;
  imgPerSec: number;
  etaSec: number;
}

/** Hooks for progress and logs. */
export interface TrainHooks {
  onStep?: (s: StepInfo) => void;
  log?: (msg: string) => void;
  signal?: AbortSignal;
}

/** The result of a training run. */
export interface TrainResult {
  model: DiT;
  ema: Map<string, HostTensor>;
  losses: { step: number; loss: number; mse: number; vb: number | null }[];
  steps: number;
  seconds: number;
  imgPerSec: number;
  resumedFrom: number;
  params: number;
}

/** Thrown when the loss becomes NaN or Inf; says at which step and which checkpoint was kept. */
export class DivergedError extends Error {
  constructor(readonly step: number, readonly checkpoint: string | null) {
    super(
      `training diverged: the loss is not finite at step ${step}; ` +
        (checkpoint
          ? `the last good checkpoint is kept at ${checkpoint}`
          : "no checkpoint had been written yet"),
    );
    this.name = "DivergedError";
  }
}

const CKPT = "checkpoint.safetensors";

/** Builds one training batch on the host from the generator's stream. */
export function sampleBatch(
  data: TrainData,
  gen: Generator,
  batchSize: number,
  flip: boolean,
  dropProb: number,
): { x: Float32Array; y: Uint32Array } {
  const [C, H, W] = data.shape;
  const per = C * H * W;
  const idx = gen.randintCpu(batchSize, data.count);
  const flips = flip ? gen.bernoulliCpu(batchSize, 0.5) : null;
  const drops = dropProb > 0 ? gen.bernoulliCpu(batchSize, dropProb) : null;
  const x = new Float32Array(batchSize * per);
  const y = new Uint32Array(batchSize);
  for (let b = 0; b < batchSize; b++) {
    const src = data.x.subarray(idx[b] * per, (idx[b] + 1) * per);
    const dst = x.subarray(b * per, (b + 1) * per);
    if (flips && flips[b]) {
      for (let c = 0; c < C; c++) {
        for (let h = 0; h < H; h++) {
          const o = c * H * W + h * W;
          for (let w = 0; w < W; w++) dst[o + w] = src[o + W - 1 - w];
        }
      }
    } else dst.set(src);
    y[b] = drops && drops[b] ? data.numClasses : data.y[idx[b]];
  }
  return { x, y };
}

interface Checkpoint {
  step: number;
  rng: GeneratorState;
  model: Map<string, HostTensor>;
  ema: Map<string, HostTensor>;
  optim: { step: number; steps?: number[]; m: Float32Array[]; v: Float32Array[] };
  losses: { step: number; loss: number; mse: number; vb: number | null }[];
}

async function saveCheckpoint(dir: string, ck: Checkpoint, cfg: DiTConfig): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors: Record<string, TensorInput> = {};
  for (const [k, v] of ck.model) tensors[k] = { dtype: "F32", shape: v.shape, data: v.data };
  for (const [k, v] of ck.ema) tensors[`ema.${k}`] = { dtype: "F32", shape: v.shape, data: v.data };
  ck.optim.m.forEach((m, i) => tensors[`optim.m.${i}`] = { dtype: "F32", shape: [m.length], data: m });
  ck.optim.v.forEach((v, i) => tensors[`optim.v.${i}`] = { dtype: "F32", shape: [v.length], data: v });
  const path = `${dir}/${CKPT}`;
  await writeSafetensors(path, tensors, {
    format: "ditflow-train-checkpoint",
    step: String(ck.step),
    optim_step: String(ck.optim.step),
    optim_steps: JSON.stringify(ck.optim.steps ?? []),
    rng: JSON.stringify(ck.rng),
    config: JSON.stringify(cfg),
    losses: JSON.stringify(ck.losses),
  });
  return path;
}

async function loadCheckpoint(path: string, cfg: DiTConfig): Promise<Checkpoint> {
  const f = await readSafetensors(path);
  const md = f.metadata ?? {};
  if (md.format !== "ditflow-train-checkpoint") {
    throw new Error(`${path} is not a ditflow training checkpoint`);
  }
  const saved = JSON.parse(md.config ?? "{}");
  if (JSON.stringify(saved) !== JSON.stringify(cfg)) {
    throw new Error(`${path} was written for another model config; delete it to start afresh`);
  }
  const model = new Map<string, HostTensor>();
  const ema = new Map<string, HostTensor>();
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (const name of f.names()) {
    const h = { shape: [...f.info(name).shape], data: f.getF32(name) };
    if (name.startsWith("ema.")) ema.set(name.slice(4), h);
    else if (name.startsWith("optim.m.")) m[Number(name.slice(8))] = h.data;
    else if (name.startsWith("optim.v.")) v[Number(name.slice(8))] = h.data;
    else model.set(name, h);
  }
  return {
    step: Number(md.step),
    rng: JSON.parse(md.rng),
    model,
    ema,
    optim: {
      step: Number(md.optim_step),
      steps: md.optim_steps ? JSON.parse(md.optim_steps) : undefined,
      m,
      v,
    },
    losses: JSON.parse(md.losses ?? "[]"),
  };
}

/** The CPU-side init RNG of a seed (a separate stream from the training stream). */
export function initRngFor(
  seed: number,
): { uniform(n: number): Float64Array; normal(n: number): Float64Array } {
  const g = new Generator(BigInt(seed) * 2n + 1n);
  return {
    uniform: (n) => Float64Array.from(g.uniformCpu(n)),
    normal: (n) => Float64Array.from(g.normalCpu(n)),
  };
}

/** Trains a DiT. Resumes from `ckptDir/checkpoint.safetensors` when it exists. */
export async function train(
  data: TrainData,
  opts: TrainOptions,
  hooks: TrainHooks = {},
): Promise<TrainResult> {
  await getRuntime();
  const cfg = opts.model;
  const log = hooks.log ?? (() => {});
  if (
    data.shape[0] !== cfg.inChannels || data.shape[1] !== cfg.inputSize || data.shape[2] !== cfg.inputSize
  ) {
    throw new Error(
      `the data has shape [${data.shape}] per sample but ${cfg.name} expects [${cfg.inChannels}, ${cfg.inputSize}, ${cfg.inputSize}]`,
    );
  }
  if (data.numClasses > cfg.numClasses) {
    throw new Error(`the data has ${data.numClasses} classes but the model only ${cfg.numClasses}`);
  }
  const schedule = createSchedule("");
  let gen = new Generator(opts.seed);
  let model: DiT;
  let ema: EMA;
  let opt: AdamW;
  let start = 0;
  let losses: TrainResult["losses"] = [];
  const ckptPath = opts.ckptDir ? `${opts.ckptDir}/${CKPT}` : null;
  let lastCkpt: string | null = null;
  const existing = ckptPath ? await Deno.stat(ckptPath).then(() => true, () => false) : false;
  if (existing && ckptPath) {
    const ck = await loadCheckpoint(ckptPath, cfg);
    model = DiT.fromHost(cfg, ck.model);
    ema = EMA.fromHost(model.specs.map((s) => ck.ema.get(s.name)!), opts.emaDecay);
    opt = new AdamW(model.trainable(), { lr: opts.lr, betas: opts.betas, weightDecay: opts.weightDecay });
    opt.loadState({ step: ck.optim.step, steps: ck.optim.steps, m: ck.optim.m, v: ck.optim.v });
    gen = Generator.fromState(ck.rng);
    start = ck.step;
    losses = ck.losses;
    lastCkpt = ckptPath;
    log(`resumed from ${ckptPath} at step ${start}`);
  } else {
    model = DiT.init(cfg, initRngFor(opts.seed));
    ema = EMA.copyOf([...model.params.values()], opts.emaDecay);
    opt = new AdamW(model.trainable(), { lr: opts.lr, betas: opts.betas, weightDecay: opts.weightDecay });
  }
  const nParams = paramCount(cfg);
  log(
    `training ${cfg.name} (${cfg.block}, ${
      nParams.toLocaleString("en-US")
    } params) for ${opts.steps} steps, batch ${opts.batchSize}, objective ${opts.objective}`,
  );
  const denoiser = {
    inChannels: cfg.inChannels,
    learnSigma: cfg.learnSigma,
    forward: model.forward.bind(model),
  };
  if (opts.steps === 0) log("steps: 0: the initialised model is the result (EMA = the init weights)");
  const N = opts.batchSize;
  const shape = [N, ...data.shape];
  const t0 = performance.now();
  let stepsDone = 0;
  for (let step = start; step < opts.steps; step++) {
    hooks.signal?.throwIfAborted();
    const batch = sampleBatch(data, gen, N, opts.flip, cfg.classDropoutProb);
    const tDraw = opts.objective === "ddpm"
      ? Array.from(gen.randintCpu(N, schedule.numTimesteps))
      : Array.from(gen.uniformCpu(N));
    const terms = tidy(() => {
      const x0 = tensor(batch.x, shape);
      const y = tensor(batch.y, [N], "u32");
      const noise = gen.normal(shape);
      const res = opts.objective === "ddpm"
        ? trainingLosses(denoiser, schedule, x0, tDraw, y, noise)
        : { ...sitLoss(denoiser, x0, tDraw, y, noise), vb: null };
      backward(res.loss);
      // One readback per step: [loss, mse per sample..., vb per sample...].
      return noGrad(() => concat([reshape(res.loss, [1]), res.mse, ...(res.vb ? [res.vb] : [])], 0));
    });
    opt.step();
    opt.zeroGrad();
    ema.update([...model.params.values()]);
    const stats = await terms.data();
    terms.dispose();
    const loss = stats[0];
    const mse = stats.subarray(1, 1 + N).reduce((a, b) => a + b, 0) / N;
    const vb = stats.length > 1 + N ? stats.subarray(1 + N).reduce((a, b) => a + b, 0) / N : null;
    if (!Number.isFinite(loss)) {
      model.dispose();
      ema.dispose();
      opt.dispose();
      throw new DivergedError(step + 1, lastCkpt);
    }
    losses.push({ step: step + 1, loss, mse, vb });
    stepsDone++;
    const elapsed = (performance.now() - t0) / 1000;
    const imgPerSec = (stepsDone * N) / elapsed;
    const info: StepInfo = {
      step: step + 1,
      total: opts.steps,
      loss,
      mse,
      vb,
      imgPerSec,
      etaSec: ((opts.steps - step - 1) * N) / imgPerSec,
    };
    hooks.onStep?.(info);
    if ((step + 1) % opts.logEvery === 0 || step + 1 === opts.steps) {
      log(
        `step ${step + 1}/${opts.steps} loss ${loss.toFixed(4)} (mse ${mse.toFixed(4)}${
          vb !== null ? `, vb ${vb.toFixed(4)}` : ""
        }) ${imgPerSec.toFixed(1)} img/s ETA ${info.etaSec.toFixed(0)}s`,
      );
    }
    const isLast = step + 1 === opts.steps;
    if (opts.ckptDir && ((opts.ckptEvery > 0 && (step + 1) % opts.ckptEvery === 0) || isLast)) {
      lastCkpt = await saveCheckpoint(opts.ckptDir, {
        step: step + 1,
        rng: gen.state(),
        model: await model.stateDict(),
        ema: await ema.toHost(model.specs.map((s) => s.name), model.specs.map((s) => s.shape)),
        optim: await opt.toHost(),
        losses,
      }, cfg);
    }
  }
  // Time spent training in this process (0 when no step ran: `steps: 0`, or resumed at the end).
  const seconds = stepsDone > 0 ? (performance.now() - t0) / 1000 : 0;
  const emaHost = await ema.toHost(model.specs.map((s) => s.name), model.specs.map((s) => s.shape));
  ema.dispose();
  opt.dispose();
  return {
    model,
    ema: emaHost,
    losses,
    steps: opts.steps,
    seconds,
    imgPerSec: stepsDone > 0 ? (stepsDone * N) / seconds : 0,
    resumedFrom: start,
    params: nParams,
  };
}
