/**
 * The lenet-mnist FID path: `.npz` writing (parsed back by its zip directory and NPY header), k-NN
 * precision/recall on synthetic Gaussian features, the sanity checks with a briefly trained LeNet
 * (FID between two disjoint real MNIST halves is small; FID rises monotonically with five growing levels of
 * Gaussian noise), and mnist → train-classifier → fid-ref → fid through the engine.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { gpu, randn } from "../helpers/gradcheck.ts";
import { runIn, Sandbox } from "../pipeline/helpers.ts";
import "../../lib/stages/mod.ts";
import { loadMnist } from "../../lib/data/mnist.ts";
import { crc32, decodeNpz, encodeNpz, samplesToNhwcU8 } from "../../lib/metrics/npz.ts";
import { precisionRecall } from "../../lib/metrics/prdc.ts";
import { frechetDistance } from "../../lib/metrics/frechet.ts";
import { trainLeNet } from "../../lib/stages/train_classifier.ts";
import { datasetStats, readStats } from "../../lib/stages/fid.ts";
import { lenetAccuracy } from "../../lib/models/lenet.ts";

await gpu();

Deno.test("npz: arr_0 NHWC uint8 is readable back (zip directory, CRC, NPY v1.0 header)", () => {
  const n = 3, c = 2, h = 4, w = 5;
  const x = Float32Array.from(randn(n * c * h * w, 1, 0.7));
  x[0] = -1.5; // clamps to 0
  x[1] = 1; // 255.5 → 255
  x[2] = 0; // 128
  const u8 = samplesToNhwcU8(x, n, c, h, w);
  const f64 = Float64Array.from([1.5, -2, 3]);
  const bytes = encodeNpz({
    arr_0: { descr: "|u1", shape: [n, h, w, c], data: u8 },
    arr_1: { descr: "<f8", shape: [3], data: f64 },
  });
  const z = decodeNpz(bytes);
  assertEquals([...z.keys()], ["arr_0", "arr_1"]);
  const a = z.get("arr_0")!;
  assertEquals(a.descr, "|u1");
  assertEquals(a.shape, [n, h, w, c]);
  assertEquals(a.fortranOrder, false);
  assertEquals([...a.data], [...u8]);
  // NHWC order and the conversion clamp(127.5 x + 128) truncated.
  assertEquals([a.data[0], a.data[c * 1], a.data[c * 2]], [0, 255, 128]);
  const ch1 = x[1 * h * w + 0]; // image 0, channel 1, pixel (0, 0)
  assertEquals(a.data[1], Math.min(255, Math.max(0, Math.floor(127.5 * ch1 + 128))));
  const b = z.get("arr_1")!;
  assertEquals(b.shape, [3]);
  assertEquals([...new Float64Array(b.data.slice().buffer)], [1.5, -2, 3]);
  // Layout details numpy relies on: local header magic, stored method, header length a multiple of 64.
  const dv = new DataView(bytes.buffer);
  assertEquals(dv.getUint32(0, true), 0x04034b50);
  assertEquals(dv.getUint16(8, true), 0);
  const npyStart = 30 + "arr_0.npy".length;
  assertEquals((10 + dv.getUint16(npyStart + 8, true)) % 64, 0);
  assertEquals(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

/** n rows of d-dim Gaussian features with mean `shift` in every dim. */
function gauss(n: number, d: number, seed: number, shift = 0): Float64Array {
  return randn(n * d, seed, 1, shift);
}

Deno.test("precision/recall (k = 3): identical sets give 1, disjoint sets 0, a shifted set in between", () => {
  const n = 300, d = 16;
  const a = gauss(n, d, 1);
  const same = precisionRecall(a, n, a, n, d);
  assertEquals([same.precision, same.recall, same.k], [1, 1, 3]);
  const b = gauss(n, d, 2); // same distribution, other draw
  const iid = precisionRecall(a, n, b, n, d);
  assert(iid.precision > 0.6 && iid.recall > 0.6, `same distribution: ${JSON.stringify(iid)}`);
  const far = precisionRecall(a, n, gauss(n, d, 3, 50), n, d);
  assertEquals([far.precision, far.recall], [0, 0]);
  // A narrower fake distribution inside the real one: high precision, low recall.
  const narrow = randn(n * d, 4, 0.3);
  const nr = precisionRecall(a, n, narrow, n, d);
  assert(nr.precision > 0.9 && nr.recall < 0.5, `narrow fake: ${JSON.stringify(nr)}`);
});

