/**
 * Training an AutoencoderKL (the Stable Diffusion VAE architecture) on in-memory images in [-1, 1], as
 * LDM's first stage without the discriminator/LPIPS terms: loss = reconstruction + kl_weight · KL, where
 * the reconstruction term is the per-image *sum* of squared (MSE) or absolute (L1) errors averaged over the
 * batch and KL is the per-image KL(q(z|x) ‖ N(0, I)) averaged over the batch (LDM's
 * `LPIPSWithDiscriminator` normalisation, so `kl_weight` = 1e-6 means what it means there). The decoder
 * reconstructs from a posterior *sample* during training (as LDM).
 *
 * AdamW through {@link trainLoop}: batch indices on the CPU and posterior noise on the GPU from one
 * Philox stream, exact resume from `vae_checkpoint.safetensors`, the non-finite stop. The weight file is
 * `lib/models/vae_file.ts`, inference helpers `lib/models/vae_inference.ts`, PSNR `lib/metrics/psnr.ts`.
 * @module
 */

import {
  AutoencoderKL,
  type AutoencoderKLConfig,
  checkVaeConfig,
  downsampleFactor,
  SMALL_VAE,
  vaeParamSpecs,
} from "../models/autoencoder_kl.ts";
import { abs, add, scale, sub } from "../tensor/ops/elementwise.ts";
import { backward } from "../tensor/backward.ts";
import { noGrad } from "../tensor/autograd.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { mse } from "../tensor/ops/loss.ts";
import { mean, sum } from "../tensor/ops/reduce.ts";
import { tensor, tidy } from "../tensor/tensor.ts";
import { paramDefaults, type ParamSchema, type ParamValues } from "../pipeline/schema.ts";
import {
  cosineLr,
  emaDecayAt,
  LOOP_PARAMS,
  type LoopHooks,
  modelHooks,
  type StepProgress,
  trainLoop,
} from "./loop.ts";
import { VAE_CHECKPOINT } from "./checkpoint.ts";

/** Images to train on: NCHW floats in [-1, 1]. */
export interface VaeTrainData {
  x: Float32Array;
  /** [C, H, W] */
  shape: [number, number, number];
  count: number;
}

/** The architecture parameters of the `train-vae` stage (unset: {@link SMALL_VAE}'s). */
export const VAE_ARCH_PARAMS = {
  block_out_channels: {
    type: "list",
    items: { type: "int", min: 1 },
    minItems: 1,
    optional: true,
    doc: "channels per level (default [32, 64, 64]: 4× downsampling)",
  },
  layers_per_block: { type: "int", optional: true, min: 1, doc: "ResNets per level (default 2)" },
  norm_num_groups: { type: "int", optional: true, min: 1, doc: "GroupNorm groups (default 16)" },
  latent_channels: { type: "int", optional: true, min: 1, doc: "default 4" },
} as const satisfies ParamSchema;

/** The training parameters of the `train-vae` stage, as {@link trainVae} takes them. */
export const VAE_TRAIN_PARAMS = {
  steps: { type: "int", default: 2000, min: 1 },
  batch_size: { type: "int", default: 32, min: 1 },
  lr: { type: "number", default: 1e-3, min: 0 },
  weight_decay: { type: "number", default: 0, min: 0 },
  kl_weight: { type: "number", default: 1e-6, min: 0, doc: "LDM: 1e-6" },
  rec_loss: { type: "enum", values: ["mse", "l1"], default: "mse", doc: "reconstruction loss" },
  ema_decay: {
    type: "number",
    default: 0,
    min: 0,
    max: 1,
    doc:
      "0: none; else the trained VAE is an EMA of its weights with this decay (warm-up min(decay, (1 + t) / " +
      "(10 + t)))",
  },
  lr_decay: {
    type: "enum",
    values: ["none", "cosine"],
    default: "none",
    doc: "cosine: the learning rate decays to 0 over the steps (the last weights settle, not a point of an " +
      "oscillation)",
  },
  ...LOOP_PARAMS,
} as const satisfies ParamSchema;

/** Options of {@link trainVae}: the config, the seed, and any training parameters (defaults otherwise). */
export type VaeTrainOptions = Partial<ParamValues<typeof VAE_TRAIN_PARAMS>> & {
  config: AutoencoderKLConfig;
  seed: number;
  /** Directory for checkpoints (resumed from when it holds one). */
  ckptDir?: string;
  /** AdamW's (β1, β2) (default (0.5, 0.9)). */
  betas?: [number, number];
};

/** One logged step: the total loss, the per-pixel reconstruction error and the per-image KL. */
export interface VaeLossEntry {
  step: number;
  loss: number;
  /** Mean per-pixel reconstruction error (squared or absolute). */
  rec: number;
  /** Mean per-image KL. */
  kl: number;
}

/** Progress of one step. */
export type VaeStepInfo = StepProgress<VaeLossEntry>;

/** The result of {@link trainVae}. */
export interface VaeTrainResult {
  model: AutoencoderKL;
  losses: VaeLossEntry[];
  seconds: number;
  imgPerSec: number;
  resumedFrom: number;
  params: number;
}

