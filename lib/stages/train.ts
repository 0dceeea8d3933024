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
import {
  ARCHS,
  CONDITIONING_BLOCKS,
  DIT_FAMILIES,
  type DiTConfig,
  ditConfig,
  gflops,
} from "../models/config.ts";
import { writeStateDict } from "../models/checkpoint.ts";
import { DIT_TRAIN_PARAMS, trainDiT } from "../train/dit_trainer.ts";
import { tailMean, writeLossLog } from "../train/loss_log.ts";
import { DIT_CHECKPOINT } from "../train/checkpoint.ts";
import type { HostTensor } from "../models/host_tensor.ts";
import { snapshotFile, SNAPSHOTS } from "../models/snapshots.ts";
import { getRuntime } from "../gpu/runtime.ts";
import type { ParamSchema, ParamValues } from "../pipeline/schema.ts";

/** The model parameters of the `train` stage (the training ones are {@link DIT_TRAIN_PARAMS}). */
export const DIT_MODEL_PARAMS = {
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
  learn_sigma: { type: "bool", default: true, doc: "predict the variance too (DiT; U-ViT predicts ε only)" },
  arch: {
    type: "enum",
    values: [...ARCHS],
    optional: true,
    doc: "backbone: dit (default), uvit (U-ViT: t, y as tokens, long skips; ε only) or mdt (MDTv2: masked " +
      "training with a side-interpolator); absent means dit, so DiT stages keep their cache keys",
  },
  mask_ratio: {
    type: "number",
    optional: true,
    min: 0,
    max: 0.79,
    doc: "mdt: mask ratio r; each step masks r + 0.2·u of the tokens (absent: 0.3, MDT's)",
  },
  decode_layers: {
    type: "int",
    optional: true,
    min: 0,
    doc:
      "mdt: decoder blocks (de_blocks); the encoder has ⌊(depth − decode_layers)/2⌋ in and out (absent: 0)",
  },
  skips: {
    type: "bool",
    optional: true,
    doc: "dit only: add U-ViT's long skips (blocks.i.skip_linear) to the DiT; absent means false",
  },
  class_dropout: { type: "number", default: 0.1, min: 0, max: 0.99 },
} as const satisfies ParamSchema;
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
  if (typeof p.model !== "string") return []; // reported by the parameter checks
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
      : /skips/.test(msg)
      ? "skips"
      : /decodeLayers|mask_ratio|maskRatio|decode_layers/.test(msg)
      ? (p.decode_layers !== undefined ? "decode_layers" : "mask_ratio")
      : /U-ViT|arch/.test(msg)
      ? "arch"
      : /family/.test(msg)
      ? "family"
      : "model";
    const known = data?.shape ? ` (input \`${data.stage}\` gives [${data.shape.join(", ")}])` : "";
    return [{ pos: ctx.at(where), message: `${msg}${/inputSize/.test(msg) ? known : ""}` }];
  }
}

/** Builds the model config from the stage's params and the data's shape and classes. */
export function modelConfigFromParams(
  p: ParamValues<typeof DIT_MODEL_PARAMS>,
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
  const arch = p.arch ?? "dit";
  if (arch !== "dit") overrides.arch = arch as DiTConfig["arch"];
  if (arch === "uvit") overrides.learnSigma = false;
  if (arch !== "mdt" && (p.mask_ratio !== undefined || p.decode_layers !== undefined)) {
    throw new Error(`mask_ratio and decode_layers are MDT options (arch ${arch})`);
  }
  if (p.mask_ratio !== undefined) overrides.maskRatio = p.mask_ratio;
  if (p.decode_layers !== undefined) overrides.decodeLayers = p.decode_layers;
  if (p.skips) {
    if (arch !== "dit") throw new Error(`skips is a DiT option (arch ${arch} has its own skips or none)`);
    overrides.skips = true;
  }
  const cfg = ditConfig(p.model, overrides, p.family ?? "paper");
  const custom = p.depth !== undefined || p.hidden_size !== undefined || p.num_heads !== undefined ||
    p.patch_size !== undefined;
  // The backbone shows in the name: `U-ViT-B/2-mini`, `DiT-B/2-mini+skips`.
  let name = arch === "uvit"
    ? cfg.name.replace(/^DiT-/, "U-ViT-")
    : arch === "mdt"
    ? cfg.name.replace(/^DiT-/, "MDT-")
    : cfg.name;
  if (p.skips) name += "+skips";
  return { ...cfg, name: custom ? `${name}*` : name };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Copies the files of `from` into `to` as new, writable files (cached artifacts are read-only). */
async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile) await Deno.writeFile(`${to}/${e.name}`, await Deno.readFile(`${from}/${e.name}`));
  }
}

/**
 * Seeds an empty checkpoint directory from a shorter cached run's output: its checkpoint (so training
 * resumes at its last step) and its snapshots (so the curves cover the whole run).
 */
