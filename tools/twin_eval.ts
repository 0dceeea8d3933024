/**
 * Scores a latents samples artifact (from tools/twin_mnist.py, or any `sample` stage output) exactly as the
 * main job (pipelines/mnist.yaml) scores its own samples: decoded by the pipeline's `vae` stage output
 * (lib/stages/decode.ts), then FID with a 95% bootstrap interval, KID, k-NN precision/recall (k = 3) and the
 * class accuracy in the features of the `classifier` stage's LeNet against the `ref` stage's statistics
 * (the same lib/metrics functions and defaults as lib/stages/fid.ts). Prints one JSON line.
 *
 * The three stage artifacts are found in the store as the pipeline would find them: the cache keys of the
 * current code (`analysePlan`); when the store has none under these keys (code changed since), the
 * pipeline's last successful run (its ref, as `ditflow show` does), with a note on stderr.
 *
 *   deno run -A tools/twin_eval.ts --pipeline pipelines/mnist.yaml --cache /work/main/.ditflow \
 *     --samples /tmp/twin/ddpm_lr2e-3_s0 [--samples DIR ...] [--grid grid.png] [--seed 0]
 *
 * `--locate latents.latents` prints the latents directory that the twin should train on (resolved the same
 * way, so that its VAE is the one that decodes here); a samples artifact whose recorded latents came from
 * another VAE is refused. With several `--samples` it prints one line per artifact. `--seed` seeds the bootstrap and KID subsets
 * (the fid stage uses the pipeline seed, 0).
 * @module
 */

import { parseArgs } from "node:util";
import "../lib/stages/mod.ts";
import { loadPipeline } from "../lib/pipeline/load.ts";
import { analysePlan } from "../lib/pipeline/engine.ts";
import { defaultCacheRoot, Store } from "../lib/pipeline/store.ts";
import { formatDiagnostics } from "../lib/pipeline/diagnostics.ts";
import { readDataArtifact } from "../lib/data/artifact.ts";
import { saveGrid } from "../lib/data/grid.ts";
import { decodeLatents, resolveVae } from "../lib/stages/decode.ts";
import { datasetStats, FEATURES_FILE, loadExtractor, readStats, STATS_FILE } from "../lib/stages/fid.ts";
import { AutoencoderKL } from "../lib/models/autoencoder_kl.ts";
import { lenetLogits } from "../lib/models/lenet.ts";
import { frechetDistance } from "../lib/metrics/frechet.ts";
import { bootstrapFid, classAccuracy } from "../lib/metrics/intervals.ts";
import { kernelInceptionDistance } from "../lib/metrics/kid.ts";
import { precisionRecall } from "../lib/metrics/prdc.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { getRuntime } from "../lib/gpu/runtime.ts";

const USAGE = "usage: deno run -A tools/twin_eval.ts --pipeline FILE --samples DIR [--samples DIR ...] " +
  "[--cache DIR] [--set K=V ...] [--grid PNG] [--seed N] [--bootstrap 200] [--kid-subsets 100]\n" +
  "       deno run -A tools/twin_eval.ts --pipeline FILE --locate STAGE.OUTPUT [--cache DIR]";

/** A stage output located in the store. */
interface Located {
  stage: string;
  key: string;
  dir: string;
  digest: string;
  via: "plan" | "ref" | "latest";
}

/** Finds the output directories of `wanted` stages ({stage: output}) of a pipeline in a store. */
export async function locateStages(
  file: string,
  sets: string[],
  store: Store,
  wanted: Record<string, string>,
): Promise<Record<string, Located>> {
  const loaded = await loadPipeline(file, { sets });
  if (!loaded.plan) {
    throw new Error(formatDiagnostics(loaded.diagnostics, { sources: loaded.sources, color: false }));
  }
  const plan = loaded.plan;
  const reports = await analysePlan(plan, store, { only: new Set(Object.keys(wanted)) });
  const ref = store.readRef(plan.name);
  const out: Record<string, Located> = {};
  for (const [stage, output] of Object.entries(wanted)) {
    let key = reports.find((r) => r.name === stage)?.key ?? null;
    let via: Located["via"] = "plan";
    if (!key || !store.has(key)) {
      key = ref?.stages[stage] ?? null;
      via = "ref";
    }
    if (!key || !store.has(key)) {
      // A run still in progress has written its artifacts but not yet its ref: the newest artifact of the
      // stage that this pipeline wrote.
      const metas = store.listKeys().map((k) => store.readMeta(k)).filter((m) =>
        m?.name === stage && m.pipeline === plan.name
      ).sort((x, y) => x!.timings.finished.localeCompare(y!.timings.finished));
      key = metas.at(-1)?.key ?? null;
      via = "latest";
    }
    if (!key) {
      throw new Error(
        `no artifact of stage ${stage} of ${plan.name} in ${store.root} (run the pipeline first)`,
      );
    }
    if (via !== "plan") {
      console.error(
        `note: ${stage} is the ${via === "ref" ? "pipeline's last run" : "newest artifact of the stage"} ` +
          `(${key.slice(0, 12)}), not the current code's cache key`,
      );
    }
    const meta = store.readMeta(key);
    const o = meta?.outputs[output];
    if (!o) throw new Error(`artifact ${key} of ${stage} has no output ${output}`);
    out[stage] = { stage, key, dir: store.outputDir(key, output), digest: o.digest, via };
  }
  return out;
}

