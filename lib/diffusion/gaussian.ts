/**
 * Gaussian diffusion on the GPU, as DiT uses guided-diffusion: q_sample, the training loss mse + vb with
 * the model's mean detached for vb (learned-range variance), the ancestral DDPM and DDIM samplers on a
 * (respaced) schedule, and classifier-free guidance in the official 3-channel mode and the all-channel mode.
 *
 * Per-timestep coefficients come from the float64 tables of `schedule.ts` and are uploaded as per-sample
 * vectors [N, 1, 1, 1].
 * @module
 */

import type { Schedule } from "./schedule.ts";
import {
  add,
  affine,
  broadcastTo,
  clamp,
  div,
  exp,
  mul,
  scale,
  square,
  sub,
} from "../tensor/ops/elementwise.ts";
import { mean } from "../tensor/ops/reduce.ts";
import { discretizedGaussianLogLikelihood, normalKl } from "../tensor/ops/loss.ts";
import { chunk, concat, narrow } from "../tensor/ops/layout.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { noGrad } from "../tensor/autograd.ts";
import { timestepEmbedding } from "../models/dit.ts";

/** What a denoiser needs from a model: output [N, outC, H, W] for inputs, timestep embeddings and labels. */
export interface Denoiser {
  readonly inChannels: number;
  readonly learnSigma: boolean;
  /** Width of the timestep frequency embedding the model takes (default 256, DiT's; U-ViT: its width). */
  readonly timestepDim?: number;
  /** The model's forward: x [N, C, H, W], tEmb [N, timestepDim], y u32 [N]. */
  forward(x: Tensor, tEmb: Tensor, y: Tensor): Tensor;
}

/** The timestep frequency embedding [N, timestepDim] of timesteps `t` for a denoiser. */
export function timestepInput(model: Denoiser, t: ArrayLike<number>): Tensor {
  const dim = model.timestepDim ?? 256;
  return tensor(timestepEmbedding(t, dim), [t.length, dim]);
}

/** Per-sample coefficients [N, 1, 1, 1] gathered from a table at timestep indices. */
export function coef(table: Float64Array, t: ArrayLike<number>, name = "coef"): Tensor {
  const v = Float32Array.from({ length: t.length }, (_, i) => table[t[i]]);
  return tensor(v, [t.length, 1, 1, 1], "f32", name);
}

function detach(x: Tensor): Tensor {
  return x.view(x.shape);
}

/** x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·noise. */
export function qSample(s: Schedule, x0: Tensor, t: ArrayLike<number>, noise: Tensor): Tensor {
  return add(mul(coef(s.sqrtAlphasCumprod, t), x0), mul(coef(s.sqrtOneMinusAlphasCumprod, t), noise));
}

/** Mean of q(x_{t−1} | x_t, x_0). */
export function qPosteriorMean(s: Schedule, x0: Tensor, xt: Tensor, t: ArrayLike<number>): Tensor {
  return add(mul(coef(s.posteriorMeanCoef1, t), x0), mul(coef(s.posteriorMeanCoef2, t), xt));
}

/** The model's p(x_{t−1} | x_t): mean, log variance and predicted x0, from its ε and variance outputs. */
export interface PMeanVar {
  mean: Tensor;
  logVariance: Tensor;
  predXstart: Tensor;
  eps: Tensor;
}

/**
 * guided-diffusion's p_mean_variance with learned-range variance (or the fixed-large/-small variance of
 * a model without learned sigma: DiT's default then is fixed large, log β̃ with β_1 at t=0), ε prediction,
 * clip_denoised=False.
 */
export function pMeanVariance(
  s: Schedule,
  xt: Tensor,
  t: ArrayLike<number>,
  eps: Tensor,
  v: Tensor | null,
  clipDenoised = false,
): PMeanVar {
  let logVariance: Tensor;
  if (v) {
    // frac = (v + 1) / 2; log σ² = frac·log β_t + (1 − frac)·log β̃_t (clipped)
    //      = v·(maxLog − minLog)/2 + (maxLog + minLog)/2
    const a = new Float64Array(t.length);
    const b = new Float64Array(t.length);
    for (let i = 0; i < t.length; i++) {
      const minLog = s.posteriorLogVarianceClipped[t[i]];
      const maxLog = Math.log(s.betas[t[i]]);
      a[i] = (maxLog - minLog) / 2;
      b[i] = (maxLog + minLog) / 2;
    }
    const idx = Array.from({ length: t.length }, (_, i) => i);
    logVariance = add(mul(v, coef(a, idx)), coef(b, idx));
  } else {
    // fixed-large: variance = [β̃_1, β_1, β_2, ...], as guided-diffusion's FIXED_LARGE
    const lv = Float64Array.from(
      { length: s.numTimesteps },
      (_, i) => Math.log(i === 0 ? s.posteriorVariance[1] : s.betas[i]),
    );
    logVariance = broadcastTo(coef(lv, t), eps.shape);
  }
  let predXstart = sub(
    mul(coef(s.sqrtRecipAlphasCumprod, t), xt),
    mul(coef(s.sqrtRecipm1AlphasCumprod, t), eps),
  );
  // guided-diffusion's clip_denoised: pixel-space models clamp x0 to [-1, 1]; DiT (latents) does not.
  if (clipDenoised) predXstart = clamp(predXstart, -1, 1);
  const meanT = qPosteriorMean(s, predXstart, xt, t);
  return { mean: meanT, logVariance, predXstart, eps };
}

