/**
 * Sums and means over axes, with backward (the gradient broadcast back, scaled by 1/count for the mean).
 *
 * Conventions: `axes` undefined reduces every axis and returns a scalar of shape `[]` (one element,
 * `numel([]) = 1`; with `keepdim` the shape is all ones instead). Negative axes count from the end;
 * `axes = []` reduces nothing (a copy). The mean of zero elements is NaN, their sum 0.
 *
 * Kernels (`kernels/reduce.wgsl`), all deterministic (fixed summation order, no atomics): the dims are
 * merged into runs of kept and reduced axes, then
 * - reducing a contiguous suffix ([K, R] → [K], including the full reduction [R] → []) uses `seg_sum`
 *   (`seg_sum4` with vec4 loads when R % 4 == 0): workgroups of 32 or 64 invocations sum chunks of 32
 *   items per invocation with a tree reduction, and the partial sums are reduced again by the same kernel
 *   until one value per row remains (two stages for 16M elements);
 * - reducing a middle or leading run ([K1, R, K2] → [K1, K2]) uses `col_sum`: each invocation sums a
 *   chunk of rows of one column in order, then the chunk sums are summed again;
 * - any other pattern uses `sum_to` (one invocation per output element).
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, full, numel, type Shape, ShapeError, type Tensor } from "../tensor.ts";
import type { ParamValues } from "../../gpu/wgsl_layout.ts";
import { launch } from "../launch.ts";
import { assertF32, debugCheck, dims8, grid, stridesOf } from "./util.ts";

const R = wgsl(new URL("../../../kernels/reduce.wgsl", import.meta.url));

/** Elements (or vec4s) each invocation of `seg_sum` adds per chunk. */
const SEG_ITEMS = 32;
/** Rows one `col_sum` invocation adds when the reduced run is long. */
const COL_ROWS = 64;
const EW = 256;

/**
 * The launch plan of `seg_sum` for segments of `cols` elements: vec4 loads when `cols` is a multiple of 4
 * (`cols`/`chunk` then count vec4s), 32 or 64 invocations per workgroup, 32 items each per chunk.
 */
export function segPlan(
  cols: number,
): { vec: boolean; units: number; wg: number; chunk: number; chunks: number } {
  const vec = cols % 4 === 0 && cols > 0;
  const units = vec ? cols / 4 : cols;
  const wg = units >= 64 * SEG_ITEMS ? 64 : 32;
  const chunk = wg * SEG_ITEMS;
  return { vec, units, wg, chunk, chunks: Math.max(1, Math.ceil(units / chunk)) };
}

/** The uniform params of a `seg_sum`-style dispatch. */
export function segParams(rows: number, plan: ReturnType<typeof segPlan>, alpha: number): ParamValues {
  return { rows, cols: plan.units, chunks: plan.chunks, chunk: plan.chunk, alpha };
}

function segDispatch(x: Tensor, outShape: Shape, rows: number, cols: number, alpha: number, label: string) {
  const plan = segPlan(cols);
  return launch(R, "seg_sum", {
    vec4: plan.vec,
    constants: { WG: plan.wg },
    params: segParams(rows, plan, alpha),
    inputs: { sx: x },
    outputs: { sout: outShape },
    workgroups: grid(rows * plan.chunks, 1),
    label,
  }).sout;
}

/**
 * Sums `rows` contiguous segments of `cols` elements of `x` into a new tensor of `outShape` (rows
 * elements), times `alpha`, with as many `seg_sum` stages as needed. Not recorded for autograd (a building
 * block for ops with their own backward, e.g. the losses).
 */
export function sumSegments(x: Tensor, rows: number, cols: number, alpha: number, outShape: Shape): Tensor {
  let cur = x;
  let curCols = cols;
  for (;;) {
    const { chunks } = segPlan(curCols);
    const last = chunks === 1;
    const out = segDispatch(cur, last ? outShape : [rows, chunks], rows, curCols, last ? alpha : 1, "sum");
    if (cur !== x) cur.dispose();
    if (last) return out;
    cur = out;
    curCols = chunks;
  }
}

/**
 * Sums x [b, m, k] over m into a new tensor of `outShape` (b·k elements) times alpha, in a fixed order
 * (chunks of rows, then the chunk sums). Not recorded for autograd (a building block for ops with their own
 * backward).
 */
export function sumColumns(
  x: Tensor,
  b: number,
  m: number,
  k: number,
  alpha: number,
  outShape: Shape,
): Tensor {
  let cur = x;
  let curM = m;
  for (;;) {
    const crows = curM <= 4 * COL_ROWS ? curM : COL_ROWS;
    const chunks = Math.max(1, Math.ceil(curM / Math.max(crows, 1)));
    const last = chunks === 1;
    const { cout: out } = launch(R, "col_sum", {
      constants: { WG: EW },
      params: { b, m: curM, k, crows, chunks, alpha: last ? alpha : 1 },
      inputs: { cx: cur },
      outputs: { cout: last ? outShape : [b, chunks, k] },
      workgroups: grid(b * chunks * k, EW),
      label: "sum",
    });
    if (cur !== x) cur.dispose();
    if (last) return out;
    cur = out;
    curM = chunks;
  }
}

