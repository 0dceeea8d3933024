/**
 * Elementwise ops with NumPy broadcasting: add, sub, mul, div, scalar affine maps, activations (SiLU,
 * GELU tanh form, ...), and `sumTo`, the reduction that broadcasting's backward needs.
 * Kernels: `kernels/elementwise.wgsl`, `kernels/reduce.wgsl`.
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { noGrad, record } from "../autograd.ts";
import { sum } from "./reduce.ts";
import { empty, fmtShape, numel, type Shape, ShapeError, type Tensor } from "../tensor.ts";
import { launch } from "../launch.ts";
import { assertF32, grid, rt, sameShape, stridesOf, WG } from "./util.ts";

const K = wgsl(new URL("../../../kernels/elementwise.wgsl", import.meta.url));

/** The broadcast shape of two shapes (NumPy rules); throws naming the op and both shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(op, `shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` viewed in the broadcast output of rank `n` (0 on broadcast dims). */
function broadcastStrides(shape: Shape, out: Shape): number[] {
  const n = out.length;
  const st = stridesOf(shape);
  const res: number[] = [];
  for (let i = 0; i < n; i++) {
    const j = i - (n - shape.length);
    res.push(j < 0 || shape[j] === 1 ? 0 : st[j]);
  }
  return res;
}

/**
 * Merges adjacent dims that every operand walks contiguously (or broadcasts along both), so that the
 * kernel's index loop is as short as possible: [N,T,D] + [D] becomes [N·T, D] + [1, D].
 */
export function collapseDims(shape: readonly number[], ...strides: number[][]): [number[], ...number[][]] {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue; // size-1 dims carry no index
    const last = outShape.length - 1;
    const mergeable = last >= 0 &&
      strides.every((st, k) => outStrides[k][last] === st[i] * shape[i]);
    if (mergeable) {
      outShape[last] *= shape[i];
      strides.forEach((st, k) => (outStrides[k][last] = st[i]));
    } else {
      outShape.push(shape[i]);
      strides.forEach((st, k) => outStrides[k].push(st[i]));
    }
  }
  if (outShape.length === 0) return [[1], ...strides.map(() => [0])];
  return [outShape, ...outStrides];
}

const BINARY_OP = { add: 0, sub: 1, mul: 2, div: 3 } as const;

/**
 * Whether a same-shape elementwise op of n elements runs the vec4 form of its kernel (n a multiple of 4;
 * the same arithmetic per element, so the same bits; about twice as fast on llvmpipe).
 */
const vec4 = (n: number) => n % 4 === 0;
type BinaryName = keyof typeof BINARY_OP;

function binaryRaw(name: BinaryName, a: Tensor, b: Tensor, alpha = 1, beta = 1): Tensor {
  assertF32(name, a);
  assertF32(name, b);
  const outShape = broadcastShapes(name, a.shape, b.shape);
  const n = numel(outShape);
  if (sameShape(a.shape, b.shape)) {
    const v = vec4(n);
    return launch(K, "binary_same", {
      vec4: v,
      constants: { OP: BINARY_OP[name] },
      params: { n, alpha, beta },
      inputs: { sa: a, sb: b },
      outputs: { sout: outShape },
      workgroups: grid(v ? n / 4 : n),
      label: name,
    }).sout;
  } else {
    if (alpha !== 1 || beta !== 1) throw new Error("internal: scaled broadcast binary op");
    const [shape, as, bs] = collapseDims(
      outShape,
      broadcastStrides(a.shape, outShape),
      broadcastStrides(b.shape, outShape),
    );
    const pad = (v: number[], fill: number) => [...v, ...new Array(8 - v.length).fill(fill)];
    return launch(K, "binary", {
      constants: { OP: BINARY_OP[name], NDIM: shape.length },
      params: {
        n,
        ndim: shape.length,
        alpha: 1,
        beta: 1,
        shape: pad(shape, 1),
        astr: pad(as, 0),
        bstr: pad(bs, 0),
      },
      inputs: { ba: a, bb: b },
      outputs: { bout: outShape },
      workgroups: grid(n),
      label: name,
    }).bout;
  }
}

