/**
 * Stage kind `train`: trains a DiT on a dataset artifact (pixels or latents) and writes its weights
 * (EMA and raw) as safetensors with the official key names, the loss log (CSV) and the loss curve.
 * Resumes exactly from its checkpoint directory after a crash or Ctrl-C. With `steps: 0` it writes the
 * initialised model (EMA = raw = the init weights) in the same format, with an empty loss log: the
 * "untrained" baseline a comparison can be made against.
 * @module
 */

import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { readDataArtifact } from "../data/artifact.ts";
import { CONDITIONING_BLOCKS, DIT_FAMILIES, type DiTConfig, ditConfig, gflops } from "../models/config.ts";
import { writeStateDict } from "../models/checkpoint.ts";
import { train, TRAIN_DEFAULTS } from "../train/trainer.ts";
import { getRuntime } from "../gpu/runtime.ts";
import { writeLossCurve } from "../report/plots.ts";
import type { Diagnostic } from "../pipeline/diagnostics.ts";
import type { ValidateContext } from "../pipeline/stage.ts";
import { single } from "./plan_checks.ts";

/**
 * Plan-time check of a train stage's model: the name (or family), and a custom config's consistency
 * (heads divide the width, the patch divides the input size when the upstream declares it).
 */
export function validateTrainParams(
  p: Parameters<typeof modelConfigFromParams>[0],
  ctx: ValidateContext,
): Diagnostic[] {
  const data = single(ctx, "data");
  const nameMatch = /^(?:DiT-)?(S|B|L|XL)\/(\d+)$/.exec(p.model.trim());
  const patch = p.patch_size ?? (nameMatch ? Number(nameMatch[2]) : 1);
  const shape: [number, number, number] = data?.shape ?? [4, patch, patch];
  try {
    modelConfigFromParams(p, { shape, numClasses: data?.numClasses ?? 10 });
    return [];
  } catch (e) {
    const msg = (e as Error).message;
    const where = /patchSize|inputSize/.test(msg) && p.patch_size !== undefined
      ? "patch_size"
      : /numHeads/.test(msg) && p.num_heads !== undefined
      ? "num_heads"
      : /hiddenSize/.test(msg) && p.hidden_size !== undefined
      ? "hidden_size"
      : /depth/.test(msg) && p.depth !== undefined
      ? "depth"
      : /family/.test(msg)
      ? "family"
      : "model";
    const known = data?.shape ? ` (input \`${data.stage}\` gives [${data.shape.join(", ")}])` : "";
    return [{ pos: ctx.at(where), message: `${msg}${/inputSize/.test(msg) ? known : ""}` }];
  }
}

/** Builds the model config from the stage's params and the data's shape and classes. */
export function modelConfigFromParams(
  p: {
    model: string;
    family?: string;
    depth?: number;
    hidden_size?: number;
    num_heads?: number;
    patch_size?: number;
    block: string;
    learn_sigma: boolean;
    class_dropout: number;
  },
  data: { shape: [number, number, number]; numClasses: number },
): DiTConfig {
  const overrides: Partial<DiTConfig> = {
    inputSize: data.shape[1],
    inChannels: data.shape[0],
    numClasses: data.numClasses,
    block: p.block as DiTConfig["block"],
    learnSigma: p.learn_sigma,
    classDropoutProb: p.class_dropout,
  };
  if (p.depth !== undefined) overrides.depth = p.depth;
  if (p.hidden_size !== undefined) overrides.hiddenSize = p.hidden_size;
  if (p.num_heads !== undefined) overrides.numHeads = p.num_heads;
  if (p.patch_size !== undefined) overrides.patchSize = p.patch_size;
  const cfg = ditConfig(p.model, overrides, p.family ?? "paper");
  const custom = p.depth !== undefined || p.hidden_size !== undefined || p.num_heads !== undefined ||
    p.patch_size !== undefined;
  return custom ? { ...cfg, name: `${cfg.name}*` } : cfg;
}