/** Scores one latents artifact; returns the metrics (the fid stage's names). */
export async function scoreSamples(
  samplesDir: string,
  at: Record<string, Located>,
  o: { seed: number; bootstrap: number; kidSubsets: number; kidSubsetSize: number; k: number; grid?: string },
): Promise<Record<string, unknown>> {
  const samples = await readDataArtifact(samplesDir);
  if (samples.space !== "latents") throw new Error(`${samplesDir} holds ${samples.space}, not latents`);
  // The twin records the latents' provenance: they must come from the VAE that decodes them here.
  const trainedOn = (samples.info.latents_info as { vae_key?: string } | undefined)?.vae_key;
  if (trainedOn && trainedOn !== at.vae.key) {
    throw new Error(
      `${samplesDir} was trained on latents of VAE ${trainedOn.slice(0, 12)}, but the pipeline's vae is ` +
        `${at.vae.key.slice(0, 12)}: train on \`twin_eval.ts --locate latents.latents\``,
    );
  }
  const vae = await resolveVae({ dir: at.vae.dir, stage: "vae" }, undefined);
  const scale = vae.cfg.scalingFactor;
  const model = AutoencoderKL.fromHost(vae.cfg, vae.state);
  let images: Float32Array;
  let shape: [number, number, number, number];
  try {
    ({ images, shape } = await decodeLatents(model, samples.x, [samples.count, ...samples.shape], scale, {
      batchSize: 300,
    }));
  } finally {
    model.dispose();
  }
  const [N, C, H, W] = shape;
  if (o.grid) {
    const n = Math.min(N, 100);
    await saveGrid({ data: images.subarray(0, n * C * H * W), shape: [n, C, H, W] }, Math.min(10, n), o.grid);
  }
  const { stats: ref, metadata } = await readStats(`${at.ref.dir}/${STATS_FILE}`);
  const refDigest = metadata.extractor_digest ?? metadata.classifier_digest;
  if (refDigest && refDigest !== at.classifier.digest) {
    throw new Error(`the reference was computed with classifier ${refDigest}, not ${at.classifier.digest}`);
  }
  const ex = await loadExtractor(at.classifier.dir);
  let fake, logits;
  try {
    fake = await datasetStats(ex.net, images, N);
    logits = await lenetLogits(ex.net, images, N);
  } finally {
    ex.net.dispose();
  }
  const classes = ex.net.cfg.numClasses;
  const realFeat = (await readSafetensors(`${at.ref.dir}/${FEATURES_FILE}`)).getF32("features");
  const nReal = realFeat.length / ref.dim;
  const fr = frechetDistance(ref.mu, ref.sigma, fake.stats.mu, fake.stats.sigma);
  const b = bootstrapFid(ref, fake.features, N, ref.dim, { reps: o.bootstrap, seed: o.seed });
  const pr = precisionRecall(realFeat, nReal, fake.features, N, ref.dim, o.k);
  const kid = kernelInceptionDistance(fake.features, N, realFeat, nReal, ref.dim, {
    subsets: o.kidSubsets,
    subsetSize: o.kidSubsetSize,
    seed: o.seed,
  });
  const acc = classAccuracy(logits, samples.y, classes);
  return {
    samples: samplesDir,
    info: Object.fromEntries(Object.entries(samples.info).filter(([k]) => k !== "latents_info")),
    fid: fr.fid,
    fid_low: b.low,
    fid_high: b.high,
    fid_boot_std: b.std,
    fid_bootstrap: b.reps,
    class_accuracy: acc.value,
    class_accuracy_low: acc.low,
    class_accuracy_high: acc.high,
    class_accuracy_per_class: acc.perClass,
    precision: pr.precision,
    recall: pr.recall,
    k: pr.k,
    kid: kid.kid,
    kid_std: kid.std,
    kid_subset_size: kid.subsetSize,
    n: N,
    n_ref: ref.count,
    feature_extractor: ex.name,
    vae_scale_factor: scale,
    artifacts: Object.fromEntries(
      Object.values(at).map((a) => [a.stage, `${a.key.slice(0, 12)} (${a.via})`]),
    ),
  };
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      pipeline: { type: "string", default: "pipelines/mnist.yaml" },
      samples: { type: "string", multiple: true },
      set: { type: "string", multiple: true },
      cache: { type: "string" },
      grid: { type: "string" },
      seed: { type: "string" },
      bootstrap: { type: "string" },
      "kid-subsets": { type: "string" },
      "kid-subset-size": { type: "string" },
      k: { type: "string" },
      locate: { type: "string" },
    },
    strict: true,
  });
  const store = new Store(a.cache ?? defaultCacheRoot());
  if (a.locate) {
    // --locate STAGE.OUTPUT: print that output's directory as this tool resolves it, e.g. the latents
    // that twin_mnist.py should train on (the ones encoded by the VAE that decodes here).
    const [stage, output] = a.locate.split(".");
    const at = await locateStages(a.pipeline!, a.set ?? [], store, { [stage]: output ?? stage });
    console.log(at[stage].dir);
    Deno.exit(0);
  }
  const samples = a.samples ?? [];
  if (!samples.length) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const at = await locateStages(a.pipeline!, a.set ?? [], store, {
    vae: "vae",
    classifier: "classifier",
    ref: "ref",
  });
  await getRuntime();
  for (const dir of samples) {
    const m = await scoreSamples(dir, at, {
      seed: num(a.seed, 0),
      bootstrap: num(a.bootstrap, 200),
      kidSubsets: num(a["kid-subsets"], 100),
      kidSubsetSize: num(a["kid-subset-size"], 1000),
      k: num(a.k, 3),
      grid: samples.length === 1 ? a.grid : a.grid?.replace(/\.png$/, `_${samples.indexOf(dir)}.png`),
    });
    console.log(JSON.stringify(m));
  }
}
