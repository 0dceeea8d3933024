/**
 * Stage kinds `fid-ref` and `fid`: Fréchet distance and k-NN precision/recall in the feature space of one
 * feature extractor (shared/spec/fid.md: scores are comparable only at the same N and with the same
 * extractor), chosen by the `extractor` parameter:
 *
 * - `classifier` (default): the penultimate features of a domain classifier, the LeNet of `train-classifier`
 *   given as the `classifier` input (extractor "lenet-mnist": a Fréchet LeNet Distance);
 * - `inception`: pool3 (2048-d) of the FID Inception-v3 (lib/models/inception.ts), as pytorch-fid computes
 *   it: images (1 channel replicated to 3) rounded to uint8 as PNG files hold them (`quantize`, default on),
 *   bilinear resize to 299×299, 2x − 1. The weights come from the `weights` parameter: pytorch-fid's
 *   `pt_inception-2015-12-05-6726825d.pth` converted by tools/convert_inception_checkpoint.py (which names
 *   the extractor "inception-v3-fid" in the file's metadata when the file is the published one; the name
 *   is taken from there). Being a `path` parameter, the file's content digest is part of the cache key.
 *   `fid` then also reports the Inception Score of the samples (10 splits, softmax of the 1008 unbiased
 *   logits, lib/metrics/inception_score.ts).
 *
 * - `fid-ref` (data[, classifier]): the features of the real images, their mean and covariance in float64
 *   (`stats.safetensors`: mu F64 [d], sigma F64 [d, d], n) and the features themselves
 *   (`features.safetensors`, for precision/recall). Its own cached stage: computed once per dataset and
 *   extractor.
 * - `fid` (samples, ref[, classifier]): the same statistics of the generated images, FID in float64
 *   (`lib/metrics/frechet.ts`), improved precision/recall with k = 3 (`lib/metrics/prdc.ts`), and
 *   `samples.npz` in the ADM evaluator's format (`arr_0`: NHWC uint8). It refuses a reference computed with
 *   another extractor (other classifier, other weights, other resize or quantisation).
 *   For small N (shared/spec/science.md) it adds a 95% bootstrap interval of the FID over the generated
 *   features (`fid_low`, `fid_high`), KID (unbiased at any N; `kid`, `kid_std` over subsets), and, when a
 *   domain classifier is given and the samples carry its labels, the **class accuracy** of conditional
 *   samples (the share the classifier assigns to the class they were generated for, with a Wilson
 *   interval and per-class values). For real images the same number is the classifier's accuracy on them.
 * Every metric carries `feature_extractor`.
 * @module
 */

import { defineKind, type InputArtifact } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { digestPath } from "../pipeline/hash.ts";
import { type DataArtifact, readDataArtifact } from "../data/artifact.ts";
import { CLASSIFIER_FILE, type LeNet, lenetFeatures, lenetLogits, readLeNet } from "../models/lenet.ts";
import {
  DEFAULT_INCEPTION_WEIGHTS,
  FID_WEIGHTS_URL,
  INCEPTION_FID_CLASSES,
  INCEPTION_INPUT_SIZE,
  INCEPTION_MIN_SIZE,
  inceptionFeatures,
  type InceptionV3,
  loadInception,
} from "../models/inception.ts";
import { frechetDistance, type GaussianStats, meanCov } from "../metrics/frechet.ts";
import { inceptionScore } from "../metrics/inception_score.ts";
import { precisionRecall } from "../metrics/prdc.ts";
import { kernelInceptionDistance } from "../metrics/kid.ts";
import { bootstrapFid, classAccuracy, drawSpread } from "../metrics/intervals.ts";
import { samplesToNhwcU8, writeNpz } from "../metrics/npz.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { getRuntime } from "../gpu/runtime.ts";
import type { Diagnostic } from "../pipeline/diagnostics.ts";
import type { ValidateContext } from "../pipeline/stage.ts";
import { expectSpace } from "./plan_checks.ts";
import type { ParamSchema, ParamValues } from "../pipeline/schema.ts";

