/**
 * DiT checkpoints as safetensors with the official key names and shapes, so they move between PyTorch
 * (tools/convert_dit_checkpoint.py) and ditflow.
 * @module
 */

import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import type { DiTConfig } from "./config.ts";
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
