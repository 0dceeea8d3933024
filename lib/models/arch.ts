/**
 * The backbones by `arch` (see {@link Arch}): one entry point that builds, initialises or loads the model
 * of a config, so the trainer, the sampler and the checkpoint code need not know which backbone it is.
 * @module
 */

import type { DiTConfig } from "./config.ts";
import { DiT } from "./dit.ts";
import { UViT } from "./uvit.ts";
import { MDT } from "./mdt.ts";
import type { HostTensor, InitRng } from "./host_tensor.ts";
import type { Denoiser } from "../diffusion/gaussian.ts";

/** A diffusion backbone: a DiT (with or without long skips), a U-ViT or an MDT. */
export type Backbone = DiT | UViT | MDT;

/** The class of a config's backbone: `init(cfg, rng)` and `fromHost(cfg, state)`. */
export interface BackboneClass {
  init(cfg: DiTConfig, rng: InitRng): Backbone;
  fromHost(cfg: DiTConfig, state: Map<string, HostTensor>): Backbone;
}

/** The backbone class of a config's `arch` (absent: DiT). */
export function backboneClass(cfg: DiTConfig): BackboneClass {
  return cfg.arch === "uvit" ? UViT : cfg.arch === "mdt" ? MDT : DiT;
}

/** The module tree of a config (parameters registered, nothing on the GPU): for layouts and counts. */
export function backboneLayout(cfg: DiTConfig): Backbone {
  return cfg.arch === "uvit" ? new UViT(cfg) : cfg.arch === "mdt" ? new MDT(cfg) : new DiT(cfg);
}

/** A backbone as the diffusion code sees it: its channels, σ output, timestep width and forward pass. */
export function denoiserOf(model: Backbone): Denoiser {
  return {
    inChannels: model.cfg.inChannels,
    learnSigma: model.cfg.learnSigma,
    timestepDim: model.timestepDim,
    forward: model.forward.bind(model),
  };
}