/** Plan-time checks shared by `fid-ref` and `fid`: the extractor has what it needs. */
function validateExtractor(
  kind: string,
  p: ExtractorParams,
  ctx: ValidateContext,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (p.extractor === "classifier" && ctx.input("classifier").length === 0) {
    out.push({
      pos: ctx.at("extractor"),
      message: `${kind} stage \`${ctx.stage}\`: extractor classifier needs the \`classifier\` input ` +
        "(a train-classifier output), and none is bound",
      hint: "bind `classifier: <train-classifier stage>.classifier`, or use `extractor: inception`",
    });
  }
  if (p.extractor === "inception" && p.weights === undefined) {
    out.push({
      pos: ctx.at("extractor"),
      message: `${kind} stage \`${ctx.stage}\`: extractor inception needs \`weights:\`, the FID Inception ` +
        "weights converted to safetensors",
      hint: `e.g. \`weights: ${DEFAULT_INCEPTION_WEIGHTS}\` (relative to the pipeline file): download ` +
        `pt_inception-2015-12-05-6726825d.pth from ${FID_WEIGHTS_URL} and run ` +
        `tools/convert_inception_checkpoint.py <pth> ${DEFAULT_INCEPTION_WEIGHTS}`,
    });
  }
  return out;
}

/** Statistics file of `fid-ref`. */
export const STATS_FILE = "stats.safetensors";
/** Feature file of `fid-ref` (the real features, for precision/recall). */
export const FEATURES_FILE = "features.safetensors";

/** A loaded classifier and the name of its feature space. */
export interface FeatureExtractor {
  net: LeNet;
  name: string;
}

/** Loads the classifier of a `train-classifier` output directory. */
export async function loadExtractor(dir: string): Promise<FeatureExtractor> {
  const { net, metadata } = await readLeNet(`${dir}/${CLASSIFIER_FILE}`);
  return { net, name: metadata.feature_extractor ?? "lenet-mnist" };
}

function checkPixels(what: string, d: DataArtifact, net: LeNet): void {
  if (d.space !== "pixels") throw new Error(`${what}: expected a pixel dataset, got ${d.space}`);
  const c = net.cfg;
  if (d.shape[0] !== c.inChannels || d.shape[1] !== c.inputSize || d.shape[2] !== c.inputSize) {
    throw new Error(
      `${what}: images [${d.shape}] do not fit the classifier's input [${c.inChannels}, ${c.inputSize}, ${c.inputSize}]`,
    );
  }
}

/** Features and float64 statistics of a pixel dataset under a classifier. */
export async function datasetStats(
  net: LeNet,
  x: Float32Array,
  count: number,
): Promise<{ features: Float32Array; stats: GaussianStats; dim: number }> {
  if (count < 2) throw new Error(`FID statistics need at least 2 images, got ${count}`);
  const features = await lenetFeatures(net, x, count);
  const dim = features.length / count;
  return { features, stats: meanCov(features, count, dim), dim };
}

/** Writes `stats.safetensors` (mu, sigma F64; n) with the extractor's name in the metadata. */
export async function writeStats(
  path: string,
  s: GaussianStats,
  meta: Record<string, string>,
): Promise<void> {
  await writeSafetensors(path, {
    mu: { dtype: "F64", shape: [s.dim], data: s.mu },
    sigma: { dtype: "F64", shape: [s.dim, s.dim], data: s.sigma },
    n: { dtype: "I64", shape: [], data: BigInt64Array.of(BigInt(s.count)) },
  }, { ...meta, format: "ditflow-fid-stats-v1" });
}

/** Reads a file written by {@link writeStats}. */
export async function readStats(
  path: string,
): Promise<{ stats: GaussianStats; metadata: Record<string, string> }> {
  const f = await readSafetensors(path);
  const md = f.metadata ?? {};
  if (md.format !== "ditflow-fid-stats-v1") throw new Error(`${path} is not a fid-ref statistics file`);
  const mu = Float64Array.from(f.getF64("mu"));
  const sigma = Float64Array.from(f.getF64("sigma"));
  const n = Number(f.getF64("n")[0]);
  return { stats: { mu, sigma, dim: mu.length, count: n }, metadata: md };
}

