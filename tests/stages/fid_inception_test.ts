/**
 * The inception extractor of `fid-ref` and `fid` through the engine (synthetic weights written to a file,
 * the 75×75 minimum input to keep it fast): files, statistics, the extractor's name and digest, FID and the
 * Inception Score (equal to recomputing them from the features), and the errors: a reference from another
 * feature space, no `weights`, a weight file that does not exist.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { runIn, Sandbox } from "../pipeline/helpers.ts";
import "../../lib/stages/mod.ts";
import { readSafetensors } from "../../lib/io/safetensors.ts";
import { readDataArtifact } from "../../lib/data/artifact.ts";
import {
  FID_WEIGHTS_URL,
  INCEPTION_FID_CLASSES,
  inceptionFeatures,
  InceptionV3,
  syntheticInceptionState,
  writeInceptionWeights,
} from "../../lib/models/inception.ts";
import { inceptionScore } from "../../lib/metrics/inception_score.ts";
import { meanCov } from "../../lib/metrics/frechet.ts";
import { digestPath } from "../../lib/pipeline/hash.ts";
import { readStats } from "../../lib/stages/fid.ts";

await gpu();

const pipeline = (fidWith: string, refWith = "{ extractor: inception, weights: w.safetensors, size: 75 }") =>
  `name: fid-inception-test
stages:
  real:
    uses: mnist
    with: { split: test, limit: 12 }
  fake:
    uses: mnist
    with: { split: train, limit: 20 }
  ref:
    uses: fid-ref
    inputs: { data: real.dataset }
    with: ${refWith}
  fid:
    uses: fid
    inputs: { samples: fake.dataset, ref: ref.ref }
    with: ${fidWith}
`;

Deno.test("mnist → fid-ref → fid with the inception extractor (synthetic weights, 75×75)", async () => {
  using sb = new Sandbox();
  const weights = `${sb.dir}/w.safetensors`;
  const state = syntheticInceptionState();
  await writeInceptionWeights(weights, state, { feature_extractor: "inception-v3-synthetic-test" });
  const digest = (await digestPath(weights)).digest;

  const file = sb.write(
    "fid.yaml",
    pipeline("{ extractor: inception, weights: w.safetensors, size: 75, is_splits: 4, pr_samples: 0 }"),
  );
  const res = await runIn(sb, file);
  assertEquals(res.failed.map((n) => `${n}: ${res.report.stages.find((s) => s.name === n)!.error}`), []);
  const stage = (n: string) => res.report.stages.find((s) => s.name === n)!;
  const out = (n: string, o: string) => sb.store.outputDir(stage(n).key!, o);
  const name = "inception-v3-synthetic-test@75px";

  const { stats, metadata } = await readStats(`${out("ref", "ref")}/stats.safetensors`);
  assertEquals([stats.dim, stats.count], [2048, 12]);
  assertEquals(
    [metadata.feature_extractor, metadata.extractor, metadata.extractor_digest, metadata.inception_size],
    [name, "inception", digest, "75"],
  );
  assertEquals(stage("ref").metrics!.feature_extractor, name);

  // The reference features are the model's features of the real images (uint8-rounded, resized to 75).
  const net = InceptionV3.fromState(state);
  let fakeLogits: Float32Array;
  try {
    const real = await readDataArtifact(out("real", "dataset"));
    const f = await inceptionFeatures(net, { data: real.x, shape: [real.count, ...real.shape] }, {
      size: 75,
      quantize: true,
    });
    const stored = (await readSafetensors(`${out("ref", "ref")}/features.safetensors`)).getF32("features");
    assertEquals(stored.length, f.pool3.length);
    assert(stored.every((v, i) => v === f.pool3[i]), "the stored features differ from the model's");
    const mc = meanCov(f.pool3, real.count, 2048);
    assert(mc.mu.every((v, i) => v === stats.mu[i]), "stored mean differs from meanCov of the features");
    const fake = await readDataArtifact(out("fake", "dataset"));
    fakeLogits = (await inceptionFeatures(net, { data: fake.x, shape: [fake.count, ...fake.shape] }, {
      size: 75,
      quantize: true,
      logits: "unbiased",
    })).logits!;
  } finally {
    net.dispose();
  }

  const m = stage("fid").metrics!;
  assertEquals(m.feature_extractor, name);
  assertEquals([m.n, m.n_ref, m.feature_dim, m.is_splits, m.inception_size, m.uint8_inputs], [
    20,
    12,
    2048,
    4,
    75,
    true,
  ]);
  const is = inceptionScore(fakeLogits, 20, INCEPTION_FID_CLASSES, 4);
  assertEquals([m.inception_score, m.inception_score_std], [is.mean, is.std]);
  assert((m.inception_score as number) >= 1, JSON.stringify(m));
  assert(typeof m.fid === "number" && Number.isFinite(m.fid) && m.fid > 0, `fid ${m.fid}`);
  for (const k of ["precision", "recall"]) assert(typeof m[k] === "number", `${k} = ${m[k]}`);

  // Another resize than the reference's: refused before any work, naming both feature spaces.
  const other = sb.write(
    "other.yaml",
    pipeline("{ extractor: inception, weights: w.safetensors, size: 80 }"),
  );
  const r2 = await runIn(sb, other);
  assertEquals(r2.cached.includes("ref"), true);
  const e2 = r2.report.stages.find((s) => s.name === "fid")!.error ?? "";
  assert(e2.includes("another feature space") && e2.includes("inception_size 75 vs 80"), e2);

  // The classifier extractor without a classifier input: refused at plan time (validation), naming it.
  const planError = async (f: string) => {
    try {
      await runIn(sb, f);
      return "";
    } catch (e) {
      return (e as Error).message;
    }
  };
  const cls = sb.write("cls.yaml", pipeline("{ extractor: classifier }"));
  const e3 = await planError(cls);
  assert(e3.includes("needs the `classifier` input"), e3);

  // No weights: refused at plan time too; the message says what to set (the hint where they come from).
  const none = sb.write("none.yaml", pipeline("{ extractor: inception }", "{ extractor: inception }"));
  const e4 = await planError(none);
  assert(e4.includes("needs `weights:`"), e4);
  const { loadPipeline } = await import("../../lib/pipeline/load.ts");
  const hints = (await loadPipeline(none)).diagnostics.map((d) => d.hint ?? "").join("\n");
  assert(hints.includes(FID_WEIGHTS_URL), hints);
});

Deno.test("fid-ref: a weights path that does not exist is a validation error naming it", async () => {
  using sb = new Sandbox();
  const file = sb.write(
    "missing.yaml",
    pipeline(
      "{ extractor: inception, weights: nowhere.safetensors }",
      "{ extractor: inception, weights: nowhere.safetensors }",
    ),
  );
  let msg = "";
  try {
    await runIn(sb, file);
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("weights") && msg.includes("file not found: nowhere.safetensors"), msg);
});