/** The loss terms of one batch. */
export interface LossTerms {
  /** Scalar: mean over the batch of mse + vb. */
  loss: Tensor;
  /** Per-sample mse [N]. */
  mse: Tensor;
  /** Per-sample vb in bits [N] (learned sigma only). */
  vb: Tensor | null;
}

/**
 * DiT's training loss for a batch (guided-diffusion `training_losses`, loss type MSE with learned sigma):
 * mse = mean over C,H,W of (ε − ε̂)²; vb = KL(q(x_{t−1}|x_t,x_0) ‖ p(x_{t−1}|x_t)) in bits with the model's
 * mean detached (only the variance head learns from it), or the discretized-Gaussian decoder NLL at t = 0.
 * `t` are timestep indices into `s` (the full 1000-step schedule in training).
 */
export function trainingLosses(
  model: Denoiser,
  s: Schedule,
  x0: Tensor,
  t: ArrayLike<number>,
  y: Tensor,
  noise: Tensor,
): LossTerms {
  const xt = qSample(s, x0, t, noise);
  const tEmb = timestepInput(model, Array.from(t, (i) => s.timestepMap[i]));
  const out = model.forward(xt, tEmb, y);
  const C = model.inChannels;
  let epsHat: Tensor;
  let v: Tensor | null = null;
  if (model.learnSigma) [epsHat, v] = chunk(out, 2, 1);
  else epsHat = out;
  if (epsHat.shape[1] !== C) {
    throw new Error(`model output has ${out.shape[1]} channels for ${C} input channels`);
  }
  const mse = mean(square(sub(noise, epsHat)), [1, 2, 3]);
  if (!v) return { loss: mean(mse), mse, vb: null };

  // vb with the mean detached: the frozen output is [ε̂.detach(), v].
  const p = pMeanVariance(s, xt, t, detach(epsHat), v);
  const trueMean = noGrad(() => qPosteriorMean(s, x0, xt, t));
  const trueLogVar = noGrad(() => broadcastTo(coef(s.posteriorLogVarianceClipped, t), x0.shape));
  const kl = scale(
    mean(normalKl(trueMean, trueLogVar, detach(p.mean), p.logVariance), [1, 2, 3]),
    1 / Math.LN2,
  );
  const nll = scale(
    mean(discretizedGaussianLogLikelihood(x0, detach(p.mean), scale(p.logVariance, 0.5)), [1, 2, 3]),
    -1 / Math.LN2,
  );
  const m0 = Float32Array.from({ length: t.length }, (_, i) => (t[i] === 0 ? 1 : 0));
  const isZero = tensor(m0, [t.length]);
  const notZero = tensor(m0.map((x) => 1 - x), [t.length]);
  const vb = add(mul(isZero, nll), mul(notZero, kl));
  return { loss: mean(add(mse, vb)), mse, vb };
}

/** Classifier-free guidance modes. */
export type CfgMode = "official" | "all";

/** Options of the samplers. */
export interface SampleOptions {
  /** Guidance scale (1 = no guidance). */
  cfgScale?: number;
  /** `official`: guide the first 3 channels (the released code's behaviour); `all`: every ε channel. */
  cfgMode?: CfgMode;
  /** The null-class label for the unconditional half. */
  nullClass?: number;
  /** Clamp the predicted x0 to [-1, 1] at every step (guided-diffusion's clip_denoised; pixel space). */
  clipDenoised?: boolean;
  /** Called after each step with (step, total). */
  onStep?: (step: number, total: number) => void;
}

