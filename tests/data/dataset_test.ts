/** lib/data/dataset.ts and lib/data/permutation.ts: construction checks, digest sensitivity, subsets, batches. */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { createImageDataset, datasetDigest, getBatch, subsetDataset } from "../../lib/data/dataset.ts";
import { apportion, seededPermutation, stratifiedSplit } from "../../lib/data/permutation.ts";
import { unitValue } from "../../lib/data/convert.ts";

function tiny() {
  const uint8 = Uint8Array.from({ length: 4 * 2 * 2 * 2 }, (_, i) => (i * 37) & 255);
  return createImageDataset({
    uint8,
    labels: new Uint32Array([0, 1, 2, 1]),
    classNames: ["a", "b", "c"],
    shape: [2, 2, 2],
  });
}

Deno.test("createImageDataset: fields, lazy floats, validation", () => {
  const ds = tiny();
  assertEquals([ds.count, ds.numClasses, ds.shape], [4, 3, [2, 2, 2]]);
  assertEquals(ds.images.length, 32);
  assertEquals(ds.images[5], unitValue(ds.uint8[5]));
  assert(ds.images === ds.images, "float view is cached");
  assertThrows(
    () =>
      createImageDataset({
        uint8: new Uint8Array(7),
        labels: new Uint32Array(1),
        classNames: ["a"],
        shape: [1, 2, 4],
      }),
    "needs 8 bytes",
  );
  assertThrows(
    () =>
      createImageDataset({
        uint8: new Uint8Array(8),
        labels: new Uint32Array([3]),
        classNames: ["a"],
        shape: [1, 2, 4],
      }),
    "label 3",
  );
  assertThrows(
    () =>
      createImageDataset({
        uint8: new Uint8Array(0),
        labels: new Uint32Array(0),
        classNames: ["a"],
        shape: [0, 2, 4],
      }),
    "shape",
  );
});

Deno.test("datasetDigest changes with any pixel, label, class name or shape", () => {
  const ds = tiny();
  const d = datasetDigest(ds);
  assertEquals(d, datasetDigest(tiny()));
  assert(/^[0-9a-f]{64}$/.test(d));
  const px = ds.uint8.slice();
  px[31] ^= 1;
  const variants = [
    createImageDataset({ uint8: px, labels: ds.labels, classNames: ds.classNames, shape: ds.shape }),
    createImageDataset({
      uint8: ds.uint8,
      labels: new Uint32Array([0, 1, 2, 2]),
      classNames: ds.classNames,
      shape: ds.shape,
    }),
    createImageDataset({ uint8: ds.uint8, labels: ds.labels, classNames: ["a", "b", "d"], shape: ds.shape }),
    createImageDataset({ uint8: ds.uint8, labels: ds.labels, classNames: ds.classNames, shape: [2, 1, 4] }),
  ];
  const all = new Set([d, ...variants.map(datasetDigest)]);
  assertEquals(all.size, 5);
});

Deno.test("subsetDataset and getBatch gather in the given order", () => {
  const ds = tiny();
  const sub = subsetDataset(ds, [3, 0, 3]);
  assertEquals(Array.from(sub.labels), [1, 0, 1]);
  assertEquals(sub.uint8.subarray(0, 8), ds.uint8.subarray(24, 32));
  const b = getBatch(ds, [2, 1]);
  assertEquals(b.shape, [2, 2, 2, 2]);
  assertEquals(Array.from(b.labels), [2, 1]);
  assertEquals(
    Array.from(b.data),
    Array.from(ds.images.subarray(16, 24)).concat(Array.from(ds.images.subarray(8, 16))),
  );
  assertThrows(() => getBatch(ds, [4]), "out of range");
});

Deno.test("permutations and stratified splits", () => {
  const p = seededPermutation(1000, 42);
  assertEquals(Array.from(p).sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  assertEquals(p, seededPermutation(1000, 42));
  assert(p.join() !== seededPermutation(1000, 43).join());
  assertEquals(apportion([1001, 1127, 991], 300), [96, 109, 95]); // shares 96.28, 108.40, 95.32
  assertEquals(apportion([1, 1, 1], 2), [1, 1, 0]);
  assertEquals(apportion([5, 0], 0), [0, 0]);
  assertThrows(() => apportion([1, 2], 4), "total 4");
  const labels = Uint32Array.from({ length: 100 }, (_, i) => (i < 70 ? 0 : 1));
  const s = stratifiedSplit(labels, 2, 10, 1);
  assertEquals([s.train.length, s.test.length], [90, 10]);
  assertEquals(Array.from(s.test).filter((i) => labels[i] === 0).length, 7);
});
