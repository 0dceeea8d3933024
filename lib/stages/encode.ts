/**
 * Stage kind `encode`: encodes a pixel-space dataset artifact with a VAE (a `train-vae` output, or a
 * user-supplied diffusers safetensors such as sd-vae-ft-ema via `vae_path`) and writes a latents dataset
 * artifact: x = z · scale_factor with z the posterior mean or a posterior sample (noise from the stage's
 * seed). With `flip`, horizontally flipped copies are encoded too and appended as extra samples.
 *
 * Pitfall of pre-extracted features, recorded in the metadata: with `flip` each image has exactly two
 * fixed latents (plain and flipped) and, with `posterior: sample`, one frozen noise draw each, so training
 * on them never sees a fresh flip/posterior sample per epoch as on-the-fly encoding would.
 * @module
 */

import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { readDataArtifact, writeDataArtifact } from "../data/artifact.ts";
import { AutoencoderKL, downsampleFactor } from "../models/autoencoder_kl.ts";
import { encodeBatches, matchChannels } from "../models/vae_inference.ts";
import { Generator } from "../tensor/rng.ts";
import { getRuntime } from "../gpu/runtime.ts";
import { hashFile } from "../pipeline/hash.ts";
import { chosenScale, resolveVae, VAE_SOURCE_PARAMS } from "./vae_source.ts";
import type { Diagnostic } from "../pipeline/diagnostics.ts";
import { expectSpace, single } from "./plan_checks.ts";

/** Horizontally flipped copies of NCHW images. */
export function flipImages(
  x: Float32Array,
  shape: readonly [number, number, number],
  count: number,
): Float32Array {
  const [C, H, W] = shape;
  const out = new Float32Array(count * C * H * W);
  for (let r = 0; r < count * C * H; r++) {
    const o = r * W;
    for (let w = 0; w < W; w++) out[o + w] = x[o + W - 1 - w];
  }
  return out;
}