/** The parameters `fid-ref` and `fid` share (the extractor's choice and settings). */
export const EXTRACTOR_PARAMS = {
  extractor: {
    type: "enum",
    values: ["classifier", "inception"],
    default: "classifier",
    doc: "classifier: the LeNet of the `classifier` input; inception: the FID Inception-v3 of `weights`",
  },
  weights: {
    type: "path",
    optional: true,
    doc: `extractor inception: the converted FID weights, e.g. ${DEFAULT_INCEPTION_WEIGHTS} ` +
      `(from ${FID_WEIGHTS_URL} via tools/convert_inception_checkpoint.py)`,
  },
  size: {
    type: "int",
    default: INCEPTION_INPUT_SIZE,
    min: INCEPTION_MIN_SIZE,
    doc: "extractor inception: resize side (299 is the FID standard; others are named in feature_extractor)",
  },
  quantize: {
    type: "bool",
    default: true,
    doc: "extractor inception: round images to uint8 first, as PNG files and the ADM .npz hold them",
  },
  batch_size: {
    type: "int",
    default: 0,
    min: 0,
    doc: "extractor inception: images per forward pass (0: as many as the adapter's buffers allow, ≤ 16)",
  },
} as const satisfies ParamSchema;

/** The values of {@link EXTRACTOR_PARAMS}, as {@link openExtractor} and {@link extract} take them. */
export type ExtractorParams = ParamValues<typeof EXTRACTOR_PARAMS>;

/** A loaded feature extractor of either kind, with what identifies its feature space. */
interface Extractor {
  kind: "classifier" | "inception";
  /** The `feature_extractor` name reported beside every metric. */
  name: string;
  /** Content digest of the classifier artifact or the weight file. */
  digest: string;
  /** Settings that change the features (stored with the reference and compared by `fid`). */
  settings: Record<string, string>;
  lenet?: LeNet;
  inception?: InceptionV3;
}

async function openExtractor(
  what: string,
  p: ExtractorParams,
  classifier: InputArtifact | undefined,
): Promise<Extractor> {
  if (p.extractor === "classifier") {
    if (!classifier) {
      throw new Error(
        `${what}: extractor classifier needs the \`classifier\` input (a train-classifier output)`,
      );
    }
    const ex = await loadExtractor(classifier.dir);
    return { kind: "classifier", name: ex.name, digest: classifier.digest, settings: {}, lenet: ex.net };
  }
  if (!p.weights) {
    throw new Error(
      `${what}: extractor inception needs \`weights:\`, the FID Inception weights converted to safetensors ` +
        `(e.g. ${DEFAULT_INCEPTION_WEIGHTS}, relative to the pipeline file): download ` +
        `pt_inception-2015-12-05-6726825d.pth from ${FID_WEIGHTS_URL} and run ` +
        `/usr/bin/python3 tools/convert_inception_checkpoint.py <pth> ${DEFAULT_INCEPTION_WEIGHTS}`,
    );
  }
  const loaded = await loadInception(p.weights);
  const digest = (await digestPath(p.weights)).digest;
  const name = loaded.name + (p.size === INCEPTION_INPUT_SIZE ? "" : `@${p.size}px`);
  return {
    kind: "inception",
    name,
    digest,
    settings: { inception_size: String(p.size), inception_quantize: String(p.quantize) },
    inception: loaded.net,
  };
}

function closeExtractor(ex: Extractor): void {
  ex.lenet?.dispose();
  ex.inception?.dispose();
}

/** Features (and, for inception with `logits`, the unbiased 1008 logits) of a pixel dataset. */
async function extract(
  what: string,
  ex: Extractor,
  p: ExtractorParams,
  d: DataArtifact,
  opts: { logits?: boolean; onBatch?: (done: number, total: number) => void } = {},
): Promise<{ features: Float32Array; stats: GaussianStats; dim: number; logits?: Float32Array }> {
  if (ex.lenet) {
    checkPixels(what, d, ex.lenet);
    return await datasetStats(ex.lenet, d.x, d.count);
  }
  if (d.space !== "pixels") throw new Error(`${what}: expected a pixel dataset, got ${d.space}`);
  const [C, H, W] = d.shape;
  if (C !== 1 && C !== 3) {
    throw new Error(`${what}: the Inception takes 1- or 3-channel images, not [${d.shape}]`);
  }
  if (d.count < 2) throw new Error(`FID statistics need at least 2 images, got ${d.count}`);
  const f = await inceptionFeatures(ex.inception!, { data: d.x, shape: [d.count, C, H, W] }, {
    size: p.size,
    inputRange: "[-1,1]",
    quantize: p.quantize,
    batch: p.batch_size || undefined,
    logits: opts.logits ? "unbiased" : undefined,
    onBatch: opts.onBatch,
  });
  const dim = f.pool3.length / d.count;
  return { features: f.pool3, stats: meanCov(f.pool3, d.count, dim), dim, logits: f.logits };
}