/**
 * Runs the model with classifier-free guidance as the official `forward_with_cfg`: the batch doubled with
 * labels and null labels; ε = ε_u + s·(ε_c − ε_u) on the first 3 channels (official) or all (all); the
 * remaining ε channels and the variance channels come from the conditional half. Returns [N, outC, H, W].
 */
export function guidedOutput(
  model: Denoiser,
  x: Tensor,
  tEmb: Tensor,
  y: Uint32Array,
  opts: SampleOptions,
): Tensor {
  const s = opts.cfgScale ?? 1;
  const N = x.shape[0];
  if (s === 1) return model.forward(x, tEmb, tensor(y, [N], "u32"));
  const nullClass = opts.nullClass;
  if (nullClass === undefined) throw new Error("classifier-free guidance needs the null class label");
  const yy = new Uint32Array(2 * N);
  yy.set(y, 0);
  yy.fill(nullClass, N);
  const out = model.forward(concat([x, x], 0), concat([tEmb, tEmb], 0), tensor(yy, [2 * N], "u32"));
  const cond = narrow(out, 0, 0, N);
  const uncond = narrow(out, 0, N, N);
  const C = model.inChannels;
  const g = (opts.cfgMode ?? "official") === "official" ? Math.min(3, C) : C;
  const guided = add(narrow(uncond, 1, 0, g), scale(sub(narrow(cond, 1, 0, g), narrow(uncond, 1, 0, g)), s));
  const outC = out.shape[1];
  return g < outC ? concat([guided, narrow(cond, 1, g, outC - g)], 1) : guided;
}

/** A source of standard normal noise tensors (the counter-based GPU generator). */
export interface NoiseSource {
  normal(shape: number[]): Tensor;
}

function splitOutput(model: Denoiser, out: Tensor): { eps: Tensor; v: Tensor | null } {
  if (!model.learnSigma) return { eps: out, v: null };
  const [eps, v] = chunk(out, 2, 1);
  return { eps, v };
}

/**
 * One ancestral DDPM step at respaced index i for the whole batch: x_{t−1} = mean + [t > 0]·σ·z.
 */
export function pSample(
  model: Denoiser,
  s: Schedule,
  x: Tensor,
  i: number,
  y: Uint32Array,
  noise: NoiseSource,
  opts: SampleOptions = {},
): Tensor {
  const N = x.shape[0];
  const t = new Array(N).fill(i);
  const tEmb = timestepInput(model, new Array(N).fill(s.timestepMap[i]));
  const { eps, v } = splitOutput(model, guidedOutput(model, x, tEmb, y, opts));
  const p = pMeanVariance(s, x, t, eps, v, opts.clipDenoised ?? false);
  if (i === 0) return p.mean;
  const sigma = exp(affine(p.logVariance, 0.5, 0)); // σ = exp(½ log σ²)
  return add(p.mean, mul(sigma, noise.normal([...x.shape])));
}

/**
 * One DDIM step (guided-diffusion `ddim_sample`) at respaced index i with noise level `eta`.
 */
export function ddimSample(
  model: Denoiser,
  s: Schedule,
  x: Tensor,
  i: number,
  y: Uint32Array,
  noise: NoiseSource,
  eta: number,
  opts: SampleOptions = {},
): Tensor {
  const N = x.shape[0];
  const t = new Array(N).fill(i);
  const tEmb = timestepInput(model, new Array(N).fill(s.timestepMap[i]));
  const { eps: epsModel } = splitOutput(model, guidedOutput(model, x, tEmb, y, opts));
  let predX0 = sub(
    mul(coef(s.sqrtRecipAlphasCumprod, t), x),
    mul(coef(s.sqrtRecipm1AlphasCumprod, t), epsModel),
  );
  let eps = epsModel;
  if (opts.clipDenoised) {
    // ε re-derived from the clipped x0, as the reference does.
    predX0 = clamp(predX0, -1, 1);
    eps = div(sub(mul(coef(s.sqrtRecipAlphasCumprod, t), x), predX0), coef(s.sqrtRecipm1AlphasCumprod, t));
  }
  const ab = s.alphasCumprod[i];
  const abPrev = s.alphasCumprodPrev[i];
  const sigma = eta * Math.sqrt((1 - abPrev) / (1 - ab)) * Math.sqrt(1 - ab / abPrev);
  const meanPred = add(scale(predX0, Math.sqrt(abPrev)), scale(eps, Math.sqrt(1 - abPrev - sigma * sigma)));
  if (i === 0 || sigma === 0) return meanPred;
  return add(meanPred, scale(noise.normal([...x.shape]), sigma));
}