async function continueFrom(priorOut: string, ckptDir: string): Promise<void> {
  const ck = `${priorOut}/${DIT_CHECKPOINT.file}`;
  if (!(await exists(ck))) return;
  await Deno.mkdir(ckptDir, { recursive: true });
  await Deno.writeFile(`${ckptDir}/${DIT_CHECKPOINT.file}`, await Deno.readFile(ck));
  const snaps = `${priorOut}/${SNAPSHOTS}`;
  if (await exists(snaps)) await copyDir(snaps, `${ckptDir}/${SNAPSHOTS}`);
}

/** The `train` kind. */
export const trainKind = defineKind({
  name: "train",
  module: import.meta.url,
  description: "train a DiT, DiT+skips, U-ViT or MDT (DDPM mse+vb, or SiT velocity) with AdamW and EMA",
  gpu: true,
  params: { ...DIT_MODEL_PARAMS, ...DIT_TRAIN_PARAMS },
  inputs: { data: { doc: "a dataset artifact (mnist, encode)" } },
  outputs: {
    model: {
      doc: "model.safetensors (EMA), model_raw.safetensors, loss.csv, checkpoint.safetensors " +
        "(what a longer run continues from), snapshots/step_N.safetensors (EMA weights along the run)",
    },
  },
  headline: ["final_loss", "img_per_s", "train_seconds"],
  // A run of more steps continues from the checkpoint of a cached shorter one (bit-identical to training
  // straight through: the checkpoint holds the weights, EMA, AdamW moments, Philox position and loss log,
  // and every schedule depends on the step alone).
  extends: "steps",
  validate: (p, ctx) => [...validateTrainParams(p, ctx)],
  describe(p, ctx) {
    const data = single(ctx, "data");
    return {
      model: {
        space: data?.space,
        shape: data?.shape,
        numClasses: data?.numClasses,
        model: {
          objective: p.objective,
          classDropout: p.class_dropout,
          steps: p.steps,
          snapshotEvery: p.snapshot_every,
          stage: ctx.stage,
        },
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
    const meta = {
      objective: p.objective,
      data_space: data.space,
      data_info: JSON.stringify(data.info),
      steps: String(p.steps),
      batch_size: String(p.batch_size),
    };
    const snapDir = `${ctx.checkpointDir}/${SNAPSHOTS}`;
    if (ctx.prior) await continueFrom(ctx.prior.outputs.model, ctx.checkpointDir);
    const writeSnapshot = async (step: number, weights: Map<string, HostTensor>) => {
      await Deno.mkdir(snapDir, { recursive: true });
      await writeStateDict(`${snapDir}/${snapshotFile(step)}`, weights, cfg, {}, {
        ...meta,
        steps: String(step),
        weights: "ema",
      });
    };
    const res = await trainDiT(data, {
      ...p,
      model: cfg,
      seed: ctx.seed,
      ckptDir: ctx.checkpointDir,
      writeSnapshot,
    }, {
      log: (m) => ctx.log(m),
      signal: ctx.signal,
      onStep: (s) => ctx.progress({ step: s.step, total: s.total, loss: s.loss, "img/s": s.imgPerSec }),
    });
    const out = ctx.outputs.model;
    await writeStateDict(`${out}/model.safetensors`, res.ema, cfg, {}, { ...meta, weights: "ema" });
    await writeStateDict(`${out}/model_raw.safetensors`, await res.model.stateDict(), cfg, {}, {
      ...meta,
      weights: "raw",
    });
    res.model.dispose();
    // The final checkpoint and the snapshots go with the artifact (the checkpoint directory is removed).
    const ck = `${ctx.checkpointDir}/${DIT_CHECKPOINT.file}`;
    if (await exists(ck)) await Deno.copyFile(ck, `${out}/${DIT_CHECKPOINT.file}`);
    if (await exists(snapDir)) await copyDir(snapDir, `${out}/${SNAPSHOTS}`);
    await writeLossLog(out, res.losses, ["step", "loss", "mse", "vb"]);
    ctx.metrics({
      // Mean of the last tenth of the logged losses; null when nothing was trained (steps: 0).
      final_loss: tailMean(res.losses),
      img_per_s: res.imgPerSec,
      // The whole trajectory's training time: a run that continued a cached shorter one adds that run's.
      train_seconds: res.seconds + priorSeconds(ctx.prior?.metrics),
      params: res.params,
      gflops: gflops(cfg),
      model: cfg.name,
      block: cfg.block,
      arch: cfg.arch ?? "dit",
      skips: cfg.skips ?? false,
      ...(cfg.arch === "mdt"
        ? { mask_ratio: cfg.maskRatio ?? 0.3, decode_layers: cfg.decodeLayers ?? 0 }
        : {}),
      resumed_from: res.resumedFrom,
      continued_from: ctx.prior ? ctx.prior.key : null,
      batch_size: p.batch_size,
      steps: p.steps,
      // Training compute: forward GFLOPs per image × 3 (forward and backward) × images seen.
      train_gflops: gflops(cfg) * 3 * p.batch_size * p.steps,
    });
  },
});
registerKind(trainKind);

/** `train_seconds` recorded by the run this one continued (0 when none, or not recorded). */
function priorSeconds(metrics: Record<string, unknown> | undefined): number {
  const s = metrics?.train_seconds;
  return typeof s === "number" && Number.isFinite(s) ? s : 0;
}
