/**
 * Bilinear resizing of NCHW tensors, `F.interpolate(x, size=(outH, outW), mode="bilinear",
 * align_corners=False)`, with backward. Kernels: `kernels/resize.wgsl`.
 *
 * The taps and weights of each output row and column are computed on the host as ATen's CPU kernel
 * computes them for float tensors (torch 1.13 `upsample_bilinear2d`; measured against it): scale = in / out
 * rounded to f32, source coordinate src = max(scale · (o + 0.5) − 0.5, 0) in float64, taps ⌊src⌋ and
 * ⌊src⌋ + 1 (the last pixel repeated at the edge), λ1 = src − ⌊src⌋ rounded to f32. (WGSL has no f64, and
 * the f32 source coordinate moves some outputs by ~1e-6 relative.) The kernel reads them from two small
 * tables; the backward is a gather over the outputs that read each input pixel, in a fixed order
 * (deterministic, no atomics). Used by the FID Inception (resize to 299×299, shared/spec/fid.md).
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, ShapeError, type Tensor, tensor } from "../tensor.ts";
import { launch } from "../launch.ts";
import { assertF32, grid } from "./util.ts";

const K = wgsl(new URL("../../../kernels/resize.wgsl", import.meta.url));

/** First taps and λ1 of the outputs along one dim of `nIn` input pixels resized to `nOut`. */
function dimTaps(nIn: number, nOut: number): { i0: number[]; l1: number[]; first: number[] } {
  const scale = Math.fround(nIn / nOut);
  const i0: number[] = [];
  const l1: number[] = [];
  for (let o = 0; o < nOut; o++) {
    const src = Math.max(scale * (o + 0.5) - 0.5, 0);
    const i = Math.min(Math.trunc(src), nIn - 1);
    i0.push(i);
    l1.push(Math.min(Math.max(src - i, 0), 1));
  }
  // first[y]: the first output whose first tap is ≥ y − 1 (the first that can read input y).
  const first: number[] = [];
  let o = 0;
  for (let y = 0; y < nIn; y++) {
    while (o < nOut && i0[o] < y - 1) o++;
    first.push(o);
  }
  return { i0, l1, first };
}

/** The tap tables of one resize: u32 [ho + wo + h + w] (first taps, then first readers), f32 [ho + wo] (λ1). */
function tables(h: number, w: number, ho: number, wo: number): { taps: Tensor; lam: Tensor } {
  const ty = dimTaps(h, ho);
  const tx = dimTaps(w, wo);
  const taps = tensor(Uint32Array.from([...ty.i0, ...tx.i0, ...ty.first, ...tx.first]), [ho + wo + h + w]);
  const lam = tensor(Float32Array.from([...ty.l1, ...tx.l1]), [ho + wo]);
  return { taps, lam };
}

/**
 * Resizes x [N, C, H, W] to [N, C, outH, outW] by bilinear interpolation with align_corners=False, like
 * `torch.nn.functional.interpolate(x, size=(outH, outW), mode="bilinear", align_corners=False)` (upsampling
 * and downsampling; no antialiasing, as torch's default). Differentiable in x (deterministic). When recorded,
 * the small tap tables belong to the enclosing tidy scope.
 */
export function resizeBilinear(x: Tensor, outH: number, outW: number): Tensor {
  assertF32("resizeBilinear", x);
  if (x.ndim !== 4) {
    throw new ShapeError("resizeBilinear", `x must be [N, C, H, W], got ${fmtShape(x.shape)}`);
  }
  const [n, c, h, w] = x.shape;
  if (![outH, outW].every((v) => Number.isInteger(v) && v >= 1) || h < 1 || w < 1) {
    throw new ShapeError(
      "resizeBilinear",
      `x ${fmtShape(x.shape)}: cannot resize to ${outH}×${outW} (sizes must be positive integers)`,
    );
  }
  const { taps, lam } = tables(h, w, outH, outW);
  const total = n * c * outH * outW;
  const { fy } = launch(K, "resize_bilinear_forward", {
    params: { total, h, w, ho: outH, wo: outW },
    inputs: { fx: x, ftaps: taps, flam: lam },
    outputs: { fy: [n, c, outH, outW] },
    workgroups: grid(total),
    label: "resizeBilinear",
  });
  const res = record(fy, "resizeBilinear", [x], (g) => [
    launch(K, "resize_bilinear_backward", {
      params: { total: x.size, h, w, ho: outH, wo: outW },
      inputs: { bg: g, btaps: taps, blam: lam },
      outputs: { bdx: x.shape },
      workgroups: grid(x.size),
      label: "resizeBilinear backward",
    }).bdx,
  ]);
  if (!res.node) {
    // Not recorded: nothing needs the tables after the dispatch (released once it is submitted).
    taps.dispose();
    lam.dispose();
  }
  return res;
}
