/**
 * Labelled image folders in the ImageNet / torchvision `ImageFolder` layout, `root/<class>/…/<image>.<ext>`,
 * read lazily (one image decoded at a time, a few in flight) and preprocessed as DiT's `train.py` does:
 * decode to RGB (`image_decode.ts`), ADM center crop to `size × size` (`center_crop.ts`). Random flips and the
 * [-1, 1] scaling belong to the consumer ({@link ImageDataset.images} gives the scaled floats).
 *
 * Indexing follows torchvision 0.14 (`find_classes` + `make_dataset`) exactly:
 * - classes are the sorted names of root's subfolders (symlinks to folders count; hidden folders count
 *   too, as in torchvision), class index = position in that order;
 * - within a class, `sorted(os.walk(class_dir, followlinks=True))` then `sorted(fnames)`: files of nested
 *   folders are included, folders visited in sorted path order; sorting is by Unicode code point, as
 *   Python's (not JavaScript's UTF-16) string order;
 * - a file is kept when its lower-cased name ends with one of the extensions (default ".jpg", ".jpeg",
 *   ".png", ".webp"); other files are ignored;
 * - a class folder without any such file is an error naming the folder(s), unless `allowEmpty`.
 * Unlike `os.walk`, a folder reached twice through symlinks (a cycle) is walked once.
 * @module
 */

import { join } from "node:path";
import { admCenterCrop } from "./center_crop.ts";
import { hwcToChw } from "./convert.ts";
import { createImageDataset, type ImageDataset } from "./dataset.ts";
import { decodeImageFile, type FailOn } from "./image_decode.ts";
import { DataError } from "./errors.ts";
import { seededPermutation } from "./permutation.ts";
import type { RawImage } from "./raw_image.ts";

/** Default image extensions (lower case, with the dot). */
export const DEFAULT_IMAGE_EXTENSIONS: readonly string[] = Object.freeze([".jpg", ".jpeg", ".png", ".webp"]);

/** Options of {@link ImageFolder.open}. */
export interface ImageFolderScanOptions {
  /** File name endings to keep, matched case-insensitively (default {@link DEFAULT_IMAGE_EXTENSIONS}). */
  extensions?: readonly string[];
  /** Accept class folders without images (they keep their class index); default false (error). */
  allowEmpty?: boolean;
}

/** One indexed file. */
export interface ImageFolderEntry {
  /** Path of the file (root joined with the relative path). */
  path: string;
  /** Class index. */
  label: number;
}

/** Options of {@link ImageFolder.read} and {@link ImageFolder.load}. */
export interface ImageFolderReadOptions {
  /** Target side of the ADM center crop (e.g. 256); required. */
  size: number;
  /** On an image that cannot be decoded: "error" (default, throws a DataError naming it) or "skip" (records it). */
  onCorrupt?: "error" | "skip";
  /** Stop after this many images have been produced (skipped files do not count). */
  limit?: number;
  /** Visit the files in `seededPermutation(length, shuffleSeed)` order instead of sorted order. */
  shuffleSeed?: number;
  /** Decodes in flight (default 4; sharp decodes on libuv's thread pool). */
  concurrency?: number;
  /** Decode strictness (see `image_decode.ts`; default "error"). */
  failOn?: FailOn;
  /** Called for each skipped file (in "skip" mode), in visiting order. */
  onSkip?: (skipped: SkippedImage) => void;
}

/** A file skipped in "skip" mode. */
export interface SkippedImage {
  /** The file. */
  path: string;
  /** Its index in {@link ImageFolder.samples}. */
  index: number;
  /** Why it could not be read. */
  reason: string;
}

/** One preprocessed image. */
export interface ImageFolderSample {
  /** Index in {@link ImageFolder.samples} (sorted order). */
  index: number;
  /** The file. */
  path: string;
  /** Class index. */
  label: number;
  /** `size × size` RGB, HWC bytes. */
  image: RawImage;
}

/** An image folder read into memory by {@link ImageFolder.load}. */
export interface LoadedImageFolder {
  /** The images (NCHW, `[3, size, size]`), labels and class names. */
  dataset: ImageDataset;
  /** Source file of each dataset image. */
  paths: string[];
  /** Files skipped as corrupt ("skip" mode). */
  skipped: SkippedImage[];
}

