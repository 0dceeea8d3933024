import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn, relErr } from "../helpers/gradcheck.ts";
import * as L from "../../lib/tensor/ops/layout.ts";
import { mul } from "../../lib/tensor/ops/elementwise.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { rt } from "../../lib/gpu/runtime.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";

await gpu();

// ---- float64 references on host arrays -----------------------------------------------------------------

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function strides(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** out[i] = x[base + Σ coord_k(i) · st[k]], coordinates of i in `walk`. */
function gatherRef(x: Float64Array, walk: number[], st: number[], base = 0): Float64Array {
  const n = prod(walk);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let off = base;
    for (let k = walk.length - 1; k >= 0; k--) {
      off += (rem % walk[k]) * st[k];
      rem = Math.floor(rem / walk[k]);
    }
    out[i] = x[off];
  }
  return out;
}

function permuteRef(x: Float64Array, shape: number[], dims: number[]): Float64Array {
  const st = strides(shape);
  return gatherRef(x, dims.map((d) => shape[d]), dims.map((d) => st[d]));
}

function narrowRef(x: Float64Array, shape: number[], axis: number, start: number, len: number): Float64Array {
  const outer = prod(shape.slice(0, axis));
  const inner = prod(shape.slice(axis + 1));
  return gatherRef(x, [outer, len, inner], [shape[axis] * inner, inner, 1], start * inner);
}

function concatRef(xs: Float64Array[], shapes: number[][], axis: number): Float64Array {
  const outer = prod(shapes[0].slice(0, axis));
  const inner = prod(shapes[0].slice(axis + 1));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    xs.forEach((x, k) => {
      const len = shapes[k][axis] * inner;
      for (let i = 0; i < len; i++) out.push(x[o * len + i]);
    });
  }
  return Float64Array.from(out);
}

function flipRef(x: Float64Array, shape: number[], axis: number): Float64Array {
  const st = strides(shape);
  const s2 = [...st];
  s2[axis] = -st[axis];
  return gatherRef(x, shape, s2, (shape[axis] - 1) * st[axis]);
}

const sh = (s: number[]) => JSON.stringify(s);

// ---- forward and gradients vs float64 ------------------------------------------------------------------

Deno.test("reshape: a view, gradient viewed back", async () => {
  const r = await checkOp({
    name: "reshape",
    inputs: [{ shape: [2, 3, 4], data: randn(24, 1) }],
    gpu: ([x]) => mul(L.reshape(x, [4, -1]), L.reshape(x, [4, 6])),
    ref: ([x]) => x.map((v) => v * v),
  });
  assert(r.gradErrs[0] < 1e-6);
  // the result shares the input's buffer
  tidy(() => {
    const x = tensor(new Float32Array(6).fill(2), [2, 3]);
    assert(L.reshape(x, [3, 2]).buffer === x.buffer, "reshape copied");
  });
});

for (
  const [shape, dims] of [
    [[2, 3, 4, 5], [3, 1, 0, 2]],
    [[3, 4, 5], [0, 2, 1]],
    [[6, 7], [1, 0]],
    [[2, 1, 3, 2, 1, 2, 2, 3], [7, 6, 5, 4, 3, 2, 1, 0]],
    [[2, 3, 2, 2, 3], [0, 1, 4, 2, 3]],
  ] as [number[], number[]][]
) {
  Deno.test(`permute ${sh(shape)} by ${sh(dims)}: forward and gradient vs float64`, async () => {
    await checkOp({
      name: "permute",
      inputs: [{ shape, data: randn(prod(shape), 2) }],
      gpu: ([x]) => L.permute(x, dims),
      ref: ([x]) => permuteRef(x, shape, dims),
    });
  });
}

Deno.test("transpose with negative dims", async () => {
  await checkOp({
    name: "transpose",
    inputs: [{ shape: [3, 4, 5], data: randn(60, 3) }],
    gpu: ([x]) => L.transpose(x, -1, 0),
    ref: ([x]) => permuteRef(x, [3, 4, 5], [2, 1, 0]),
  });
});

Deno.test("narrow: forward and gradient (zeros outside the slice)", async () => {
  await checkOp({
    name: "narrow",
    inputs: [{ shape: [4, 6, 3], data: randn(72, 4) }],
    gpu: ([x]) => L.narrow(x, 1, 2, 3),
    ref: ([x]) => narrowRef(x, [4, 6, 3], 1, 2, 3),
  });
});

