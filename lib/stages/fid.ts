/**
 * Stage kinds `fid-ref` and `fid`: Fréchet distance and k-NN precision/recall in the feature space of a
 * domain classifier (the LeNet of `train-classifier`, extractor "lenet-mnist"; see shared/spec/fid.md:
 * a Fréchet LeNet Distance, comparable only at the same N and with the same extractor).
 *
 * - `fid-ref` (data, classifier): the classifier's penultimate features of the real images, their mean and
 *   covariance in float64 (`stats.safetensors`: mu F64 [d], sigma F64 [d, d], n) and the features
 *   themselves (`features.safetensors`, for precision/recall). Its own cached stage: computed once per
 *   dataset and extractor.
 * - `fid` (samples, ref, classifier): the same statistics of the generated images, FID in float64
 *   (`lib/metrics/frechet.ts`), improved precision/recall with k = 3 (`lib/metrics/prdc.ts`), and
 *   `samples.npz` in the ADM evaluator's format (`arr_0`: NHWC uint8).
 * Every metric carries `feature_extractor`.
 * @module
 */

import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { type DataArtifact, readDataArtifact } from "../data/artifact.ts";
import { type LeNet, lenetFeatures, readLeNet } from "../models/lenet.ts";
import { frechetDistance, type GaussianStats, meanCov } from "../metrics/frechet.ts";
import { precisionRecall } from "../metrics/prdc.ts";
import { samplesToNhwcU8, writeNpz } from "../metrics/npz.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { getRuntime } from "../gpu/runtime.ts";
import { CLASSIFIER_FILE } from "./train_classifier.ts";

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

/** The `fid-ref` kind. */
export const fidRefKind = defineKind({
  name: "fid-ref",
  module: import.meta.url,
  description:
    "reference statistics (float64 mean/covariance) of real images in a classifier's feature space",
  gpu: true,
  params: {},
  inputs: {
    data: { doc: "a pixel dataset artifact (the real images)" },
    classifier: { doc: "a train-classifier output (the feature extractor)" },
  },
  outputs: { ref: { doc: `${STATS_FILE} (mu, sigma F64, n) and ${FEATURES_FILE} (the real features)` } },
  headline: ["n", "dim"],
  async run(ctx) {
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    const data = await readDataArtifact(ctx.inputs.data.dir);
    const ex = await loadExtractor(ctx.inputs.classifier.dir);
    try {
      checkPixels("fid-ref", data, ex.net);
      const t0 = performance.now();
      const { features, stats, dim } = await datasetStats(ex.net, data.x, data.count);
      const meta = {
        feature_extractor: ex.name,
        classifier_digest: ctx.inputs.classifier.digest,
        data_info: JSON.stringify(data.info),
      };
      await writeStats(`${ctx.outputs.ref}/${STATS_FILE}`, stats, meta);
      await writeSafetensors(`${ctx.outputs.ref}/${FEATURES_FILE}`, {
        features: { dtype: "F32", shape: [data.count, dim], data: features },
      }, meta);
      ctx.log(
        `${data.count} images → ${dim}-d ${ex.name} features in ${(performance.now() - t0).toFixed(0)} ms`,
      );
      ctx.metrics({ n: data.count, dim, feature_extractor: ex.name });
    } finally {
      ex.net.dispose();
    }
  },
});
registerKind(fidRefKind);

/** The `fid` kind. */
export const fidKind = defineKind({
  name: "fid",
  module: import.meta.url,
  description:
    "FID and k-NN precision/recall of samples against fid-ref statistics; samples.npz (ADM format)",
  gpu: true,
  params: {
    k: { type: "int", default: 3, min: 1, doc: "neighbours of the precision/recall manifolds (ADM: 3)" },
    pr_samples: {
      type: "int",
      default: 10000,
      min: 0,
      doc: "use at most this many real and generated samples for precision/recall (0: all; cost is O(N²))",
    },
  },
  inputs: {
    samples: { doc: "a pixel dataset artifact (generated images in [-1, 1])" },
    ref: { doc: "a fid-ref output computed with the same classifier" },
    classifier: { doc: "the train-classifier output the reference used" },
  },
  outputs: { fid: { doc: "samples.npz (arr_0: NHWC uint8) and the metrics" } },
  headline: ["fid", "precision", "recall"],
  async run(ctx) {
    const p = ctx.params;
    const runtime = await getRuntime();
    ctx.setAdapter(runtime.adapter);
    const samples = await readDataArtifact(ctx.inputs.samples.dir);
    const { stats: ref, metadata } = await readStats(`${ctx.inputs.ref.dir}/${STATS_FILE}`);
    if (metadata.classifier_digest && metadata.classifier_digest !== ctx.inputs.classifier.digest) {
      throw new Error(
        `fid: the reference statistics were computed with another classifier (digest ${metadata.classifier_digest}, ` +
          `this one ${ctx.inputs.classifier.digest}): FIDs are comparable only in the same feature space`,
      );
    }
    const realFeat = (await readSafetensors(`${ctx.inputs.ref.dir}/${FEATURES_FILE}`)).getF32("features");
    const ex = await loadExtractor(ctx.inputs.classifier.dir);
    let fake: Awaited<ReturnType<typeof datasetStats>>;
    try {
      checkPixels("fid", samples, ex.net);
      fake = await datasetStats(ex.net, samples.x, samples.count);
    } finally {
      ex.net.dispose();
    }
    if (fake.dim !== ref.dim) throw new Error(`fid: feature dimensions differ (${fake.dim} vs ${ref.dim})`);
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
    const pr = precisionRecall(realFeat, cap(nReal), fake.features, cap(samples.count), ref.dim, p.k);
    const name = metadata.feature_extractor ?? "lenet-mnist";
    ctx.log(
      `FID(${name}) ${fr.fid.toFixed(4)} at n = ${samples.count} vs ${ref.count} real; ` +
        `precision ${pr.precision.toFixed(4)}, recall ${pr.recall.toFixed(4)} (k = ${pr.k})`,
    );
    if (samples.count <= ref.dim) {
      ctx.log(
        `warning: ${samples.count} samples ≤ ${ref.dim} feature dims: the covariance is rank-deficient`,
      );
    }
    ctx.metrics({
      fid: fr.fid,
      precision: pr.precision,
      recall: pr.recall,
      n: samples.count,
      n_ref: ref.count,
      pr_n: cap(samples.count),
      pr_n_ref: cap(nReal),
      k: pr.k,
      feature_dim: ref.dim,
      fid_eps_used: fr.details.epsUsed,
      feature_extractor: name,
    });
  },
});
registerKind(fidKind);