/** The `fid-ref` kind. */
export const fidRefKind = defineKind({
  name: "fid-ref",
  module: import.meta.url,
  description: "reference statistics (float64 mean/covariance) of real images in a feature extractor's space",
  gpu: true,
  params: EXTRACTOR_PARAMS,
  inputs: {
    data: { doc: "a pixel dataset artifact (the real images)" },
    classifier: { doc: "a train-classifier output (extractor classifier)", optional: true },
  },
  outputs: { ref: { doc: `${STATS_FILE} (mu, sigma F64, n) and ${FEATURES_FILE} (the real features)` } },
  headline: ["n", "dim"],
  validate: (p, ctx) => [
    ...expectSpace(ctx, "data", "pixels", "fid-ref"),
    ...validateExtractor("fid-ref", p, ctx),
  ],
  async run(ctx) {
    const p = ctx.params;
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    const data = await readDataArtifact(ctx.inputs.data.dir);
    const ex = await openExtractor("fid-ref", p, ctx.inputs.classifier);
    try {
      const t0 = performance.now();
      const { features, stats, dim } = await extract("fid-ref", ex, p, data, {
        onBatch: (done, total) => ctx.progress({ step: done, total }),
      });
      const meta: Record<string, string> = {
        feature_extractor: ex.name,
        extractor: ex.kind,
        extractor_digest: ex.digest,
        ...ex.settings,
        data_info: JSON.stringify(data.info),
      };
      if (ex.kind === "classifier") meta.classifier_digest = ex.digest;
      await writeStats(`${ctx.outputs.ref}/${STATS_FILE}`, stats, meta);
      await writeSafetensors(`${ctx.outputs.ref}/${FEATURES_FILE}`, {
        features: { dtype: "F32", shape: [data.count, dim], data: features },
      }, meta);
      ctx.log(
        `${data.count} images → ${dim}-d ${ex.name} features in ${(performance.now() - t0).toFixed(0)} ms`,
      );
      ctx.metrics({ n: data.count, dim, feature_extractor: ex.name });
    } finally {
      closeExtractor(ex);
    }
  },
});
registerKind(fidRefKind);

/** Throws unless the reference statistics were computed in the same feature space as `ex`. */
function checkSameSpace(md: Record<string, string>, ex: Extractor): void {
  const refKind = md.extractor ?? "classifier";
  const refDigest = md.extractor_digest ?? md.classifier_digest;
  const problems: string[] = [];
  if (refKind !== ex.kind) problems.push(`extractor ${refKind} vs ${ex.kind}`);
  else if (refDigest && refDigest !== ex.digest) {
    problems.push(
      `${ex.kind === "classifier" ? "classifier" : "weights"} digest ${refDigest} vs ${ex.digest}`,
    );
  }
  for (const [k, v] of Object.entries(ex.settings)) {
    if (md[k] !== undefined && md[k] !== v) problems.push(`${k} ${md[k]} vs ${v}`);
  }
  if (problems.length) {
    throw new Error(
      `fid: the reference statistics were computed in another feature space (${problems.join("; ")}; ` +
        `reference: ${
          md.feature_extractor ?? "?"
        }, this stage: ${ex.name}): FIDs are comparable only in the ` +
        `same feature space`,
    );
  }
}

/**
 * The classifier's logits for each sample, when a domain classifier is at hand (the `classifier` input,
 * also beside the inception extractor) and the samples carry labels of its classes; else null.
 */
async function samplesClassLogits(
  samples: DataArtifact,
  ex: Extractor,
  classifier: InputArtifact | undefined,
): Promise<{ logits: Float32Array; classes: number } | null> {
  let net = ex.lenet;
  let owned: LeNet | undefined;
  if (!net && classifier) net = owned = (await loadExtractor(classifier.dir)).net;
  try {
    if (!net || samples.numClasses !== net.cfg.numClasses) return null;
    const c = net.cfg;
    if (samples.shape.join() !== [c.inChannels, c.inputSize, c.inputSize].join()) return null;
    return { logits: await lenetLogits(net, samples.x, samples.count), classes: c.numClasses };
  } finally {
    owned?.dispose();
  }
}

