/**
 * Training an AutoencoderKL (the Stable Diffusion VAE architecture) on in-memory images in [-1, 1], as
 * LDM's first stage without the discriminator/LPIPS terms: loss = reconstruction + kl_weight · KL, where
 * the reconstruction term is the per-image *sum* of squared (MSE) or absolute (L1) errors averaged over the
 * batch and KL is the per-image KL(q(z|x) ‖ N(0, I)) averaged over the batch (LDM's
 * `LPIPSWithDiscriminator` normalisation, so `kl_weight` = 1e-6 means what it means there). The decoder
 * reconstructs from a posterior *sample* during training (as LDM).
 *
 * AdamW, batches drawn from one counter-based Philox stream (indices on the CPU, posterior noise on the
 * GPU) whose position is saved in checkpoints with the weights, the optimizer moments and the loss log, so
 * a run stopped at step k and resumed is bit-identical to an uninterrupted one on the same adapter; a
 * non-finite loss stops training and keeps the last good checkpoint.
 *
 * Also here: the VAE weight file (`vae.safetensors`, diffusers key names, config and scaling factor in the
 * metadata), reading user-supplied diffusers files (config inferred from the shapes), the latent scale
 * factor (1 / std of posterior means, LDM's `scale_by_std`), batched reconstruction and PSNR.
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
import type { HostTensor } from "../models/dit.ts";
import { Generator, type GeneratorState } from "../tensor/rng.ts";
import { AdamW } from "../tensor/optim.ts";
import { backward } from "../tensor/backward.ts";
import { noGrad } from "../tensor/autograd.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { abs, add, scale, sub } from "../tensor/ops/elementwise.ts";
import { mse } from "../tensor/ops/loss.ts";
import { mean, sum } from "../tensor/ops/reduce.ts";
import { tensor, tidy } from "../tensor/tensor.ts";
import { getRuntime } from "../gpu/runtime.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { DivergedError, initRngFor } from "./trainer.ts";

/** Images to train on: NCHW floats in [-1, 1]. */
export interface VaeTrainData {
  x: Float32Array;
  /** [C, H, W] */
  shape: [number, number, number];
  count: number;
}

/** Hyper-parameters of {@link trainVae}. */
export interface VaeTrainOptions {
  config: AutoencoderKLConfig;
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  betas: [number, number];
  /** Weight of the KL term (LDM: 1e-6). */
  klWeight: number;
  /** Reconstruction loss. */
  recLoss: "mse" | "l1";
  seed: number;
  /** Save a checkpoint every this many steps (0: only at the end). */
  ckptEvery: number;
  /** Directory for checkpoints (resumed from when it holds one). */
  ckptDir?: string;
  /** Log a line every this many steps. */
  logEvery: number;
}

