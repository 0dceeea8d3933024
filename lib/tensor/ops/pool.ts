/**
 * 2-D pooling over NCHW tensors, like `torch.nn.functional.max_pool2d` and `avg_pool2d` (ceil_mode=False,
 * dilation 1), and ReLU, all with backward. Kernels: `kernels/pool.wgsl`.
 *
 * Max pooling saves the in-plane index of the first maximum of each window (row-major order, as torch's
 * CPU kernel) and its backward routes the gradient there by a gather (each input pixel sums the windows
 * that chose it, in a fixed order): deterministic, no atomics. Average pooling divides by kh·kw
 * (`countIncludePad`, torch's default) or by the number of taps inside the input (count_include_pad=False,
 * used by the FID Inception blocks).
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, numel, ShapeError, type Tensor } from "../tensor.ts";
import type { ParamValues } from "../../gpu/wgsl_layout.ts";
import { launch } from "../launch.ts";
import { assertF32, grid } from "./util.ts";

const K = wgsl(new URL("../../../kernels/pool.wgsl", import.meta.url));

/** One number for both spatial dims or `[h, w]`. */
export type Pair = number | readonly [number, number];

/** Options of {@link maxPool2d} and {@link avgPool2d}. */
export interface Pool2dOptions {
  /** Stride (default: the kernel size, as in torch). */
  stride?: Pair;
  /** Implicit padding on both sides (default 0; at most half the kernel). */
  padding?: Pair;
}

/** Options of {@link avgPool2d}. */
export interface AvgPool2dOptions extends Pool2dOptions {
  /** Divide by kh·kw including padded taps (default true), else by the taps inside the input. */
  countIncludePad?: boolean;
}

interface PoolGeom {
  nc: number;
  h: number;
  w: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  outShape: number[];
}

function pair(v: Pair): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

function geometry(op: string, x: Tensor, kernel: Pair, o: Pool2dOptions): PoolGeom {
  assertF32(op, x);
  if (x.ndim !== 4) throw new ShapeError(op, `x must be [N, C, H, W], got ${fmtShape(x.shape)}`);
  const [n, c, h, w] = x.shape;
  const [kh, kw] = pair(kernel);
  const [sh, sw] = pair(o.stride ?? kernel);
  const [ph, pw] = pair(o.padding ?? 0);
  const ok = [kh, kw, sh, sw].every((v) => Number.isInteger(v) && v >= 1) &&
    [ph, pw].every((v) => Number.isInteger(v) && v >= 0) && 2 * ph <= kh && 2 * pw <= kw;
  if (!ok) {
    throw new ShapeError(
      op,
      `x ${
        fmtShape(x.shape)
      }: invalid kernel [${kh}, ${kw}], stride [${sh}, ${sw}] or padding [${ph}, ${pw}] ` +
        `(padding must be at most half the kernel)`,
    );
  }
  const ho = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const wo = Math.floor((w + 2 * pw - kw) / sw) + 1;
  if (ho < 1 || wo < 1) {
    throw new ShapeError(
      op,
      `x ${fmtShape(x.shape)}: the window [${kh}, ${kw}] does not fit the padded input`,
    );
  }
  return { nc: n * c, h, w, ho, wo, kh, kw, sh, sw, ph, pw, outShape: [n, c, ho, wo] };
}

function poolParams(g: PoolGeom, total: number, includePad: boolean): ParamValues {
  const { h, w, ho, wo, kh, kw, sh, sw, ph, pw } = g;
  return { total, h, w, ho, wo, kh, kw, sh, sw, ph, pw, include_pad: includePad ? 1 : 0 };
}

/**
 * `F.max_pool2d(x, kernel, stride, padding)` for x [N, C, H, W] (stride defaults to the kernel): the result
 * is [N, C, Ho, Wo] with Ho = ⌊(H + 2·ph − kh) / sh⌋ + 1. Backward routes each output's gradient to the
 * first maximum of its window (deterministic).
 */
export function maxPool2d(x: Tensor, kernel: Pair, opts: Pool2dOptions = {}): Tensor {
  const g = geometry("maxPool2d", x, kernel, opts);
  const total = numel(g.outShape);
  const { mout: out, midx: idx } = launch(K, "maxpool_forward", {
    params: poolParams(g, total, true),
    inputs: { mx: x },
    outputs: { mout: g.outShape, midx: g.outShape }, // idx: u32
    workgroups: grid(total),
    label: "maxPool2d",
  });
  const res = record(out, "maxPool2d", [x], (gr) => [
    launch(K, "maxpool_backward", {
      params: poolParams(g, x.size, true),
      inputs: { mbg: gr, mbidx: idx },
      outputs: { mbdx: x.shape },
      workgroups: grid(x.size),
      label: "maxPool2d backward",
    }).mbdx,
  ]);
  // The saved indices live as long as the enclosing scope when recorded; otherwise nothing needs them.
  if (!res.node) idx.dispose();
  return res;
}

/**
 * `F.avg_pool2d(x, kernel, stride, padding, count_include_pad=...)` for x [N, C, H, W] (stride defaults
 * to the kernel; `countIncludePad` defaults to true, as torch). Backward spreads g / divisor over each
 * window (a gather, deterministic).
 */
export function avgPool2d(x: Tensor, kernel: Pair, opts: AvgPool2dOptions = {}): Tensor {
  const g = geometry("avgPool2d", x, kernel, opts);
  const includePad = opts.countIncludePad ?? true;
  const total = numel(g.outShape);
  const { aout } = launch(K, "avgpool_forward", {
    params: poolParams(g, total, includePad),
    inputs: { ax: x },
    outputs: { aout: g.outShape },
    workgroups: grid(total),
    label: "avgPool2d",
  });
  return record(aout, "avgPool2d", [x], (gr) => [
    launch(K, "avgpool_backward", {
      params: poolParams(g, x.size, includePad),
      inputs: { abg: gr },
      outputs: { abdx: x.shape },
      workgroups: grid(x.size),
      label: "avgPool2d backward",
    }).abdx,
  ]);
}

/** ReLU, max(x, 0), elementwise; the gradient is g where x > 0 and 0 elsewhere (0 at x = 0, as torch). */
export function relu(x: Tensor): Tensor {
  assertF32("relu", x);
  const { ry_out } = launch(K, "relu_forward", {
    params: { n: x.size },
    inputs: { rx_in: x },
    outputs: { ry_out: x.shape },
    workgroups: grid(x.size),
    label: "relu",
  });
  return record(ry_out, "relu", [x], (gr) => [
    launch(K, "relu_backward", {
      params: { n: x.size },
      inputs: { rbx: x, rbg: gr },
      outputs: { rbdx: x.shape },
      workgroups: grid(x.size),
      label: "relu backward",
    }).rbdx,
  ]);
}