/** The `encode` kind. */
export const encodeKind = defineKind({
  name: "encode",
  module: import.meta.url,
  description: "encode a pixel dataset to VAE latents (× scale factor), optionally with flipped copies",
  gpu: true,
  params: {
    ...VAE_SOURCE_PARAMS,
    posterior: { type: "enum", values: ["sample", "mean"], default: "mean", doc: "z = mean or a sample" },
    flip: { type: "bool", default: false, doc: "also encode horizontally flipped copies (frozen per image)" },
    batch_size: { type: "int", default: 32, min: 1 },
  },
  inputs: {
    data: { doc: "a pixel-space dataset artifact" },
    vae: { doc: "a train-vae output (or set vae_path)", optional: true },
  },
  outputs: { latents: { doc: "data.safetensors (space: latents, x = z · scale_factor, y)" } },
  headline: ["count", "images_per_s", "latent_std"],
  validate(p, ctx) {
    const out: Diagnostic[] = expectSpace(ctx, "data", "pixels", "encode");
    const vae = single(ctx, "vae")?.vae;
    const data = single(ctx, "data");
    if (!p.vae_path && ctx.input("vae").length === 0) {
      out.push({
        pos: ctx.at("vae_path"),
        message: `encode stage \`${ctx.stage}\` needs a VAE: bind input \`vae\` or set \`vae_path\``,
      });
    }
    if (vae && data?.shape && !p.vae_path) {
      const [, H, W] = data.shape;
      if (H % vae.factor !== 0 || W % vae.factor !== 0) {
        out.push({
          pos: ctx.inputAt("data"),
          message: `image size ${H}×${W} of \`${data.stage}\` is not a multiple of the VAE's downsampling ` +
            `factor ${vae.factor}`,
        });
      }
    }
    return out;
  },
  describe(p, ctx) {
    const vae = p.vae_path ? undefined : single(ctx, "vae")?.vae;
    const data = single(ctx, "data");
    const shape: [number, number, number] | undefined = vae && data?.shape
      ? [vae.latentChannels, data.shape[1] / vae.factor, data.shape[2] / vae.factor]
      : undefined;
    return { latents: { space: "latents", shape, numClasses: data?.numClasses } };
  },
  async run(ctx) {
    const p = ctx.params;
    const data = await readDataArtifact(ctx.inputs.data.dir);
    if (data.space !== "pixels") {
      throw new Error(`${ctx.inputs.data.stage} holds ${data.space}; encode needs a pixel-space dataset`);
    }
    const vae = await resolveVae(ctx.inputs.vae, p.vae_path, { normNumGroups: p.norm_num_groups });
    const cfg = vae.cfg;
    const scale = chosenScale(p.scale_factor, cfg);
    const f = downsampleFactor(cfg);
    const [, H, W] = data.shape;
    if (H % f !== 0 || W % f !== 0) {
      throw new Error(`image size ${H}×${W} is not a multiple of ${cfg.name}'s downsampling factor ${f}`);
    }
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    const shape: [number, number, number] = [cfg.inChannels, H, W];
    let x = matchChannels(data.x, data.shape, data.count, cfg.inChannels, "encode");
    let y = data.y;
    let count = data.count;
    if (p.flip) {
      const both = new Float32Array(2 * x.length);
      both.set(x);
      both.set(flipImages(x, shape, count), x.length);
      x = both;
      y = new Uint32Array(2 * count);
      y.set(data.y);
      y.set(data.y, count);
      count *= 2;
    }
    const L = cfg.latentChannels, h = H / f, w = W / f;
    const zPer = L * h * w;
    const out = new Float32Array(count * zPer);
    const gen = new Generator(ctx.seed);
    ctx.log(
      `encoding ${count} images${
        p.flip ? " (with flipped copies)" : ""
      } with ${cfg.name} (${vae.source}) → ` +
        `[${L}, ${h}, ${w}] × ${scale} (posterior ${p.posterior})`,
    );
    const model = AutoencoderKL.fromHost(cfg, vae.state);
    const t0 = performance.now();
    let s = 0, s2 = 0;
    try {
      await encodeBatches(model, x, shape, count, p.batch_size, (m, sd, lo, n) => {
        // Posterior noise from the seed's stream, drawn in image order (CPU path of the same generator).
        const noise = p.posterior === "sample" ? gen.normalCpu(n * zPer) : null;
        const dst = out.subarray(lo * zPer, (lo + n) * zPer);
        for (let i = 0; i < dst.length; i++) {
          const z = noise ? m[i] + sd[i] * noise[i] : m[i];
          const v = Math.fround(z * scale);
          dst[i] = v;
          s += v;
          s2 += v * v;
        }
        ctx.progress({ step: lo + n, total: count });
      }, ctx.signal);
    } finally {
      model.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    const nVals = count * zPer;
    const mu = s / nVals;
    const latentStd = Math.sqrt(Math.max(0, s2 / nVals - mu * mu));
    const digest = (await hashFile(vae.path)).hash;
    const vaeInfo = ctx.inputs.vae && !p.vae_path
      ? { vae_stage: ctx.inputs.vae.stage, vae_key: ctx.inputs.vae.key, vae_digest: ctx.inputs.vae.digest }
      : { vae_path: vae.path };
    await writeDataArtifact(ctx.outputs.latents, {
      x: out,
      y,
      shape: [L, h, w],
      count,
      numClasses: data.numClasses,
      classNames: data.classNames,
      space: "latents",
      info: {
        ...vaeInfo,
        vae_file_sha256: digest,
        vae_config: cfg.name,
        scale_factor: scale,
        posterior: p.posterior,
        flip: p.flip,
        ...(p.flip
          ? {
            flip_note:
              "flipped copies are appended (samples N..2N-1 mirror 0..N-1): the flip is frozen per " +
              "image, not drawn afresh each epoch",
          }
          : {}),
        ...(p.posterior === "sample" ? { posterior_note: "one frozen posterior sample per image" } : {}),
        source: data.info,
        source_stage: ctx.inputs.data.stage,
        seed: ctx.seed,
      },
    });
    ctx.metrics({
      count,
      images_per_s: count / seconds,
      seconds,
      latent_std: latentStd,
      latent_mean: mu,
      scale_factor: scale,
    });
  },
});
registerKind(encodeKind);
