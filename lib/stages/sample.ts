/**
 * Stage kind `sample`: draws samples from a trained DiT with the ancestral DDPM or DDIM sampler (DDPM
 * objective) or an Euler/Heun ODE (SiT objective), with classifier-free guidance in the official
 * 3-channel mode or the all-channel mode, its unconditional half run by the final weights or by an earlier
 * EMA snapshot of the same run (`guide_snapshot`). Writes the samples (data space) as a dataset artifact and
 * a grid.
 * @module
 */

import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { writeDataArtifact } from "../data/artifact.ts";
import { saveGrid } from "../data/grid.ts";
import { readModelFile } from "../models/checkpoint.ts";
import { gflops } from "../models/config.ts";
import { snapshotFile, SNAPSHOTS } from "../models/snapshots.ts";
import { type Backbone, backboneClass, denoiserOf } from "../models/arch.ts";
import { createSchedule, spaceTimesteps } from "../diffusion/schedule.ts";
import type { Diagnostic } from "../pipeline/diagnostics.ts";
import { paramDefaults, type ParamSchema, type ParamValues } from "../pipeline/schema.ts";
import { single } from "./plan_checks.ts";
import { ddimSample, type Denoiser, pSample, type SampleOptions } from "../diffusion/gaussian.ts";
import { withWeakGuide } from "../diffusion/weak_guide.ts";
import { odeGrid, odeStep } from "../diffusion/sit.ts";
import { Generator } from "../tensor/rng.ts";
import { noGrad } from "../tensor/autograd.ts";
import { type Tensor, tidy } from "../tensor/tensor.ts";
import { getRuntime } from "../gpu/runtime.ts";

/** The parameters of the `sample` stage, as {@link sampleModel} takes them. */
export const SAMPLE_PARAMS = {
  num_samples: { type: "int", default: 64, min: 1 },
  batch_size: { type: "int", default: 64, min: 1 },
  sampler: {
    type: "enum",
    values: ["auto", "ddpm", "ddim", "euler", "heun"],
    default: "auto",
    doc: "auto: ddpm (DDPM models) or heun (SiT)",
  },
  steps: { type: "int", default: 250, min: 1, doc: "respaced DDPM/DDIM steps, or ODE steps" },
  eta: { type: "number", default: 0, min: 0, doc: "DDIM noise" },
  cfg_scale: { type: "number", default: 1, min: 0, doc: "classifier-free guidance scale (1: none)" },
  cfg_mode: {
    type: "enum",
    values: ["official", "all"],
    default: "official",
    doc: "guide 3 channels (official) or all",
  },
  cfg_interval: {
    type: "list",
    items: { type: "number", min: 0, max: 1 },
    minItems: 2,
    maxItems: 2,
    default: [0, 1],
    doc: "guide only steps whose trajectory position (0: noise … 1: data) is in [lo, hi)",
  },
  guide_snapshot: {
    type: "int",
    default: 0,
    min: 0,
    doc: "run guidance's unconditional half on the EMA snapshot of this training step of the same run " +
      "(a weaker model: lib/diffusion/weak_guide.ts); 0: on the sampled weights",
  },
  weights: { type: "enum", values: ["ema", "raw"], default: "ema" },
  snapshot: {
    type: "int",
    default: 0,
    min: 0,
    doc:
      "sample the EMA snapshot of this training step (the train stage's snapshot_every); 0: the final weights",
  },
  labels: {
    type: "enum",
    values: ["cycle", "uniform"],
    default: "cycle",
    doc: "0,1,2,… or uniform at random",
  },
  clip_denoised: {
    type: "enum",
    values: ["auto", "true", "false"],
    default: "auto",
    doc: "clamp predicted x0 to [-1,1] (auto: on for pixel-space models, off for latents as DiT)",
  },
} as const satisfies ParamSchema;

/** The values of {@link SAMPLE_PARAMS}. */
export type SampleParams = ParamValues<typeof SAMPLE_PARAMS>;

/** A DiT's training objective (its file's `objective` metadata). */
export type Objective = "ddpm" | "sit";

/**
 * Options of {@link sampleModel}: any sampling parameters (defaults otherwise), the model's objective and
 * data space (they resolve `sampler: auto` and `clip_denoised: auto`), the seed, and a progress callback.
 */
export type SampleModelOptions =
  & Partial<
    Omit<SampleParams, "num_samples" | "batch_size" | "weights" | "snapshot" | "labels" | "guide_snapshot">
  >
  & {
    seed: number;
    /** The weaker model that runs guidance's unconditional half (`guide_snapshot`); default: `model`. */
    guide?: Backbone;
    objective: Objective;
    /** The model's data space; `clip_denoised: auto` clamps in pixel space only (none when not given). */
    space?: "pixels" | "latents";
    /** Called after each step with (step, total). */
    onStep?: (step: number, total: number) => void;
  };