/** Number of parameters of a config. */
export function vaeParamCount(cfg: AutoencoderKLConfig): number {
  return vaeParamSpecs(cfg).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
}

/** Builds a config from stage parameters (unset fields from {@link SMALL_VAE}) and the data's channels. */
export function vaeConfigFromParams(
  p: ParamValues<typeof VAE_ARCH_PARAMS>,
  channels: number,
): AutoencoderKLConfig {
  const custom = p.block_out_channels !== undefined || p.layers_per_block !== undefined ||
    p.norm_num_groups !== undefined || p.latent_channels !== undefined;
  const cfg: AutoencoderKLConfig = {
    ...SMALL_VAE,
    name: custom ? `${SMALL_VAE.name}*` : SMALL_VAE.name,
    inChannels: channels,
    outChannels: channels,
    blockOutChannels: p.block_out_channels
      ? p.block_out_channels.map(Number)
      : [...SMALL_VAE.blockOutChannels],
    layersPerBlock: p.layers_per_block ?? SMALL_VAE.layersPerBlock,
    normNumGroups: p.norm_num_groups ?? SMALL_VAE.normNumGroups,
    latentChannels: p.latent_channels ?? SMALL_VAE.latentChannels,
  };
  checkVaeConfig(cfg);
  return cfg;
}

/** Copies the images at `idx` into one batch. */
function gather(data: VaeTrainData, idx: ArrayLike<number>): Float32Array {
  const per = data.shape[0] * data.shape[1] * data.shape[2];
  const x = new Float32Array(idx.length * per);
  for (let b = 0; b < idx.length; b++) x.set(data.x.subarray(idx[b] * per, (idx[b] + 1) * per), b * per);
  return x;
}

/** Trains a VAE. Resumes from `ckptDir/vae_checkpoint.safetensors` when it exists. */
export async function trainVae(
  data: VaeTrainData,
  opts: VaeTrainOptions,
  hooks: LoopHooks<VaeLossEntry> = {},
): Promise<VaeTrainResult> {
  const o = { ...paramDefaults(VAE_TRAIN_PARAMS), ...opts };
  const cfg = o.config;
  const [C, H, W] = data.shape;
  if (C !== cfg.inChannels || C !== cfg.outChannels) {
    throw new Error(`the data has ${C} channels but the VAE ${cfg.inChannels} in / ${cfg.outChannels} out`);
  }
  const f = downsampleFactor(cfg);
  if (H % f !== 0 || W % f !== 0) {
    throw new Error(`image size ${H}×${W} is not a multiple of the VAE's downsampling factor ${f}`);
  }
  if (data.count < 1) throw new Error("no images to train the VAE on");
  const nParams = vaeParamCount(cfg);
  const N = o.batch_size;
  const per = C * H * W;
  const zShape = [N, cfg.latentChannels, H / f, W / f];
  const res = await trainLoop({
    ...o,
    model: modelHooks(AutoencoderKL, cfg, o.seed),
    checkpoint: VAE_CHECKPOINT,
    config: cfg,
    optim: { lr: o.lr, betas: o.betas ?? [0.5, 0.9], weightDecay: o.weight_decay },
    lrAt: o.lr_decay === "cosine" ? cosineLr(o.lr, o.steps) : undefined,
    ema: o.ema_decay > 0
      ? {
        params: (m) => [...m.params.values()],
        names: (m) => m.specs,
        decayAt: emaDecayAt(o.ema_decay, true),
      }
      : undefined,
    intro: () => [
      `training ${cfg.name} (${nParams.toLocaleString("en-US")} params, blocks [${cfg.blockOutChannels}], ` +
      `${cfg.latentChannels} latent channels) for ${o.steps} steps, batch ${N}, ` +
      `${o.rec_loss} + ${o.kl_weight}·KL`,
    ],
    step(model, gen) {
      const xb = gather(data, gen.randintCpu(N, data.count));
      return tidy(() => {
        const x = tensor(xb, [N, C, H, W]);
        const { recon, posterior } = model.forward(x, gen.normal(zShape));
        const rec = o.rec_loss === "mse" ? mse(recon, x) : mean(abs(sub(recon, x)));
        const kl = scale(sum(posterior.kl()), 1 / N);
        const loss = add(scale(rec, per), scale(kl, o.kl_weight));
        backward(loss);
        // One readback per step: [loss, rec, kl].
        return noGrad(() => concat([reshape(loss, [1]), reshape(rec, [1]), reshape(kl, [1])], 0));
      });
    },
    entry: (s, step) => ({ step, loss: s[0], rec: s[1], kl: s[2] }),
    detail: (e) => `${o.rec_loss} ${e.rec.toFixed(5)}, kl ${e.kl.toFixed(2)}`,
  }, hooks);
  // With an EMA, the trained VAE is the average (the raw weights are dropped).
  let model = res.model;
  if (res.ema) {
    model.dispose();
    model = AutoencoderKL.fromHost(cfg, res.ema);
  }
  return {
    model,
    losses: res.losses,
    seconds: res.seconds,
    imgPerSec: res.imgPerSec,
    resumedFrom: res.resumedFrom,
    params: nParams,
  };
}