/** Defaults (LDM's KL weight; Adam with a learning rate suited to small models). */
export const VAE_TRAIN_DEFAULTS = {
  lr: 1e-3,
  weightDecay: 0,
  betas: [0.5, 0.9] as [number, number],
  klWeight: 1e-6,
  recLoss: "mse" as const,
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
export interface VaeStepInfo extends VaeLossEntry {
  total: number;
  imgPerSec: number;
  etaSec: number;
}

/** Hooks for progress and logs. */
export interface VaeTrainHooks {
  onStep?: (s: VaeStepInfo) => void;
  log?: (msg: string) => void;
  signal?: AbortSignal;
}

/** The result of {@link trainVae}. */
export interface VaeTrainResult {
  model: AutoencoderKL;
  losses: VaeLossEntry[];
  seconds: number;
  imgPerSec: number;
  resumedFrom: number;
  params: number;
}

const CKPT = "vae_checkpoint.safetensors";

/** The file name of a VAE inside a `train-vae` output. */
export const VAE_FILE = "vae.safetensors";

/** Number of parameters of a config. */
export function vaeParamCount(cfg: AutoencoderKLConfig): number {
  return vaeParamSpecs(cfg).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
}

/** Builds a config from stage parameters (unset fields from {@link SMALL_VAE}) and the data's channels. */
export function vaeConfigFromParams(
  p: {
    block_out_channels?: unknown[];
    layers_per_block?: number;
    norm_num_groups?: number;
    latent_channels?: number;
  },
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

interface Checkpoint {
  step: number;
  rng: GeneratorState;
  model: Map<string, HostTensor>;
  optim: { step: number; steps?: number[]; m: Float32Array[]; v: Float32Array[] };
  losses: VaeLossEntry[];
}

async function saveCheckpoint(dir: string, ck: Checkpoint, cfg: AutoencoderKLConfig): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors: Record<string, TensorInput> = {};
  for (const [k, v] of ck.model) tensors[k] = { dtype: "F32", shape: v.shape, data: v.data };
  ck.optim.m.forEach((m, i) => tensors[`optim.m.${i}`] = { dtype: "F32", shape: [m.length], data: m });
  ck.optim.v.forEach((v, i) => tensors[`optim.v.${i}`] = { dtype: "F32", shape: [v.length], data: v });
  const path = `${dir}/${CKPT}`;
  await writeSafetensors(path, tensors, {
    format: "ditflow-vae-checkpoint",
    step: String(ck.step),
    optim_step: String(ck.optim.step),
    optim_steps: JSON.stringify(ck.optim.steps ?? []),
    rng: JSON.stringify(ck.rng),
    config: JSON.stringify(cfg),
    losses: JSON.stringify(ck.losses),
  });
  return path;
}

async function loadCheckpoint(path: string, cfg: AutoencoderKLConfig): Promise<Checkpoint> {
  const f = await readSafetensors(path);
  const md = f.metadata ?? {};
  if (md.format !== "ditflow-vae-checkpoint") throw new Error(`${path} is not a ditflow VAE checkpoint`);
  if (md.config !== JSON.stringify(cfg)) {
    throw new Error(`${path} was written for another VAE config; delete it to start afresh`);
  }
  const model = new Map<string, HostTensor>();
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (const name of f.names()) {
    const data = f.getF32(name);
    if (name.startsWith("optim.m.")) m[Number(name.slice(8))] = data;
    else if (name.startsWith("optim.v.")) v[Number(name.slice(8))] = data;
    else model.set(name, { shape: [...f.info(name).shape], data });
  }
  return {
    step: Number(md.step),
    rng: JSON.parse(md.rng),
    model,
    optim: {
      step: Number(md.optim_step),
      steps: md.optim_steps ? JSON.parse(md.optim_steps) : undefined,
      m,
      v,
    },
    losses: JSON.parse(md.losses ?? "[]"),
  };
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
  hooks: VaeTrainHooks = {},
): Promise<VaeTrainResult> {
  await getRuntime();
  const cfg = opts.config;
  const log = hooks.log ?? (() => {});
  const [C, H, W] = data.shape;
  if (C !== cfg.inChannels || C !== cfg.outChannels) {
    throw new Error(`the data has ${C} channels but the VAE ${cfg.inChannels} in / ${cfg.outChannels} out`);
  }
  const f = downsampleFactor(cfg);
  if (H % f !== 0 || W % f !== 0) {
    throw new Error(`image size ${H}×${W} is not a multiple of the VAE's downsampling factor ${f}`);
  }
  if (data.count < 1) throw new Error("no images to train the VAE on");
  let gen = new Generator(opts.seed);
  let model: AutoencoderKL;
  let opt: AdamW;
  let start = 0;
  let losses: VaeLossEntry[] = [];
  const ckptPath = opts.ckptDir ? `${opts.ckptDir}/${CKPT}` : null;
  let lastCkpt: string | null = null;
  const adamw = { lr: opts.lr, betas: opts.betas, weightDecay: opts.weightDecay };
  const existing = ckptPath ? await Deno.stat(ckptPath).then(() => true, () => false) : false;
  if (existing && ckptPath) {
    const ck = await loadCheckpoint(ckptPath, cfg);
    model = AutoencoderKL.fromHost(cfg, ck.model);
    opt = new AdamW(model.trainable(), adamw);
    opt.loadState({ step: ck.optim.step, steps: ck.optim.steps, m: ck.optim.m, v: ck.optim.v });
    gen = Generator.fromState(ck.rng);
    start = ck.step;
    losses = ck.losses;
    lastCkpt = ckptPath;
    log(`resumed from ${ckptPath} at step ${start}`);
  } else {
    model = AutoencoderKL.init(cfg, initRngFor(opts.seed));
    opt = new AdamW(model.trainable(), adamw);
  }
  const nParams = vaeParamCount(cfg);
  log(
    `training ${cfg.name} (${nParams.toLocaleString("en-US")} params, blocks [${cfg.blockOutChannels}], ` +
      `${cfg.latentChannels} latent channels) for ${opts.steps} steps, batch ${opts.batchSize}, ` +
      `${opts.recLoss} + ${opts.klWeight}·KL`,
  );
  const N = opts.batchSize;
  const per = C * H * W;
  const zShape = [N, cfg.latentChannels, H / f, W / f];
  const t0 = performance.now();
  let stepsDone = 0;
  for (let step = start; step < opts.steps; step++) {
    hooks.signal?.throwIfAborted();
    const xb = gather(data, gen.randintCpu(N, data.count));
    const terms = tidy(() => {
      const x = tensor(xb, [N, C, H, W]);
      const { recon, posterior } = model.forward(x, gen.normal(zShape));
      const rec = opts.recLoss === "mse" ? mse(recon, x) : mean(abs(sub(recon, x)));
      const kl = scale(sum(posterior.kl()), 1 / N);
      const loss = add(scale(rec, per), scale(kl, opts.klWeight));
      backward(loss);
      // One readback per step: [loss, rec, kl].
      return noGrad(() => concat([reshape(loss, [1]), reshape(rec, [1]), reshape(kl, [1])], 0));
    });
    opt.step();
    opt.zeroGrad();
    const [loss, rec, kl] = await terms.data();
    terms.dispose();
    if (!Number.isFinite(loss)) {
      model.dispose();
      opt.dispose();
      throw new DivergedError(step + 1, lastCkpt);
    }
    losses.push({ step: step + 1, loss, rec, kl });
    stepsDone++;
    const elapsed = (performance.now() - t0) / 1000;
    const imgPerSec = (stepsDone * N) / elapsed;
    const info: VaeStepInfo = {
      step: step + 1,
      total: opts.steps,
      loss,
      rec,
      kl,
      imgPerSec,
      etaSec: ((opts.steps - step - 1) * N) / imgPerSec,
    };
    hooks.onStep?.(info);
    if ((step + 1) % opts.logEvery === 0 || step + 1 === opts.steps) {
      log(
        `step ${step + 1}/${opts.steps} loss ${loss.toFixed(4)} (${opts.recLoss} ${rec.toFixed(5)}, kl ${
          kl.toFixed(2)
        }) ${imgPerSec.toFixed(1)} img/s ETA ${info.etaSec.toFixed(0)}s`,
      );
    }
    const isLast = step + 1 === opts.steps;
    if (opts.ckptDir && ((opts.ckptEvery > 0 && (step + 1) % opts.ckptEvery === 0) || isLast)) {
      lastCkpt = await saveCheckpoint(opts.ckptDir, {
        step: step + 1,
        rng: gen.state(),
        model: await model.stateDict(),
        optim: await opt.toHost(),
        losses,
      }, cfg);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  opt.dispose();
  return {
    model,
    losses,
    seconds,
    imgPerSec: stepsDone > 0 ? (stepsDone * N) / seconds : 0,
    resumedFrom: start,
    params: nParams,
  };
}

/** Expands 1-channel images to `channels` (gray replicated) or checks that the channels match. */
export function matchChannels(
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  channels: number,
  what: string,
): Float32Array {
  const [C, H, W] = shape;
  if (C === channels) return x;
  if (C !== 1) throw new Error(`${what}: the images have ${C} channels but the VAE expects ${channels}`);
  const plane = H * W;
  const out = new Float32Array(count * channels * plane);
  for (let n = 0; n < count; n++) {
    const src = x.subarray(n * plane, (n + 1) * plane);
    for (let c = 0; c < channels; c++) out.set(src, (n * channels + c) * plane);
  }
  return out;
}

/**
 * Runs the encoder over `count` images (NCHW, [C, H, W] each) in batches and calls `each` with the
 * posterior mean and std of every batch (host arrays, [n, L, h, w]) and its first index.
 */
export async function encodeBatches(
  model: AutoencoderKL,
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  batchSize: number,
  each: (mean: Float32Array, std: Float32Array, first: number, n: number) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const [C, H, W] = shape;
  const per = C * H * W;
  for (let lo = 0; lo < count; lo += batchSize) {
    signal?.throwIfAborted();
    const n = Math.min(batchSize, count - lo);
    const { m, s } = noGrad(() =>
      tidy(() => {
        const post = model.encode(tensor(x.subarray(lo * per, (lo + n) * per), [n, C, H, W]));
        return { m: post.mean, s: post.std };
      })
    );
    const mean = await m.data();
    const std = await s.data();
    m.dispose();
    s.dispose();
    await each(mean, std, lo, n);
  }
}

/** 1 / std of all posterior-mean values of `x` (LDM's `scale_by_std`), with the std itself. */
export async function latentScaleFactor(
  model: AutoencoderKL,
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  batchSize = 32,
): Promise<{ scaleFactor: number; std: number }> {
  let n = 0, s = 0, s2 = 0;
  await encodeBatches(model, x, shape, count, batchSize, (m) => {
    for (let i = 0; i < m.length; i++) {
      s += m[i];
      s2 += m[i] * m[i];
    }
    n += m.length;
  });
  const mu = s / n;
  const std = Math.sqrt(Math.max(0, (s2 - n * mu * mu) / Math.max(1, n - 1)));
  if (!(std > 0) || !Number.isFinite(std)) {
    throw new Error(`the posterior means have std ${std}; cannot derive a scale factor`);
  }
  return { scaleFactor: 1 / std, std };
}

/** Reconstructs images through the posterior mean (decode(mode)), in batches; returns NCHW floats. */
export async function reconstruct(
  model: AutoencoderKL,
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
  batchSize = 32,
): Promise<Float32Array> {
  const [C, H, W] = shape;
  const per = C * H * W;
  const out = new Float32Array(count * per);
  for (let lo = 0; lo < count; lo += batchSize) {
    const n = Math.min(batchSize, count - lo);
    const r = noGrad(() =>
      tidy(() => model.forward(tensor(x.subarray(lo * per, (lo + n) * per), [n, C, H, W])).recon)
    );
    out.set(await r.data(), lo * per);
    r.dispose();
  }
  return out;
}

/**
 * Mean PSNR (dB) over images of `n` values each, with values in [-1, 1] (peak-to-peak 2) and the
 * reconstruction clamped to that range first: 10·log10(4 / mse) per image, averaged.
 */
export function psnr(ref: Float32Array, rec: Float32Array, per: number): number {
  if (ref.length !== rec.length || ref.length % per !== 0) {
    throw new Error(`psnr: ${ref.length} and ${rec.length} values do not form images of ${per}`);
  }
  const count = ref.length / per;
  let total = 0;
  for (let k = 0; k < count; k++) {
    let e = 0;
    for (let i = k * per; i < (k + 1) * per; i++) {
      const r = Math.min(1, Math.max(-1, rec[i]));
      e += (r - ref[i]) ** 2;
    }
    total += 10 * Math.log10(4 / Math.max(e / per, 1e-12));
  }
  return total / count;
}

/** Writes a VAE as diffusers-named F32 safetensors with the config and scaling factor in the metadata. */
export async function writeVaeFile(
  path: string,
  state: Map<string, HostTensor>,
  cfg: AutoencoderKLConfig,
  metadata: Record<string, string> = {},
): Promise<void> {
  const tensors: Record<string, TensorInput> = {};
  for (const [k, v] of state) tensors[k] = { dtype: "F32", shape: v.shape, data: v.data };
  await writeSafetensors(path, tensors, {
    ...metadata,
    format: "ditflow-vae",
    ditflow_vae_config: JSON.stringify(cfg),
    scaling_factor: String(cfg.scalingFactor),
  });
}

/** A loaded VAE weight file. */
export interface LoadedVaeFile {
  cfg: AutoencoderKLConfig;
  state: Map<string, HostTensor>;
  metadata: Record<string, string>;
  /** True when the config was inferred from the tensor shapes (a file without ditflow metadata). */
  inferred: boolean;
}

/**
 * The config of a diffusers AutoencoderKL state dict, from its tensor shapes: channels per level, ResNets
 * per level, latent and image channels. GroupNorm groups cannot be read from shapes: `normNumGroups`
 * (diffusers' default 32) is used. The scaling factor is `scalingFactor` (SD: 0.18215).
 */
export function inferVaeConfig(
  state: Map<string, HostTensor>,
  o: { normNumGroups?: number; scalingFactor?: number; name?: string } = {},
): AutoencoderKLConfig {
  const shape = (k: string) => {
    const h = state.get(k);
    if (!h) throw new Error(`not a diffusers AutoencoderKL state dict: no tensor ${k}`);
    return h.shape;
  };
  const blocks: number[] = [];
  for (let i = 0; state.has(`encoder.down_blocks.${i}.resnets.0.conv1.weight`); i++) {
    blocks.push(shape(`encoder.down_blocks.${i}.resnets.0.conv1.weight`)[0]);
  }
  if (!blocks.length) shape("encoder.down_blocks.0.resnets.0.conv1.weight");
  let layers = 0;
  while (state.has(`encoder.down_blocks.0.resnets.${layers}.conv1.weight`)) layers++;
  const cfg: AutoencoderKLConfig = {
    name: o.name ?? "vae",
    inChannels: shape("encoder.conv_in.weight")[1],
    outChannels: shape("decoder.conv_out.weight")[0],
    blockOutChannels: blocks,
    layersPerBlock: layers,
    latentChannels: shape("post_quant_conv.weight")[0],
    normNumGroups: o.normNumGroups ?? 32,
    scalingFactor: o.scalingFactor ?? 0.18215,
  };
  checkVaeConfig(cfg);
  return cfg;
}

/**
 * Reads a VAE weight file: a `train-vae` output's `vae.safetensors` (config in the metadata) or a
 * diffusers AutoencoderKL safetensors such as sd-vae-ft-ema's `diffusion_pytorch_model.safetensors`
 * (config inferred, see {@link inferVaeConfig}; scaling factor from the metadata or 0.18215).
 */
export async function readVaeFile(path: string): Promise<LoadedVaeFile> {
  const f = await readSafetensors(path);
  const metadata = f.metadata ?? {};
  const state = new Map<string, HostTensor>();
  for (const name of f.names()) {
    if (name.startsWith("__")) continue;
    state.set(name, { shape: [...f.info(name).shape], data: f.getF32(name) });
  }
  if (metadata.ditflow_vae_config) {
    const cfg = JSON.parse(metadata.ditflow_vae_config) as AutoencoderKLConfig;
    checkVaeConfig(cfg);
    return { cfg, state, metadata, inferred: false };
  }
  const sf = metadata.scaling_factor !== undefined ? Number(metadata.scaling_factor) : undefined;
  const cfg = inferVaeConfig(state, {
    scalingFactor: sf !== undefined && Number.isFinite(sf) ? sf : undefined,
    name: path.split("/").pop()?.replace(/\.safetensors$/, ""),
  });
  return { cfg, state, metadata, inferred: true };
}
