/**
 * lib/data/png.ts: CRC-32, encode → decode round trips (own decoder and sharp), decoding of PNGs written by
 * Pillow, rejection of damaged files, and atomic writes.
 */
import sharp from "sharp";
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { writeFileAtomic } from "../../lib/data/atomic_write.ts";
import { crc32, decodePng, encodePng } from "../../lib/data/png.ts";
import type { RawImage } from "../../lib/data/raw_image.ts";
import { decodeImageFile } from "../../lib/data/image_decode.ts";
import { fixture } from "./golden.ts";
import { pattern } from "./pattern_images.ts";

Deno.test("crc32 matches the standard check value", () => {
  assertEquals(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assertEquals(crc32(new Uint8Array(0)), 0);
  assertEquals(crc32(new TextEncoder().encode("IEND")), 0xae426082);
});

async function sharpRaw(png: Uint8Array): Promise<RawImage> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, channels: info.channels, data: new Uint8Array(data) };
}

/** `img` as sharp 0.35 returns raw pixels: gray replicated to sRGB, alpha kept. */
function asSrgb(img: RawImage): RawImage {
  if (img.channels >= 3) return img;
  const c = img.channels, oc = c + 2, n = img.width * img.height;
  const data = new Uint8Array(n * oc);
  for (let i = 0; i < n; i++) {
    data.fill(img.data[i * c], i * oc, i * oc + 3);
    if (c === 2) data[i * oc + 3] = img.data[i * c + 1];
  }
  return { ...img, channels: oc, data };
}

Deno.test("PNG round trip: 1–4 channels, both filter modes, own decoder and sharp", async () => {
  for (const ch of [1, 2, 3, 4]) {
    for (const filter of ["adaptive", "none"] as const) {
      for (const [w, h] of [[1, 1], [37, 29], [3, 64]]) {
        const img = pattern(w, h, ch, ch + w);
        const png = encodePng(img, { filter });
        const back = decodePng(png);
        assertEquals([back.width, back.height, back.channels], [w, h, ch]);
        assertEquals(back.data, img.data, `own decoder ${ch}ch ${w}×${h} ${filter}`);
        const s = await sharpRaw(png);
        const want = asSrgb(img);
        assertEquals([s.width, s.height, s.channels], [w, h, want.channels], "sharp header");
        assertEquals(s.data, want.data, `sharp ${ch}ch ${w}×${h} ${filter}`);
      }
    }
  }
});

Deno.test("adaptive filtering compresses smooth images better than no filtering", () => {
  const w = 64, h = 64;
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const x = i % w, y = Math.floor(i / w);
    data[i * 3] = x * 4;
    data[i * 3 + 1] = y * 4;
    data[i * 3 + 2] = (x + y) * 2;
  }
  const img = { width: w, height: h, channels: 3, data };
  assert(encodePng(img).length < encodePng(img, { filter: "none" }).length);
});

Deno.test("decodePng reads Pillow's RGBA and palette PNGs like sharp does", async () => {
  for (const name of ["decode_rgba.png", "decode_palette.png", "grid_a.png"]) {
    const bytes = Deno.readFileSync(fixture(name));
    const own = decodePng(bytes, name);
    const s = await sharpRaw(bytes);
    assertEquals([own.width, own.height, own.channels], [s.width, s.height, s.channels], name);
    assertEquals(own.data, s.data, name);
  }
  // And the RGB decode path (alpha dropped) agrees with decodeImageFile.
  const rgba = decodePng(Deno.readFileSync(fixture("decode_rgba.png")));
  const rgb = await decodeImageFile(fixture("decode_rgba.png"));
  for (let i = 0; i < rgb.width * rgb.height; i++) {
    for (let c = 0; c < 3; c++) {
      if (rgb.data[i * 3 + c] !== rgba.data[i * 4 + c]) throw new Error(`pixel ${i}`);
    }
  }
});

Deno.test("decodePng rejects damaged files with a message naming them", () => {
  const png = encodePng(pattern(8, 8, 3, 1));
  assertThrows(() => decodePng(png.subarray(1), "x.png"), "x.png", "signature");
  const flipped = png.slice();
  flipped[40] ^= 0xff; // inside IDAT
  assertThrows(() => decodePng(flipped, "y.png"), "y.png", "CRC mismatch");
  assertThrows(() => decodePng(png.subarray(0, png.length - 12), "z.png"), "z.png", "IEND");
  assertThrows(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(5) }), "bytes");
});

Deno.test("writeFileAtomic replaces the file whole and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/sub/out.png`;
    await writeFileAtomic(p, new Uint8Array([1, 2, 3]));
    await writeFileAtomic(p, new Uint8Array([4, 5]));
    assertEquals([...await Deno.readFile(p)], [4, 5]);
    const names = [];
    for await (const e of Deno.readDir(`${dir}/sub`)) names.push(e.name);
    assertEquals(names, ["out.png"]);
    // A failing write (target is a folder) leaves the folder untouched and no temp file behind.
    await Deno.mkdir(`${dir}/sub/dir.png`);
    let failed = false;
    await writeFileAtomic(`${dir}/sub/dir.png`, new Uint8Array([1])).catch(() => (failed = true));
    assert(failed, "renaming a file over a folder must fail");
    const after = [];
    for await (const e of Deno.readDir(`${dir}/sub`)) after.push(e.name);
    assertEquals(after.sort(), ["dir.png", "out.png"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
