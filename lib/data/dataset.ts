/**
 * The typed in-memory labelled image dataset every loader in `lib/data/` returns, its content digest, and
 * batch helpers.
 *
 * Storage is the 8-bit NCHW array (`uint8`); the float view in [-1, 1] (`images`, what the DiT pipeline
 * feeds to the VAE) is computed from it with {@link uint8ToUnit} on first access and then cached, so a
 * caller that only needs bytes never pays 4× the memory.
 * @module
 */

import { createHash } from "node:crypto";
import { uint8ToUnit } from "./convert.ts";
import { DataError } from "./errors.ts";

/** A labelled image dataset held in memory, NCHW. */
export interface ImageDataset {
  /** `count × C × H × W` float32 values in [-1, 1] (torchvision `ToTensor` + `Normalize(0.5, 0.5)`). */
  readonly images: Float32Array;
  /** The same pixels as bytes, `count × C × H × W`, 0–255. */
  readonly uint8: Uint8Array;
  /** Class index of each image, in `[0, numClasses)`. */
  readonly labels: Uint32Array;
  /** Number of classes (also the length of `classNames`). */
  readonly numClasses: number;
  /** Class names by index (for image folders: the sorted subfolder names). */
  readonly classNames: readonly string[];
  /** `[C, H, W]` of one image. */
  readonly shape: [number, number, number];
  /** Number of images. */
  readonly count: number;
}

/** The fields {@link createImageDataset} needs. */
export interface ImageDatasetInit {
  /** `count × C × H × W` bytes. */
  uint8: Uint8Array;
  /** `count` class indices. */
  labels: Uint32Array;
  /** Class names; their number is `numClasses`. */
  classNames: readonly string[];
  /** `[C, H, W]`. */
  shape: [number, number, number];
}

class InMemoryImageDataset implements ImageDataset {
  readonly uint8: Uint8Array;
  readonly labels: Uint32Array;
  readonly classNames: readonly string[];
  readonly shape: [number, number, number];
  readonly count: number;
  #images: Float32Array | null = null;

  constructor(init: ImageDatasetInit) {
    this.uint8 = init.uint8;
    this.labels = init.labels;
    this.classNames = Object.freeze([...init.classNames]);
    this.shape = [...init.shape] as [number, number, number];
    this.count = init.labels.length;
  }

  get numClasses(): number {
    return this.classNames.length;
  }

  get images(): Float32Array {
    if (!this.#images) this.#images = uint8ToUnit(this.uint8);
    return this.#images;
  }
}

/** Builds an {@link ImageDataset} from bytes and labels, checking sizes and label range. */
export function createImageDataset(init: ImageDatasetInit): ImageDataset {
  const [c, h, w] = init.shape;
  if (![c, h, w].every((v) => Number.isInteger(v) && v > 0)) {
    throw new DataError(`dataset shape must be three positive integers, got [${init.shape}]`);
  }
  const n = init.labels.length;
  if (init.uint8.length !== n * c * h * w) {
    throw new DataError(
      `dataset: ${n} labels × [${init.shape}] needs ${n * c * h * w} bytes, got ${init.uint8.length}`,
    );
  }
  const k = init.classNames.length;
  if (k < 1) throw new DataError("dataset: at least one class name is required");
  for (let i = 0; i < n; i++) {
    if (init.labels[i] >= k) {
      throw new DataError(`dataset: label ${init.labels[i]} of image ${i} is not below ${k}`);
    }
  }
  return new InMemoryImageDataset(init);
}

/** Format tag hashed into {@link datasetDigest}; bump it if the digest's definition ever changes. */
export const DATASET_DIGEST_VERSION = "ditflow-image-dataset-v1";

/**
 * Hex SHA-256 content digest of a dataset, for pipeline cache keys: it covers the shape, count, class names
 * (hence `numClasses`), every label (u32 little-endian) and every pixel byte, in order. The float `images`
 * are a fixed function of the bytes, so they are not hashed separately. Two datasets have the same digest
 * exactly when they hold the same images, labels and classes in the same order.
 */
export function datasetDigest(ds: ImageDataset): string {
  const h = createHash("sha256");
  const header = JSON.stringify({
    format: DATASET_DIGEST_VERSION,
    shape: ds.shape,
    count: ds.count,
    classNames: ds.classNames,
  });
  h.update(header);
  h.update(new Uint8Array([0]));
  const le = new Uint8Array(ds.labels.length * 4);
  const dv = new DataView(le.buffer);
  for (let i = 0; i < ds.labels.length; i++) dv.setUint32(i * 4, ds.labels[i], true);
  h.update(le);
  h.update(ds.uint8);
  return h.digest("hex");
}

/** A new dataset holding the images at `indices`, in that order (indices may repeat). */
export function subsetDataset(ds: ImageDataset, indices: ArrayLike<number>): ImageDataset {
  const [c, h, w] = ds.shape;
  const per = c * h * w;
  const u8 = new Uint8Array(indices.length * per);
  const labels = new Uint32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!Number.isInteger(j) || j < 0 || j >= ds.count) {
      throw new DataError(`subset: index ${j} out of range [0, ${ds.count})`);
    }
    u8.set(ds.uint8.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = ds.labels[j];
  }
  return createImageDataset({ uint8: u8, labels, classNames: ds.classNames, shape: ds.shape });
}

/** A batch of images gathered from a dataset. */
export interface ImageBatch {
  /** `n × C × H × W` float32 in [-1, 1]. */
  data: Float32Array;
  /** `[n, C, H, W]`. */
  shape: [number, number, number, number];
  /** Labels of the gathered images. */
  labels: Uint32Array;
}

/** Gathers the images at `indices` into one float batch (computed from the bytes, no float copy kept). */
export function getBatch(ds: ImageDataset, indices: ArrayLike<number>): ImageBatch {
  const [c, h, w] = ds.shape;
  const per = c * h * w;
  const data = new Float32Array(indices.length * per);
  const labels = new Uint32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!Number.isInteger(j) || j < 0 || j >= ds.count) {
      throw new DataError(`getBatch: index ${j} out of range [0, ${ds.count})`);
    }
    uint8ToUnit(ds.uint8.subarray(j * per, (j + 1) * per), data.subarray(i * per, (i + 1) * per));
    labels[i] = ds.labels[j];
  }
  return { data, shape: [indices.length, c, h, w], labels };
}