/** The sampler `sampler: auto` means: ddpm for DDPM models, heun for SiT. */
export function resolveSampler(
  sampler: SampleParams["sampler"],
  objective?: Objective,
): Exclude<SampleParams["sampler"], "auto"> {
  return sampler === "auto" ? (objective === "sit" ? "heun" : "ddpm") : sampler;
}

/** Whether predicted x0 is clamped: `auto` does in pixel space (as guided-diffusion), not for latents (as DiT). */
export function resolveClipDenoised(
  clip: SampleParams["clip_denoised"],
  space?: "pixels" | "latents",
): boolean {
  return clip === "auto" ? space === "pixels" : clip === "true";
}

/**
 * Samples one batch with the given labels; returns data-space values [N, C, H, W]. Guidance follows
 * `cfg_scale` and `cfg_mode`, only on the steps whose position on the trajectory lies in `cfg_interval`
 * [lo, hi) (Kynkäänniemi et al. 2024; 0 at the first step from pure noise, 1 at the end, step k of K at
 * k/K); the other steps run the conditional model alone (one forward of N, not 2N). With `opts.guide` the
 * guided steps' unconditional half runs on that model ({@link withWeakGuide}).
 */
export async function sampleModel(
  model: Backbone,
  labels: Uint32Array,
  opts: SampleModelOptions,
): Promise<Float32Array> {
  const defined = Object.entries(opts).filter(([, v]) => v !== undefined);
  const o = { ...paramDefaults(SAMPLE_PARAMS), ...Object.fromEntries(defined) as SampleModelOptions };
  const sampler = resolveSampler(o.sampler, o.objective);
  const cfg = model.cfg;
  const N = labels.length;
  const shape = [N, cfg.inChannels, cfg.inputSize, cfg.inputSize];
  const gen = new Generator(o.seed);
  const denoiser = denoiserOf(model);
  const guidedDenoiser = o.guide ? withWeakGuide(denoiser, denoiserOf(o.guide)) : denoiser;
  const guided: SampleOptions = {
    cfgScale: o.cfg_scale,
    cfgMode: o.cfg_mode,
    clipDenoised: resolveClipDenoised(o.clip_denoised, o.space),
    nullClass: cfg.numClasses,
  };
  const [gLo, gHi] = guidanceInterval(o.cfg_interval);
  const isGuided = (k: number, total: number) => k / total >= gLo && k / total < gHi;
  const at = (k: number, total: number): SampleOptions =>
    isGuided(k, total) ? guided : { ...guided, cfgScale: 1 };
  const den = (k: number, total: number): Denoiser => isGuided(k, total) ? guidedDenoiser : denoiser;
  let x: Tensor = gen.normal(shape).keep();
  const step = (f: () => Tensor) => {
    const next = noGrad(() => tidy(f));
    x.dispose();
    x = next;
  };
  if (o.objective === "sit") {
    if (sampler !== "euler" && sampler !== "heun") {
      throw new Error(`a SiT model samples with euler or heun, not ${sampler}`);
    }
    const grid = odeGrid(o.steps);
    for (let k = 0; k < o.steps; k++) {
      step(() => odeStep(den(k, o.steps), x, grid[k], grid[k + 1], labels, sampler, at(k, o.steps)));
      o.onStep?.(k + 1, o.steps);
    }
  } else {
    if (sampler !== "ddpm" && sampler !== "ddim") {
      throw new Error(`a DDPM model samples with ddpm or ddim, not ${sampler}`);
    }
    const s = createSchedule(sampler === "ddim" ? `ddim${o.steps}` : String(o.steps));
    for (let i = s.numTimesteps - 1; i >= 0; i--) {
      const so = at(s.numTimesteps - 1 - i, s.numTimesteps);
      const d = den(s.numTimesteps - 1 - i, s.numTimesteps);
      step(() =>
        sampler === "ddpm"
          ? pSample(d, s, x, i, labels, gen, so)
          : ddimSample(d, s, x, i, labels, gen, o.eta, so)
      );
      o.onStep?.(s.numTimesteps - i, s.numTimesteps);
    }
  }
  const out = await x.data();
  x.dispose();
  return out;
}

