/**
 * resizeBilinear (F.interpolate bilinear, align_corners=False): forward and gradient against a float64
 * reference with central finite differences, golden values from PyTorch (tools/golden_resize.py), the
 * 64 → 299 resize of the FID Inception, determinism and shape errors.
 */
import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn } from "../helpers/gradcheck.ts";
import { resizeBilinear } from "../../lib/tensor/ops/resize.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";
import { assertDeterministic } from "../helpers/bits.ts";

await gpu();

/**
 * Taps and weights along one dim as ATen's CPU kernel computes them for float tensors (scale rounded to f32,
 * source coordinate in float64, λ1 stored as f32).
 */
function taps(nIn: number, nOut: number): { i0: number; i1: number; l0: number; l1: number }[] {
  const scale = Math.fround(nIn / nOut);
  const out = [];
  for (let o = 0; o < nOut; o++) {
    const src = Math.max(scale * (o + 0.5) - 0.5, 0);
    const i0 = Math.min(Math.floor(src), nIn - 1);
    const i1 = i0 < nIn - 1 ? i0 + 1 : i0;
    const l1 = Math.fround(Math.min(Math.max(src - i0, 0), 1));
    out.push({ i0, i1, l0: 1 - l1, l1 });
  }
  return out;
}

/** Float64 reference of the bilinear resize of x [N, C, H, W] to [N, C, ho, wo]. */
function resizeRef(x: Float64Array, shape: number[], ho: number, wo: number): Float64Array {
  const [N, C, H, W] = shape;
  const ty = taps(H, ho);
  const tx = taps(W, wo);
  const out = new Float64Array(N * C * ho * wo);
  for (let nc = 0; nc < N * C; nc++) {
    const b = nc * H * W;
    for (let oy = 0; oy < ho; oy++) {
      const a = ty[oy];
      for (let ox = 0; ox < wo; ox++) {
        const c = tx[ox];
        const r0 = b + a.i0 * W;
        const r1 = b + a.i1 * W;
        out[(nc * ho + oy) * wo + ox] = a.l0 * (c.l0 * x[r0 + c.i0] + c.l1 * x[r0 + c.i1]) +
          a.l1 * (c.l0 * x[r1 + c.i0] + c.l1 * x[r1 + c.i1]);
      }
    }
  }
  return out;
}

const geos: { shape: number[]; size: [number, number] }[] = [
  { shape: [1, 2, 5, 4], size: [13, 9] }, // upsampling, non-integer factors
  { shape: [2, 1, 11, 9], size: [4, 5] }, // downsampling
  { shape: [1, 2, 7, 3], size: [3, 8] }, // mixed
  { shape: [1, 1, 1, 4], size: [3, 7] }, // a one-pixel dim
  { shape: [1, 1, 4, 6], size: [4, 6] }, // identity
];

for (const { shape, size } of geos) {
  const n = shape.reduce((a, b) => a * b, 1);
  const tag = `x${JSON.stringify(shape)} → ${size[0]}×${size[1]}`;
  Deno.test(`resizeBilinear ${tag}: forward and gradient vs float64 finite differences`, async () => {
    await checkOp({
      name: `resizeBilinear ${tag}`,
      inputs: [{ shape, data: randn(n, 41) }],
      gpu: ([x]) => resizeBilinear(x, size[0], size[1]),
      ref: ([x]) => resizeRef(x, shape, size[0], size[1]),
    });
  });
}

Deno.test("resizeBilinear 2×3×64×64 → 299×299 (the FID Inception input) vs float64", async () => {
  const shape = [2, 3, 64, 64];
  const x = randn(2 * 3 * 64 * 64, 42);
  const y = tidy(() => resizeBilinear(tensor(Float32Array.from(x), shape), 299, 299));
  const got = await y.data();
  y.dispose();
  assertClose(got, resizeRef(Float64Array.from(Float32Array.from(x)), shape, 299, 299), 1e-6, "64 → 299");
});

/** The golden fixture written by tools/golden_resize.py (torch, float32). */
interface GoldenCase {
  name: string;
  x: number[];
  x_shape: number[];
  size: [number, number];
  out: number[];
  out_shape: number[];
  cot: number[];
  dx: number[];
}

Deno.test("resizeBilinear matches F.interpolate golden values (forward and gradient)", async () => {
  const { cases } = await loadGolden<{ cases: GoldenCase[] }>("resize.json");
  assert(cases.length >= 6, "golden cases missing");
  for (const c of cases) {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(c.x), c.x_shape).keep();
      x.requiresGrad = true;
      const y = resizeBilinear(x, c.size[0], c.size[1]);
      backward(y, tensor(Float32Array.from(c.cot), y.shape));
      return { y, x };
    });
    assert(res.y.shape.join() === c.out_shape.join(), `${c.name}: shape ${res.y.shape} vs ${c.out_shape}`);
    assertClose(await res.y.data(), c.out, 1e-6, `${c.name} forward`);
    assertClose(await res.x.grad!.data(), c.dx, 1e-6, `${c.name} dx`);
    res.y.dispose();
    res.x.dispose();
  }
});

Deno.test("resizeBilinear is deterministic (bit-identical forward and gradient)", async () => {
  const run = async () => {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(randn(2 * 2 * 9 * 13, 43)), [2, 2, 9, 13]).keep();
      x.requiresGrad = true;
      const y = resizeBilinear(x, 31, 6);
      backward(y, tensor(Float32Array.from(randn(y.size, 44)), y.shape));
      return { y, x };
    });
    const arrs = [await res.y.data(), await res.x.grad!.data()];
    res.y.dispose();
    res.x.dispose();
    return arrs;
  };
  await assertDeterministic(run);
});

Deno.test("resizeBilinear: shape errors name the op and the shapes", () => {
  tidy(() => {
    const x3 = tensor(new Float32Array(2 * 4 * 4).fill(1), [2, 4, 4]);
    assertThrows(() => resizeBilinear(x3, 8, 8), "resizeBilinear", "[2, 4, 4]");
    const x = tensor(new Float32Array(3 * 4 * 4).fill(1), [1, 3, 4, 4]);
    assertThrows(() => resizeBilinear(x, 0, 8), "resizeBilinear", "[1, 3, 4, 4]", "0×8");
    assertThrows(() => resizeBilinear(x, 2.5, 8), "resizeBilinear", "positive integers");
  });
});
