/**
 * Training a DiT on an in-memory dataset of latents (or images) with {@link trainLoop}: AdamW (optional
 * linear learning-rate warm-up), EMA (starts as a copy; optional decay warm-up), class dropout to the null
 * class, optional horizontal flip, DDPM (mse + vb) or SiT objectives with uniform or logit-normal
 * timesteps, and everything the loop gives (exact resume, checkpoints, the non-finite stop, progress).
 *
 * Determinism: every random draw (batch indices, flips, label dropout, timesteps, noise) comes from one
 * counter-based Philox stream whose position is saved in checkpoints, so a run stopped at step k and
 * resumed reaches bit-identical weights to an uninterrupted run on the same adapter.
 * @module
 */

import { derived, type DiTConfig, paramCount } from "../models/config.ts";
import type { HostTensor } from "../models/dit.ts";
import { type Backbone, backboneClass, denoiserOf } from "../models/arch.ts";
import { maskFromUniforms, MDT, MDT_MASK_RATIO, type MdtMask } from "../models/mdt.ts";
import { createSchedule } from "../diffusion/schedule.ts";
import { trainingLosses } from "../diffusion/gaussian.ts";
import { sitLoss } from "../diffusion/sit.ts";
import type { Generator } from "../tensor/rng.ts";
import { backward } from "../tensor/backward.ts";
import { noGrad } from "../tensor/autograd.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { paramDefaults, type ParamSchema, type ParamValues } from "../pipeline/schema.ts";
import {
  emaDecayAt,
  LOOP_PARAMS,
  type LoopHooks,
  modelHooks,
  type StepProgress,
  trainLoop,
  warmupLr,
} from "./loop.ts";
import { DIT_CHECKPOINT } from "./checkpoint.ts";

/** An in-memory dataset: NCHW float data and labels. */
export interface TrainData {
  x: Float32Array;
  y: Uint32Array;
  /** [C, H, W] */
  shape: [number, number, number];
  count: number;
  numClasses: number;
}

/** The training parameters of the `train` stage, as {@link trainDiT} takes them. */
export const DIT_TRAIN_PARAMS = {
  objective: { type: "enum", values: ["ddpm", "sit"], default: "ddpm" },
  steps: {
    type: "int",
    default: 1000,
    min: 0,
    doc: "training steps; 0 writes the initialised model (the untrained baseline)",
  },
  batch_size: { type: "int", default: 32, min: 1 },
  lr: { type: "number", default: 1e-4, min: 0 },
  lr_warmup: {
    type: "int",
    default: 0,
    min: 0,
    doc: "linear learning-rate warm-up: lr · min(1, (step + 1) / lr_warmup); 0: none",
  },
  weight_decay: { type: "number", default: 0, min: 0 },
  ema_decay: { type: "number", default: 0.9999, min: 0, max: 1 },
  ema_warmup: {
    type: "bool",
    default: false,
    doc: "EMA decay min(ema_decay, (1 + t) / (10 + t)) at update t",
  },
  t_sampling: {
    type: "enum",
    values: ["uniform", "logit-normal"],
    default: "uniform",
    doc: "training timesteps: uniform, or t = sigmoid(n), n ~ N(0, 1) (ddpm: round(t · 999))",
  },
  flip: { type: "bool", default: false, doc: "random horizontal flips (off for digits)" },
  snapshot_every: {
    type: "int",
    default: 0,
    min: 0,
    doc:
      "keep the EMA weights every N steps (snapshots/step_N.safetensors) for curves over training; 0: none",
  },
  ...LOOP_PARAMS,
} as const satisfies ParamSchema;

/** The values of {@link DIT_TRAIN_PARAMS}. */
export type DiTTrainParams = ParamValues<typeof DIT_TRAIN_PARAMS>;

/** Options of {@link trainDiT}: the model, the seed, and any training parameters (defaults otherwise). */
export type DiTTrainOptions = Partial<DiTTrainParams> & {
  model: DiTConfig;
  seed: number;
  /** Directory for checkpoints (resumed from when it holds one). */
  ckptDir?: string;
  /** AdamW's (β1, β2) (default (0.9, 0.999), as DiT). */
  betas?: [number, number];
  /** Writes the EMA weights of step `step` (with `snapshot_every`). */
  writeSnapshot?: (step: number, weights: Map<string, HostTensor>) => Promise<void>;
};

/** One logged step. */
export interface DiTLossEntry {
  step: number;
  loss: number;
  mse: number;
  vb: number | null;
}

/** Progress of one step. */
export type StepInfo = StepProgress<DiTLossEntry>;

/** The result of a training run. */
export interface TrainResult {
  model: Backbone;
  ema: Map<string, HostTensor>;
  losses: DiTLossEntry[];
  steps: number;
  seconds: number;
  imgPerSec: number;
  resumedFrom: number;
  params: number;
}

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

/**
 * The timesteps of one batch from the generator's stream. `sit`: t in [0, 1), uniform or logit-normal
 * (t = sigmoid(n), n ~ N(0, 1), Esser et al. 2024). `ddpm`: integers in [0, T), uniform or
 * round(sigmoid(n) · (T − 1)).
 */
