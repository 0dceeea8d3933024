/**
 * Stage kind `images`: a folder of images as a dataset artifact (the format of the `mnist` kind:
 * `data.safetensors` with x in [-1, 1], NCHW float32, and class labels y), preprocessed as DiT's
 * `train.py` does (decode to RGB, ADM center crop to `size × size`).
 *
 * Layout: the ImageNet / torchvision `ImageFolder` layout `dir/<class>/…/<image>`, classes = the sorted
 * names of the immediate sub-folders (indexing exactly as `lib/data/image_folder.ts`); a flat folder of
 * images (no sub-folders) is one class, 0, named after the folder.
 *
 * Caching: `dir` is a `path` parameter, so the engine digests the folder's content into the stage's key
 * (sorted relative paths + sizes + SHA-256 of every file, `lib/pipeline/hash.ts`): adding, removing,
 * renaming or editing any file under `dir` reruns the stage; touching a file (mtime) does not.
 * @module
 */

import { join } from "node:path";
import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { checkPath, type PathSpec } from "../pipeline/schema.ts";
import { writeImageDataset } from "../data/artifact.ts";
import { admCenterCrop } from "../data/center_crop.ts";
import { hwcToChw } from "../data/convert.ts";
import { createImageDataset, type ImageDataset } from "../data/dataset.ts";
import { decodeImageFile } from "../data/image_decode.ts";
import { DataError } from "../data/errors.ts";
import { saveGrid } from "../data/grid.ts";
import { compareCodePoints, DEFAULT_IMAGE_EXTENSIONS, ImageFolder } from "../data/image_folder.ts";
import { seededPermutation } from "../data/permutation.ts";

/** What `dir` must hold, completing "set … to …" in messages. */
export const IMAGE_DIR_HELP = "a folder of .jpg/.png images, one sub-folder per class (ImageNet layout)";

const DIR_SPEC = {
  type: "path",
  expect: "dir",
  what: "image folder",
  help: IMAGE_DIR_HELP,
  doc: "the image folder (relative to the pipeline file): dir/<class>/<image>, or a flat folder (one class)",
} as const satisfies PathSpec;

/** Refuse datasets whose float array would exceed this many bytes (ask for `limit` instead). */
const MAX_BYTES = 8 * 2 ** 30;

/** One file to read and its label. */
interface Entry {
  path: string;
  label: number;
}

/** The files of an image folder: class sub-folders (ImageFolder rules) or a flat folder (one class). */
export async function scanImageDir(
  dir: string,
  extensions: readonly string[],
): Promise<{ layout: "classes" | "flat"; classes: string[]; entries: Entry[] }> {
  const advice = `; set \`dir\` (e.g. vars.image_dir) to ${IMAGE_DIR_HELP}`;
  const problem = checkPath(DIR_SPEC, dir, "/");
  if (problem?.issue === "missing") throw new DataError(`image folder ${dir} does not exist${advice}`);
  if (problem?.issue === "not-dir") {
    throw new DataError(`image folder ${dir} is a file, not a folder${advice}`);
  }
  if (problem?.issue === "empty") throw new DataError(`image folder ${dir} is empty${advice}`);
  const exts = extensions.map((e) => e.toLowerCase());
  let hasClassDirs = false;
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    let isDir = e.isDirectory;
    if (e.isSymlink) isDir = await Deno.stat(join(dir, e.name)).then((s) => s.isDirectory, () => false);
    if (isDir && !e.name.startsWith(".")) hasClassDirs = true;
    else if (!isDir && exts.some((x) => e.name.toLowerCase().endsWith(x))) files.push(e.name);
  }
  if (hasClassDirs) {
    let folder: ImageFolder;
    try {
      folder = await ImageFolder.open(dir, { extensions: exts });
    } catch (e) {
      if (e instanceof DataError) throw new DataError(`${e.message}${advice}`, { path: e.path, cause: e });
      throw e;
    }
    return {
      layout: "classes",
      classes: [...folder.classes],
      entries: folder.samples.map((s) => ({ path: s.path, label: s.label })),
    };
  }
  if (files.length === 0) {
    throw new DataError(
      `image folder ${dir} contains no images (no file ending in ${
        exts.join(", ")
      }, and no sub-folders)${advice}`,
      { path: dir },
    );
  }
  files.sort(compareCodePoints);
  const name = dir.replace(/\/+$/, "").split("/").pop() || "images";
  return { layout: "flat", classes: [name], entries: files.map((f) => ({ path: join(dir, f), label: 0 })) };
}

