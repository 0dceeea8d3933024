/**
 * The VAE lookup shared by the `encode` and `decode` kinds: a `train-vae` output (input `vae`) or a
 * user-supplied diffusers safetensors (parameter `vae_path`), the parameters that choose it, and the
 * latent scale factor.
 * @module
 */

import type { AutoencoderKLConfig } from "../models/autoencoder_kl.ts";
import { type LoadedVaeFile, readVaeFile, VAE_FILE } from "../models/vae_file.ts";
import type { ParamSchema } from "../pipeline/schema.ts";

/** The diffusers file name of a VAE's weights (what `vae_path` may point at, or a folder holding it). */
export const DIFFUSERS_VAE_FILE = "diffusion_pytorch_model.safetensors";

/** The `scale_factor` parameter: `auto` (`doc` says what that means) or a number, quoted. */
export function scaleFactorParam<const D extends string>(doc: D) {
  return {
    type: "string",
    default: "auto",
    pattern: "^(auto|[0-9]*\\.?[0-9]+([eE][-+]?[0-9]+)?)$",
    doc,
  } as const satisfies ParamSchema[string];
}

/** The parameters of `encode` and `decode` that choose a VAE (with {@link resolveVae}) and its scale. */
export const VAE_SOURCE_PARAMS = {
  vae_path: {
    type: "path",
    optional: true,
    doc: "a VAE safetensors (e.g. sd-vae-ft-ema's diffusion_pytorch_model.safetensors) or a folder " +
      "holding one, instead of the input `vae`",
  },
  scale_factor: scaleFactorParam("auto: the VAE file's scaling factor; or a number (quoted)"),
  norm_num_groups: {
    type: "int",
    optional: true,
    min: 1,
    doc: "GroupNorm groups of a diffusers file without ditflow metadata (default 32)",
  },
} as const satisfies ParamSchema;

/** The latent scale a stage uses: the VAE's own for `scale_factor: auto`, else the number given. */
export function chosenScale(scaleFactor: string, cfg: AutoencoderKLConfig): number {
  return scaleFactor === "auto" ? cfg.scalingFactor : Number(scaleFactor);
}

/** A VAE located for a stage: the file, what it came from, and its loaded contents. */
export interface ResolvedVae extends LoadedVaeFile {
  path: string;
  /** `input:<stage>` or `path:<file>`. */
  source: string;
}

/**
 * Finds and reads the VAE of a stage: `vaePath` (a safetensors file, or a folder holding `vae.safetensors`
 * or `diffusion_pytorch_model.safetensors`) wins over the input artifact's `vae.safetensors`. Errors name
 * the file that was expected and where.
 */
export async function resolveVae(
  input: { dir: string; stage: string } | undefined,
  vaePath: string | undefined,
  o: { normNumGroups?: number } = {},
): Promise<ResolvedVae> {
  let path: string;
  let source: string;
  const help =
    `(${VAE_FILE} written by a train-vae stage, or a diffusers AutoencoderKL safetensors such as ` +
    `${DIFFUSERS_VAE_FILE} of stabilityai/sd-vae-ft-ema, given with the parameter vae_path)`;
  if (vaePath) {
    const st = await Deno.stat(vaePath).catch(() => null);
    if (!st) throw new Error(`expected a VAE weight file at ${vaePath} ${help}, found nothing`);
    if (st.isDirectory) {
      const cands = [`${vaePath}/${VAE_FILE}`, `${vaePath}/${DIFFUSERS_VAE_FILE}`];
      const found = [];
      for (const c of cands) if (await Deno.stat(c).then((s) => s.isFile, () => false)) found.push(c);
      if (!found.length) {
        throw new Error(`expected a VAE weight file at ${cands.join(" or ")} ${help}, found neither`);
      }
      path = found[0];
    } else path = vaePath;
    source = `path:${path}`;
  } else if (input) {
    path = `${input.dir}/${VAE_FILE}`;
    source = `input:${input.stage}`;
    if (!(await Deno.stat(path).then((s) => s.isFile, () => false))) {
      throw new Error(`expected a VAE weight file at ${path} (the output of ${input.stage}) ${help}`);
    }
  } else {
    throw new Error(
      `no VAE given: connect the input \`vae\` to a train-vae stage's output or set vae_path ${help}`,
    );
  }
  const loaded = await readVaeFile(path);
  if (loaded.inferred && o.normNumGroups !== undefined) loaded.cfg.normNumGroups = o.normNumGroups;
  return { ...loaded, path, source };
}
