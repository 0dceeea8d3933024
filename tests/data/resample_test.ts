/**
 * lib/data/pil_resample.ts against Pillow 9.4's Image.resize (fixtures by tools/golden_center_crop.py):
 * every filter, down/up/one-axis/identity/extreme sizes, RGB and gray, byte-exact.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { type PilFilter, pilResize } from "../../lib/data/pil_resample.ts";
import { expectedBytes, golden } from "./golden.ts";
import { firstDiff, patternFromKey, sha256 } from "./pattern_images.ts";

Deno.test("pattern inputs match the generator used for the fixtures", () => {
  for (const [key, hash] of Object.entries(golden.inputs as Record<string, string>)) {
    assertEquals(sha256(patternFromKey(key).data), hash, key);
  }
});

Deno.test("pilResize matches Pillow byte for byte (all filters and sizes)", () => {
  const cases = golden.resize as {
    input: string;
    filter: PilFilter;
    size: [number, number];
    sha256: string;
    offset: number;
    length: number;
  }[];
  assert(cases.length >= 60, "expected the full case list");
  const failures: string[] = [];
  for (const c of cases) {
    const img = patternFromKey(c.input);
    const out = pilResize(img, c.size[0], c.size[1], c.filter);
    assertEquals([out.width, out.height, out.channels], [c.size[0], c.size[1], img.channels]);
    const d = firstDiff(out.data, expectedBytes(c), out.width, out.channels);
    if (d) failures.push(`${c.input} → ${c.size.join("×")} ${c.filter}: ${d}`);
    else assertEquals(sha256(out.data), c.sha256);
  }
  assertEquals(failures, []);
});

Deno.test("pilResize: same size is a copy, bad arguments are refused", () => {
  const img = patternFromKey("37x29x3s1");
  const same = pilResize(img, 37, 29, "bicubic");
  assertEquals(same.data, img.data);
  assert(same.data !== img.data, "a copy, not the same buffer");
  assertThrows(() => pilResize(img, 0, 3, "box"), "positive integers");
  assertThrows(() => pilResize(img, 3, 3, "nearest" as PilFilter), "unknown filter");
  assertThrows(() => pilResize({ ...img, data: img.data.subarray(1) }, 3, 3, "box"), "bytes");
});
