/**
 * The SiT objective (Ma et al. 2024) on the same DiT backbone: the linear interpolant
 * x_t = t·x1 + (1 − t)·x0 with data x1 at t = 1 and noise x0 at t = 0, velocity target x1 − x0,
 * t ~ U[0, 1], plain MSE; and ODE sampling from noise (t = 0) to data (t = 1) with Euler or Heun steps.
 * The model sees the continuous t through the usual timestep embedding.
 * @module
 */

import { add, mul, scale, square, sub } from "../tensor/ops/elementwise.ts";
import { mean } from "../tensor/ops/reduce.ts";
import { chunk } from "../tensor/ops/layout.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { type Denoiser, guidedOutput, type SampleOptions, timestepInput } from "./gaussian.ts";

function perSample(v: ArrayLike<number>): Tensor {
  return tensor(Float32Array.from(v), [v.length, 1, 1, 1]);
}

function velocity(model: Denoiser, out: Tensor): Tensor {
  return model.learnSigma ? chunk(out, 2, 1)[0] : out;
}

/** The SiT loss for a batch: mean of (v̂(x_t, t) − (x1 − x0))². `t` in [0, 1], one per sample. */
export function sitLoss(
  model: Denoiser,
  x1: Tensor,
  t: ArrayLike<number>,
  y: Tensor,
  noise: Tensor,
): { loss: Tensor; mse: Tensor } {
  const tt = perSample(t);
  const omt = perSample(Array.from(t, (v) => 1 - v));
  const xt = add(mul(tt, x1), mul(omt, noise));
  const target = sub(x1, noise);
  const vHat = velocity(model, model.forward(xt, timestepInput(model, t), y));
  const mse = mean(square(sub(vHat, target)), [1, 2, 3]);
  return { loss: mean(mse), mse };
}

/** ODE integrators. */
export type OdeMethod = "euler" | "heun";

/** One ODE step from t0 to t1 for the whole batch (all samples share t): Euler, or Heun's predictor-corrector. */
export function odeStep(
  model: Denoiser,
  x: Tensor,
  t0: number,
  t1: number,
  y: Uint32Array,
  method: OdeMethod,
  opts: SampleOptions = {},
): Tensor {
  const N = x.shape[0];
  const dt = t1 - t0;
  const v0 = velocity(
    model,
    guidedOutput(model, x, timestepInput(model, new Array(N).fill(t0)), y, opts),
  );
  const xEuler = add(x, scale(v0, dt));
  if (method === "euler") return xEuler;
  const v1 = velocity(
    model,
    guidedOutput(model, xEuler, timestepInput(model, new Array(N).fill(t1)), y, opts),
  );
  return add(x, scale(add(v0, v1), dt / 2));
}

/** The time grid of an ODE sampler with `steps` steps from 0 to 1. */
export function odeGrid(steps: number): number[] {
  return Array.from({ length: steps + 1 }, (_, i) => i / steps);
}