for (const axis of [0, 1, 2]) {
  Deno.test(`concat along axis ${axis}: forward and gradients`, async () => {
    const shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]].map((s, k) => s.map((d, i) => i === axis ? d + k : d));
    await checkOp({
      name: "concat",
      inputs: shapes.map((s, k) => ({ shape: s, data: randn(prod(s), 10 + k) })),
      gpu: (xs) => L.concat(xs, axis),
      ref: (xs) => concatRef(xs, shapes, axis),
    });
  });
}

Deno.test("split: pieces without gradient contribute zeros; pieces used twice accumulate", async () => {
  const shape = [3, 10];
  await checkOp({
    name: "split",
    inputs: [{ shape, data: randn(30, 5) }],
    gpu: ([x]) => {
      const [a, , c] = L.split(x, [2, 5, 3], 1);
      return L.concat([c, a, mul(a, a)], 1);
    },
    ref: ([x]) => {
      const a = narrowRef(x, shape, 1, 0, 2);
      const c = narrowRef(x, shape, 1, 7, 3);
      return concatRef([c, a, a.map((v) => v * v)], [[3, 3], [3, 2], [3, 2]], 1);
    },
  });
});

Deno.test("chunk as torch.chunk (7 into 3 -> 3, 3, 1) and its gradient", async () => {
  const tidyParts = tidy(() => L.chunk(tensor(new Float32Array(28).fill(1), [7, 4]), 3, 0));
  assertEquals(tidyParts.map((t) => t.shape), [[3, 4], [3, 4], [1, 4]]);
  for (const t of tidyParts) t.dispose();
  await checkOp({
    name: "chunk",
    inputs: [{ shape: [4, 7], data: randn(28, 6) }],
    gpu: ([x]) => {
      const parts = L.chunk(x, 3, -1);
      return L.concat([parts[2], parts[0]], 1);
    },
    ref: ([x]) =>
      concatRef([narrowRef(x, [4, 7], 1, 6, 1), narrowRef(x, [4, 7], 1, 0, 3)], [[4, 1], [4, 3]], 1),
  });
});

for (const axis of [0, 3, 1]) {
  Deno.test(`flip along axis ${axis}: forward and gradient`, async () => {
    const shape = [2, 3, 4, 5];
    await checkOp({
      name: "flip",
      inputs: [{ shape, data: randn(120, 7 + axis) }],
      gpu: ([x]) => L.flip(x, axis),
      ref: ([x]) => flipRef(x, shape, axis),
    });
  });
}

function patchifyRef(x: Float64Array, [n, c, hh, ww]: number[], p: number): Float64Array {
  const h = hh / p, w = ww / p;
  const out = new Float64Array(x.length);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let hi = 0; hi < h; hi++) {
      for (let wi = 0; wi < w; wi++) {
        for (let ci = 0; ci < c; ci++) {
          for (let i = 0; i < p; i++) {
            for (let j = 0; j < p; j++) out[o++] = x[((b * c + ci) * hh + hi * p + i) * ww + wi * p + j];
          }
        }
      }
    }
  }
  return out;
}

/** The official unpatchify written out: out[n, c, h·p + i, w·p + j] = x[n, h·W + w, (i·p + j)·C + c]. */
function unpatchifyRef(x: Float64Array, n: number, t: number, p: number, c: number): Float64Array {
  const h = Math.round(Math.sqrt(t)), w = h;
  const out = new Float64Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let ci = 0; ci < c; ci++) {
      for (let y = 0; y < h * p; y++) {
        for (let xx = 0; xx < w * p; xx++) {
          const hi = Math.floor(y / p), i = y % p, wi = Math.floor(xx / p), j = xx % p;
          out[((b * c + ci) * h * p + y) * w * p + xx] =
            x[(b * t + hi * w + wi) * p * p * c + (i * p + j) * c + ci];
        }
      }
    }
  }
  return out;
}

for (const [shape, p] of [[[2, 3, 4, 6], 2], [[1, 2, 8, 8], 4], [[2, 1, 3, 3], 1]] as [number[], number][]) {
  Deno.test(`patchify ${sh(shape)} p=${p}: (c, i, j) order, gradient`, async () => {
    await checkOp({
      name: "patchify",
      inputs: [{ shape, data: randn(prod(shape), 8) }],
      gpu: ([x]) => {
        const y = L.patchify(x, p);
        const [n, c, hh, ww] = shape;
        assertEquals(y.shape, [n, (hh / p) * (ww / p), c * p * p]);
        return y;
      },
      ref: ([x]) => patchifyRef(x, shape, p),
    });
  });
}

