/**
 * Decoding latents to images with an AutoencoderKL, and the stage kind `decode`: turns a latents dataset
 * artifact (e.g. samples of a DiT trained on `encode` outputs) into a pixel-space dataset artifact and a
 * grid. Also the shared VAE lookup of `encode` and `decode`: a `train-vae` output (input `vae`) or a
 * user-supplied diffusers safetensors (parameter `vae_path`).
 * @module
 */

import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { readDataArtifact, writeDataArtifact } from "../data/artifact.ts";
import { saveGrid } from "../data/grid.ts";
import { AutoencoderKL, type AutoencoderKLConfig, downsampleFactor } from "../models/autoencoder_kl.ts";
import { chosenScale, resolveVae, VAE_SOURCE_PARAMS } from "./vae_source.ts";
import { noGrad } from "../tensor/autograd.ts";
import { scale as scaleOp } from "../tensor/ops/elementwise.ts";
import { tensor, tidy } from "../tensor/tensor.ts";
import { getRuntime } from "../gpu/runtime.ts";
import type { Diagnostic } from "../pipeline/diagnostics.ts";
import { expectSpace, single } from "./plan_checks.ts";

// The VAE lookup and parameters shared with `encode` live in the small module vae_source.ts (so that
// `encode` does not import this stage); re-exported here for existing importers.
export {
  chosenScale,
  DIFFUSERS_VAE_FILE,
  type ResolvedVae,
  resolveVae,
  scaleFactorParam,
  VAE_SOURCE_PARAMS,
} from "./vae_source.ts";

/** Loads a VAE model from a directory (holding `vae.safetensors`) or a safetensors file. */
export async function loadVae(
  pathOrDir: string,
): Promise<{ model: AutoencoderKL; cfg: AutoencoderKLConfig }> {
  const r = await resolveVae(undefined, pathOrDir);
  await getRuntime();
  return { model: AutoencoderKL.fromHost(r.cfg, r.state), cfg: r.cfg };
}

/** Options of {@link decodeLatents}. */
export interface DecodeOptions {
  /** Latents per GPU batch (default 32). */
  batchSize?: number;
  /** Clamp the images to [-1, 1] (default true). */
  clamp?: boolean;
  signal?: AbortSignal;
  onBatch?: (done: number, total: number) => void;
}

/**
 * Decodes scaled latents [N, L, h, w] (x = z · scale, as the `encode` stage writes them) to images
 * [N, out, h·f, w·f] in [-1, 1]: `decode(x / scale)` in batches. `vae` is a model or a path (a `train-vae`
 * output directory or a safetensors file; loaded and released here).
 */
export async function decodeLatents(
  vae: AutoencoderKL | string,
  latents: Float32Array,
  shape: readonly [number, number, number, number],
  scale: number,
  o: DecodeOptions = {},
): Promise<{ images: Float32Array; shape: [number, number, number, number] }> {
  const owned = typeof vae === "string" ? (await loadVae(vae)).model : null;
  const model = owned ?? (vae as AutoencoderKL);
  try {
    const cfg = model.cfg;
    const [N, L, h, w] = shape;
    if (L !== cfg.latentChannels) {
      throw new Error(`the latents have ${L} channels but the VAE ${cfg.name} expects ${cfg.latentChannels}`);
    }
    if (latents.length !== N * L * h * w) {
      throw new Error(`${latents.length} latent values do not match the shape [${shape}]`);
    }
    if (!(scale > 0)) throw new Error(`the latent scale factor must be positive, got ${scale}`);
    const f = downsampleFactor(cfg);
    const C = cfg.outChannels, H = h * f, W = w * f;
    const per = L * h * w, outPer = C * H * W;
    const images = new Float32Array(N * outPer);
    const bs = o.batchSize ?? 32;
    for (let lo = 0; lo < N; lo += bs) {
      o.signal?.throwIfAborted();
      const n = Math.min(bs, N - lo);
      const img = noGrad(() =>
        tidy(() =>
          model.decode(scaleOp(tensor(latents.subarray(lo * per, (lo + n) * per), [n, L, h, w]), 1 / scale))
        )
      );
      const d = await img.data();
      img.dispose();
      if (o.clamp ?? true) { for (let i = 0; i < d.length; i++) d[i] = Math.min(1, Math.max(-1, d[i])); }
      images.set(d, lo * outPer);
      o.onBatch?.(lo + n, N);
    }
    return { images, shape: [N, C, H, W] };
  } finally {
    owned?.dispose();
  }
}

