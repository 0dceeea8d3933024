/**
 * lib/data/image_folder.ts on a tree generated at test time (PNG by our encoder, JPEG/WebP by sharp):
 * torchvision's class map and file order, ADM-cropped pixels, limit/shuffle/streaming, corrupt files in both
 * modes, and the errors for missing, non-folder, class-less and empty-class roots.
 */
import sharp from "sharp";
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { admCenterCrop } from "../../lib/data/center_crop.ts";
import { hwcToChw, uint8ToUnit } from "../../lib/data/convert.ts";
import { decodeImageFile } from "../../lib/data/image_decode.ts";
import { compareCodePoints, ImageFolder, loadImageFolder } from "../../lib/data/image_folder.ts";
import { encodePng } from "../../lib/data/png.ts";
import { pattern } from "./pattern_images.ts";

async function jpeg(w: number, h: number, seed: number): Promise<Uint8Array> {
  const img = pattern(w, h, 3, seed);
  return new Uint8Array(
    await sharp(img.data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer(),
  );
}

async function webp(w: number, h: number, seed: number): Promise<Uint8Array> {
  const img = pattern(w, h, 3, seed);
  return new Uint8Array(
    await sharp(img.data, { raw: { width: w, height: h, channels: 3 } }).webp({ quality: 80 }).toBuffer(),
  );
}

/** Writes `files` (relative path → bytes) under a fresh temp dir and returns it. */
async function tree(files: Record<string, Uint8Array | null>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "imgfolder" });
  for (const [rel, bytes] of Object.entries(files)) {
    const p = `${root}/${rel}`;
    await Deno.mkdir(p.slice(0, p.lastIndexOf("/")), { recursive: true });
    if (bytes === null) await Deno.mkdir(p, { recursive: true });
    else await Deno.writeFile(p, bytes);
  }
  return root;
}

async function standardTree(): Promise<string> {
  return await tree({
    "cat/b.JPG": await jpeg(40, 30, 1),
    "cat/a.png": encodePng(pattern(33, 50, 3, 2)),
    "cat/nested/c.webp": await webp(20, 20, 3),
    "cat/nested/deeper/d.jpeg": await jpeg(18, 24, 4),
    "cat/nested b/e.png": encodePng(pattern(16, 16, 1, 5)),
    "dog/x.jpeg": await jpeg(64, 48, 6),
    "dog/notes.txt": new TextEncoder().encode("not an image"),
    "dog/y.PNG": encodePng(pattern(70, 35, 4, 7)),
    "Zebra/z.png": encodePng(pattern(17, 17, 3, 8)),
    "loose.png": encodePng(pattern(8, 8, 3, 9)),
    "\u00e9/1.png": encodePng(pattern(9, 9, 3, 10)),
    "\uFF01/1.png": encodePng(pattern(9, 9, 3, 11)),
    "\u{1F600}x/1.png": encodePng(pattern(9, 9, 3, 12)),
  });
}

Deno.test("compareCodePoints sorts like Python str", () => {
  const names = ["b", "a", "Z", "é", "\u{1F600}", "\uFF01", "a b", "a/b", ""];
  // Python: sorted([...]) → ['', 'Z', 'a', 'a b', 'a/b', 'b', 'é', '！', '😀']
  assertEquals([...names].sort(compareCodePoints), [
    "",
    "Z",
    "a",
    "a b",
    "a/b",
    "b",
    "é",
    "\uFF01",
    "\u{1F600}",
  ]);
  assert(
    [...names].sort().indexOf("\uFF01") > [...names].sort().indexOf("\u{1F600}"),
    "UTF-16 order differs",
  );
});

