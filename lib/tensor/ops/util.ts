/**
 * Shared helpers for op implementations: dispatch grids, shape checks, dims for params structs, and the
 * debug check of outputs that `launch()` (lib/tensor/launch.ts) does not allocate itself.
 * @module
 */

import { grid1d, rt } from "../../gpu/runtime.ts";
import { fmtShape, type Shape, ShapeError, type Tensor } from "../tensor.ts";

export { grid1d, rt };

/** Default workgroup size for elementwise kernels. */
export const WG = 256;

/** A 2-D grid covering `n` invocations in workgroups of `wg`. */
export function grid(n: number, wg = WG): [number, number] {
  return grid1d(n, wg, rt().adapter.limits.maxComputeWorkgroupsPerDimension);
}

/** Throws unless the two shapes are equal. */
export function assertSameShape(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new ShapeError(op, `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`);
  }
}

/** Whether two shapes are equal. */
export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Throws unless the tensor is f32. */
export function assertF32(op: string, t: Tensor): void {
  if (t.dtype !== "f32") throw new ShapeError(op, `expects f32, got ${t.dtype} tensor ${t.name}`);
}

/** Contiguous (row-major) strides of a shape. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** Records the debug NaN/Inf check of an op's output (no-op unless debug mode is on). */
export function debugCheck(out: Tensor, op: string): Tensor {
  rt().checkFinite(out.buffer, out.size, op);
  return out;
}

/** Up to 8 dims padded with `fill` to 8 values: the value of an `array<vec4u, 2>` params field. */
export function dims8(dims: readonly number[], fill = 0): number[] {
  if (dims.length > 8) throw new Error(`at most 8 dimensions are supported, got ${dims.length}`);
  const out = new Array<number>(8).fill(fill);
  for (let i = 0; i < dims.length; i++) out[i] = dims[i];
  return out;
}