/** The `decode` kind. */
export const decodeKind = defineKind({
  name: "decode",
  module: import.meta.url,
  description: "decode a latents dataset (e.g. DiT samples) to images with a VAE",
  gpu: true,
  params: {
    ...VAE_SOURCE_PARAMS,
    batch_size: { type: "int", default: 32, min: 1 },
  },
  inputs: {
    samples: { doc: "a latents dataset artifact (sample, encode)" },
    vae: { doc: "a train-vae output", optional: true },
  },
  outputs: { images: { doc: "data.safetensors (pixels in [-1, 1]) and grid.png" } },
  headline: ["images", "seconds"],
  validate(p, ctx) {
    const out: Diagnostic[] = expectSpace(ctx, "samples", "latents", "decode");
    if (!p.vae_path && ctx.input("vae").length === 0) {
      out.push({
        pos: ctx.at("vae_path"),
        message: `decode stage \`${ctx.stage}\` needs a VAE: bind input \`vae\` or set \`vae_path\``,
      });
    }
    const vae = p.vae_path ? undefined : single(ctx, "vae")?.vae;
    const s = single(ctx, "samples");
    if (vae && s?.shape && s.shape[0] !== vae.latentChannels) {
      out.push({
        pos: ctx.inputAt("samples"),
        message: `\`${s.stage}\` holds ${s.shape[0]}-channel latents, but the VAE of \`${
          single(ctx, "vae")!.stage
        }\` has ${vae.latentChannels} latent channels`,
      });
    }
    return out;
  },
  describe(p, ctx) {
    const vae = p.vae_path ? undefined : single(ctx, "vae")?.vae;
    const s = single(ctx, "samples");
    const shape: [number, number, number] | undefined = vae?.inChannels && s?.shape
      ? [vae.inChannels, s.shape[1] * vae.factor, s.shape[2] * vae.factor]
      : undefined;
    return { images: { space: "pixels", shape, numClasses: s?.numClasses } };
  },
  async run(ctx) {
    const p = ctx.params;
    const data = await readDataArtifact(ctx.inputs.samples.dir);
    if (data.space !== "latents") {
      throw new Error(`${ctx.inputs.samples.stage} holds ${data.space}, not latents: nothing to decode`);
    }
    const vae = await resolveVae(ctx.inputs.vae, p.vae_path, { normNumGroups: p.norm_num_groups });
    const scale = chosenScale(p.scale_factor, vae.cfg);
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    ctx.log(
      `decoding ${data.count} latents of [${data.shape}] with ${vae.cfg.name} (${vae.source}), scale ${scale}`,
    );
    const model = AutoencoderKL.fromHost(vae.cfg, vae.state);
    const t0 = performance.now();
    let out;
    try {
      out = await decodeLatents(model, data.x, [data.count, ...data.shape], scale, {
        batchSize: p.batch_size,
        signal: ctx.signal,
        onBatch: (done, total) => ctx.progress({ step: done, total }),
      });
    } finally {
      model.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const [N, C, H, W] = out.shape;
    await writeDataArtifact(ctx.outputs.images, {
      x: out.images,
      y: data.y,
      shape: [C, H, W],
      count: N,
      numClasses: data.numClasses,
      classNames: data.classNames,
      space: "pixels",
      info: { ...data.info, decoded_from: ctx.inputs.samples.stage, vae: vae.source, scale_factor: scale },
    });
    if (C === 1 || C === 3) {
      const n = Math.min(N, 100);
      await saveGrid(
        { data: out.images.subarray(0, n * C * H * W), shape: [n, C, H, W] },
        Math.min(10, n),
        `${ctx.outputs.images}/grid.png`,
      );
    }
    ctx.metrics({ images: N, seconds, images_per_s: N / seconds, scale_factor: scale });
  },
});
registerKind(decodeKind);