/** Compares strings by Unicode code point (Python's `str` order), not by UTF-16 code unit. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff, ys = y >= 0xd800 && y <= 0xdfff;
    // A surrogate (code point ≥ 0x10000) sorts after any BMP unit at or above 0xE000.
    if (xs !== ys && (xs ? y >= 0xe000 : x >= 0xe000)) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory; // follows symlinks
  } catch {
    return false;
  }
}

/** `os.walk(dir, followlinks=True)` minus repeats: pushes `{dir, files}` for `dir` and every folder below it. */
async function walkFiles(
  dir: string,
  seen: Set<string>,
  out: { dir: string; files: string[] }[],
  isClassRoot = true,
): Promise<void> {
  let real: string;
  try {
    real = await Deno.realPath(dir);
  } catch {
    return;
  }
  if (seen.has(real)) return;
  seen.add(real);
  const files: string[] = [];
  const subdirs: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory || (e.isSymlink && await isDirectory(p))) subdirs.push(p);
      else files.push(e.name);
    }
  } catch (e) {
    // os.walk ignores unreadable folders (onerror=None); so do we, but say so if it is the class root.
    if (isClassRoot) {
      throw new DataError(`cannot list ${dir}: ${(e as Error).message}`, { path: dir, cause: e });
    }
    return;
  }
  out.push({ dir, files });
  for (const s of subdirs) await walkFiles(s, seen, out, false);
}

/** A scanned image folder: class map and file list; images are read on demand. */
export class ImageFolder {
  /** The root folder as given. */
  readonly root: string;
  /** Class names by index (sorted subfolder names). */
  readonly classes: readonly string[];
  /** Class name → index. */
  readonly classToIdx: ReadonlyMap<string, number>;
  /** Every kept file with its label, in torchvision's order. */
  readonly samples: readonly ImageFolderEntry[];
  /** The extensions used when scanning. */
  readonly extensions: readonly string[];

  private constructor(
    root: string,
    classes: string[],
    samples: ImageFolderEntry[],
    extensions: readonly string[],
  ) {
    this.root = root;
    this.classes = Object.freeze(classes);
    this.classToIdx = new Map(classes.map((c, i) => [c, i]));
    this.samples = Object.freeze(samples);
    this.extensions = extensions;
  }

  /** Number of indexed files. */
  get length(): number {
    return this.samples.length;
  }

  /**
   * Scans `root` (see the module doc for the rules). Throws a {@link DataError} naming the path when root
   * is missing or not a folder, has no class subfolders, or (unless `allowEmpty`) a class has no image.
   */
  static async open(root: string, options: ImageFolderScanOptions = {}): Promise<ImageFolder> {
    const exts = (options.extensions ?? DEFAULT_IMAGE_EXTENSIONS).map((e) => e.toLowerCase());
    if (exts.length === 0) throw new DataError("image folder: the extension list is empty");
    const layout = `${root}/<class>/<image>{${exts.join(",")}}`;
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(root);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new DataError(
          `image folder root ${root} does not exist (expected a folder laid out as ${layout})`,
          { path: root },
        );
      }
      throw new DataError(`cannot access image folder root ${root}: ${(e as Error).message}`, {
        path: root,
        cause: e,
      });
    }
    if (!st.isDirectory) {
      throw new DataError(`image folder root ${root} is not a folder (expected ${layout})`, { path: root });
    }
    const classes: string[] = [];
    for await (const e of Deno.readDir(root)) {
      if (e.isDirectory || (e.isSymlink && await isDirectory(join(root, e.name)))) classes.push(e.name);
    }
    classes.sort(compareCodePoints);
    if (classes.length === 0) {
      throw new DataError(`image folder root ${root} has no class subfolders (expected ${layout})`, {
        path: root,
      });
    }
    const samples: ImageFolderEntry[] = [];
    const empty: string[] = [];
    for (let label = 0; label < classes.length; label++) {
      const classDir = join(root, classes[label]);
      const walked: { dir: string; files: string[] }[] = [];
      await walkFiles(classDir, new Set(), walked);
      walked.sort((a, b) => compareCodePoints(a.dir, b.dir));
      let n = 0;
      for (const { dir, files } of walked) {
        files.sort(compareCodePoints);
        for (const f of files) {
          const lower = f.toLowerCase();
          if (exts.some((e) => lower.endsWith(e))) {
            samples.push({ path: join(dir, f), label });
            n++;
          }
        }
      }
      if (n === 0) empty.push(classDir);
    }
    if (empty.length > 0 && !options.allowEmpty) {
      const shown = empty.slice(0, 5).join(", ") + (empty.length > 5 ? `, … (${empty.length} in all)` : "");
      throw new DataError(
        `image folder ${root}: no image with extension ${
          exts.join(", ")
        } in class folder(s) ${shown} (pass allowEmpty to accept empty classes)`,
        { path: empty[0] },
      );
    }
    return new ImageFolder(root, classes, samples, exts);
  }

  /** Lazily reads and preprocesses images; iterate the result with `for await`. */
  read(options: ImageFolderReadOptions): ImageFolderReader {
    return new ImageFolderReader(this, options);
  }

  /** Reads (up to `limit`) images into an in-memory {@link ImageDataset} of shape `[3, size, size]`. */
  async load(options: ImageFolderReadOptions): Promise<LoadedImageFolder> {
    const reader = this.read(options);
    const per = 3 * options.size * options.size;
    const cap = Math.min(options.limit ?? this.length, this.length);
    let uint8 = new Uint8Array(cap * per);
    const labels: number[] = [];
    const paths: string[] = [];
    for await (const s of reader) {
      hwcToChw(s.image, uint8.subarray(labels.length * per, (labels.length + 1) * per));
      labels.push(s.label);
      paths.push(s.path);
    }
    if (labels.length < cap) uint8 = uint8.slice(0, labels.length * per);
    const dataset = createImageDataset({
      uint8,
      labels: Uint32Array.from(labels),
      classNames: this.classes,
      shape: [3, options.size, options.size],
    });
    return { dataset, paths, skipped: reader.skipped };
  }
}

