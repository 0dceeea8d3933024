/**
 * The dataset artifact that stages pass to each other: one safetensors file `data.safetensors` holding
 * `x` (F32, [N, C, H, W]: images in [-1, 1] or scaled latents) and `y` (U32 labels [N]), with metadata
 * that says what `x` is (`space`: `pixels` or `latents`), the number of classes and their names.
 * @module
 */

import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { datasetDigest, type ImageDataset } from "./dataset.ts";

/** A dataset as stages exchange it. */
export interface DataArtifact {
  x: Float32Array;
  y: Uint32Array;
  /** [C, H, W] */
  shape: [number, number, number];
  count: number;
  numClasses: number;
  classNames: string[];
  /** `pixels`: images in [-1, 1]; `latents`: VAE latents times the scale factor. */
  space: "pixels" | "latents";
  /** Free-form provenance (dataset name, split, VAE, ...). */
  info: Record<string, unknown>;
}

/** The file name inside an artifact directory. */
export const DATA_FILE = "data.safetensors";

/** Writes a dataset artifact into `dir`. */
export async function writeDataArtifact(dir: string, d: DataArtifact): Promise<void> {
  const [C, H, W] = d.shape;
  if (d.x.length !== d.count * C * H * W || d.y.length !== d.count) {
    throw new Error(`dataset artifact: ${d.count} samples of [${d.shape}] do not match the array sizes`);
  }
  await writeSafetensors(`${dir}/${DATA_FILE}`, {
    x: { dtype: "F32", shape: [d.count, C, H, W], data: d.x },
    y: { dtype: "U32", shape: [d.count], data: d.y },
  }, {
    format: "ditflow-dataset-v1",
    space: d.space,
    num_classes: String(d.numClasses),
    class_names: JSON.stringify(d.classNames),
    info: JSON.stringify(d.info),
  });
}

/**
 * Writes an in-memory image dataset (pixels in [-1, 1]) as a dataset artifact into `dir`, with the
 * provenance `info` followed by the dataset's content digest (`digest`).
 */
export async function writeImageDataset(
  dir: string,
  ds: ImageDataset,
  info: Record<string, unknown>,
): Promise<void> {
  await writeDataArtifact(dir, {
    x: ds.images,
    y: ds.labels,
    shape: ds.shape,
    count: ds.count,
    numClasses: ds.numClasses,
    classNames: [...ds.classNames],
    space: "pixels",
    info: { ...info, digest: datasetDigest(ds) },
  });
}

/** Reads a dataset artifact from `dir`; errors say what was expected where. */
export async function readDataArtifact(dir: string): Promise<DataArtifact> {
  const path = `${dir}/${DATA_FILE}`;
  let f;
  try {
    f = await readSafetensors(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `expected a dataset artifact at ${path} (data.safetensors with x and y), found nothing`,
      );
    }
    throw e;
  }
  const md = f.metadata ?? {};
  if (md.format !== "ditflow-dataset-v1" || !f.has("x") || !f.has("y")) {
    throw new Error(`${path} is not a ditflow dataset artifact (format ${md.format ?? "missing"})`);
  }
  const shape = f.info("x").shape;
  if (shape.length !== 4) throw new Error(`${path}: x has shape [${shape}], expected [N, C, H, W]`);
  return {
    x: f.getF32("x"),
    y: Uint32Array.from(f.get("y") as Uint32Array),
    shape: [shape[1], shape[2], shape[3]],
    count: shape[0],
    numClasses: Number(md.num_classes),
    classNames: JSON.parse(md.class_names ?? "[]"),
    space: md.space === "latents" ? "latents" : "pixels",
    info: JSON.parse(md.info ?? "{}"),
  };
}
