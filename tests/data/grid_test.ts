/**
 * lib/data/grid.ts against torchvision 0.14's save_image(normalize=True, value_range=(-1, 1)), and
 * lib/data/convert.ts against torchvision's ToTensor + Normalize(0.5, 0.5) and DiT's clamp(127.5x + 128).
 */
import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { chwToHwc, hwcToChw, toUint8, uint8ToUnit, unitValue } from "../../lib/data/convert.ts";
import { makeGrid, saveGrid } from "../../lib/data/grid.ts";
import { decodePng } from "../../lib/data/png.ts";
import { fixture, golden } from "./golden.ts";
import { firstDiff, pattern } from "./pattern_images.ts";

function values(n: number, kind: string): Float32Array {
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    out[k] = kind === "spread" ? ((k * 37) % 263) / 101 - 1.3 : ((k * 7) % 512 - 255.5) / 255;
  }
  return out;
}

const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

Deno.test("saveGrid writes the same pixels as torchvision's save_image", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const c of golden.grid.cases as {
        file: string;
        shape: [number, number, number, number];
        values: string;
        nrow: number;
        padding?: number;
        padValue?: number;
      }[]
    ) {
      const [n, ch, h, w] = c.shape;
      const batch = { data: values(n * ch * h * w, c.values), shape: c.shape };
      const path = `${dir}/${c.file}`;
      await saveGrid(batch, c.nrow, path, { padding: c.padding, padValue: c.padValue });
      const got = decodePng(await Deno.readFile(path));
      const want = decodePng(await Deno.readFile(fixture(c.file)));
      assertEquals([got.width, got.height, got.channels], [want.width, want.height, want.channels], c.file);
      assertEquals(firstDiff(got.data, want.data, want.width, 3), "", c.file);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("makeGrid layout: tiles, padding, partial last row, single image", () => {
  // 5 tiles of 2×3 (h×w) with nrow 2: 2 columns, 3 rows, padding 1.
  const n = 5, h = 2, w = 3;
  const data = new Float32Array(n * 3 * h * w);
  for (let k = 0; k < n; k++) data.fill(-1 + (k + 1) * 0.25, k * 3 * h * w, (k + 1) * 3 * h * w);
  const g = makeGrid({ data, shape: [n, 3, h, w] }, 2, { padding: 1, padValue: 1 });
  assertEquals([g.width, g.height], [(w + 1) * 2 + 1, (h + 1) * 3 + 1]);
  const at = (x: number, y: number) => g.data[(y * g.width + x) * 3];
  assertEquals(at(0, 0), 255); // padding
  assertEquals(at(1, 1), 32); // tile 0: x = -0.75 → trunc(0.125·255 + 0.5)
  assertEquals(at(5, 1), 64); // tile 1 (second column): x = -0.5
  assertEquals(at(1, 4), 96); // tile 2 (second row): x = -0.25
  assertEquals(at(5, 7), 255); // missing 6th tile stays padding
  assertEquals(at(4, 1), 255); // column gap
  const one = makeGrid({ data: new Float32Array(3 * 4 * 5).fill(1), shape: [1, 3, 4, 5] }, 8);
  assertEquals([one.width, one.height], [5, 4]); // no padding for a single image, as torchvision
  const gray = makeGrid({ data: new Float32Array(2 * 1 * 2 * 2).fill(0), shape: [2, 1, 2, 2] }, 8);
  assertEquals(gray.channels, 3);
  assertEquals(gray.data[(2 * gray.width + 2) * 3 + 1], 128);
  assertThrows(() => makeGrid({ data: new Float32Array(8), shape: [2, 2, 2, 1] }, 8), "1 or 3 channels");
  assertThrows(() => makeGrid({ data: new Float32Array(7), shape: [2, 1, 2, 2] }, 8), "needs 8 values");
});

Deno.test("uint8ToUnit is bit-identical to torchvision ToTensor + Normalize(0.5, 0.5)", () => {
  const want = new Float32Array(b64(golden.convert.unitF32).buffer);
  const got = uint8ToUnit(Uint8Array.from({ length: 256 }, (_, i) => i));
  assertEquals(Array.from(new Uint32Array(got.buffer)), Array.from(new Uint32Array(want.buffer)));
  assertEquals([got[0], got[255], unitValue(0)], [-1, 1, -1]);
});

Deno.test("toUint8 is DiT's clamp(127.5x + 128).to(uint8), and inverts uint8ToUnit", () => {
  const unit = new Float32Array(b64(golden.convert.unitF32).buffer);
  const sweep = Float32Array.from({ length: 2201 }, (_, k) => -1.1 + k * 0.001);
  const xs = new Float32Array([...unit, ...sweep, -1e30, 1e30, 0, -0, 1, -1]);
  assertEquals(Array.from(toUint8(xs)), Array.from(b64(golden.convert.toUint8)));
  assertEquals(Array.from(toUint8(unit)), Array.from({ length: 256 }, (_, i) => i));
  assertEquals(Array.from(toUint8([NaN, Infinity, -Infinity])), [0, 255, 0]);
});

Deno.test("hwcToChw and chwToHwc are inverse layouts", () => {
  const img = pattern(5, 3, 3, 7);
  const chw = hwcToChw(img);
  assertEquals(chw[1 * 15 + 2 * 5 + 4], img.data[(2 * 5 + 4) * 3 + 1]);
  assertEquals(chwToHwc(chw, 3, 3, 5), img);
});
