/**
 * Guidance by a weaker version of the model (after Karras et al. 2024, "Guiding a diffusion model with a
 * bad version of itself"): classifier-free guidance whose unconditional half runs on an earlier EMA
 * snapshot of the same training run instead of the final weights, ε = ε_u' + s·(ε_c − ε_u'), where ε_u' is
 * the snapshot's output for the null label. The difference then carries both the class (conditional
 * against unconditional) and the training the snapshot lacks (final against early).
 *
 * It is a {@link Denoiser} that {@link guidedOutput} runs like any other: the samplers double the batch as
 * `[x; x]` with labels `[y; null]` (the official `forward_with_cfg` layout), and this denoiser sends the
 * first half to the model and the second to the guide. The samplers and the training code are untouched,
 * so a trained model's cache key does not depend on it.
 * @module
 */

import type { Denoiser } from "./gaussian.ts";
import { concat, narrow } from "../tensor/ops/layout.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * `model` on the conditional half of a guided batch and `guide` on the unconditional half. Both must take
 * the same inputs and give the same output channels. Only for guided steps: the batch must be doubled.
 */
export function withWeakGuide(model: Denoiser, guide: Denoiser): Denoiser {
  if (model.inChannels !== guide.inChannels || model.learnSigma !== guide.learnSigma) {
    throw new Error("the guide model must have the model's input channels and outputs");
  }
  return {
    inChannels: model.inChannels,
    learnSigma: model.learnSigma,
    timestepDim: model.timestepDim,
    forward(x: Tensor, tEmb: Tensor, y: Tensor): Tensor {
      const B = x.shape[0];
      if (B % 2 !== 0) {
        throw new Error(`internal: a weak guide needs a guided (doubled) batch, got ${B} rows`);
      }
      const N = B / 2;
      const half = (t: Tensor, i: number) => narrow(t, 0, i * N, N);
      return concat([
        model.forward(half(x, 0), half(tEmb, 0), half(y, 0)),
        guide.forward(half(x, 1), half(tEmb, 1), half(y, 1)),
      ], 0);
    },
  };
}
