/**
 * DiT checkpoints as safetensors with the official key names and shapes, so they move between PyTorch
 * (tools/convert_dit_checkpoint.py) and ditflow.
 * @module
 */

import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { type DiTConfig, validateConfig } from "./config.ts";
import type { HostTensor } from "./dit.ts";

/** Reads the tensors of a safetensors file whose names do not start with `__` as host tensors (f32). */
export async function readStateDict(
  path: string,
): Promise<{ state: Map<string, HostTensor>; metadata: Record<string, string> }> {
  const f = await readSafetensors(path);
  const state = new Map<string, HostTensor>();
  for (const name of f.names()) {
    if (name.startsWith("__")) continue;
    state.set(name, { shape: [...f.info(name).shape], data: f.getF32(name) });
  }
  return { state, metadata: f.metadata ?? {} };
}

/** Writes a state dict (and extra tensors) as F32 safetensors, atomically, with the config in metadata. */
export async function writeStateDict(
  path: string,
  state: Map<string, HostTensor>,
  cfg: DiTConfig,
  extra: Record<string, TensorInput> = {},
  metadata: Record<string, string> = {},
): Promise<void> {
  const tensors: Record<string, TensorInput> = { ...extra };
  for (const [k, v] of state) tensors[k] = { dtype: "F32", shape: v.shape, data: v.data };
  await writeSafetensors(path, tensors, { ...metadata, ditflow_config: JSON.stringify(cfg) });
}

/** A model file written by the `train` stage: the config, the weights, and the metadata. */
export interface LoadedModelFile {
  cfg: DiTConfig;
  state: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

/** Reads a model file whose metadata holds `ditflow_config` (train stage outputs, converted checkpoints). */
export async function readModelFile(path: string): Promise<LoadedModelFile> {
  let res;
  try {
    res = await readStateDict(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `expected a DiT weight file at ${path} (safetensors; convert .pt files with tools/convert_dit_checkpoint.py)`,
      );
    }
    throw e;
  }
  const raw = res.metadata.ditflow_config;
  if (!raw) {
    throw new Error(
      `${path} has no ditflow_config metadata: convert it with tools/convert_dit_checkpoint.py`,
    );
  }
  const cfg = JSON.parse(raw) as DiTConfig;
  validateConfig(cfg);
  return { cfg, state: res.state, metadata: res.metadata };
}