/** The `train` kind. */
export const trainKind = defineKind({
  name: "train",
  module: import.meta.url,
  description: "train a DiT (DDPM mse+vb, or SiT velocity) with AdamW and EMA",
  gpu: true,
  params: {
    model: {
      type: "string",
      default: "DiT-S/2",
      doc: "DiT-S/2 … DiT-XL/8; depth/hidden_size/num_heads/patch_size override it",
    },
    family: {
      type: "enum",
      values: Object.keys(DIT_FAMILIES),
      default: "paper",
      doc: "model sizes: the paper's, or `mini` (scaled down for CPU-only machines, same ratios)",
    },
    depth: { type: "int", optional: true, min: 1 },
    hidden_size: { type: "int", optional: true, min: 4 },
    num_heads: { type: "int", optional: true, min: 1 },
    patch_size: { type: "int", optional: true, min: 1 },
    block: {
      type: "enum",
      values: [...CONDITIONING_BLOCKS],
      default: "adaLN-Zero",
      doc: "conditioning block",
    },
    learn_sigma: { type: "bool", default: true },
    objective: { type: "enum", values: ["ddpm", "sit"], default: "ddpm" },
    steps: {
      type: "int",
      default: 1000,
      min: 0,
      doc: "training steps; 0 writes the initialised model (the untrained baseline)",
    },
    batch_size: { type: "int", default: 32, min: 1 },
    lr: { type: "number", default: TRAIN_DEFAULTS.lr, min: 0 },
    weight_decay: { type: "number", default: 0, min: 0 },
    ema_decay: { type: "number", default: TRAIN_DEFAULTS.emaDecay, min: 0, max: 1 },
    class_dropout: { type: "number", default: 0.1, min: 0, max: 0.99 },
    flip: { type: "bool", default: false, doc: "random horizontal flips (off for digits)" },
    ckpt_every: { type: "int", default: 200, min: 0, doc: "checkpoint every N steps (resume point)" },
    log_every: { type: "int", default: 50, min: 1 },
  },
  inputs: { data: { doc: "a dataset artifact (mnist, encode)" } },
  outputs: { model: { doc: "model.safetensors (EMA), model_raw.safetensors, loss.csv, loss.png" } },
  headline: ["final_loss", "img_per_s", "train_seconds"],
  validate: (p, ctx) => [...validateTrainParams(p, ctx)],
  describe(p, ctx) {
    const data = single(ctx, "data");
    return {
      model: {
        space: data?.space,
        shape: data?.shape,
        numClasses: data?.numClasses,
        model: { objective: p.objective, classDropout: p.class_dropout, stage: ctx.stage },
      },
    };
  },
  async run(ctx) {
    const p = ctx.params;
    const data = await readDataArtifact(ctx.inputs.data.dir);
    const cfg = modelConfigFromParams(p, data);
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    ctx.log(`adapter: ${runtime.adapter.description}`);
    const res = await train(
      { x: data.x, y: data.y, shape: data.shape, count: data.count, numClasses: data.numClasses },
      {
        model: cfg,
        objective: p.objective,
        steps: p.steps,
        batchSize: p.batch_size,
        lr: p.lr,
        weightDecay: p.weight_decay,
        betas: TRAIN_DEFAULTS.betas,
        emaDecay: p.ema_decay,
        flip: p.flip,
        seed: ctx.seed,
        ckptEvery: p.ckpt_every,
        ckptDir: ctx.checkpointDir,
        logEvery: p.log_every,
      },
      {
        log: (m) => ctx.log(m),
        signal: ctx.signal,
        onStep: (s) => ctx.progress({ step: s.step, total: s.total, loss: s.loss, "img/s": s.imgPerSec }),
      },
    );
    const out = ctx.outputs.model;
    const meta = {
      objective: p.objective,
      data_space: data.space,
      data_info: JSON.stringify(data.info),
      steps: String(p.steps),
    };
    await writeStateDict(`${out}/model.safetensors`, res.ema, cfg, {}, { ...meta, weights: "ema" });
    await writeStateDict(`${out}/model_raw.safetensors`, await res.model.stateDict(), cfg, {}, {
      ...meta,
      weights: "raw",
    });
    res.model.dispose();
    const csv = ["step,loss,mse,vb", ...res.losses.map((l) => `${l.step},${l.loss},${l.mse},${l.vb ?? ""}`)];
    await Deno.writeTextFile(`${out}/loss.csv`, csv.join("\n") + "\n");
    await writeLossCurve(`${out}/loss.png`, [{
      label: cfg.name,
      points: res.losses.map((l) => [l.step, l.loss]),
    }], {
      title: `${cfg.name} (${cfg.block}) training loss`,
    });
    const tail = res.losses.slice(-Math.max(1, Math.floor(res.losses.length / 10)));
    ctx.metrics({
      // Mean of the last tenth of the logged losses; null when nothing was trained (steps: 0).
      final_loss: tail.length ? tail.reduce((a, l) => a + l.loss, 0) / tail.length : null,
      img_per_s: res.imgPerSec,
      train_seconds: res.seconds,
      params: res.params,
      gflops: gflops(cfg),
      model: cfg.name,
      block: cfg.block,
      resumed_from: res.resumedFrom,
    });
  },
});
registerKind(trainKind);