/**
 * The sum of same-shape f32 tensors, left to right (`((a0 + a1) + a2) + ...`): one dispatch per 6 inputs,
 * bit-identical to a chain of {@link add}s. Not recorded for autograd (the backward pass accumulates
 * gradients with it). With one input, returns a copy.
 */
export function sumN(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new Error("sumN: no tensors");
  for (const x of xs) {
    assertF32("sumN", x);
    if (!sameShape(x.shape, xs[0].shape)) {
      throw new ShapeError("sumN", `shapes ${fmtShape(xs[0].shape)} and ${fmtShape(x.shape)} differ`);
    }
  }
  if (xs.length === 1) return scale(xs[0], 1);
  let acc: Tensor | null = null;
  let rest = [...xs];
  while (rest.length > 0) {
    const take = rest.slice(0, acc ? 5 : 6);
    rest = rest.slice(take.length);
    const ins = acc ? [acc, ...take] : take;
    if (ins.length === 1) break;
    const n = xs[0].size;
    const v = vec4(n);
    const inputs: Record<string, Tensor> = {};
    for (let k = 0; k < 6; k++) inputs[`n_${k}`] = ins[k] ?? ins[0];
    const out: Tensor = launch(K, "sum_n", {
      vec4: v,
      constants: { NIN: ins.length },
      params: { n, alpha: 1, beta: 1 },
      inputs,
      outputs: { nout: xs[0].shape },
      workgroups: grid(v ? n / 4 : n),
      label: `sum of ${ins.length}`,
    }).nout;
    if (acc) acc.dispose();
    acc = out;
  }
  return acc!;
}

/**
 * Sums `x` down to `shape`, which must be broadcastable to `x.shape` (the adjoint of broadcasting).
 * Returns `x` itself when the shapes already match. Uses the deterministic segmented reductions of
 * `reduce.ts`.
 */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const nd = x.shape.length;
  if (shape.length > nd) {
    throw new ShapeError("sumTo", `cannot sum ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const padded = [...new Array(nd - shape.length).fill(1), ...shape];
  const axes: number[] = [];
  x.shape.forEach((d, i) => {
    if (padded[i] === d) return;
    if (padded[i] === 1) axes.push(i);
    else throw new ShapeError("sumTo", `cannot sum ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  });
  const s = noGrad(() => sum(x, axes, true));
  const out = s.view(shape);
  s.dispose();
  // sumTo is linear: its backward broadcasts the gradient back.
  return record(out, "sumTo", [x], (g) => [broadcastTo(g, x.shape)]);
}