export function drawTimesteps(
  gen: Generator,
  n: number,
  objective: DiTTrainParams["objective"],
  sampling: DiTTrainParams["t_sampling"],
  numTimesteps: number,
): number[] {
  if (sampling === "logit-normal") {
    const t = Array.from(gen.normalCpu(n), (v) => 1 / (1 + Math.exp(-v)));
    return objective === "ddpm" ? t.map((v) => Math.round(v * (numTimesteps - 1))) : t;
  }
  return objective === "ddpm" ? Array.from(gen.randintCpu(n, numTimesteps)) : Array.from(gen.uniformCpu(n));
}

/**
 * An MDT training mask from the training stream: one uniform for the ratio (mask_ratio + 0.2·u), then
 * N·T uniforms whose per-sample argsort is the shuffle (MDT's `random_masking`).
 */
export function drawMask(gen: Generator, N: number, T: number, maskRatio: number): MdtMask {
  const u = gen.uniformCpu(1 + N * T);
  return maskFromUniforms(N, T, maskRatio, u[0], u.subarray(1));
}

/** Trains a DiT. Resumes from `ckptDir/checkpoint.safetensors` when it exists. */
export async function trainDiT(
  data: TrainData,
  opts: DiTTrainOptions,
  hooks: LoopHooks<DiTLossEntry> = {},
): Promise<TrainResult> {
  const o = { ...paramDefaults(DIT_TRAIN_PARAMS), ...opts };
  const cfg = o.model;
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
  const nParams = paramCount(cfg);
  const N = o.batch_size;
  const shape = [N, ...data.shape];
  const levers = [
    ...(o.lr_warmup > 0 ? [`lr warm-up over ${o.lr_warmup} steps`] : []),
    ...(o.ema_warmup ? ["EMA decay warm-up"] : []),
    ...(o.t_sampling !== "uniform" ? [`${o.t_sampling} timesteps`] : []),
  ];
  const res = await trainLoop({
    ...o,
    model: modelHooks(backboneClass(cfg), cfg, o.seed),
    checkpoint: DIT_CHECKPOINT,
    config: cfg,
    optim: { lr: o.lr, betas: o.betas ?? [0.9, 0.999], weightDecay: o.weight_decay },
    lrAt: warmupLr(o.lr, o.lr_warmup),
    ema: {
      params: (m) => [...m.params.values()],
      names: (m) => m.specs,
      decayAt: emaDecayAt(o.ema_decay, o.ema_warmup),
    },
    snapshot: o.writeSnapshot ? { every: o.snapshot_every, write: o.writeSnapshot } : undefined,
    intro: () => [
      `training ${cfg.name} (${cfg.block}, ${
        nParams.toLocaleString("en-US")
      } params) for ${o.steps} steps, batch ${N}, objective ${o.objective}`,
      ...(o.steps === 0 ? ["steps: 0: the initialised model is the result (EMA = the init weights)"] : []),
      ...(levers.length ? [`levers: ${levers.join(", ")}`] : []),
    ],
    step(model, gen) {
      const denoiser = denoiserOf(model);
      const batch = sampleBatch(data, gen, N, o.flip, cfg.classDropoutProb);
      const tDraw = drawTimesteps(gen, N, o.objective, o.t_sampling, schedule.numTimesteps);
      return tidy(() => {
        const x0 = tensor(batch.x, shape);
        const y = tensor(batch.y, [N], "u32");
        const noise = gen.normal(shape);
        const lossOf = (d: typeof denoiser, eps: Tensor) =>
          o.objective === "ddpm"
            ? trainingLosses(d, schedule, x0, tDraw, y, eps)
            : { ...sitLoss(d, x0, tDraw, y, eps), vb: null };
        const res = lossOf(denoiser, noise);
        if (model instanceof MDT) {
          // MDT: the same timesteps through the masked branch, with its own noise, and the mask drawn
          // from the training Philox stream (so a resumed run masks exactly as an uninterrupted one);
          // loss = full + masked, as sail-sg/MDT's train_util. The logged mse/vb are the full branch's.
          const maskedNoise = gen.normal(shape);
          const mask = drawMask(gen, N, derived(cfg).tokens, cfg.maskRatio ?? MDT_MASK_RATIO);
          const masked = lossOf(
            { ...denoiser, forward: (x: Tensor, t: Tensor, yy: Tensor) => model.forward(x, t, yy, mask) },
            maskedNoise,
          );
          res.loss = add(res.loss, masked.loss);
        }
        backward(res.loss);
        // One readback per step: [loss, mse per sample..., vb per sample...].
        return noGrad(() => concat([reshape(res.loss, [1]), res.mse, ...(res.vb ? [res.vb] : [])], 0));
      });
    },
    entry(stats, step) {
      const mse = stats.subarray(1, 1 + N).reduce((a, b) => a + b, 0) / N;
      const vb = stats.length > 1 + N ? stats.subarray(1 + N).reduce((a, b) => a + b, 0) / N : null;
      return { step, loss: stats[0], mse, vb };
    },
    detail: (e) => `mse ${e.mse.toFixed(4)}${e.vb !== null ? `, vb ${e.vb.toFixed(4)}` : ""}`,
  }, hooks);
  return {
    model: res.model,
    ema: res.ema!,
    losses: res.losses,
    steps: o.steps,
    seconds: res.seconds,
    imgPerSec: res.imgPerSec,
    resumedFrom: res.resumedFrom,
    params: nParams,
  };
}