for (const [n, t, p, c] of [[2, 4, 2, 8], [1, 9, 2, 3], [1, 4, 4, 2]]) {
  Deno.test(`unpatchify [${n}, ${t}, ${p * p * c}] p=${p} C=${c}: official order, gradient`, async () => {
    await checkOp({
      name: "unpatchify",
      inputs: [{ shape: [n, t, p * p * c], data: randn(n * t * p * p * c, 9) }],
      gpu: ([x]) => L.unpatchify(x, p, c),
      ref: ([x]) => unpatchifyRef(x, n, t, p, c),
    });
  });
}

Deno.test("unpatchify with explicit non-square h x w", async () => {
  const [n, h, w, p, c] = [1, 2, 3, 2, 2];
  const x = tensor(Float32Array.from(randn(n * h * w * p * p * c, 11)), [n, h * w, p * p * c]);
  const y = L.unpatchify(x, p, c, [h, w]);
  assertEquals(y.shape, [n, c, h * p, w * p]);
  const xs = await x.data();
  const ys = await y.data();
  // out[n, c, hi·p + i, wi·p + j] = x[n, hi·w + wi, (i·p + j)·C + c]
  for (let ci = 0; ci < c; ci++) {
    for (let yy = 0; yy < h * p; yy++) {
      for (let xx = 0; xx < w * p; xx++) {
        const v =
          xs[(Math.floor(yy / p) * w + Math.floor(xx / p)) * p * p * c + ((yy % p) * p + xx % p) * c + ci];
        assertEquals(ys[(ci * h * p + yy) * w * p + xx], v);
      }
    }
  }
  x.dispose();
  y.dispose();
});

Deno.test("gatherRows: repeated and unused rows, out-of-range indices give zero rows", async () => {
  const idx = [4, 1, 4, 0, 4, 2, 1, 9];
  const shape = [5, 3, 2];
  await checkOp({
    name: "gatherRows",
    inputs: [{ shape, data: randn(30, 12) }],
    gpu: ([x]) => L.gatherRows(x, tensor(Uint32Array.from(idx), [idx.length])),
    ref: ([x]) => {
      const out = new Float64Array(idx.length * 6);
      idx.forEach((r, m) => {
        if (r < 5) { for (let c = 0; c < 6; c++) out[m * 6 + c] = x[r * 6 + c]; }
      });
      return out;
    },
  });
});

Deno.test("gatherRows backward with many indices (multi-pass bitonic sort) is exact and deterministic", async () => {
  const rows = 37, d = 5, m = 3001;
  const r = randn(m, 13);
  const idx = Uint32Array.from(r, (v) => Math.floor(Math.abs(v) * 1000) % rows);
  const gData = Float32Array.from(randn(m * d, 14));
  const run = () =>
    tidy(() => {
      const x = tensor(new Float32Array(rows * d), [rows, d]).keep();
      x.requiresGrad = true;
      const y = L.gatherRows(x, tensor(idx, [m]));
      backward(y, tensor(gData, [m, d]));
      return x;
    });
  const a = run();
  const b = run();
  const ga = await a.grad!.data();
  const gb = await b.grad!.data();
  assertEquals(Array.from(ga), Array.from(gb), "two backward passes");
  // reference: sequential sums in increasing m (the order the kernel uses), in f32
  const ref = new Float32Array(rows * d);
  for (let k = 0; k < m; k++) {
    for (let c = 0; c < d; c++) ref[idx[k] * d + c] = Math.fround(ref[idx[k] * d + c] + gData[k * d + c]);
  }
  assertEquals(Array.from(ga), Array.from(ref), "sequential f32 sums in index order");
  a.dispose();
  b.dispose();
});

Deno.test("where: broadcast mask and operands, gradients split by the mask", async () => {
  const mask = [1, 0, 1];
  await checkOp({
    name: "where",
    inputs: [{ shape: [3, 4], data: randn(12, 15) }, { shape: [4], data: randn(4, 16) }],
    gpu: ([a, b]) => L.where(tensor(Uint32Array.from(mask), [3, 1]), a, b),
    ref: ([a, b]) => Float64Array.from({ length: 12 }, (_, i) => mask[Math.floor(i / 4)] ? a[i] : b[i % 4]),
  });
});