/** Above this feature dimension `bootstrap: -1` (the default) computes no interval. */
export const BOOTSTRAP_MAX_AUTO_DIM = 512;

/** The bootstrap resamples of a `bootstrap` parameter for features of `dim` dimensions. */
export function bootstrapReps(param: number, dim: number): number {
  return param >= 0 ? param : dim <= BOOTSTRAP_MAX_AUTO_DIM ? 200 : 0;
}

/** The parameters of the `fid` stage: the extractor's, and how the scores and their intervals are computed. */
export const FID_PARAMS = {
  ...EXTRACTOR_PARAMS,
  k: { type: "int", default: 3, min: 1, doc: "neighbours of the precision/recall manifolds (ADM: 3)" },
  pr_samples: {
    type: "int",
    default: 10000,
    min: 0,
    doc: "use at most this many real and generated samples for precision/recall (0: all; cost is O(N²))",
  },
  is_splits: {
    type: "int",
    default: 10,
    min: 1,
    doc: "extractor inception: splits of the Inception Score (the standard: 10)",
  },
  bootstrap: {
    type: "int",
    default: -1,
    min: -1,
    doc: "resamples of the generated features for FID's 95% interval (0: none; -1: 200 for features of at " +
      `most ${BOOTSTRAP_MAX_AUTO_DIM} dimensions, none above: each resample costs a d×d eigendecomposition)`,
  },
  per_draw: {
    type: "int",
    default: 0,
    min: 0,
    doc: "score disjoint draws of this many samples; report the mean and spread (real-data floors at the " +
      "generated N; 0: all samples as one set, with a bootstrap interval)",
  },
  kid_subsets: { type: "int", default: 100, min: 0, doc: "random subsets of the KID estimate (0: no KID)" },
  kid_subset_size: {
    type: "int",
    default: 1000,
    min: 2,
    doc: "rows per KID subset, capped at the smaller set (torch-fidelity: 1000)",
  },
} as const satisfies ParamSchema;

/** The values of {@link FID_PARAMS}. */
export type FidParams = ParamValues<typeof FID_PARAMS>;

/** What the scores of `fid` are computed from. */
interface Scores {
  ref: GaussianStats;
  fake: { features: Float32Array; stats: GaussianStats; dim: number };
  /** The real features (`fid-ref`'s) and their count. */
  realFeat: Float32Array;
  nReal: number;
  /** The number of generated samples. */
  n: number;
  /** The FID of all of them. */
  fid: number;
  seed: number;
  /** The number of samples precision/recall uses of `n` (`pr_samples`). */
  cap: (n: number) => number;
}

/**
 * The FID's interval: with `per_draw`, FID, precision and recall at that N as the mean over disjoint draws
 * with the draws' spread as the interval (real-data floors at the generated N); else, with `bootstrap` (see {@link bootstrapReps}), a
 * 95% bootstrap interval over the generated features (reference fixed); else none.
 */
