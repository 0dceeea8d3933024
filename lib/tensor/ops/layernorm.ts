/**
 * LayerNorm without affine parameters (DiT: `elementwise_affine=False`, eps 1e-6) over the last dim, adaLN
 * modulation `x·(1+scale)+shift`, the fused `layerNormModulate` every DiT block runs twice, and the gated
 * residual `res + gate·x`. Conditioning tensors (shift, scale, gate) are [N, D] and broadcast over the T
 * tokens of x [N, T, D]. Every op runs as one kernel forward; a backward is one kernel per gradient kind
 * (row kernels for dx of the LayerNorms; column kernels, which also write dx, for the [N, D] gradients),
 * plus an ordered sum of per-chunk partials over T when T > 32. Rows with D % 4 == 0 use vec4 kernels.
 * All deterministic (fixed summation orders, no atomics). Kernels: `kernels/layernorm.wgsl`.
 *
 * The forward's saved per-row statistics (mean, rstd) are tensors of the scope the op runs in, like its
 * output: run forward and backward in one `tidy` scope.
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, ShapeError, type Tensor } from "../tensor.ts";
import { launch } from "../launch.ts";
import { sumColumns } from "./reduce.ts";
import { assertF32, assertSameShape, debugCheck, grid, rt } from "./util.ts";

const K = wgsl(new URL("../../../kernels/layernorm.wgsl", import.meta.url));

/** Invocations per row and per workgroup of the row kernels (8 rows per workgroup). */
const TPR = 8;
const ROW_WG = 64;

/** Workgroup size of the elementwise and column kernels. */
const EW = 128;

/** Workgroups of the row kernels: ROW_WG / TPR rows each, as a 2-D grid. */
function rowGrid(rows: number): [number, number] {
  return grid(rows, ROW_WG / TPR);
}

/** Row kernels read vec4s when rows (and conditioning rows) are a multiple of 4 long (and not empty). */
function rowVec(d: number, rows: number): boolean {
  return d % 4 === 0 && d > 0 && rows > 0;
}

/** Workgroups of the (column, row) elementwise kernels: x covers D (or D / 4), y and z cover the rows. */
function colRowGrid(rows: number, cols: number): [number, number, number] {
  const max = rt().adapter.limits.maxComputeWorkgroupsPerDimension;
  const y = Math.max(1, Math.min(rows, max));
  return [Math.max(1, Math.ceil(cols / EW)), y, Math.max(1, Math.ceil(rows / y))];
}

const COND_OP = { modulate: 0, gate: 1, addGated: 2 } as const;

/** One conditioned elementwise forward (`cond_forward`, vec4 when D % 4 == 0). */
function condForward(
  op: keyof typeof COND_OP,
  x: Tensor,
  a: Tensor,
  b: Tensor | null,
  res: Tensor | null,
  n: number,
  t: number,
  d: number,
): Tensor {
  const vec = d % 4 === 0 && x.size > 0;
  return launch(K, "cond_forward", {
    vec4: vec,
    constants: { WG: EW, OP: COND_OP[op] },
    params: { rows: n * t, d, t, eps: 0 },
    // Operands the op does not use are bound to x (never read).
    inputs: { ex: x, ea: a, eb: b ?? x, er: res ?? x },
    outputs: { ey: x.shape },
    workgroups: colRowGrid(n * t, vec ? d / 4 : d),
    label: op,
  }).ey;
}

/** Rows of T per chunk of the column (parameter-gradient) kernels. */
const T_CHUNK = 16;

/**
 * The launch of a column kernel over [N, T, D]: T cut into chunks, partial sums [N, chunks, D]; its vec4
 * instance (vec4 over D) when D % 4 == 0.
 */
function colPlan(n: number, t: number, d: number) {
  const tc = t <= 2 * T_CHUNK ? Math.max(t, 1) : T_CHUNK;
  const chunks = Math.max(1, Math.ceil(t / tc));
  const vec = d % 4 === 0 && n * t * d > 0;
  return {
    vec,
    chunks,
    params: { n, d, t, tc, chunks },
    workgroups: grid(n * chunks * (vec ? d / 4 : d), EW),
  };
}

/** Partial sums [N, chunks, D] → the [N, D] gradient (the partials themselves when chunks == 1). */
function finishColumns(p: Tensor, n: number, chunks: number, d: number, shape: readonly number[]): Tensor {
  if (chunks === 1) return p.view(shape);
  return sumColumns(p, n, chunks, d, 1, shape);
}

/** Options of {@link layerNorm} and {@link layerNormModulate}. */
export interface LayerNormOptions {
  /** Added to the variance before the square root (default 1e-6, DiT's value). */
  eps?: number;
}

/** Params of the row kernels. */
type RowParams = { rows: number; d: number; t: number; eps: number };