/** The weight file a `sample` stage reads: the final EMA or raw weights, or the EMA snapshot of a step. */
export async function modelFile(dir: string, weights: "ema" | "raw", snapshot: number): Promise<string> {
  if (snapshot === 0) return `${dir}/${weights === "ema" ? "model.safetensors" : "model_raw.safetensors"}`;
  const file = `${dir}/${SNAPSHOTS}/${snapshotFile(snapshot)}`;
  if (await Deno.stat(file).then(() => true, () => false)) return file;
  const have: number[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/${SNAPSHOTS}`)) {
      const m = /^step_(\d+)\.safetensors$/.exec(e.name);
      if (m) have.push(Number(m[1]));
    }
  } catch { /* none */ }
  throw new Error(
    `sample: the model has no snapshot of step ${snapshot} (expected ${file}); ` +
      (have.length
        ? `it has steps ${have.sort((a, b) => a - b).join(", ")}`
        : "it has none: set snapshot_every on its train stage"),
  );
}

/**
 * Why `snapshot`/`guide_snapshot: step` names no snapshot the upstream train stage writes (undefined when it
 * does, or when the stage's steps and snapshot interval are not known at plan time). Snapshots are written
 * after every `snapshot_every` steps, up to `steps`.
 */
export function snapshotDiagnostic(
  key: "snapshot" | "guide_snapshot",
  step: number,
  model?: { steps?: number; snapshotEvery?: number; stage: string },
): { message: string; hint: string } | undefined {
  const every = model?.snapshotEvery, steps = model?.steps;
  if (step === 0 || every === undefined || steps === undefined) return undefined;
  if (every === 0) {
    return {
      message: `\`${key}: ${step}\` needs the EMA snapshot of step ${step}, but \`${
        model!.stage
      }\` keeps none`,
      hint: `set \`snapshot_every\` on \`${model!.stage}\` (e.g. ${step})`,
    };
  }
  if (step % every === 0 && step <= steps) return undefined;
  const kept = Array.from({ length: Math.floor(steps / every) }, (_, i) => (i + 1) * every);
  const list = kept.length <= 4 ? kept.join(", ") : `${kept[0]}, ${kept[1]}, …, ${kept.at(-1)}`;
  return {
    message: `\`${key}: ${step}\` names no snapshot of \`${model!.stage}\`: ` +
      (kept.length
        ? `it keeps steps ${list}`
        : `it keeps none (snapshot_every ${every} > its ${steps} steps)`),
    hint: kept.length
      ? `use a multiple of ${every} up to ${kept.at(-1)}`
      : `lower \`snapshot_every\` on \`${model!.stage}\``,
  };
}

/** Checks a `cfg_interval` parameter: two numbers lo < hi in [0, 1]. */
export function guidanceInterval(v: readonly number[]): [number, number] {
  if (v.length !== 2 || !(v[0] < v[1])) {
    throw new Error(`sample: cfg_interval must be [lo, hi] with 0 ≤ lo < hi ≤ 1, got [${v.join(", ")}]`);
  }
  return [v[0], v[1]];
}

