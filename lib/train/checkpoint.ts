/**
 * Training checkpoints: one safetensors file holding the model's state dict (official names), the EMA
 * (`ema.<name>`), the AdamW moments (`optim.m.<i>`, `optim.v.<i>`) and, in the metadata, the step, the
 * optimizer step counts, the Philox position, the model config and the loss log: everything an exact
 * resume needs. The DiT (`checkpoint.safetensors`, format `ditflow-train-checkpoint`) and the VAE
 * (`vae_checkpoint.safetensors`, `ditflow-vae-checkpoint`) keep their file names and formats.
 * @module
 */

import type { HostTensor } from "../models/dit.ts";
import type { GeneratorState } from "../tensor/rng.ts";
import type { AdamWHostState } from "../tensor/optim.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";

/** Which checkpoint a trainer writes: file name, format tag and the nouns of its messages. */
export interface CheckpointKind {
  /** File name inside the checkpoint directory. */
  file: string;
  /** The `format` metadata value. */
  format: string;
  /** Completes "is not a ditflow … checkpoint" (e.g. `training`, `VAE`). */
  noun: string;
  /** Completes "was written for another … config" (e.g. `model`, `VAE`). */
  configNoun: string;
}

/** The DiT trainer's checkpoint. */
export const DIT_CHECKPOINT: CheckpointKind = {
  file: "checkpoint.safetensors",
  format: "ditflow-train-checkpoint",
  noun: "training",
  configNoun: "model",
};

/** The VAE trainer's checkpoint. */
export const VAE_CHECKPOINT: CheckpointKind = {
  file: "vae_checkpoint.safetensors",
  format: "ditflow-vae-checkpoint",
  noun: "VAE",
  configNoun: "VAE",
};

/** The contents of a checkpoint. */
export interface Checkpoint<E> {
  step: number;
  rng: GeneratorState;
  model: Map<string, HostTensor>;
  /** The EMA by parameter name (empty for a trainer without one). */
  ema: Map<string, HostTensor>;
  optim: AdamWHostState;
  losses: E[];
}

/** Writes `dir/<kind.file>` (creating `dir`); returns its path. */
export async function saveCheckpoint<E>(
  dir: string,
  kind: CheckpointKind,
  ck: Checkpoint<E>,
  config: unknown,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors: Record<string, TensorInput> = {};
  for (const [k, v] of ck.model) tensors[k] = { dtype: "F32", shape: v.shape, data: v.data };
  for (const [k, v] of ck.ema) tensors[`ema.${k}`] = { dtype: "F32", shape: v.shape, data: v.data };
  ck.optim.m.forEach((m, i) => tensors[`optim.m.${i}`] = { dtype: "F32", shape: [m.length], data: m });
  ck.optim.v.forEach((v, i) => tensors[`optim.v.${i}`] = { dtype: "F32", shape: [v.length], data: v });
  const path = `${dir}/${kind.file}`;
  await writeSafetensors(path, tensors, {
    format: kind.format,
    step: String(ck.step),
    optim_step: String(ck.optim.step),
    optim_steps: JSON.stringify(ck.optim.steps ?? []),
    rng: JSON.stringify(ck.rng),
    config: JSON.stringify(config),
    losses: JSON.stringify(ck.losses),
  });
  return path;
}

/** Reads a checkpoint, refusing another format or one written for another config. */
export async function loadCheckpoint<E>(
  path: string,
  kind: CheckpointKind,
  config: unknown,
): Promise<Checkpoint<E>> {
  const f = await readSafetensors(path);
  const md = f.metadata ?? {};
  if (md.format !== kind.format) throw new Error(`${path} is not a ditflow ${kind.noun} checkpoint`);
  if (JSON.stringify(JSON.parse(md.config ?? "{}")) !== JSON.stringify(config)) {
    throw new Error(`${path} was written for another ${kind.configNoun} config; delete it to start afresh`);
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