/** RGB bytes (CHW) to PIL's `convert("L")` luma: (19595 R + 38470 G + 7471 B + 0x8000) >> 16. */
function lumaChw(rgb: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    out[i] = (rgb[i] * 19595 + rgb[pixels + i] * 38470 + rgb[2 * pixels + i] * 7471 + 0x8000) >>> 16;
  }
  return out;
}

/** Options of {@link readImages}. */
export interface ReadImagesOptions {
  size: number;
  channels: 1 | 3;
  limit?: number;
  shuffleSeed?: number;
  onCorrupt: "error" | "skip";
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Decodes, center-crops and stacks the entries into a dataset (CHW bytes, then the float view). */
export async function readImages(
  entries: Entry[],
  classes: string[],
  o: ReadImagesOptions,
): Promise<{ dataset: ImageDataset; paths: string[]; skipped: { path: string; reason: string }[] }> {
  const order = o.shuffleSeed === undefined ? null : seededPermutation(entries.length, o.shuffleSeed);
  const want = Math.min(o.limit && o.limit > 0 ? o.limit : entries.length, entries.length);
  const per = o.channels * o.size * o.size;
  if (want * per * 4 > MAX_BYTES) {
    throw new DataError(
      `${want} images of ${o.channels}×${o.size}×${o.size} need ${
        (want * per * 4 / 2 ** 30).toFixed(1)
      } GiB as float32, more than the ${
        MAX_BYTES / 2 ** 30
      } GiB one dataset artifact may hold; set \`limit\``,
    );
  }
  const pixels = o.size * o.size;
  let u8 = new Uint8Array(want * per);
  const labels: number[] = [];
  const paths: string[] = [];
  const skipped: { path: string; reason: string }[] = [];
  const conc = o.concurrency ?? 4;
  const start = (i: number) => {
    const e = entries[order ? order[i] : i];
    return decodeImageFile(e.path).then(
      (img) => ({ e, chw: hwcToChw(admCenterCrop(img, o.size)) }),
      (err: unknown) => ({ e, err }),
    );
  };
  const inflight: ReturnType<typeof start>[] = [];
  let next = 0;
  while (labels.length < want) {
    o.signal?.throwIfAborted();
    while (inflight.length < conc && next < entries.length) inflight.push(start(next++));
    if (inflight.length === 0) break;
    const r = await inflight.shift()!;
    if ("err" in r) {
      const reason = (r.err as Error)?.message ?? String(r.err);
      if (o.onCorrupt === "error") {
        throw new DataError(`${reason} (set \`on_corrupt: skip\` to skip unreadable files)`, {
          path: r.e.path,
        });
      }
      skipped.push({ path: r.e.path, reason });
      continue;
    }
    const img = o.channels === 1 ? lumaChw(r.chw, pixels) : r.chw;
    u8.set(img, labels.length * per);
    labels.push(r.e.label);
    paths.push(r.e.path);
    o.onProgress?.(labels.length, want);
  }
  await Promise.allSettled(inflight);
  if (labels.length < want) u8 = u8.slice(0, labels.length * per);
  const dataset = createImageDataset({
    uint8: u8,
    labels: Uint32Array.from(labels),
    classNames: classes,
    shape: [o.channels, o.size, o.size],
  });
  return { dataset, paths, skipped };
}

/** The `images` kind. */
export const imagesKind = defineKind({
  name: "images",
  module: import.meta.url,
  description: "an image folder (ImageNet layout, or flat) as a dataset: ADM center crop, x in [-1, 1]",
  gpu: false,
  params: {
    dir: DIR_SPEC,
    size: { type: "int", default: 256, min: 8, max: 1024, doc: "side of the ADM center crop in pixels" },
    channels: {
      type: "int",
      default: 3,
      min: 1,
      max: 3,
      doc: '3 (RGB), or 1 (luma, as PIL\'s convert("L"))',
    },
    limit: { type: "int", default: 0, min: 0, doc: "keep the first N images (0: all)" },
    extensions: {
      type: "list",
      items: { type: "string", pattern: "^\\.?[A-Za-z0-9]+$" },
      minItems: 1,
      default: [...DEFAULT_IMAGE_EXTENSIONS],
      doc: "file name endings to read (case-insensitive)",
    },
    shuffle: {
      type: "bool",
      default: false,
      doc: "visit files in a seeded random order (the stage's seed), e.g. so that `limit` keeps every class",
    },
    on_corrupt: {
      type: "enum",
      values: ["error", "skip"],
      default: "error",
      doc: "an unreadable image fails the stage, or is skipped (listed in the log and skipped.txt)",
    },
  },
  inputs: {},
  outputs: {
    dataset: { doc: "data.safetensors (x in [-1,1], y), files.csv (source of each image), preview" },
  },
  headline: ["count", "num_classes"],
  validate(p, ctx) {
    return p.channels === 2 ? [{ pos: ctx.at("channels"), message: "`channels` must be 1 or 3, not 2" }] : [];
  },
  describe: (p) => ({ dataset: { space: "pixels", shape: [p.channels, p.size, p.size] } }),
  async run(ctx) {
    const p = ctx.params;
    if (p.channels === 2) throw new Error("channels must be 1 or 3");
    const exts = p.extensions.map((e) => (e.startsWith(".") ? e : `.${e}`).toLowerCase());
    const scan = await scanImageDir(p.dir, exts);
    ctx.log(
      `${p.dir}: ${scan.entries.length} images in ${scan.classes.length} class${
        scan.classes.length === 1 ? "" : "es"
      } (${scan.layout === "flat" ? "flat folder: one class" : "one sub-folder per class"})`,
    );
    const { dataset: ds, paths, skipped } = await readImages(scan.entries, scan.classes, {
      size: p.size,
      channels: p.channels as 1 | 3,
      limit: p.limit,
      shuffleSeed: p.shuffle ? ctx.seed : undefined,
      onCorrupt: p.on_corrupt,
      signal: ctx.signal,
      onProgress: (done, total) => ctx.progress({ step: done, total }),
    });
    if (ds.count === 0) {
      throw new DataError(`image folder ${p.dir}: none of the ${scan.entries.length} images could be read`);
    }
    for (const s of skipped) ctx.log(`skipped ${s.path}: ${s.reason}`);
    ctx.log(`dataset: ${ds.count} images of [${ds.shape}], ${ds.numClasses} classes`);
    const out = ctx.outputs.dataset;
    await writeImageDataset(out, ds, {
      dataset: "images",
      dir: p.dir,
      layout: scan.layout,
      size: p.size,
      crop: "adm-center",
    });
    const rel = (f: string) => f.startsWith(p.dir + "/") ? f.slice(p.dir.length + 1) : f;
    const csv = ["index,label,class,file"];
    paths.forEach((f, i) => {
      const label = ds.labels[i];
      csv.push(`${i},${label},${JSON.stringify(ds.classNames[label])},${JSON.stringify(rel(f))}`);
    });
    await Deno.writeTextFile(`${out}/files.csv`, csv.join("\n") + "\n");
    if (skipped.length) {
      await Deno.writeTextFile(
        `${out}/skipped.txt`,
        skipped.map((s) => `${s.path}\t${s.reason}`).join("\n") + "\n",
      );
    }
    const n = Math.min(64, ds.count);
    const [C, H, W] = ds.shape;
    await saveGrid(
      { data: ds.images.subarray(0, n * C * H * W), shape: [n, C, H, W] },
      8,
      `${out}/preview.png`,
    );
    ctx.metrics({ count: ds.count, num_classes: ds.numClasses, skipped: skipped.length });
  },
});
registerKind(imagesKind);