// ---- integer tensors move exactly -----------------------------------------------------------------------

Deno.test("layout ops copy u32 tensors bit for bit", async () => {
  const data = Uint32Array.from({ length: 24 }, (_, i) => (i * 2654435761) >>> 0);
  const x = tensor(data, [2, 3, 4]);
  const got = tidy(() => [
    L.permute(x, [2, 0, 1]),
    L.concat([x, x], 1),
    L.flip(x, 1),
    L.gatherRows(x, tensor(Uint32Array.from([1, 0, 1]), [3])),
    L.where(tensor(Uint32Array.from([0, 1, 1, 0]), [4]), x, L.flip(x, 2)),
  ]);
  const xd = Float64Array.from(data);
  const want = [
    permuteRef(xd, [2, 3, 4], [2, 0, 1]),
    concatRef([xd, xd], [[2, 3, 4], [2, 3, 4]], 1),
    flipRef(xd, [2, 3, 4], 1),
    Float64Array.from([...xd.slice(12), ...xd.slice(0, 12), ...xd.slice(12)]),
    Float64Array.from(xd, (v, i) => [0, 1, 1, 0][i % 4] ? v : xd[i - (i % 4) + 3 - (i % 4)]),
  ];
  for (let k = 0; k < got.length; k++) {
    assertEquals(got[k].dtype, "u32");
    assertEquals(Array.from(await got[k].read()), Array.from(want[k]), `op ${k}`);
    got[k].dispose();
  }
  x.dispose();
});

// ---- golden values from PyTorch -------------------------------------------------------------------------

interface GoldenCase {
  name: string;
  args: Record<string, number | number[]>;
  inputs: { shape: number[]; data: number[] }[];
  output: { shape: number[]; data: number[] };
  cotangent?: number[];
  grads?: (number[] | null)[];
}

const golden = await loadGolden<{
  cases: GoldenCase[];
  patch_embed: {
    x: { shape: number[]; data: number[] };
    weight: { shape: number[]; data: number[] };
    bias: number[];
    p: number;
    tokens: { shape: number[]; data: number[] };
  };
}>("layout.json");

function goldenOp(c: GoldenCase): (xs: Tensor[]) => Tensor {
  const a = c.args;
  switch (c.name) {
    case "permute":
      return ([x]) => L.permute(x, a.dims as number[]);
    case "transpose":
      return ([x]) => L.transpose(x, a.d0 as number, a.d1 as number);
    case "concat":
      return (xs) => L.concat(xs, a.axis as number);
    case "split":
      return ([x]) => {
        const parts = L.split(x, a.sizes as number[], a.axis as number);
        return L.concat((a.use as number[]).map((k) => parts[k]), a.axis as number);
      };
    case "chunk":
      return ([x]) => L.concat(L.chunk(x, a.n as number, a.axis as number).reverse(), a.axis as number);
    case "narrow":
      return ([x]) => L.narrow(x, a.axis as number, a.start as number, a.length as number);
    case "flip":
    case "flip0":
      return ([x]) => L.flip(x, a.axis as number);
    case "patchify":
    case "patchify4":
      return ([x]) => L.patchify(x, a.p as number);
    case "unpatchify":
    case "unpatchify4":
      return ([x]) => L.unpatchify(x, a.p as number, a.c as number);
    case "gather_rows":
      return ([x]) =>
        L.gatherRows(x, tensor(Uint32Array.from(a.idx as number[]), [(a.idx as number[]).length]));
    case "where":
      return ([x, y]) =>
        L.where(tensor(Uint32Array.from(a.mask as number[]), a.mask_shape as number[]), x, y);
  }
  throw new Error(`no op for golden case ${c.name}`);
}

for (const c of golden.cases) {
  Deno.test(`golden (PyTorch) ${c.name}: output and input gradients`, async () => {
    const op = goldenOp(c);
    const res = tidy(() => {
      const xs = c.inputs.map((i) => {
        const t = tensor(Float32Array.from(i.data), i.shape).keep();
        t.requiresGrad = true;
        return t;
      });
      const y = op(xs);
      backward(y, tensor(Float32Array.from(c.cotangent!), y.shape));
      return { y, xs };
    });
    assertEquals(res.y.shape, c.output.shape, `${c.name} output shape`);
    // layout ops are exact copies
    assertEquals(
      Array.from(await res.y.data()),
      Array.from(Float32Array.from(c.output.data)),
      `${c.name} output`,
    );
    for (let k = 0; k < c.inputs.length; k++) {
      const want = c.grads![k]!;
      const got = await res.xs[k].grad!.data();
      const e = relErr(got, want);
      assert(e < 1e-6, `${c.name} gradient ${k}: relative error ${e}`);
      res.xs[k].dispose();
    }
    res.y.dispose();
  });
}