/** The `sample` kind. */
export const sampleKind = defineKind({
  name: "sample",
  module: import.meta.url,
  description: "sample a trained DiT, U-ViT or MDT (DDPM/DDIM or SiT ODE) with classifier-free guidance",
  gpu: true,
  params: SAMPLE_PARAMS,
  inputs: { model: { doc: "a train stage's model output" } },
  outputs: { samples: { doc: "data.safetensors (x in data space, y) and grid.png" } },
  headline: ["samples", "seconds"],
  validate(p, ctx) {
    const out: Diagnostic[] = [];
    const m = single(ctx, "model");
    const objective = m?.model?.objective;
    if (objective === "sit" && (p.sampler === "ddpm" || p.sampler === "ddim")) {
      out.push({
        pos: ctx.at("sampler"),
        message: `a SiT model (\`${m!.stage}\`) samples with euler or heun, not ${p.sampler}`,
        hint: "use `sampler: heun` (or `auto`)",
      });
    } else if (objective === "ddpm" && (p.sampler === "euler" || p.sampler === "heun")) {
      out.push({
        pos: ctx.at("sampler"),
        message: `a DDPM model (\`${m!.stage}\`) samples with ddpm or ddim, not ${p.sampler}`,
        hint: "use `sampler: ddpm`, `ddim` (or `auto`)",
      });
    }
    const sampler = resolveSampler(p.sampler, objective);
    if (sampler === "ddpm" || sampler === "ddim") {
      try {
        spaceTimesteps(1000, sampler === "ddim" ? `ddim${p.steps}` : String(p.steps));
      } catch (e) {
        out.push({
          pos: ctx.at("steps"),
          message: `\`steps: ${p.steps}\` does not fit the 1000 diffusion steps: ${(e as Error).message}`,
          hint: sampler === "ddim"
            ? "DDIM needs a step count reachable with an integer stride (e.g. 10, 25, 50, 100, 250)"
            : "at most 1000 respaced steps",
        });
      }
    }
    for (const key of ["snapshot", "guide_snapshot"] as const) {
      const d = snapshotDiagnostic(key, p[key], m?.model);
      if (d) out.push({ pos: ctx.at(key), ...d });
    }
    const dropout = m?.model?.classDropout;
    if (p.cfg_scale > 1 && dropout === 0) {
      out.push({
        pos: ctx.at("cfg_scale"),
        message:
          `classifier-free guidance (cfg_scale ${p.cfg_scale}) needs a model trained with class dropout, ` +
          `but \`${m!.stage}\` has class_dropout 0 (it never learnt the unconditional model)`,
        hint: "set `class_dropout` of the train stage (e.g. 0.1), or `cfg_scale: 1`",
      });
    }
    return out;
  },
  describe(_p, ctx) {
    const m = single(ctx, "model");
    return { samples: { space: m?.space, shape: m?.shape, numClasses: m?.numClasses } };
  },
  async run(ctx) {
    const p = ctx.params;
    const file = await modelFile(ctx.inputs.model.dir, p.weights, p.snapshot);
    const { cfg, state, metadata } = await readModelFile(file);
    const objective = metadata.objective === "sit" ? "sit" : "ddpm";
    const trainStep = Number(metadata.steps ?? 0);
    const batch = Number(metadata.batch_size ?? 0);
    const space = metadata.data_space === "latents" ? "latents" : "pixels";
    const clipDenoised = resolveClipDenoised(p.clip_denoised, space);
    const sampler = resolveSampler(p.sampler, objective);
    ctx.setAdapter((await getRuntime()).adapter);
    const model = backboneClass(cfg).fromHost(cfg, state);
    let guide: Backbone | undefined;
    if (p.guide_snapshot > 0) {
      const g = await readModelFile(await modelFile(ctx.inputs.model.dir, "ema", p.guide_snapshot));
      guide = backboneClass(g.cfg).fromHost(g.cfg, g.state);
    }
    const numClasses = cfg.numClasses;
    const gen = new Generator(BigInt(ctx.seed) + 0x5eedn);
    const labels = p.labels === "cycle"
      ? Uint32Array.from({ length: p.num_samples }, (_, i) => i % numClasses)
      : gen.randintCpu(p.num_samples, numClasses);
    const C = cfg.inChannels;
    const S = cfg.inputSize;
    const per = C * S * S;
    const all = new Float32Array(p.num_samples * per);
    const t0 = performance.now();
    const nb = Math.ceil(p.num_samples / p.batch_size);
    for (let b = 0; b < nb; b++) {
      ctx.signal.throwIfAborted();
      const lo = b * p.batch_size;
      const hi = Math.min(p.num_samples, lo + p.batch_size);
      const out = await sampleModel(model, labels.subarray(lo, hi), {
        ...p,
        seed: ctx.seed * 1_000_003 + b,
        guide,
        objective,
        space,
        onStep: (k, total) => ctx.progress({ step: b * total + k, total: nb * total }),
      });
      all.set(out, lo * per);
      ctx.log(`batch ${b + 1}/${nb}: ${hi - lo} samples`);
    }
    const seconds = (performance.now() - t0) / 1000;
    model.dispose();
    guide?.dispose();
    await writeDataArtifact(ctx.outputs.samples, {
      x: all,
      y: labels,
      shape: [C, S, S],
      count: p.num_samples,
      numClasses,
      classNames: Array.from({ length: numClasses }, (_, i) => String(i)),
      space,
      info: {
        sampler,
        steps: p.steps,
        cfg_scale: p.cfg_scale,
        cfg_mode: p.cfg_mode,
        cfg_interval: p.cfg_interval,
        guide_snapshot: p.guide_snapshot,
        clip_denoised: clipDenoised,
        weights: p.weights,
        model: cfg.name,
      },
    });
    if (space === "pixels" && (C === 1 || C === 3)) {
      const n = Math.min(p.num_samples, 100);
      await saveGrid(
        { data: all.subarray(0, n * per), shape: [n, C, S, S] },
        Math.min(10, n),
        `${ctx.outputs.samples}/grid.png`,
      );
    }
    ctx.metrics({
      samples: p.num_samples,
      seconds,
      samples_per_s: p.num_samples / seconds,
      sampler,
      steps: p.steps,
      cfg_scale: p.cfg_scale,
      guide_snapshot: p.guide_snapshot,
      clip_denoised: clipDenoised,
      // Where the weights are on the training curve: step and training compute (GFLOPs × 3 × images seen).
      train_step: trainStep,
      gflops: gflops(cfg),
      train_gflops: batch > 0 ? gflops(cfg) * 3 * batch * trainStep : null,
    });
  },
});
registerKind(sampleKind);
