import { assertThrows } from "../helpers/assert.ts";
import { checkOp, gpu, randn, randu } from "../helpers/gradcheck.ts";
import * as E from "../../lib/tensor/ops/elementwise.ts";

await gpu();

/** Float64 broadcast of a binary function over row-major arrays. */
function bcast(
  f: (a: number, b: number) => number,
  a: Float64Array,
  as: number[],
  b: Float64Array,
  bs: number[],
): Float64Array {
  const n = Math.max(as.length, bs.length);
  const A = [...Array(n - as.length).fill(1), ...as];
  const B = [...Array(n - bs.length).fill(1), ...bs];
  const O = A.map((d, i) => Math.max(d, B[i]));
  const size = O.reduce((x, y) => x * y, 1);
  const out = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    let rem = i;
    let ai = 0;
    let bi = 0;
    let am = 1;
    let bm = 1;
    for (let d = n - 1; d >= 0; d--) {
      const c = rem % O[d];
      rem = Math.floor(rem / O[d]);
      ai += (A[d] === 1 ? 0 : c) * am;
      bi += (B[d] === 1 ? 0 : c) * bm;
      am *= A[d];
      bm *= B[d];
    }
    out[i] = f(a[ai], b[bi]);
  }
  return out;
}

const binaries: [
  string,
  (
    a: import("../../lib/tensor/tensor.ts").Tensor,
    b: import("../../lib/tensor/tensor.ts").Tensor,
  ) => import("../../lib/tensor/tensor.ts").Tensor,
  (a: number, b: number) => number,
][] = [
  ["add", E.add, (a, b) => a + b],
  ["sub", E.sub, (a, b) => a - b],
  ["mul", E.mul, (a, b) => a * b],
  ["div", E.div, (a, b) => a / b],
];
const shapePairs: [number[], number[]][] = [
  [[3, 5], [3, 5]],
  [[2, 3, 4], [4]],
  [[2, 1, 4], [1, 3, 1]],
  [[4, 6], [4, 1]],
  [[2, 3, 5], [2, 1, 5]],
];

for (const [name, op, f] of binaries) {
  for (const [as, bs] of shapePairs) {
    Deno.test(`${name} ${JSON.stringify(as)} ${JSON.stringify(bs)}: forward and gradients vs float64`, async () => {
      const na = as.reduce((x, y) => x * y, 1);
      const nb = bs.reduce((x, y) => x * y, 1);
      // keep divisors away from zero
      const bData = name === "div" ? randu(nb, 2, 0.5, 2) : randn(nb, 2);
      await checkOp({
        name,
        inputs: [{ shape: as, data: randn(na, 1) }, { shape: bs, data: bData }],
        gpu: ([a, b]) => op(a, b),
        ref: ([a, b]) => bcast(f, a, as, b, bs),
      });
    });
  }
}

const gk = Math.sqrt(2 / Math.PI);
const unaries: [
  string,
  (x: import("../../lib/tensor/tensor.ts").Tensor) => import("../../lib/tensor/tensor.ts").Tensor,
  (x: number) => number,
  [number, number]?,
][] = [
  ["silu", E.silu, (x) => x / (1 + Math.exp(-x))],
  ["gelu", E.gelu, (x) => 0.5 * x * (1 + Math.tanh(gk * (x + 0.044715 * x ** 3)))],
  ["exp", E.exp, Math.exp],
  ["square", E.square, (x) => x * x],
  ["sqrt", E.sqrt, Math.sqrt, [0.2, 3]],
  ["log", E.log, Math.log, [0.2, 3]],
  ["tanh", E.tanh, Math.tanh],
  ["sigmoid", E.sigmoid, (x) => 1 / (1 + Math.exp(-x))],
  ["affine", (x) => E.affine(x, -1.5, 0.25), (x) => -1.5 * x + 0.25],
  ["clamp", (x) => E.clamp(x, -0.7, 1.1), (x) => Math.min(Math.max(x, -0.7), 1.1)],
];

for (const [name, op, f, range] of unaries) {
  Deno.test(`${name}: forward and gradient vs float64`, async () => {
    const n = 257;
    const data = range ? randu(n, 3, range[0], range[1]) : randn(n, 3, 2);
    await checkOp({
      name,
      inputs: [{ shape: [n], data }],
      gpu: ([x]) => op(x),
      ref: ([x]) => x.map(f),
    });
  });
}