Deno.test("golden (PyTorch): patchify then Linear equals the stride-p patch-embedding conv", async () => {
  const g = golden.patch_embed;
  const x = tensor(Float32Array.from(g.x.data), g.x.shape);
  const y = L.patchify(x, g.p);
  const patches = await y.data();
  const [n, t, k] = y.shape;
  const dOut = g.weight.shape[0];
  assertEquals(k, prod(g.weight.shape.slice(1)));
  const out = new Float64Array(n * t * dOut);
  for (let r = 0; r < n * t; r++) {
    for (let o = 0; o < dOut; o++) {
      let s = g.bias[o];
      for (let i = 0; i < k; i++) s += patches[r * k + i] * g.weight.data[o * k + i];
      out[r * dOut + o] = s;
    }
  }
  assertEquals([n, t, dOut], g.tokens.shape);
  assertClose(out, g.tokens.data, 1e-12, "patch embedding");
  x.dispose();
  y.dispose();
});

// ---- ownership, memory, errors --------------------------------------------------------------------------

Deno.test("forward + backward of the layout ops release every intermediate buffer", () => {
  const pool = rt().pool;
  const before = pool.stats().inUse;
  tidy(() => {
    const x = tensor(Float32Array.from(randn(2 * 3 * 4 * 4, 17)), [2, 3, 4, 4]);
    x.requiresGrad = true;
    const p = L.patchify(L.flip(x, 3), 2);
    const [a, b] = L.split(p, [5, 7], 2);
    const y = L.concat([L.permute(b, [0, 2, 1]), L.transpose(a, 1, 2)], 1);
    const z = L.unpatchify(L.reshape(L.narrow(y, 1, 0, 8), [2, 4, 8]), 2, 2);
    const idx = tensor(Uint32Array.from([1, 0, 1]), [3]);
    const w = L.gatherRows(L.reshape(z, [2, -1]), idx);
    backward(w, tensor(Float32Array.from(randn(w.size, 18)), w.shape));
    assert(x.grad !== null);
  });
  assertEquals(pool.stats().inUse, before, "bytes in use after the scope");
});

Deno.test("reshape of a seeded root: the gradient survives disposal of the seed", async () => {
  const x = tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
  x.requiresGrad = true;
  const seed = tensor(Float32Array.from([6, 5, 4, 3, 2, 1]), [3, 2]);
  const y = L.reshape(x, [3, 2]);
  backward(y, seed);
  seed.dispose();
  y.dispose();
  assertEquals(Array.from(await x.grad!.data()), [6, 5, 4, 3, 2, 1]);
  x.dispose();
});

Deno.test("bad shapes throw ShapeError naming the op and the shapes", () => {
  tidy(() => {
    const x = tensor(new Float32Array(24).fill(1), [2, 3, 4]);
    const y = tensor(new Float32Array(10).fill(1), [2, 5]);
    assertThrows(() => L.reshape(x, [5, 5]), "reshape", "[2, 3, 4]", "[5, 5]");
    assertThrows(() => L.permute(x, [0, 0, 1]), "permute", "[2, 3, 4]");
    assertThrows(() => L.transpose(x, 0, 3), "transpose", "[2, 3, 4]");
    assertThrows(() => L.concat([x, y], 1), "concat", "[2, 3, 4]", "[2, 5]");
    assertThrows(() => L.split(x, [1, 1], 1), "split", "[2, 3, 4]");
    assertThrows(() => L.narrow(x, 2, 3, 2), "narrow", "[2, 3, 4]");
    assertThrows(() => L.patchify(x, 2), "patchify", "[2, 3, 4]");
    assertThrows(
      () => L.patchify(tensor(new Float32Array(36).fill(0), [1, 1, 6, 6]), 4),
      "patchify",
      "[1, 1, 6, 6]",
    );
    assertThrows(() => L.unpatchify(y.view([1, 2, 5]), 2, 1), "unpatchify", "[1, 2, 5]");
    assertThrows(() => L.gatherRows(x, y), "gatherRows", "[2, 3, 4]", "[2, 5]");
    assertThrows(
      () => L.where(tensor(Uint32Array.from([1, 0]), [2]), x, y),
      "where",
      "[2, 3, 4]",
      "[2, 5]",
    );
  });
});

