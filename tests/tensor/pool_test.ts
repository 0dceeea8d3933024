import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn } from "../helpers/gradcheck.ts";
import { avgPool2d, maxPool2d, relu } from "../../lib/tensor/ops/pool.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";
import { assertDeterministic } from "../helpers/bits.ts";

await gpu();

interface Geo {
  k: number;
  s: number;
  p: number;
}

/** Float64 reference pooling (NCHW). max: −∞ padding, first maximum; avg: see includePad. */
function poolRef(
  op: "max" | "avg",
  x: Float64Array,
  shape: number[],
  g: Geo,
  includePad = true,
): { out: Float64Array; shape: number[] } {
  const [N, C, H, W] = shape;
  const Ho = Math.floor((H + 2 * g.p - g.k) / g.s) + 1;
  const Wo = Math.floor((W + 2 * g.p - g.k) / g.s) + 1;
  const out = new Float64Array(N * C * Ho * Wo);
  for (let nc = 0; nc < N * C; nc++) {
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        let best = -Infinity;
        let s = 0;
        let cnt = 0;
        for (let i = 0; i < g.k; i++) {
          const y = oy * g.s - g.p + i;
          if (y < 0 || y >= H) continue;
          for (let j = 0; j < g.k; j++) {
            const xx = ox * g.s - g.p + j;
            if (xx < 0 || xx >= W) continue;
            const v = x[(nc * H + y) * W + xx];
            if (v > best) best = v;
            s += v;
            cnt++;
          }
        }
        out[(nc * Ho + oy) * Wo + ox] = op === "max" ? best : s / (includePad ? g.k * g.k : cnt);
      }
    }
  }
  return { out, shape: [N, C, Ho, Wo] };
}

const geos: { shape: number[]; g: Geo }[] = [
  { shape: [2, 3, 8, 8], g: { k: 2, s: 2, p: 0 } }, // LeNet
  { shape: [1, 2, 9, 7], g: { k: 3, s: 2, p: 0 } }, // odd sizes
  { shape: [2, 2, 5, 6], g: { k: 3, s: 1, p: 1 } }, // Inception pool branch
  { shape: [1, 2, 7, 8], g: { k: 3, s: 2, p: 1 } }, // strided, padded
];

for (const { shape, g } of geos) {
  const n = shape.reduce((a, b) => a * b, 1);
  const tag = `x${JSON.stringify(shape)} k${g.k} s${g.s} p${g.p}`;
  Deno.test(`maxPool2d ${tag}: forward and gradient vs float64`, async () => {
    await checkOp({
      name: `maxPool2d ${tag}`,
      inputs: [{ shape, data: randn(n, 21) }],
      gpu: ([x]) => maxPool2d(x, g.k, { stride: g.s, padding: g.p }),
      ref: ([x]) => poolRef("max", x, shape, g).out,
    });
  });
  for (const includePad of [true, false]) {
    Deno.test(`avgPool2d ${tag} countIncludePad=${includePad}: forward and gradient vs float64`, async () => {
      await checkOp({
        name: `avgPool2d ${tag} ${includePad}`,
        inputs: [{ shape, data: randn(n, 22) }],
        gpu: ([x]) => avgPool2d(x, g.k, { stride: g.s, padding: g.p, countIncludePad: includePad }),
        ref: ([x]) => poolRef("avg", x, shape, g, includePad).out,
      });
    });
  }
}

Deno.test("relu: forward and gradient vs float64", async () => {
  await checkOp({
    name: "relu",
    inputs: [{ shape: [3, 7, 11], data: randn(231, 23) }],
    gpu: ([x]) => relu(x),
    ref: ([x]) => x.map((v) => Math.max(v, 0)),
  });
});

Deno.test("maxPool2d: ties route the gradient to the first maximum of each window", async () => {
  const res = tidy(() => {
    const x = tensor(new Float32Array(16).fill(1.5), [1, 1, 4, 4]).keep();
    x.requiresGrad = true;
    const y = maxPool2d(x, 2);
    backward(y, tensor(Float32Array.from([1, 2, 3, 4]), y.shape));
    return { y, x };
  });
  const dx = await res.x.grad!.data();
  const want = [1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0];
  assert(dx.join() === want.join(), `dx ${[...dx]} vs ${want}`);
  res.y.dispose();
  res.x.dispose();
});

/** The golden fixture written by tools/golden_pool.py (torch, float64). */
interface GoldenCase {
  name: string;
  op: "max" | "avg" | "relu";
  kernel: number;
  stride: number;
  padding: number;
  include_pad: boolean;
  x: number[];
  x_shape: number[];
  out: number[];
  out_shape: number[];
  cot: number[];
  dx: number[];
}

Deno.test("maxPool2d, avgPool2d and relu match PyTorch golden values (forward and gradients)", async () => {
  const { cases } = await loadGolden<{ cases: GoldenCase[] }>("pool.json");
  assert(cases.length >= 8, "golden cases missing");
  assert(cases.some((c) => c.op === "avg" && !c.include_pad), "no count_include_pad=False case");
  for (const c of cases) {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(c.x), c.x_shape).keep();
      x.requiresGrad = true;
      const o = { stride: c.stride, padding: c.padding };
      let y: Tensor;
      if (c.op === "max") y = maxPool2d(x, c.kernel, o);
      else if (c.op === "avg") y = avgPool2d(x, c.kernel, { ...o, countIncludePad: c.include_pad });
      else y = relu(x);
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

Deno.test("pooling is deterministic (bit-identical forward and gradients)", async () => {
  const run = async () => {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(randn(2 * 3 * 9 * 9, 31)), [2, 3, 9, 9]).keep();
      x.requiresGrad = true;
      const y = avgPool2d(maxPool2d(relu(x), 3, { stride: 1, padding: 1 }), 3, {
        stride: 2,
        padding: 1,
        countIncludePad: false,
      });
      backward(y, tensor(Float32Array.from(randn(y.size, 32)), y.shape));
      return { y, x };
    });
    const arrs = [await res.y.data(), await res.x.grad!.data()];
    res.y.dispose();
    res.x.dispose();
    return arrs;
  };
  await assertDeterministic(run);
});

Deno.test("pooling: shape errors name the op and the shapes", () => {
  tidy(() => {
    const x3 = tensor(new Float32Array(2 * 4 * 4).fill(1), [2, 4, 4]);
    assertThrows(() => maxPool2d(x3, 2), "maxPool2d", "[2, 4, 4]");
    assertThrows(() => avgPool2d(x3, 2), "avgPool2d", "[2, 4, 4]");
    const x = tensor(new Float32Array(2 * 3 * 4 * 4).fill(1), [2, 3, 4, 4]);
    assertThrows(() => maxPool2d(x, 5), "maxPool2d", "[2, 3, 4, 4]", "does not fit");
    assertThrows(() => avgPool2d(x, 2, { padding: 2 }), "avgPool2d", "[2, 3, 4, 4]", "padding");
  });
});