Deno.test("gelu and silu stay finite for large |x|", async () => {
  const data = Float64Array.from([-80, -30, -10, 10, 30, 80, 1e-3, -1e-3]);
  await checkOp({
    name: "gelu tails",
    inputs: [{ shape: [8], data }],
    gpu: ([x]) => E.gelu(x),
    ref: ([x]) => x.map((v) => 0.5 * v * (1 + Math.tanh(gk * (v + 0.044715 * v ** 3)))),
    gradTol: 1e-4,
  });
});

Deno.test("sumTo and broadcastTo are adjoint", async () => {
  const xs = [2, 3, 4];
  await checkOp({
    name: "sumTo",
    inputs: [{ shape: xs, data: randn(24, 5) }],
    gpu: ([x]) => E.sumTo(x, [1, 3, 1]),
    ref: ([x]) => {
      const o = new Float64Array(3);
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) o[j] += x[i * 12 + j * 4 + k];
      }
      return o;
    },
  });
  await checkOp({
    name: "broadcastTo",
    inputs: [{ shape: [3, 1], data: randn(3, 6) }],
    gpu: ([x]) => E.broadcastTo(x, [2, 3, 4]),
    ref: ([x]) => Float64Array.from({ length: 24 }, (_, i) => x[Math.floor(i / 4) % 3]),
  });
});

Deno.test("shape mismatches name the op and both shapes", async () => {
  const { tensor } = await import("../../lib/tensor/tensor.ts");
  const a = tensor(new Float32Array(6).fill(1), [2, 3]);
  const b = tensor(new Float32Array(8).fill(1), [2, 4]);
  assertThrows(() => E.add(a, b), "add", "[2, 3]", "[2, 4]");
  assertThrows(() => E.axpby(1, a, 2, b), "axpby", "[2, 3]", "[2, 4]");
  a.dispose();
  b.dispose();
});

Deno.test("sumN: bit-identical to a chain of adds, for 1 to 13 inputs (several dispatches past 6)", async () => {
  const { tensor } = await import("../../lib/tensor/tensor.ts");
  for (const k of [1, 2, 3, 6, 7, 13]) {
    const xs = Array.from(
      { length: k },
      (_, i) => tensor(Float32Array.from(randn(1000, 50 + i, 3)), [10, 100]),
    );
    let chain = E.scale(xs[0], 1);
    for (let i = 1; i < k; i++) chain = E.add(chain, xs[i]);
    const got = new Uint32Array((await E.sumN(xs).data()).buffer);
    const want = new Uint32Array((await chain.data()).buffer);
    for (let i = 0; i < want.length; i++) {
      if (got[i] !== want[i]) throw new Error(`k=${k}: element ${i} differs`);
    }
  }
});

Deno.test("same-shape ops: the vec4 kernels (sizes divisible by 4) give the f32 kernels' bits", async () => {
  const { tensor, tidy } = await import("../../lib/tensor/tensor.ts");
  const { backward } = await import("../../lib/tensor/backward.ts");
  const { sum } = await import("../../lib/tensor/ops/reduce.ts");
  // The same 1028 leading elements in a tensor of 1028 (vec4 kernels) and of 1029 (f32 kernels).
  const xs = randn(1029, 7);
  const ys = randu(1029, 8, 0.5, 2);
  const run = (n: number) => {
    const outs = tidy(() => {
      const x = tensor(Float32Array.from(xs.subarray(0, n)), [n]);
      const y = tensor(Float32Array.from(ys.subarray(0, n)), [n]);
      x.requiresGrad = true;
      const parts = [
        E.silu(x),
        E.gelu(x),
        E.tanh(x),
        E.sigmoid(x),
        E.exp(x),
        E.square(x),
        E.abs(x),
        E.clamp(x, -0.5, 0.5),
        E.affine(x, 1.5, -0.25),
        E.log(y),
        E.sqrt(y),
        E.add(x, y),
        E.sub(x, y),
        E.mul(x, y),
        E.div(x, y),
        E.axpby(0.5, x, -2, y),
      ];
      backward(sum(parts.map((p) => E.mul(p, y)).reduce((a, b) => E.add(a, b))));
      return [...parts, E.sumN(parts.slice(0, 7)), E.scale(x.grad!, 1)];
    });
    return Promise.all(outs.map(async (t) => {
      const d = await t.data();
      t.dispose();
      return d;
    }));
  };
  const [vec, flat] = [await run(1028), await run(1029)];
  for (let i = 0; i < vec.length; i++) {
    const a = new Uint32Array(vec[i].buffer);
    const b = new Uint32Array(flat[i].buffer, 0, 1028);
    for (let j = 0; j < 1028; j++) {
      if (a[j] !== b[j]) throw new Error(`output ${i}, element ${j}: vec4 ${vec[i][j]} vs f32 ${flat[i][j]}`);
    }
  }
});