for (const n of [6, 7]) {
  Deno.test(`chunk into ${n} along a middle axis (one dispatch up to 6 parts): forward and gradient`, async () => {
    const shape = [2, 3 * n, 5];
    await checkOp({
      name: `chunk ${n}`,
      inputs: [{ shape, data: randn(prod(shape), 40 + n) }],
      gpu: ([x]) => {
        const parts = L.chunk(x, n, 1);
        return L.concat([parts[n - 1], mul(parts[1], parts[1]), parts[0], parts[1]], 1);
      },
      ref: ([x]) => {
        const part = (k: number) => narrowRef(x, shape, 1, 3 * k, 3);
        const p1 = part(1);
        return concatRef([part(n - 1), p1.map((v) => v * v), part(0), p1], [[2, 3, 5], [2, 3, 5], [2, 3, 5], [
          2,
          3,
          5,
        ]], 1);
      },
    });
  });
}

// split_multi's paths: vec4 (every part's run sizes[k]·inner and start·inner a multiple of 4) and scalar,
// each generic and specialised to its part size (equal parts of a split of ≥ 8192 elements). Data moves,
// so forward and join (the backward) are exact; a part without a gradient joins as zeros.
for (
  const [shape, axis, sizes] of [
    [[64, 768], 1, [128, 128, 128, 128, 128, 128]], // the DiT's adaLN chunk: vec4, specialised
    [[5, 12, 4], 1, [4, 4, 4]], // vec4 through inner = 4, generic
    [[3, 10, 3], 1, [4, 2, 4]], // scalar, generic
    [[40, 30, 7], 1, [10, 10, 10]], // scalar, specialised (8,400 elements)
    [[40, 36, 8], 1, [12, 8, 16]], // vec4, unequal parts of a large split (generic)
  ] as [number[], number, number[]][]
) {
  Deno.test(`split ${JSON.stringify(shape)} axis ${axis} into [${sizes}]: exact parts and join`, async () => {
    const n = prod(shape);
    const xd = Float32Array.from(randn(n, 91 + sizes.length));
    const res = tidy(() => {
      const x = tensor(xd, shape);
      x.requiresGrad = true;
      x.keep();
      const parts = L.split(x, sizes, axis);
      // parts 0 and 2 get seeds k + 1 (part 1 none: zeros in the join)
      const y = L.concat([
        mul(parts[0], tensor(new Float32Array(parts[0].size).fill(1), parts[0].shape)),
        mul(parts[2], tensor(new Float32Array(parts[2].size).fill(3), parts[2].shape)),
      ], axis);
      backward(y, tensor(new Float32Array(y.size).fill(1), y.shape));
      return { parts: parts.map((p) => p.keep()), x };
    });
    const x64 = Float64Array.from(xd);
    let start = 0;
    for (let k = 0; k < sizes.length; k++) {
      assertEquals(
        Array.from(await res.parts[k].data()),
        Array.from(narrowRef(x64, shape, axis, start, sizes[k])),
      );
      start += sizes[k];
    }
    const outer = prod(shape.slice(0, axis)), inner = prod(shape.slice(axis + 1));
    const want = new Float32Array(n);
    const ends = sizes.map((_, k) => sizes.slice(0, k + 1).reduce((a, b) => a + b, 0));
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < shape[axis]; j++) {
        const part = ends.findIndex((e) => j < e);
        for (let r = 0; r < inner; r++) {
          want[(o * shape[axis] + j) * inner + r] = part === 0 ? 1 : part === 2 ? 3 : 0;
        }
      }
    }
    assertEquals(Array.from(await res.x.grad!.data()), Array.from(want));
    for (const p of res.parts) p.dispose();
    res.x.dispose();
  });
}

Deno.test("permute of ≥ 8192 elements (a pipeline specialised to the walk's shape) is exact", async () => {
  const shape = [8, 16, 12, 10];
  const xd = Float32Array.from(randn(prod(shape), 5));
  for (const dims of [[2, 0, 3, 1], [3, 2, 1, 0], [0, 2, 1, 3]]) {
    const y = tidy(() => L.permute(tensor(xd, shape), dims));
    assertEquals(Array.from(await y.data()), Array.from(permuteRef(Float64Array.from(xd), shape, dims)));
    y.dispose();
  }
});