Deno.test("ImageFolder: class map and file order follow torchvision's ImageFolder", async () => {
  const root = await standardTree();
  try {
    const f = await ImageFolder.open(root);
    // Expected lists printed by torchvision 0.14's find_classes / make_dataset on the same tree.
    assertEquals(f.classes, ["Zebra", "cat", "dog", "\u00e9", "\uFF01", "\u{1F600}x"]);
    assertEquals([...f.classToIdx].slice(0, 3), [["Zebra", 0], ["cat", 1], ["dog", 2]]);
    assertEquals(f.samples.map((s) => [s.path.slice(root.length + 1), s.label]), [
      ["Zebra/z.png", 0],
      ["cat/a.png", 1],
      ["cat/b.JPG", 1],
      ["cat/nested/c.webp", 1],
      ["cat/nested b/e.png", 1], // "nested b" < "nested/deeper": the walk is sorted by full path
      ["cat/nested/deeper/d.jpeg", 1],
      ["dog/x.jpeg", 2],
      ["dog/y.PNG", 2],
      ["\u00e9/1.png", 3],
      ["\uFF01/1.png", 4],
      ["\u{1F600}x/1.png", 5],
    ]);
    const only = await ImageFolder.open(root, { extensions: [".png"] });
    assertEquals(only.length, 7);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ImageFolder follows symlinked folders, walking a cycle once", async () => {
  const root = await tree({
    "cat/a.png": encodePng(pattern(8, 8, 3, 1)),
    "cat/sub/b.png": encodePng(pattern(8, 8, 3, 2)),
  });
  try {
    await Deno.symlink(`${root}/cat`, `${root}/lion`);
    await Deno.symlink("..", `${root}/cat/sub/loop`);
    const f = await ImageFolder.open(root);
    assertEquals(f.classes, ["cat", "lion"]);
    assertEquals(f.samples.map((s) => [s.path.slice(root.length + 1), s.label]), [
      ["cat/a.png", 0],
      ["cat/sub/b.png", 0],
      ["lion/a.png", 1],
      ["lion/sub/b.png", 1],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ImageFolder.load: ADM-cropped RGB, NCHW, labels, [-1, 1] floats", async () => {
  const root = await standardTree();
  try {
    const { dataset, paths, skipped, folder } = await loadImageFolder(root, { size: 16 });
    assertEquals([dataset.count, ...dataset.shape], [11, 3, 16, 16]);
    assertEquals(Array.from(dataset.labels), [0, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5]);
    assertEquals(dataset.classNames, folder.classes);
    assertEquals(paths, folder.samples.map((s) => s.path));
    assertEquals(skipped, []);
    const per = 3 * 16 * 16;
    for (let i = 0; i < dataset.count; i++) {
      const want = hwcToChw(admCenterCrop(await decodeImageFile(paths[i]), 16));
      assertEquals(dataset.uint8.subarray(i * per, (i + 1) * per), want, paths[i]);
    }
    assertEquals(dataset.images, uint8ToUnit(dataset.uint8));
    // The gray PNG became RGB with equal planes; the RGBA PNG lost its alpha.
    const ei = paths.findIndex((p) => p.endsWith("e.png"));
    const e = dataset.uint8.subarray(ei * per, (ei + 1) * per);
    assertEquals(e.subarray(0, 256), e.subarray(256, 512));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ImageFolder.read streams lazily: limit, early break, seeded shuffle", async () => {
  const root = await standardTree();
  try {
    const f = await ImageFolder.open(root);
    const r = f.read({ size: 8, limit: 3 });
    const got = [];
    for await (const s of r) got.push(s.index);
    assertEquals(got, [0, 1, 2]);
    assertEquals(r.produced, 3);
    let n = 0;
    for await (const _ of f.read({ size: 8, concurrency: 1 })) if (++n === 2) break;
    assertEquals(n, 2);
    const shuffled = [];
    for await (const s of f.read({ size: 8, shuffleSeed: 7 })) shuffled.push(s.index);
    assertEquals([...shuffled].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert(shuffled.join() !== "0,1,2,3,4,5,6,7,8,9,10", "shuffled");
    const again = [];
    for await (const s of f.read({ size: 8, shuffleSeed: 7, concurrency: 2 })) again.push(s.index);
    assertEquals(again, shuffled, "same seed, same order");
    const { dataset } = await loadImageFolder(root, { size: 8, limit: 5 });
    assertEquals(dataset.count, 5);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("corrupt images: an error naming the file, or skipped and reported", async () => {
  const good = await jpeg(40, 30, 1);
  const root = await tree({
    "a/1.jpg": good,
    "a/2_truncated.jpg": good.subarray(0, Math.floor(good.length / 2)),
    "a/3.png": encodePng(pattern(20, 20, 3, 1)),
    "b/4_garbage.png": new TextEncoder().encode("definitely not a PNG"),
    "b/5.jpg": good,
    "b/6_empty.webp": new Uint8Array(0),
  });
  try {
    const e = await assertRejects(() => loadImageFolder(root, { size: 8 }), "2_truncated.jpg");
    assertEquals((e as { path?: string }).path, `${root}/a/2_truncated.jpg`);
    const seen: string[] = [];
    const { dataset, skipped, paths } = await loadImageFolder(root, {
      size: 8,
      onCorrupt: "skip",
      onSkip: (s) => seen.push(s.path),
    });
    assertEquals(skipped.map((s) => [s.path.slice(root.length + 1), s.index]), [
      ["a/2_truncated.jpg", 1],
      ["b/4_garbage.png", 3],
      ["b/6_empty.webp", 5],
    ]);
    assertEquals(seen, skipped.map((s) => s.path));
    assert(skipped.every((s) => s.reason.length > 0), "reasons are given");
    assertEquals(dataset.count, 3);
    assertEquals(Array.from(dataset.labels), [0, 0, 1]);
    assertEquals(paths.map((p) => p.slice(root.length + 1)), ["a/1.jpg", "a/3.png", "b/5.jpg"]);
    // limit counts produced images, not skipped files.
    const lim = await loadImageFolder(root, { size: 8, onCorrupt: "skip", limit: 2 });
    assertEquals([lim.dataset.count, lim.skipped.length], [2, 1]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("clear errors for missing, non-folder, class-less roots and empty classes", async () => {
  const root = await tree({
    "empty_root/": null,
    "file.txt": new Uint8Array(1),
    "x/a/1.png": encodePng(pattern(4, 4, 3, 1)),
    "x/b/readme.txt": new Uint8Array(1),
    "x/c/": null,
  });
  try {
    await assertRejects(() => ImageFolder.open(`${root}/nope`), `${root}/nope`, "does not exist", "<class>");
    await assertRejects(() => ImageFolder.open(`${root}/file.txt`), `${root}/file.txt`, "is not a folder");
    await assertRejects(
      () => ImageFolder.open(`${root}/empty_root`),
      `${root}/empty_root`,
      "no class subfolders",
    );
    await assertRejects(
      () => ImageFolder.open(`${root}/x`),
      `${root}/x/b`,
      `${root}/x/c`,
      ".jpg",
      "allowEmpty",
    );
    const f = await ImageFolder.open(`${root}/x`, { allowEmpty: true });
    assertEquals([f.classes, f.length], [["a", "b", "c"], 1]);
    await assertRejects(() => f.load({ size: 0 }), "size must be a positive integer");
    await assertRejects(() => f.load({ size: 4, onCorrupt: "ignore" as "skip" }), "onCorrupt");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