type Outcome = { ok: true; sample: ImageFolderSample } | {
  ok: false;
  index: number;
  path: string;
  error: unknown;
};

/** The lazy reader {@link ImageFolder.read} returns; `skipped` and `produced` update as it runs. */
export class ImageFolderReader implements AsyncIterable<ImageFolderSample> {
  /** Files skipped so far ("skip" mode). */
  readonly skipped: SkippedImage[] = [];
  /** Images produced so far. */
  produced = 0;
  readonly #folder: ImageFolder;
  readonly #opts: ImageFolderReadOptions;

  /** Validates the options; reading starts on iteration. */
  constructor(folder: ImageFolder, options: ImageFolderReadOptions) {
    const { size, limit, concurrency } = options;
    if (!Number.isInteger(size) || size < 1) {
      throw new DataError(`image folder: size must be a positive integer, got ${size}`);
    }
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
      throw new DataError(`image folder: limit must be a non-negative integer, got ${limit}`);
    }
    if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
      throw new DataError(`image folder: concurrency must be a positive integer, got ${concurrency}`);
    }
    const mode = options.onCorrupt ?? "error";
    if (mode !== "error" && mode !== "skip") {
      throw new DataError(`image folder: onCorrupt must be "error" or "skip", got ${JSON.stringify(mode)}`);
    }
    this.#folder = folder;
    this.#opts = options;
  }

  /**
   * Yields preprocessed images in order (sorted, or seeded-shuffled), keeping up to `concurrency` decodes
   * in flight; stops after `limit` images. Throws a {@link DataError} naming the first unreadable file in
   * "error" mode; records it in {@link skipped} in "skip" mode.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<ImageFolderSample> {
    const o = this.#opts;
    const samples = this.#folder.samples;
    const order = o.shuffleSeed === undefined ? null : seededPermutation(samples.length, o.shuffleSeed);
    const limit = Math.min(o.limit ?? samples.length, samples.length);
    const conc = o.concurrency ?? 4;
    const skip = (o.onCorrupt ?? "error") === "skip";
    const start = (index: number): Promise<Outcome> => {
      const { path, label } = samples[index];
      return decodeImageFile(path, { failOn: o.failOn }).then(
        (img): Outcome => ({ ok: true, sample: { index, path, label, image: admCenterCrop(img, o.size) } }),
      ).catch((error): Outcome => ({ ok: false, index, path, error }));
    };
    const inflight: Promise<Outcome>[] = [];
    let next = 0;
    while (this.produced < limit) {
      while (inflight.length < Math.min(conc, limit - this.produced) && next < samples.length) {
        inflight.push(start(order ? order[next] : next));
        next++;
      }
      if (inflight.length === 0) break;
      const r = await inflight.shift()!;
      if (r.ok) {
        this.produced++;
        yield r.sample;
        continue;
      }
      const reason = r.error instanceof DataError
        ? r.error.message
        : String((r.error as Error)?.message ?? r.error);
      if (!skip) {
        throw new DataError(
          r.error instanceof DataError ? reason : `cannot read image ${r.path}: ${reason}`,
          { path: r.path, cause: r.error },
        );
      }
      const s = { path: r.path, index: r.index, reason };
      this.skipped.push(s);
      o.onSkip?.(s);
    }
  }
}

/** {@link ImageFolder.open} then {@link ImageFolder.load}. */
export async function loadImageFolder(
  root: string,
  options: ImageFolderReadOptions & ImageFolderScanOptions,
): Promise<LoadedImageFolder & { folder: ImageFolder }> {
  const folder = await ImageFolder.open(root, options);
  return { folder, ...(await folder.load(options)) };
}
