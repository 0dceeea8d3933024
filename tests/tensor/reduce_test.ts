import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn } from "../helpers/gradcheck.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import { mean, meanFlat, sum } from "../../lib/tensor/ops/reduce.ts";
import { sumTo } from "../../lib/tensor/ops/elementwise.ts";
import { loadGolden } from "../helpers/golden.ts";

await gpu();

/** Float64 sum over axes of a row-major array (keepdim layout: reduced dims become 1). */
function sumRef(x: Float64Array, shape: number[], axes: number[], scale = 1): Float64Array {
  const red = new Set(axes.map((a) => (a < 0 ? a + shape.length : a)));
  const oshape = shape.map((d, i) => (red.has(i) ? 1 : d));
  const osize = oshape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(osize);
  for (let i = 0; i < x.length; i++) {
    let rem = i;
    let o = 0;
    let m = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      if (!red.has(d)) o += c * m;
      m *= oshape[d];
    }
    out[o] += x[i];
  }
  return out.map((v) => v * scale);
}

const cases: [number[], number[] | undefined][] = [
  [[7], undefined],
  [[3, 5, 7], undefined],
  [[3, 5, 7], [2]],
  [[3, 5, 7], [-1, 1]],
  [[3, 5, 7], [0]],
  [[3, 5, 7], [1]],
  [[3, 5, 7], [0, 2]],
  [[2, 3, 4, 5], [0, 2]],
  [[4, 1, 33], [1, 2]],
  [[600, 3], [0]],
];

for (const [shape, axes] of cases) {
  for (const op of ["sum", "mean"] as const) {
    Deno.test(`${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}: forward and gradient vs float64`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const all = shape.map((_, i) => i);
      const ax = axes ?? all;
      const count = ax.reduce((a, i) => a * shape[i < 0 ? i + shape.length : i], 1);
      await checkOp({
        name: op,
        inputs: [{ shape, data: randn(n, 40 + n) }],
        gpu: ([x]) => (op === "sum" ? sum(x, axes) : mean(x, axes)),
        ref: ([x]) => sumRef(x, shape, ax, op === "mean" ? 1 / count : 1),
      });
    });
  }
}

Deno.test("sum and mean output shapes: [] for a full reduction, keepdim keeps ones", () => {
  tidy(() => {
    const x = tensor(Float32Array.from(randn(24, 1)), [2, 3, 4]);
    assertEquals(sum(x).shape, []);
    assertEquals(mean(x).shape, []);
    assertEquals(sum(x, undefined, true).shape, [1, 1, 1]);
    assertEquals(sum(x, [1]).shape, [2, 4]);
    assertEquals(mean(x, [-1], true).shape, [2, 3, 1]);
    assertEquals(sum(x, []).shape, [2, 3, 4]);
    assertEquals(meanFlat(x).shape, [2]);
  });
});

Deno.test("meanFlat, keepdim and axes=[] vs float64", async () => {
  await checkOp({
    name: "meanFlat",
    inputs: [{ shape: [3, 2, 5, 5], data: randn(150, 51) }],
    gpu: ([x]) => meanFlat(x),
    ref: ([x]) => sumRef(x, [3, 2, 5, 5], [1, 2, 3], 1 / 50),
  });
  await checkOp({
    name: "sum keepdim",
    inputs: [{ shape: [3, 4, 5], data: randn(60, 52) }],
    gpu: ([x]) => sum(x, [1], true),
    ref: ([x]) => sumRef(x, [3, 4, 5], [1]),
  });
  await checkOp({
    name: "mean axes=[] (a copy)",
    inputs: [{ shape: [3, 4], data: randn(12, 53) }],
    gpu: ([x]) => mean(x, []),
    ref: ([x]) => x.slice(),
  });
});

Deno.test("large reductions: multi-stage sums vs float64 (1M elements, 300k rows, long columns)", async () => {
  const n = 1 << 20;
  const data = Float32Array.from(randn(n, 61, 1, 0.25));
  const x64 = Float64Array.from(data);
  const res = tidy(() => {
    const x = tensor(data, [n]);
    const a = sum(x);
    const b = mean(x.view([64, n / 64]), [1]);
    const c = sum(x.view([4096, 256]), [0]);
    const d = sum(x.view([16, 4096, 16]), [1]);
    return [x, a, b, c, d];
  });
  assertClose([await res[1].item()], sumRef(x64, [n], [0]), 1e-6, "sum 1M");
  assertClose(await res[2].data(), sumRef(x64, [64, n / 64], [1], 64 / n), 1e-6, "mean rows");
  assertClose(await res[3].data(), sumRef(x64, [4096, 256], [0]), 1e-6, "sum columns");
  assertClose(await res[4].data(), sumRef(x64, [16, 4096, 16], [1]), 1e-6, "sum middle");
  for (const t of res) t.dispose();
});

Deno.test("reductions are deterministic (bit-identical reruns) and sumTo still works", async () => {
  const n = 300_001;
  const data = Float32Array.from(randn(n, 71, 3, 1));
  const run = async () => {
    const r = tidy(() => {
      const x = tensor(data, [n]);
      x.requiresGrad = true;
      const s = sum(x);
      const m = mean(x.view([1, n]), [1]);
      backward(s);
      return [s, m, x.grad!, x];
    });
    const out = [await r[0].data(), await r[1].data()];
    for (const t of r) t.dispose();
    return out;
  };
  const a = await run();
  const b = await run();
  for (let k = 0; k < a.length; k++) {
    assert(a[k].every((v, i) => Object.is(v, b[k][i])), `result ${k} differs between runs`);
  }
  // n is odd: the scalar (non-vec4) multi-stage path.
  const x64 = Float64Array.from(data);
  assertClose(a[0], sumRef(x64, [n], [0]), 1e-6, "sum of 300001");
  assertClose(a[1], sumRef(x64, [n], [0], 1 / n), 1e-6, "mean of 300001");
  await checkOp({
    name: "sumTo",
    inputs: [{ shape: [2, 3, 4], data: randn(24, 5) }],
    gpu: ([x]) => sumTo(x, [3, 1]),
    ref: ([x]) => sumRef(x, [2, 3, 4], [0, 2]),
  });
});

Deno.test("sum and mean match PyTorch golden values", async () => {
  const g = await loadGolden();
  for (const name of ["sum_all", "mean_axes", "sum_keepdim"]) {
    const c = g[name];
    const res = tidy(() => {
      const x = tensor(Float32Array.from(c.inputs[0].data), c.inputs[0].shape);
      x.requiresGrad = true;
      const axes = c.axes as number[] | null;
      const keep = c.keepdim as boolean;
      const y = name === "mean_axes" ? mean(x, axes ?? undefined, keep) : sum(x, axes ?? undefined, keep);
      backward(y, tensor(Float32Array.from(c.cotangent), y.shape));
      return [y, x.grad!, x];
    });
    assertEquals(res[0].shape, c.out_shape as number[], `${name} shape`);
    assertClose(await res[0].data(), c.output, 1e-6, `${name} golden forward`);
    assertClose(await res[1].data(), c.grads[0]!, 1e-6, `${name} golden gradient`);
    for (const t of res) t.dispose();
  }
});

Deno.test("bad axes name the op and the shape", () => {
  const x = tensor(new Float32Array(6).fill(1), [2, 3]);
  assertThrows(() => sum(x, [2]), "sum", "axis 2", "[2, 3]");
  assertThrows(() => mean(x, [-3]), "mean", "axis -3", "[2, 3]");
  x.dispose();
});