function fidInterval(p: FidParams, sc: Scores, log: (m: string) => void): Record<string, unknown> {
  const { ref, fake, realFeat, nReal, cap } = sc;
  if (p.per_draw > 0) {
    const dr = drawSpread(ref, fake.features, sc.n, ref.dim, p.per_draw);
    const d = ref.dim, per = p.per_draw;
    const prs = dr.draws.map((_, i) =>
      precisionRecall(
        realFeat,
        cap(nReal),
        fake.features.subarray(i * per * d, (i + 1) * per * d),
        per,
        d,
        p.k,
      )
    );
    const avg = (f: (x: (typeof prs)[number]) => number) => prs.reduce((a, x) => a + f(x), 0) / prs.length;
    log(
      `${dr.draws.length} disjoint draws of ${per}: FID ${dr.value.toFixed(4)} ± ${dr.std.toFixed(4)} ` +
        `(draws ${dr.draws.map((v) => v.toFixed(2)).join(", ")}); precision ${
          avg((x) => x.precision).toFixed(4)
        }, ` +
        `recall ${avg((x) => x.recall).toFixed(4)}`,
    );
    return {
      fid: dr.value,
      fid_low: dr.low,
      fid_high: dr.high,
      fid_draw_std: dr.std,
      fid_draws: dr.draws.length,
      fid_all: sc.fid,
      precision: avg((x) => x.precision),
      recall: avg((x) => x.recall),
      n: per,
      n_total: sc.n,
      pr_n: per,
    };
  }
  const reps = bootstrapReps(p.bootstrap, ref.dim);
  if (reps > 0) {
    const b = bootstrapFid(ref, fake.features, sc.n, ref.dim, { reps, seed: sc.seed });
    log(
      `FID 95% bootstrap interval [${b.low.toFixed(3)}, ${b.high.toFixed(3)}] (${b.reps} resamples of the ` +
        `generated features, reference fixed; shifted by the bootstrap bias ${b.bias.toFixed(3)})`,
    );
    return {
      fid_low: b.low,
      fid_high: b.high,
      fid_boot_std: b.std,
      fid_boot_bias: b.bias,
      fid_bootstrap: b.reps,
    };
  }
  if (p.bootstrap < 0) {
    log(
      `no FID interval for ${ref.dim}-d features by default (each bootstrap resample costs a ` +
        `${ref.dim}×${ref.dim} eigendecomposition); set bootstrap: N to compute one`,
    );
  }
  return {};
}

/** KID over `kid_subsets` random subsets (of at most `per_draw` rows when scoring draws). */
function kidMetrics(p: FidParams, sc: Scores, log: (m: string) => void): Record<string, unknown> {
  const k = kernelInceptionDistance(sc.fake.features, sc.n, sc.realFeat, sc.nReal, sc.ref.dim, {
    subsets: p.kid_subsets,
    subsetSize: p.per_draw > 0 ? Math.min(p.per_draw, p.kid_subset_size) : p.kid_subset_size,
    seed: sc.seed,
  });
  log(`KID ${k.kid.toExponential(4)} ± ${k.std.toExponential(2)} (${k.subsets} subsets of ${k.subsetSize})`);
  return { kid: k.kid, kid_std: k.std, kid_subset_size: k.subsetSize };
}

/** The share of samples the domain classifier assigns to the class they were generated for. */
function classAccuracyMetrics(
  cl: { logits: Float32Array; classes: number },
  samples: DataArtifact,
  log: (m: string) => void,
): Record<string, unknown> {
  const acc = classAccuracy(cl.logits, samples.y, cl.classes);
  log(
    `class accuracy ${acc.value.toFixed(4)} [${acc.low.toFixed(4)}, ${acc.high.toFixed(4)}] of ${acc.n} ` +
      `(per class: ${acc.perClass.map((v) => v.toFixed(2)).join(" ")})`,
  );
  return {
    class_accuracy: acc.value,
    class_accuracy_low: acc.low,
    class_accuracy_high: acc.high,
    class_accuracy_per_class: acc.perClass,
  };
}

/** The Inception Score of the samples' unbiased logits (`is_splits` splits). */
function inceptionScoreMetrics(
  p: FidParams,
  logits: Float32Array,
  n: number,
  name: string,
  log: (m: string) => void,
): Record<string, unknown> {
  const is = inceptionScore(logits, n, INCEPTION_FID_CLASSES, p.is_splits);
  log(
    `Inception Score(${name}) ${is.mean.toFixed(4)} ± ${is.std.toFixed(4)} (${is.splits} splits of ` +
      `${n} samples; softmax of the 1008 unbiased logits)`,
  );
  return {
    inception_score: is.mean,
    inception_score_std: is.std,
    is_splits: is.splits,
    inception_size: p.size,
    uint8_inputs: p.quantize,
  };
}