/** `out = alpha · g` broadcast over the reduced dims of a merged pattern; not recorded. */
function expandRaw(g: Tensor, dims: Run[], alpha: number, outShape: Shape): Tensor {
  const n = numel(outShape);
  const gstr: number[] = new Array(dims.length).fill(0);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    if (!dims[i].reduced) {
      gstr[i] = acc;
      acc *= dims[i].size;
    }
  }
  return launch(R, "expand", {
    constants: { WG: EW },
    params: { n, ndim: dims.length, alpha, shape: dims8(dims.map((d) => d.size), 1), gstr: dims8(gstr) },
    inputs: { eg: g },
    outputs: { eout: outShape },
    workgroups: grid(n, EW),
    label: "sum backward",
  }).eout;
}

/** A run of merged dims. */
interface Run {
  size: number;
  reduced: boolean;
}

/** Normalises axes (negative from the end, deduplicated, sorted); throws naming the op and the shape. */
function normAxes(op: string, shape: Shape, axes?: readonly number[]): number[] {
  if (axes === undefined) return shape.map((_, i) => i);
  const out = new Set<number>();
  for (const a of axes) {
    const b = a < 0 ? a + shape.length : a;
    if (!Number.isInteger(a) || b < 0 || b >= shape.length) {
      throw new ShapeError(op, `axis ${a} is out of range for shape ${fmtShape(shape)}`);
    }
    out.add(b);
  }
  return [...out].sort((x, y) => x - y);
}

/** Merges dims into alternating runs of kept and reduced axes, dropping size-1 dims. */
function runs(shape: Shape, axes: number[]): Run[] {
  const red = new Set(axes);
  const out: Run[] = [];
  shape.forEach((d, i) => {
    if (d === 1) return;
    const r = red.has(i);
    const last = out[out.length - 1];
    if (last && last.reduced === r) last.size *= d;
    else out.push({ size: d, reduced: r });
  });
  return out;
}

/** Sum (alpha = 1) or scaled sum of x over normalised axes into outShape; not recorded. */
function reduceRaw(op: string, x: Tensor, axes: number[], alpha: number, outShape: Shape): Tensor {
  const rs = runs(x.shape, axes);
  const kinds = rs.map((r) => (r.reduced ? "R" : "K")).join("");
  if (x.size === 0) return full(outShape, 0 * alpha); // sum of nothing: 0 (NaN for a mean)
  if (kinds === "R" || kinds === "KR") {
    const cols = rs[rs.length - 1].size;
    return sumSegments(x, x.size / cols, cols, alpha, outShape);
  }
  if (kinds === "RK" || kinds === "KRK") {
    const b = kinds === "RK" ? 1 : rs[0].size;
    const m = rs[kinds === "RK" ? 0 : 1].size;
    return sumColumns(x, b, m, rs[rs.length - 1].size, alpha, outShape);
  }
  if (!kinds.includes("R")) {
    // Nothing to reduce: a scaled copy.
    return expandRaw(x, rs, alpha, outShape);
  }
  // General pattern: one invocation per output element walks the reduced index space.
  const nOut = numel(outShape);
  const nd = rs.length;
  const nRed = rs.reduce((a, r) => a * (r.reduced ? r.size : 1), 1);
  const sizes = rs.map((r) => r.size);
  const { out } = launch(R, "sum_to", {
    constants: { NDIM: nd },
    params: {
      n_out: nOut,
      ndim: nd,
      n_red: nRed,
      shape: dims8(sizes, 1),
      istr: dims8(stridesOf(sizes)),
      red: dims8(rs.map((r) => (r.reduced ? 1 : 0))),
    },
    inputs: { x },
    outputs: { out: outShape },
    workgroups: grid(nOut),
    label: op,
  });
  if (alpha === 1) return out;
  const scaled = expandRaw(out, rs.filter((r) => !r.reduced), alpha, outShape);
  out.dispose();
  return scaled;
}

function reduceOp(
  op: "sum" | "mean",
  x: Tensor,
  axes: readonly number[] | undefined,
  keepdim: boolean,
): Tensor {
  assertF32(op, x);
  const ax = normAxes(op, x.shape, axes);
  const red = new Set(ax);
  const count = ax.reduce((a, i) => a * x.shape[i], 1);
  const alpha = op === "mean" ? 1 / count : 1;
  const outShape = keepdim
    ? x.shape.map((d, i) => (red.has(i) ? 1 : d))
    : x.shape.filter((_, i) => !red.has(i));
  const out = debugCheck(reduceRaw(op, x, ax, alpha, outShape), op);
  return record(
    out,
    op,
    [x],
    (g) => [debugCheck(expandRaw(g, runs(x.shape, ax), alpha, x.shape), `${op} backward`)],
  );
}

/**
 * Sum over `axes` (all axes when omitted, giving shape `[]`); `keepdim` keeps reduced axes as size 1.
 * Deterministic; the full reduction of large tensors runs as a two-stage workgroup tree reduction.
 */
export function sum(x: Tensor, axes?: readonly number[], keepdim = false): Tensor {
  return reduceOp("sum", x, axes, keepdim);
}

/** Mean over `axes` (all axes when omitted, giving shape `[]`); `keepdim` keeps reduced axes as size 1. */
export function mean(x: Tensor, axes?: readonly number[], keepdim = false): Tensor {
  return reduceOp("mean", x, axes, keepdim);
}

/** Mean over every axis but the first (guided-diffusion's `mean_flat`): [N, ...] → [N]. */
export function meanFlat(x: Tensor): Tensor {
  if (x.ndim < 1) throw new ShapeError("meanFlat", `expects at least 1 dim, got ${fmtShape(x.shape)}`);
  return mean(x, x.shape.map((_, i) => i).slice(1));
}