Deno.test("sanity (lenet-mnist, N = 500 per set): FID of disjoint real halves is small, rises monotonically with noise", async () => {
  // LeNet trained briefly: 2 epochs on 2,000 training digits (no shifts).
  const train = await loadMnist({ split: "train", size: 32, layout: "pad", limit: 2000 });
  const test = await loadMnist({ split: "test", size: 32, layout: "pad" });
  const res = await trainLeNet(
    { x: train.images, y: train.labels, shape: train.shape, count: train.count, numClasses: 10 },
    { epochs: 2, batch_size: 32, lr: 3e-3, weight_decay: 0, shift: 0, c1: 6, c2: 16, seed: 3 },
  );
  const net = res.net;
  try {
    const acc = await lenetAccuracy(net, test.images, test.labels, 1000);
    assert(acc > 0.85, `briefly trained LeNet: accuracy ${acc}`);
    const per = 32 * 32;
    const N = 500;
    const A = test.images.subarray(0, N * per);
    const B = test.images.slice(N * per, 2 * N * per);
    const ra = await datasetStats(net, A, N);
    const fid = async (x: Float32Array) => {
      const s = await datasetStats(net, x, N);
      return frechetDistance(ra.stats.mu, ra.stats.sigma, s.stats.mu, s.stats.sigma).fid;
    };
    const real = await fid(B);
    const noise = randn(N * per, 77);
    const levels = [0.05, 0.1, 0.2, 0.4, 0.8];
    const noisy: number[] = [];
    for (const sd of levels) {
      const xn = B.map((v, i) => Math.max(-1, Math.min(1, v + sd * noise[i])));
      noisy.push(await fid(xn));
    }
    const msg = `lenet-mnist FID, N = ${N} vs ${N}: real halves ${real.toFixed(3)}; noise σ ${
      levels.join("/")
    }: ${noisy.map((v) => v.toFixed(3)).join(" ")} (accuracy ${acc})`;
    console.log(msg);
    assert(real >= 0 && real < noisy[0], msg);
    for (let i = 1; i < levels.length; i++) assert(noisy[i] > noisy[i - 1], `not monotonic: ${msg}`);
    // At N = 500 the real-vs-real FID is mostly small-sample bias (84-d covariances); noise must dwarf it.
    assert(noisy[levels.length - 1] > 5 * real, `the largest noise should dominate: ${msg}`);
  } finally {
    net.dispose();
  }
});

Deno.test("mnist → train-classifier → fid-ref → fid through the engine: files, stats and metrics", async () => {
  using sb = new Sandbox();
  const file = sb.write(
    "fid.yaml",
    `name: fid-test
stages:
  train:
    uses: mnist
    with: { split: train, limit: 640 }
  test:
    uses: mnist
    with: { split: test, limit: 200 }
  clf:
    uses: train-classifier
    inputs: { data: train.dataset, test: test.dataset }
    seed: 2
    with: { epochs: 2, batch_size: 32, lr: 0.003, shift: 1 }
  ref:
    uses: fid-ref
    inputs: { data: test.dataset, classifier: clf.classifier }
  fid:
    uses: fid
    inputs: { samples: train.dataset, ref: ref.ref, classifier: clf.classifier }
    with: { pr_samples: 300 }
  draws:
    uses: fid
    inputs: { samples: train.dataset, ref: ref.ref, classifier: clf.classifier }
    with: { per_draw: 200 }
`,
  );
  const res = await runIn(sb, file);
  const failed = res.report.stages.filter((s) => s.result === "failed");
  assertEquals(failed.map((s) => `${s.name}: ${s.error}`), []);
  const stage = (n: string) => res.report.stages.find((s) => s.name === n)!;
  const out = (n: string, o: string) => sb.store.outputDir(stage(n).key!, o);

  const cm = stage("clf").metrics!;
  assertEquals(cm.feature_extractor, "lenet-mnist");
  assert((cm.test_accuracy as number) > 0.3, `accuracy ${cm.test_accuracy}`);

  const { stats, metadata } = await readStats(`${out("ref", "ref")}/stats.safetensors`);
  assertEquals([stats.dim, stats.count, stats.sigma.length], [84, 200, 84 * 84]);
  assertEquals(metadata.feature_extractor, "lenet-mnist");
  assertEquals(stage("ref").metrics!.feature_extractor, "lenet-mnist");

  const m = stage("fid").metrics!;
  assertEquals(m.feature_extractor, "lenet-mnist");
  assertEquals([m.n, m.n_ref, m.k, m.pr_n, m.pr_n_ref], [640, 200, 3, 300, 200]);
  for (const k of ["fid", "precision", "recall"]) {
    assert(typeof m[k] === "number" && Number.isFinite(m[k] as number), `${k} = ${m[k]}`);
  }
  assert(
    (m.fid as number) >= 0 && (m.precision as number) > 0 && (m.recall as number) > 0,
    JSON.stringify(m),
  );

  // per_draw: FID, precision and recall are the means over the disjoint draws (640 samples: 3 draws of 200),
  // under the same keys in the same order as without draws.
  const d = stage("draws").metrics!;
  assertEquals([d.n, d.n_total, d.fid_draws, d.k, d.pr_n, d.pr_n_ref], [200, 640, 3, 3, 200, 200]);
  for (const k of ["fid", "fid_low", "fid_high", "precision", "recall"]) {
    assert(typeof d[k] === "number" && Number.isFinite(d[k] as number), `${k} = ${d[k]}`);
  }
  const shared = Object.keys(m).filter((k) => k in d);
  assertEquals(Object.keys(d).filter((k) => k in m), shared);
  assertEquals(shared.slice(0, 8), ["fid", "precision", "recall", "n", "n_ref", "pr_n", "pr_n_ref", "k"]);

  const z = decodeNpz(await Deno.readFile(`${out("fid", "fid")}/samples.npz`));
  const arr = z.get("arr_0")!;
  assertEquals([arr.descr, ...arr.shape], ["|u1", 640, 32, 32, 1]);
  // MNIST's padded background (−1) is 0 in uint8; digits reach 255.
  assertEquals(arr.data[0], 0);
  assert(arr.data.some((v) => v === 255), "no white pixel in the samples");
});
