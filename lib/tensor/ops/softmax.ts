/**
 * Softmax and log-softmax over the last dim (max-subtracted), and the mean cross-entropy of logits [N, C]
 * against u32 labels [N]. Forward and backward each run as one kernel (cross-entropy adds the mean).
 * Kernels: `kernels/softmax.wgsl`.
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, ShapeError, type Tensor } from "../tensor.ts";
import { mean } from "./reduce.ts";
import { assertF32, grid } from "./util.ts";

import { launch } from "../launch.ts";
const K = wgsl(new URL("../../../kernels/softmax.wgsl", import.meta.url));

/** Invocations per row and per workgroup of the row kernels (8 rows per workgroup). */
const TPR = 8;
const ROW_WG = 64;
const ROWS = { WG: ROW_WG, TPR };

/** Workgroups of the row kernels, as a 2-D grid. */
function rowGrid(rows: number): [number, number] {
  return grid(rows, ROW_WG / TPR);
}

const EW = 256;

function params(rows: number, c: number): { rows: number; c: number } {
  return { rows, c };
}

function rowsOf(op: string, x: Tensor): [number, number] {
  assertF32(op, x);
  if (x.ndim < 1) throw new ShapeError(op, `expects at least 1 dim, got ${fmtShape(x.shape)}`);
  const c = x.shape[x.ndim - 1];
  return [c === 0 ? 0 : x.size / c, c];
}

function softmaxImpl(op: "softmax" | "logSoftmax", x: Tensor): Tensor {
  const [rows, c] = rowsOf(op, x);
  const log = op === "logSoftmax" ? 1 : 0;
  const { fy: y } = launch(K, "softmax_forward", {
    constants: { ...ROWS, LOG: log },
    params: params(rows, c),
    inputs: { fx: x },
    outputs: { fy: x.shape },
    workgroups: rowGrid(rows),
    label: op,
  });
  return record(y, op, [x], (g) => {
    const { bdx } = launch(K, "softmax_backward", {
      constants: { ...ROWS, LOG: log },
      params: params(rows, c),
      inputs: { by: y, bg: g },
      outputs: { bdx: x.shape },
      workgroups: rowGrid(rows),
      label: `${op} backward`,
    });
    return [bdx];
  });
}

/** Softmax over the last dim, `exp(x − max) / Σ exp(x − max)`. Backward uses the output. */
export function softmax(x: Tensor): Tensor {
  return softmaxImpl("softmax", x);
}

/** Log-softmax over the last dim, `x − max − log Σ exp(x − max)`. Backward uses the output. */
export function logSoftmax(x: Tensor): Tensor {
  return softmaxImpl("logSoftmax", x);
}

/**
 * Per-row cross-entropy `logsumexp(logits[i]) − logits[i, labels[i]]`, shape [N]. A label outside
 * [0, C) yields NaN for its row (the debug mode names the op). Labels get no gradient.
 */
export function crossEntropyRows(logits: Tensor, labels: Tensor): Tensor {
  assertF32("crossEntropy", logits);
  if (logits.ndim !== 2) {
    throw new ShapeError("crossEntropy", `expects logits of shape [N, C], got ${fmtShape(logits.shape)}`);
  }
  const [n, c] = logits.shape;
  if (labels.ndim !== 1 || labels.shape[0] !== n) {
    throw new ShapeError(
      "crossEntropy",
      `labels of shape ${fmtShape(labels.shape)} do not fit logits of shape ${fmtShape(logits.shape)}`,
    );
  }
  if (labels.dtype !== "u32") {
    throw new ShapeError("crossEntropy", `expects u32 labels, got ${labels.dtype} tensor ${labels.name}`);
  }
  const { closs: loss, clse: lse } = launch(K, "ce_forward", {
    constants: ROWS,
    params: params(n, c),
    inputs: { cx: logits, clabel: labels },
    outputs: { closs: [n], clse: [n] },
    workgroups: rowGrid(n),
    label: "crossEntropy",
  });
  const out = record(loss, "crossEntropy", [logits, labels], (g) => {
    const { ddx } = launch(K, "ce_backward", {
      constants: { WG: EW },
      params: params(n, c),
      inputs: { dx_in: logits, dlabel: labels, dlse: lse, dg: g },
      outputs: { ddx: logits.shape },
      workgroups: grid(n * c, EW),
      label: "crossEntropy backward",
    });
    return [ddx, null];
  });
  // The saved lse lives as long as the enclosing scope when recorded; otherwise it is not needed.
  if (!out.node) lse.dispose();
  return out;
}

/** Mean cross-entropy of logits [N, C] against u32 labels [N] (like `F.cross_entropy`); shape []. */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const rows = crossEntropyRows(logits, labels);
  const m = mean(rows);
  if (!rows.node) rows.dispose();
  return m;
}