/**
 * The row-kernel forward (`ln_forward`): y and the saved statistics of each row, (mean, rstd)
 * interleaved, shape [rows, 2].
 */
function lnForward(
  vec: boolean,
  x: Tensor,
  shift: Tensor,
  scale: Tensor,
  constants: Record<string, number>,
  params: RowParams,
  label: string,
): [Tensor, Tensor] {
  const { fy, fstats } = launch(K, "ln_forward", {
    vec4: vec,
    constants,
    params,
    inputs: { fx: x, fshift: shift, fscale: scale },
    outputs: { fy: x.shape, fstats: [params.rows, 2] },
    workgroups: rowGrid(params.rows),
    label,
  });
  return [fy, fstats];
}

/** The row-kernel backward (`ln_backward`): dx. */
function lnBackward(
  vec: boolean,
  x: Tensor,
  stats: Tensor,
  scale: Tensor,
  g: Tensor,
  constants: Record<string, number>,
  params: RowParams,
  label: string,
): Tensor {
  return launch(K, "ln_backward", {
    vec4: vec,
    constants,
    params,
    inputs: { bx: x, bstats: stats, bscale: scale, bg: g },
    outputs: { bdx: x.shape },
    workgroups: rowGrid(params.rows),
    label,
  }).bdx;
}

/**
 * LayerNorm over the last dim without affine parameters: `(x − mean) / √(var + eps)` with the biased
 * variance (like torch). Forward saves mean and 1/√(var+eps) per row for the backward.
 */
export function layerNorm(x: Tensor, opts: LayerNormOptions = {}): Tensor {
  assertF32("layerNorm", x);
  if (x.ndim < 1) throw new ShapeError("layerNorm", `expects at least 1 dim, got ${fmtShape(x.shape)}`);
  const eps = opts.eps ?? 1e-6;
  const d = x.shape[x.ndim - 1];
  const rows = d === 0 ? 0 : x.size / d;
  const vec = rowVec(d, rows);
  const consts = { WG: ROW_WG, TPR, MOD: 0 };
  const params = { rows, d, t: 1, eps };
  // x stands in for shift and scale, which MOD = 0 never reads.
  const [y, stats] = lnForward(vec, x, x, x, consts, params, "layerNorm");
  const out = record(y, "layerNorm", [x], (g) => [
    lnBackward(vec, x, stats, x, g, consts, params, "layerNorm backward"),
  ]);
  keepSaved(out, stats);
  return out;
}

/**
 * Keeps a saved tensor alive as long as the graph needs it: when the op was recorded the saved tensor is
 * owned by the output's lifetime (disposed together with the scope), otherwise disposed now.
 */
function keepSaved(out: Tensor, saved: Tensor): void {
  if (!out.node) saved.dispose();
}

/** Checks x [N, T, D] against conditioning tensors [N, D]; returns [N, T, D]. */
function condShapes(op: string, x: Tensor, conds: [string, Tensor][]): [number, number, number] {
  assertF32(op, x);
  if (x.ndim !== 3) {
    throw new ShapeError(op, `expects x of shape [N, T, D], got ${fmtShape(x.shape)}`);
  }
  const [n, t, d] = x.shape;
  for (const [name, c] of conds) {
    assertF32(op, c);
    if (c.ndim !== 2 || c.shape[0] !== n || c.shape[1] !== d) {
      throw new ShapeError(
        op,
        `${name} of shape ${fmtShape(c.shape)} does not fit x of shape ${
          fmtShape(x.shape)
        } (want [${n}, ${d}])`,
      );
    }
  }
  return [n, t, d];
}

/**
 * adaLN modulation `x·(1 + scale) + shift` with x [N, T, D] and shift, scale [N, D] broadcast over T, as
 * one kernel. Backward: one kernel for dx, dshift and dscale (the latter two sum over T in order).
 */
export function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  const [n, t, d] = condShapes("modulate", x, [["shift", shift], ["scale", scale]]);
  const y = condForward("modulate", x, scale, shift, null, n, t, d);
  return record(y, "modulate", [x, shift, scale], (g) => {
    const plan = colPlan(n, t, d);
    const part = [n, plan.chunks, d];
    const { qdx: dx, qp1: p1, qp2: p2 } = launch(K, "modulate_backward", {
      vec4: plan.vec,
      constants: { WG: EW },
      params: plan.params,
      inputs: { qx: x, qscale: scale, qg: g },
      outputs: { qdx: x.shape, qp1: part, qp2: part },
      workgroups: plan.workgroups,
      label: "modulate backward",
    });
    const dshift = finishColumns(p1, n, plan.chunks, d, shift.shape);
    const dscale = finishColumns(p2, n, plan.chunks, d, scale.shape);
    p1.dispose();
    p2.dispose();
    debugCheck(dshift, "modulate backward");
    return [dx, dshift, debugCheck(dscale, "modulate backward")];
  });
}