/** The `fid` kind. */
export const fidKind = defineKind({
  name: "fid",
  module: import.meta.url,
  description:
    "FID and k-NN precision/recall of samples against fid-ref statistics (+ Inception Score with the " +
    "inception extractor); samples.npz (ADM format)",
  gpu: true,
  params: FID_PARAMS,
  inputs: {
    samples: { doc: "a pixel dataset artifact (generated images in [-1, 1])" },
    ref: { doc: "a fid-ref output computed with the same extractor" },
    classifier: {
      doc: "the train-classifier output the reference used (extractor classifier)",
      optional: true,
    },
  },
  outputs: { fid: { doc: "samples.npz (arr_0: NHWC uint8) and the metrics" } },
  headline: ["fid", "class_accuracy", "recall"],
  validate: (p, ctx) => [
    ...expectSpace(ctx, "samples", "pixels", "fid"),
    ...validateExtractor("fid", p, ctx),
  ],
  async run(ctx) {
    const p = ctx.params;
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    const samples = await readDataArtifact(ctx.inputs.samples.dir);
    const { stats: ref, metadata } = await readStats(`${ctx.inputs.ref.dir}/${STATS_FILE}`);
    const ex = await openExtractor("fid", p, ctx.inputs.classifier);
    let fake: Awaited<ReturnType<typeof extract>>;
    let classLogits: { logits: Float32Array; classes: number } | null = null;
    try {
      checkSameSpace(metadata, ex);
      const isInception = ex.kind === "inception";
      if (isInception && samples.count < p.is_splits) {
        throw new Error(`fid: ${samples.count} samples cannot fill ${p.is_splits} Inception Score splits`);
      }
      fake = await extract("fid", ex, p, samples, {
        logits: isInception,
        onBatch: (done, total) => ctx.progress({ step: done, total }),
      });
      classLogits = await samplesClassLogits(samples, ex, ctx.inputs.classifier);
    } finally {
      closeExtractor(ex);
    }
    if (fake.dim !== ref.dim) throw new Error(`fid: feature dimensions differ (${fake.dim} vs ${ref.dim})`);
    const realFeat = (await readSafetensors(`${ctx.inputs.ref.dir}/${FEATURES_FILE}`)).getF32("features");
    const [C, H, W] = samples.shape;
    await writeNpz(`${ctx.outputs.fid}/samples.npz`, {
      arr_0: {
        descr: "|u1",
        shape: [samples.count, H, W, C],
        data: samplesToNhwcU8(samples.x, samples.count, C, H, W),
      },
    });
    const fr = frechetDistance(ref.mu, ref.sigma, fake.stats.mu, fake.stats.sigma);
    const nReal = realFeat.length / ref.dim;
    const cap = (n: number) => (p.pr_samples > 0 ? Math.min(n, p.pr_samples) : n);
    // With per_draw the draws' precision and recall replace these (fidInterval), so the k-NN of all the
    // samples, quadratic in their number (9,000² distances for the real-digit floor), is not computed.
    const pr = p.per_draw > 0
      ? null
      : precisionRecall(realFeat, cap(nReal), fake.features, cap(samples.count), ref.dim, p.k);
    const name = ex.name;
    ctx.log(
      `FID(${name}) ${fr.fid.toFixed(4)} at n = ${samples.count} vs ${ref.count} real` +
        (pr ? `; precision ${pr.precision.toFixed(4)}, recall ${pr.recall.toFixed(4)} (k = ${pr.k})` : ""),
    );
    if (samples.count <= ref.dim) {
      ctx.log(
        `warning: ${samples.count} samples ≤ ${ref.dim} feature dims: the covariance is rank-deficient`,
      );
    }
    const metrics: Record<string, unknown> = {
      fid: fr.fid,
      precision: pr?.precision, // per_draw: set by fidInterval (the keys keep their order)
      recall: pr?.recall,
      n: samples.count,
      n_ref: ref.count,
      pr_n: cap(samples.count),
      pr_n_ref: cap(nReal),
      k: p.k,
      feature_dim: ref.dim,
      fid_eps_used: fr.details.epsUsed,
      feature_extractor: name,
    };
    const scores: Scores = { ref, fake, realFeat, nReal, n: samples.count, fid: fr.fid, seed: ctx.seed, cap };
    const log = (m: string) => ctx.log(m);
    Object.assign(metrics, fidInterval(p, scores, log));
    if (p.kid_subsets > 0) Object.assign(metrics, kidMetrics(p, scores, log));
    if (classLogits) Object.assign(metrics, classAccuracyMetrics(classLogits, samples, log));
    if (fake.logits) Object.assign(metrics, inceptionScoreMetrics(p, fake.logits, samples.count, name, log));
    ctx.metrics(metrics);
  },
});
registerKind(fidKind);