/** Broadcasts `x` to `shape` (materialised). */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const target = broadcastShapes("broadcastTo", x.shape, shape);
  if (!sameShape(target, shape)) {
    throw new ShapeError("broadcastTo", `cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const z = empty(shape);
  rt().clear(z.buffer, 0, Math.max(4, z.bytes));
  const out = binaryRaw("add", x, z);
  z.dispose();
  return record(out, "broadcastTo", [x], (g) => [sumTo(g, x.shape)]);
}

/** a + b (broadcasting). */
export function add(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("add", a, b);
  return record(out, "add", [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** a - b (broadcasting). */
export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("sub", a, b);
  return record(out, "sub", [a, b], (g) => [sumTo(g, a.shape), sumTo(scale(g, -1), b.shape)]);
}

/** a * b (broadcasting). */
export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("mul", a, b);
  return record(out, "mul", [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, a), b.shape) : null,
  ]);
}

/** a / b (broadcasting). */
export function div(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("div", a, b);
  return record(out, "div", [a, b], (g) => [
    a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
    // d(a/b)/db = -a/b^2 = -out/b
    b.requiresGrad ? sumTo(scale(div(mul(g, out), b), -1), b.shape) : null,
  ]);
}

/** alpha * a + beta * b for same-shape tensors (one kernel). */
export function axpby(alpha: number, a: Tensor, beta: number, b: Tensor): Tensor {
  if (!sameShape(a.shape, b.shape)) {
    throw new ShapeError("axpby", `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`);
  }
  const out = binaryRaw("add", a, b, alpha, beta);
  return record(out, "axpby", [a, b], (g) => [scale(g, alpha), scale(g, beta)]);
}

const UNARY_OP = {
  affine: 0,
  silu: 1,
  gelu: 2,
  exp: 3,
  square: 4,
  sqrt: 5,
  tanh: 6,
  abs: 7,
  log: 8,
  sigmoid: 9,
  clamp: 10,
} as const;
type UnaryName = keyof typeof UNARY_OP;

function unaryRaw(name: UnaryName, x: Tensor, alpha = 1, beta = 0): Tensor {
  assertF32(name, x);
  const v = vec4(x.size);
  return launch(K, "unary", {
    vec4: v,
    constants: { OP: UNARY_OP[name] },
    params: { n: x.size, alpha, beta },
    inputs: { ux: x },
    outputs: { uout: x.shape },
    workgroups: grid(v ? x.size / 4 : x.size),
    label: name,
  }).uout;
}

function unaryBackwardRaw(name: UnaryName, x: Tensor, g: Tensor, alpha = 1, beta = 0): Tensor {
  const v = vec4(x.size);
  return launch(K, "unary_backward", {
    vec4: v,
    constants: { OP: UNARY_OP[name] },
    params: { n: x.size, alpha, beta },
    inputs: { ubx: x, ubg: g },
    outputs: { ubout: x.shape },
    workgroups: grid(v ? x.size / 4 : x.size),
    label: `${name} backward`,
  }).ubout;
}

function unary(name: UnaryName, x: Tensor, alpha = 1, beta = 0): Tensor {
  const out = unaryRaw(name, x, alpha, beta);
  return record(out, name, [x], (g) => [unaryBackwardRaw(name, x, g, alpha)]);
}

/** alpha * x + beta. */
export function affine(x: Tensor, alpha: number, beta: number): Tensor {
  const out = unaryRaw("affine", x, alpha, beta);
  return record(out, "affine", [x], (g) => [scale(g, alpha)]);
}

/** alpha * x. */
export function scale(x: Tensor, alpha: number): Tensor {
  return affine(x, alpha, 0);
}

/** x + c for a scalar c. */
export function addScalar(x: Tensor, c: number): Tensor {
  return affine(x, 1, c);
}

/** SiLU: x · sigmoid(x). */
export function silu(x: Tensor): Tensor {
  return unary("silu", x);
}

/** GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(x: Tensor): Tensor {
  return unary("gelu", x);
}

/** exp(x). */
export function exp(x: Tensor): Tensor {
  return unary("exp", x);
}

/** log(x). */
export function log(x: Tensor): Tensor {
  return unary("log", x);
}

/** x². */
export function square(x: Tensor): Tensor {
  return unary("square", x);
}

/** √x. */
export function sqrt(x: Tensor): Tensor {
  return unary("sqrt", x);
}

/** tanh(x). */
export function tanh(x: Tensor): Tensor {
  return unary("tanh", x);
}

/** |x|. */
export function abs(x: Tensor): Tensor {
  return unary("abs", x);
}

/** min(max(x, lo), hi); the gradient is 1 strictly inside (lo, hi) and 0 where clamped, as torch.clamp. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (!(lo <= hi)) throw new ShapeError("clamp", `empty range [${lo}, ${hi}]`);
  const out = unaryRaw("clamp", x, lo, hi);
  return record(out, "clamp", [x], (g) => [unaryBackwardRaw("clamp", x, g, lo, hi)]);
}

/** sigmoid(x). */
export function sigmoid(x: Tensor): Tensor {
  return unary("sigmoid", x);
}

/** Workgroup size used by these kernels (exported for benchmarks). */
export const ELEMENTWISE_WG = WG;