/**
 * `modulate(layerNorm(x, {eps}), shift, scale)` fused: one kernel forward (saves mean and rstd per row),
 * two kernels backward (dx by rows; dshift and dscale by columns, summing over T in order).
 */
export function layerNormModulate(
  x: Tensor,
  shift: Tensor,
  scale: Tensor,
  opts: LayerNormOptions = {},
): Tensor {
  const [n, t, d] = condShapes("layerNormModulate", x, [["shift", shift], ["scale", scale]]);
  const eps = opts.eps ?? 1e-6;
  const rows = n * t;
  const vec = rowVec(d, rows);
  const consts = { WG: ROW_WG, TPR, MOD: 1 };
  const params = { rows, d, t, eps };
  const [y, stats] = lnForward(vec, x, shift, scale, consts, params, "layerNormModulate");
  const out = record(y, "layerNormModulate", [x, shift, scale], (g) => {
    const dx = x.requiresGrad
      ? lnBackward(vec, x, stats, scale, g, consts, params, "layerNormModulate backward x")
      : null;
    let dshift: Tensor | null = null;
    let dscale: Tensor | null = null;
    if (shift.requiresGrad || scale.requiresGrad) {
      const plan = colPlan(n, t, d);
      const part = [n, plan.chunks, d];
      const { pp1: p1, pp2: p2 } = launch(K, "ln_mod_backward_params", {
        vec4: plan.vec,
        constants: { WG: EW },
        params: plan.params,
        inputs: { px: x, pstats: stats, pg: g },
        outputs: { pp1: part, pp2: part },
        workgroups: plan.workgroups,
        label: "layerNormModulate backward shift/scale",
      });
      dshift = debugCheck(
        finishColumns(p1, n, plan.chunks, d, shift.shape),
        "layerNormModulate backward shift",
      );
      dscale = debugCheck(
        finishColumns(p2, n, plan.chunks, d, scale.shape),
        "layerNormModulate backward scale",
      );
      p1.dispose();
      p2.dispose();
    }
    return [dx, dshift, dscale];
  });
  keepSaved(out, stats);
  return out;
}

/**
 * dx = g·gate and dgate = Σ_t g·x (one column kernel, then the ordered sum of its per-chunk partials);
 * with `res` (addGated) the same kernel also writes the residual's gradient, a copy of g.
 */
function gateBackward(
  op: string,
  x: Tensor,
  gate: Tensor,
  g: Tensor,
  n: number,
  t: number,
  d: number,
  res: Tensor | null,
): Tensor[] {
  const plan = colPlan(n, t, d);
  const part = [n, plan.chunks, d];
  const outs = launch(K, res ? "add_gated_backward" : "gate_backward", {
    vec4: plan.vec,
    constants: { WG: EW },
    params: plan.params,
    inputs: res ? { rx: x, rgate: gate, rg: g } : { hx: x, hgate: gate, hg: g },
    outputs: res ? { rdres: res.shape, rdx: x.shape, rp1: part } : { hdx: x.shape, hp1: part },
    workgroups: plan.workgroups,
    label: `${op} backward`,
  });
  const out = (k: string) => outs[(res ? "r" : "h") + k];
  const p1 = out("p1");
  const dgate = finishColumns(p1, n, plan.chunks, d, gate.shape);
  p1.dispose();
  return [...(res ? [out("dres")] : []), out("dx"), debugCheck(dgate, `${op} backward`)];
}

/** `x · gate[:, None, :]` with x [N, T, D] and gate [N, D], as one kernel (backward: one kernel + sum). */
export function gate(x: Tensor, g: Tensor): Tensor {
  const [n, t, d] = condShapes("gate", x, [["gate", g]]);
  const y = condForward("gate", x, g, null, null, n, t, d);
  return record(y, "gate", [x, g], (gy) => gateBackward("gate", x, g, gy, n, t, d, null));
}

/**
 * The gated residual of adaLN-Zero blocks, `res + gate[:, None, :] · x` with res, x [N, T, D] and gate
 * [N, D], as one kernel. Backward: one kernel writes dres (a copy of the incoming gradient), dx and the
 * per-chunk partials of dgate, then their ordered sum over T.
 */
export function addGated(res: Tensor, x: Tensor, g: Tensor): Tensor {
  const [n, t, d] = condShapes("addGated", x, [["gate", g]]);
  assertF32("addGated", res);
  assertSameShape("addGated", res, x);
  const y = condForward("addGated", x, g, null, res, n, t, d);
  return record(y, "addGated", [res, x, g], (gy) => {
    // Only the residual needs a gradient: pass the incoming one through (backward copies it).
    if (!x.requiresGrad && !g.requiresGrad) return [gy, null, null];
    return gateBackward("addGated", x, g, gy, n, t, d, res);
  });
}
