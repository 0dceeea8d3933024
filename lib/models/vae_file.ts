/**
 * The VAE weight file: `vae.safetensors` as `train-vae` writes it (diffusers key names, F32, the config
 * and scaling factor in the metadata), and reading user-supplied diffusers AutoencoderKL files (config
 * inferred from the tensor shapes).
 * @module
 */

import { type AutoencoderKLConfig, checkVaeConfig } from "./autoencoder_kl.ts";
import type { HostTensor } from "./dit.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";

/** The file name of a VAE inside a `train-vae` output. */
export const VAE_FILE = "vae.safetensors";

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
