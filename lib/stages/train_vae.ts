/**
 * Stage kind `train-vae`: trains an AutoencoderKL (the SD VAE architecture, by default ditflow's small
 * config: 32×32 → 8×8×4) on a pixel-space dataset artifact with reconstruction + kl_weight · KL (see
 * `lib/train/vae_trainer.ts`), resuming exactly from its checkpoint directory. Writes `vae.safetensors`
 * (diffusers key names; config, scaling factor and how it was chosen in the metadata), a reconstruction
 * grid (originals above, reconstructions below), `loss.csv`; metrics: PSNR on held-out
 * images (the last `holdout` images of the dataset, or the optional `eval` input), final loss, img/s.
 * @module
 */

import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { readDataArtifact } from "../data/artifact.ts";
import { saveGrid } from "../data/grid.ts";
import { getRuntime } from "../gpu/runtime.ts";
import { trainVae, VAE_ARCH_PARAMS, VAE_TRAIN_PARAMS, vaeConfigFromParams } from "../train/vae_trainer.ts";
import { tailMean, writeLossLog } from "../train/loss_log.ts";
import { VAE_FILE, writeVaeFile } from "../models/vae_file.ts";
import { latentScaleFactor, reconstruct } from "../models/vae_inference.ts";
import { psnr } from "../metrics/psnr.ts";
import { scaleFactorParam } from "./vae_source.ts";
import { downsampleFactor } from "../models/autoencoder_kl.ts";
import type { Diagnostic } from "../pipeline/diagnostics.ts";
import { expectSpace, single } from "./plan_checks.ts";

/** Images of the scale-factor estimate (at most). */
const SCALE_IMAGES = 2048;

