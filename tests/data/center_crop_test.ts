/**
 * The ADM center crop (lib/data/center_crop.ts) against guided-diffusion's center_crop_arr on Pillow 9.4,
 * and sharp decoding (lib/data/image_decode.ts) against Pillow's Image.open(...).convert("RGB").
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { admCenterCrop, admCenterCropPlan, pythonRound } from "../../lib/data/center_crop.ts";
import { decodeImageFile } from "../../lib/data/image_decode.ts";
import { expectedBytes, fixture, golden } from "./golden.ts";
import { firstDiff, patternFromKey, sha256 } from "./pattern_images.ts";

Deno.test("pythonRound rounds half to even like Python 3", () => {
  const cases: [number, number][] = [
    [0.5, 0],
    [1.5, 2],
    [2.5, 2],
    [10.5, 10],
    [12.5, 12],
    [17.5, 18],
    [2.4999, 2],
    [2.5001, 3],
    [-0.5, 0],
    [-1.5, -2],
    [7, 7],
  ];
  for (const [x, want] of cases) assertEquals(pythonRound(x), want, `round(${x})`);
});

Deno.test("admCenterCrop matches center_crop_arr byte for byte", () => {
  const failures: string[] = [];
  for (
    const c of golden.centerCrop as {
      input: string;
      size: number;
      sha256: string;
      offset?: number;
      length?: number;
    }[]
  ) {
    const img = patternFromKey(c.input);
    const out = admCenterCrop(img, c.size);
    assertEquals([out.width, out.height, out.channels], [c.size, c.size, img.channels], c.input);
    if (sha256(out.data) === c.sha256) continue;
    const d = c.offset === undefined
      ? "sha256 differs"
      : firstDiff(out.data, expectedBytes(c as { offset: number; length: number }), c.size, img.channels);
    failures.push(
      `${c.input} → ${c.size}: ${d} (plan ${
        JSON.stringify(admCenterCropPlan(img.width, img.height, c.size))
      })`,
    );
  }
  assertEquals(failures, []);
});

Deno.test("admCenterCropPlan: halvings, half-even rounding, copy when already at size", () => {
  assertEquals(admCenterCropPlan(130, 97, 16), [
    { op: "box-halve", from: [130, 97], to: [65, 48] },
    { op: "box-halve", from: [65, 48], to: [32, 24] },
    { op: "bicubic", from: [32, 24], to: [21, 16] },
    { op: "crop", left: 2, top: 0, size: 16 },
  ]);
  // 7 × 1.5 = 10.5 rounds to 10 (JavaScript's Math.round would give 11).
  assertEquals(admCenterCropPlan(7, 4, 6)[0], { op: "bicubic", from: [7, 4], to: [10, 6] });
  assertEquals(admCenterCropPlan(5, 4, 10)[0], { op: "bicubic", from: [5, 4], to: [12, 10] });
  // 64×64 → one halving to 32×32, then no bicubic (PIL copies), crop at 0.
  assertEquals(admCenterCropPlan(64, 64, 32).map((s) => s.op), ["box-halve", "crop"]);
  // ImageNet-typical 500×375 at 256: bicubic to 341×256.
  assertEquals(admCenterCropPlan(500, 375, 256)[0], { op: "bicubic", from: [500, 375], to: [341, 256] });
  assertThrows(() => admCenterCropPlan(10, 10, 0), "size must be a positive integer");
});

Deno.test("sharp decodes JPEG/WebP/PNG like Pillow's convert('RGB'), and the crop of decoded files matches", async () => {
  for (
    const c of golden.decode as {
      file: string;
      width: number;
      height: number;
      sha256: string;
      crop24: { sha256: string; offset: number; length: number };
    }[]
  ) {
    const img = await decodeImageFile(fixture(c.file));
    assertEquals([img.width, img.height, img.channels], [c.width, c.height, 3], c.file);
    assertEquals(sha256(img.data), c.sha256, `${c.file} decoded pixels`);
    const crop = admCenterCrop(img, 24);
    assertEquals(firstDiff(crop.data, expectedBytes(c.crop24), 24, 3), "", `${c.file} crop`);
  }
});

Deno.test("decodeImageFile names the file on failure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/bad.jpg`;
    await Deno.writeFile(p, new TextEncoder().encode("not an image"));
    let err: Error | null = null;
    await decodeImageFile(p).catch((e) => (err = e));
    assert(err !== null && (err as Error).message.includes(p), `message should name ${p}: ${err}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