/** The `train-vae` kind. */
export const trainVaeKind = defineKind({
  name: "train-vae",
  module: import.meta.url,
  description: "train an AutoencoderKL (SD VAE architecture) with reconstruction + KL loss",
  gpu: true,
  params: {
    ...VAE_ARCH_PARAMS,
    ...VAE_TRAIN_PARAMS,
    scale_factor: scaleFactorParam(
      "auto: 1/std of the training latents' posterior means; or a number (quoted)",
    ),
    holdout: {
      type: "int",
      default: 256,
      min: 0,
      doc: "the last N images are held out for PSNR (at most a quarter of the data); unused with `eval`",
    },
  },
  inputs: {
    data: { doc: "a pixel-space dataset artifact (mnist, ...)" },
    eval: { doc: "held-out images for PSNR (pixel dataset)", optional: true },
  },
  outputs: {
    vae: { doc: "vae.safetensors (diffusers names), recon.png, loss.csv" },
  },
  headline: ["psnr", "final_loss", "img_per_s"],
  validate(p, ctx) {
    const out: Diagnostic[] = [
      ...expectSpace(ctx, "data", "pixels", "train-vae"),
      ...expectSpace(ctx, "eval", "pixels", "train-vae"),
    ];
    const data = single(ctx, "data");
    let cfg;
    try {
      cfg = vaeConfigFromParams(p, data?.shape?.[0] ?? 3);
    } catch (e) {
      const where = p.norm_num_groups !== undefined && /normNumGroups/.test((e as Error).message)
        ? "norm_num_groups"
        : "block_out_channels";
      out.push({ pos: ctx.at(where), message: `invalid VAE shape: ${(e as Error).message}` });
      return out;
    }
    const f = downsampleFactor(cfg);
    if (data?.shape && (data.shape[1] % f !== 0 || data.shape[2] % f !== 0)) {
      out.push({
        pos: ctx.at("block_out_channels"),
        message:
          `${cfg.blockOutChannels.length} levels downsample by ${f}, which does not divide the image ` +
          `size ${data.shape[1]}×${data.shape[2]} of \`${data.stage}\``,
      });
    }
    const ev = single(ctx, "eval");
    if (ev?.shape && data?.shape && ev.shape.join() !== data.shape.join()) {
      out.push({
        pos: ctx.inputAt("eval"),
        message:
          `eval images [${ev.shape}] of \`${ev.stage}\` do not match the training images [${data.shape}]`,
      });
    }
    return out;
  },
  describe(p, ctx) {
    const data = single(ctx, "data");
    const cfg = vaeConfigFromParams(p, data?.shape?.[0] ?? 3);
    return {
      vae: {
        vae: {
          latentChannels: cfg.latentChannels,
          factor: downsampleFactor(cfg),
          inChannels: data?.shape?.[0],
        },
      },
    };
  },
  async run(ctx) {
    const p = ctx.params;
    const data = await readDataArtifact(ctx.inputs.data.dir);
    if (data.space !== "pixels") {
      throw new Error(`${ctx.inputs.data.stage} holds ${data.space}; train-vae needs a pixel-space dataset`);
    }
    const [C, H, W] = data.shape;
    const per = C * H * W;
    const cfg = vaeConfigFromParams(p, C);
    // Held-out images: the eval input, or the dataset's last images (the rest is trained on).
    let trainCount = data.count;
    let evalX: Float32Array;
    let evalCount: number;
    if (ctx.inputs.eval) {
      const ev = await readDataArtifact(ctx.inputs.eval.dir);
      if (ev.shape.join() !== data.shape.join() || ev.space !== "pixels") {
        throw new Error(
          `eval images [${ev.shape}] (${ev.space}) do not match the training images [${data.shape}]`,
        );
      }
      evalCount = Math.min(ev.count, 256);
      evalX = ev.x.subarray(0, evalCount * per);
    } else {
      evalCount = Math.min(p.holdout, Math.floor(data.count / 4));
      trainCount = data.count - evalCount;
      evalX = data.x.subarray(trainCount * per, data.count * per);
    }
    const trainX = data.x.subarray(0, trainCount * per);
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    ctx.log(`adapter: ${runtime.adapter.description}`);
    ctx.log(`${trainCount} training images of [${data.shape}], ${evalCount} held out`);
    const res = await trainVae(
      { x: trainX, shape: data.shape, count: trainCount },
      { ...p, config: cfg, seed: ctx.seed, ckptDir: ctx.checkpointDir },
      {
        log: (m) => ctx.log(m),
        signal: ctx.signal,
        onStep: (s) => ctx.progress({ step: s.step, total: s.total, loss: s.loss, "img/s": s.imgPerSec }),
      },
    );
    const model = res.model;
    const out = ctx.outputs.vae;
    try {
      let scaleFactor: number;
      let latentStd: number | null = null;
      if (p.scale_factor === "auto") {
        const n = Math.min(trainCount, SCALE_IMAGES);
        const s = await latentScaleFactor(model, trainX, data.shape, n, p.batch_size);
        scaleFactor = s.scaleFactor;
        latentStd = s.std;
        ctx.log(
          `scale factor 1/std = ${scaleFactor.toPrecision(6)} (std ${s.std.toPrecision(6)} over ${n} images)`,
        );
      } else scaleFactor = Number(p.scale_factor);
      const finalCfg = { ...cfg, scalingFactor: scaleFactor };
      await writeVaeFile(`${out}/${VAE_FILE}`, await model.stateDict(), finalCfg, {
        scale_factor_source: p.scale_factor === "auto" ? "auto: 1/std of training posterior means" : "param",
        ...(latentStd !== null ? { latent_std: String(latentStd) } : {}),
        steps: String(p.steps),
        kl_weight: String(p.kl_weight),
        rec_loss: p.rec_loss,
        lr_decay: p.lr_decay,
        ema_decay: String(p.ema_decay),
        data_info: JSON.stringify(data.info),
      });
      let evalPsnr: number | null = null;
      if (evalCount > 0) {
        const rec = await reconstruct(model, evalX, data.shape, evalCount, p.batch_size);
        evalPsnr = psnr(evalX, rec, per);
        if (C === 1 || C === 3) {
          const n = Math.min(evalCount, 8);
          const grid = new Float32Array(2 * n * per);
          grid.set(evalX.subarray(0, n * per));
          grid.set(rec.subarray(0, n * per), n * per);
          await saveGrid({ data: grid, shape: [2 * n, C, H, W] }, n, `${out}/recon.png`);
        }
      }
      await writeLossLog(out, res.losses, ["step", "loss", "rec", "kl"]);
      ctx.metrics({
        psnr: evalPsnr,
        final_loss: tailMean(res.losses),
        final_rec: tailMean(res.losses, "rec"),
        img_per_s: res.imgPerSec,
        train_seconds: res.seconds,
        params: res.params,
        scale_factor: scaleFactor,
        scale_factor_source: p.scale_factor === "auto" ? "auto" : "param",
        eval_images: evalCount,
        resumed_from: res.resumedFrom,
      });
    } finally {
      model.dispose();
    }
  },
});
registerKind(trainVaeKind);
