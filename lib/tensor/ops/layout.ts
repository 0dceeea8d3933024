/**
 * Layout ops, all differentiable: reshape (a zero-copy view), permute/transpose, narrow, concat,
 * split/chunk, flip, patchify/unpatchify (DiT's patch embedding order and the official unpatchify),
 * gatherRows (index_select on the first axis, deterministic scatter-add backward) and where (select on a
 * u32 mask). Copies move raw 32-bit words, so they work on every dtype and are exact.
 * Kernels: `kernels/layout.wgsl`.
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { needsGrad, record } from "../autograd.ts";
import { empty, fmtShape, numel, type Shape, ShapeError, type Tensor, zeros } from "../tensor.ts";
import { broadcastShapes, sumTo } from "./elementwise.ts";
import { assertF32, debugCheck, dims8, grid, rt, stridesOf, WG } from "./util.ts";
import type { ParamValues } from "../../gpu/wgsl_layout.ts";
import { launch } from "../launch.ts";

const K = wgsl(new URL("../../../kernels/layout.wgsl", import.meta.url));
/**
 * Elements from which a strided walk or split gets a pipeline specialised to its shape: the dims as
 * override constants, so divisions by constants (permutes ~1.25× faster on llvmpipe). That is one small
 * pipeline per shape, so small walks, of which there are many shapes, share the generic one.
 */
const SPECIALISE_MIN = 8192;

// ---- helpers ----------------------------------------------------------------------------------------

/** Normalises a possibly negative axis of a rank-`ndim` tensor; throws naming the op. */
function axisOf(op: string, axis: number, ndim: number, shape: Shape): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= ndim) {
    throw new ShapeError(op, `axis ${axis} is out of range for shape ${fmtShape(shape)}`);
  }
  return a;
}

/**
 * Drops size-1 dims and merges neighbours whose strides chain (stride[k] = stride[k+1]·shape[k+1]), so
 * that the kernel walks as few dims as possible.
 */
function collapse(shape: Shape, strides: number[]): { shape: number[]; strides: number[] } {
  const s: number[] = [];
  const t: number[] = [];
  for (let k = 0; k < shape.length; k++) {
    if (shape[k] === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && t[last] === strides[k] * shape[k]) {
      s[last] *= shape[k];
      t[last] = strides[k];
    } else {
      s.push(shape[k]);
      t.push(strides[k]);
    }
  }
  return { shape: s, strides: t };
}

/**
 * The dispatch fields (params, NDIM pipeline constant) of a strided gather/scatter over the collapsed
 * dims, or null when the walk is one contiguous run (then a buffer copy does it).
 */
function stridedParams(
  op: string,
  n: number,
  shape: Shape,
  strides: number[],
  base: number,
): { params: ParamValues; constants: Record<string, number> } | null {
  const c = collapse(shape, strides);
  if (c.shape.length === 0 || (c.shape.length === 1 && c.strides[0] === 1)) return null;
  if (c.shape.length > 8) {
    throw new ShapeError(op, `at most 8 non-trivial dims are supported, got ${fmtShape(shape)}`);
  }
  const constants: Record<string, number> = { NDIM: c.shape.length };
  if (n >= SPECIALISE_MIN) { for (let d = 1; d < c.shape.length; d++) constants[`GS${d}`] = c.shape[d]; }
  return {
    params: { n, base, shape: dims8(c.shape, 1), str: dims8(c.strides.map((v) => v >>> 0)) },
    constants,
  };
}

/**
 * A fresh tensor of shape `outShape` (same element count as `walk`) whose i-th element is
 * `x[base + Σ coord_k(i) · strides[k]]`, the coordinates of i taken in the shape `walk`.
 */
function gatherRaw(
  op: string,
  x: Tensor,
  walk: Shape,
  strides: number[],
  base: number,
  outShape: Shape = walk,
): Tensor {
  const out = empty(outShape, x.dtype);
  const n = out.size;
  if (n === 0) return out;
  const sp = stridedParams(op, n, walk, strides, base);
  if (sp) {
    launch(K, "gather_strided", {
      ...sp,
      inputs: { g_x: x },
      outputs: { g_out: out },
      workgroups: grid(n),
      label: op,
    });
  } else rt().copy(x.buffer, base * 4, out.buffer, 0, n * 4);
  return x.dtype === "f32" ? debugCheck(out, op) : out;
}

/** Writes the contiguous `src` (walked in shape `walk`) into `dst` at `base + Σ coord_k · strides[k]`. */
function scatterRaw(
  op: string,
  src: Tensor,
  dst: Tensor,
  walk: Shape,
  strides: number[],
  base: number,
): void {
  const n = src.size;
  if (n === 0) return;
  const sp = stridedParams(op, n, walk, strides, base);
  if (sp) {
    launch(K, "scatter_strided", {
      ...sp,
      inputs: { s_x: src },
      outputs: { s_out: dst },
      workgroups: grid(n),
      label: op,
    });
  } else rt().copy(src.buffer, 0, dst.buffer, base * 4, n * 4);
}

/** A fresh tensor: x viewed as `view` (same element count), its dims permuted by `dims`, shaped `outShape`. */
function permuteRaw(op: string, x: Tensor, view: Shape, dims: readonly number[], outShape?: Shape): Tensor {
  const st = stridesOf(view);
  const walk = dims.map((d) => view[d]);
  return gatherRaw(op, x, walk, dims.map((d) => st[d]), 0, outShape ?? walk);
}

function inversePerm(dims: readonly number[]): number[] {
  const inv = new Array(dims.length);
  dims.forEach((d, k) => inv[d] = k);
  return inv;
}

/** [outer, size of axis, inner] of a shape around an axis. */
function around(shape: Shape, axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis], numel(shape.slice(axis + 1))];
}

/** A slice of `x` along `axis` (no autograd). */
function narrowRaw(op: string, x: Tensor, axis: number, start: number, length: number): Tensor {
  const [outer, size, inner] = around(x.shape, axis);
  const shape = [...x.shape];
  shape[axis] = length;
  return gatherRaw(op, x, [outer, length, inner], [size * inner, inner, 1], start * inner, shape);
}

/** Zeros of `shape` with `g` written at [start, start + g.shape[axis]) along `axis` (the adjoint of narrow). */
function padRaw(op: string, g: Tensor, shape: Shape, axis: number, start: number): Tensor {
  const out = zeros(shape, g.dtype);
  const [outer, size, inner] = around(shape, axis);
  const len = g.shape[axis];
  scatterRaw(op, g, out, [outer, len, inner], [size * inner, inner, 1], start * inner);
  return out;
}

// ---- reshape ------------------------------------------------------------------------------------------

/**
 * `x` with another shape of the same size (one dim may be -1), sharing x's buffer (no copy). The
 * backward views the gradient back to x's shape (also without a copy; the view keeps the gradient's
 * buffer alive after backward disposes the gradient tensor itself).
 */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const free = s.indexOf(-1);
  if (free >= 0) {
    const rest = numel(s.filter((_, i) => i !== free));
    if (s.indexOf(-1, free + 1) >= 0 || rest === 0 || x.size % rest !== 0) {
      throw new ShapeError("reshape", `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
    }
    s[free] = x.size / rest;
  }
  if (s.some((d) => !Number.isInteger(d) || d < 0) || numel(s) !== x.size) {
    throw new ShapeError("reshape", `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const xs = x.shape;
  return record(x.view(s), "reshape", [x], (g) => [g.view(xs)]);
}

// ---- permute / transpose ------------------------------------------------------------------------------

/** The dims of `x` reordered: output dim k is input dim `dims[k]` (up to 8 dims; negative dims allowed). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const nd = x.ndim;
  const d = dims.map((v) => axisOf("permute", v, nd, x.shape));
  if (d.length !== nd || new Set(d).size !== nd) {
    throw new ShapeError("permute", `[${dims}] is not a permutation of the dims of ${fmtShape(x.shape)}`);
  }
  const out = permuteRaw("permute", x, x.shape, d);
  const inv = inversePerm(d);
  return record(out, "permute", [x], (g) => [permute(g, inv)]);
}

/** `x` with dims `d0` and `d1` swapped. */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const a = axisOf("transpose", d0, x.ndim, x.shape);
  const b = axisOf("transpose", d1, x.ndim, x.shape);
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

// ---- narrow / concat / split / chunk ------------------------------------------------------------------

/** The slice [start, start + length) of `x` along `axis` (a fresh tensor); backward pads with zeros. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = axisOf("narrow", axis, x.ndim, x.shape);
  if (
    !Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 ||
    start + length > x.shape[a]
  ) {
    throw new ShapeError(
      "narrow",
      `[${start}, ${start + length}) is out of range for axis ${axis} of ${fmtShape(x.shape)}`,
    );
  }
  const out = narrowRaw("narrow", x, a, start, length);
  return record(out, "narrow", [x], (g) => [padRaw("narrow backward", g, x.shape, a, start)]);
}

/** The tensors joined along `axis`; all other dims and the dtypes must agree. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new ShapeError("concat", "needs at least one tensor");
  const first = xs[0];
  const a = axisOf("concat", axis, first.ndim, first.shape);
  let total = 0;
  for (const t of xs) {
    if (
      t.dtype !== first.dtype || t.ndim !== first.ndim ||
      t.shape.some((d, i) => i !== a && d !== first.shape[i])
    ) {
      throw new ShapeError(
        "concat",
        `shapes ${fmtShape(first.shape)} (${first.dtype}) and ${fmtShape(t.shape)} (${t.dtype}) ` +
          `cannot be joined along axis ${axis}`,
      );
    }
    total += t.shape[a];
  }
  const shape = [...first.shape];
  shape[a] = total;
  const out = empty(shape, first.dtype);
  const [outer, , inner] = around(shape, a);
  const starts: number[] = [];
  let off = 0;
  for (const t of xs) {
    starts.push(off);
    scatterRaw("concat", t, out, [outer, t.shape[a], inner], [total * inner, inner, 1], off * inner);
    off += t.shape[a];
  }
  if (out.dtype === "f32") debugCheck(out, "concat");
  return record(
    out,
    "concat",
    [...xs],
    (g) =>
      xs.map((t, k) => t.requiresGrad ? narrowRaw("concat backward", g, a, starts[k], t.shape[a]) : null),
  );
}

/**
 * `x` cut along `axis` into pieces of the given sizes (summing to the dim), each a fresh tensor. Backward:
 * one concat of the pieces' gradients, with zeros for pieces that got none (a hidden one-element node
 * collects them, so the gradient of x is assembled once rather than summed from padded copies).
 */
export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const a = axisOf("split", axis, x.ndim, x.shape);
  if (
    sizes.some((s) => !Number.isInteger(s) || s < 0) || sizes.reduce((p, q) => p + q, 0) !== x.shape[a]
  ) {
    throw new ShapeError("split", `sizes [${sizes}] do not add up to axis ${axis} of ${fmtShape(x.shape)}`);
  }
  const starts: number[] = [];
  let off = 0;
  for (const s of sizes) {
    starts.push(off);
    off += s;
  }
  if (sizes.length >= 2 && sizes.length <= 6 && sizes.every((s) => s > 0) && x.size > 0) {
    return splitMulti(x, a, sizes, starts);
  }
  const parts = sizes.map((s, k) => narrowRaw("split", x, a, starts[k], s));
  if (!needsGrad(x)) return parts;
  // The collector: parts record it as their input; each part's backward writes its gradient into the
  // shared buffer and hands the collector a dummy one-element gradient; the collector, reached after all
  // parts (reverse topological order), returns the assembled buffer.
  let acc: Tensor | null = null;
  const collector = empty([1], "f32", `split of ${x.name}`);
  collector.requiresGrad = true;
  collector.node = {
    op: "split",
    inputs: [x],
    ignoresGrad: true,
    backward: () => {
      const g = acc ?? zeros(x.shape);
      acc = null;
      return [g];
    },
  };
  const [outer, size, inner] = around(x.shape, a);
  return parts.map((p, k) =>
    record(p, "split", [collector], (g) => {
      acc ??= zeros(x.shape);
      scatterRaw(
        "split backward",
        g,
        acc,
        [outer, sizes[k], inner],
        [size * inner, inner, 1],
        starts[k] * inner,
      );
      return [zeros([1])];
    })
  );
}

/** Distinct 4-byte buffers bound to the unused part slots of `split_multi` (never read or written). */
let splitDummies: { device: GPUDevice; bufs: GPUBuffer[] } | null = null;

function splitDummy(k: number): GPUBuffer {
  const device = rt().device;
  if (!splitDummies || splitDummies.device !== device) {
    splitDummies = {
      device,
      bufs: Array.from(
        { length: 6 },
        (_, i) => device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE, label: `split slot ${i}` }),
      ),
    };
  }
  return splitDummies.bufs[k];
}

/** One `split_multi` dispatch between `x` and its parts (JOIN: parts → x). */
function splitMultiRaw(
  x: Tensor,
  parts: (Tensor | null)[],
  a: number,
  starts: number[],
  join: boolean,
): void {
  const [outer, size0, inner0] = around(x.shape, a);
  // Each part's run per outer index (sizes[k]·inner) and start in x's rows as multiples of 4: the vec4
  // kernel, on [outer, size·inner / 4] (inner 1).
  const v4 = (size0 * inner0) % 4 === 0 && starts.every((s) => (s * inner0) % 4 === 0);
  const [size, inner, q] = v4 ? [(size0 * inner0) / 4, 1, inner0 / 4] : [size0, inner0, 1];
  const st = [...starts.map((s) => s * q), size, size, size, size, size, size].slice(0, 8);
  const slot: Record<string, Tensor | GPUBuffer> = {};
  const pre = v4 ? "sq" : "sp";
  for (let k = 0; k < 6; k++) slot[`${pre}_${k}`] = parts[k] ?? splitDummy(k);
  const lens = parts.map((_, k) => st[k + 1] - st[k]);
  const same = lens.every((l) => l === lens[0]);
  const maxPart = outer * Math.max(...lens) * inner;
  const spec: Record<string, number> = same && outer * size0 * inner0 >= SPECIALISE_MIN
    ? { SPART: lens[0] * inner }
    : {};
  const [gx, gy] = grid(maxPart);
  launch(K, v4 ? "split_multi4" : "split_multi", {
    constants: { JOIN: join ? 1 : 0, ...spec },
    params: {
      outer,
      size,
      inner,
      parts: parts.length,
      starts: st.slice(0, 4),
      starts2: st.slice(4),
    },
    ...(join
      ? { inputs: slot, outputs: { [`${pre}_x`]: x } }
      : { inputs: { [`${pre}_x`]: x }, outputs: slot }),
    workgroups: [gx, gy, parts.length],
    label: join ? "split backward" : "split",
  });
}

/**
 * {@link split} into 2 to 6 non-empty parts with one dispatch, and a backward that joins the parts'
 * gradients (zeros for a part without one) with one dispatch once all of them are in: each part's backward
 * only keeps a view of its gradient; the collector, reached after every part, joins them.
 */
function splitMulti(x: Tensor, a: number, sizes: readonly number[], starts: number[]): Tensor[] {
  const parts = sizes.map((s) => {
    const shape = [...x.shape];
    shape[a] = s;
    return empty(shape, x.dtype);
  });
  splitMultiRaw(x, parts, a, starts, false);
  if (!needsGrad(x)) return parts;
  const got: (Tensor | null)[] = sizes.map(() => null);
  const collector = empty([1], "f32", `split of ${x.name}`);
  collector.requiresGrad = true;
  collector.node = {
    op: "split",
    inputs: [x],
    ignoresGrad: true,
    backward: () => {
      const ins = got.map((g, k) => g ?? zeros(parts[k].shape, x.dtype));
      const out = empty(x.shape, x.dtype);
      splitMultiRaw(out, ins, a, starts, true);
      for (const t of ins) t.dispose();
      got.fill(null);
      return [out];
    },
  };
  return parts.map((p, k) =>
    record(p, "split", [collector], (g) => {
      got[k]?.dispose();
      got[k] = g.view(g.shape); // shares g's buffer: alive after backward disposes g
      return [zeros([1])];
    })
  );
}

/**
 * `x` cut along `axis` into `n` pieces as `torch.chunk`: pieces of ceil(dim / n), the last one smaller
 * (so there may be fewer than n pieces).
 */
export function chunk(x: Tensor, n: number, axis: number): Tensor[] {
  const a = axisOf("chunk", axis, x.ndim, x.shape);
  const d = x.shape[a];
  if (!Number.isInteger(n) || n < 1 || d === 0) {
    throw new ShapeError("chunk", `cannot cut axis ${axis} of ${fmtShape(x.shape)} into ${n} chunks`);
  }
  const c = Math.ceil(d / n);
  const sizes: number[] = [];
  for (let s = 0; s < d; s += c) sizes.push(Math.min(c, d - s));
  return split(x, sizes, a);
}

// ---- flip ---------------------------------------------------------------------------------------------

/** `x` reversed along `axis` (e.g. a horizontal image flip on the last axis); backward flips back. */
export function flip(x: Tensor, axis: number): Tensor {
  const a = axisOf("flip", axis, x.ndim, x.shape);
  const st = stridesOf(x.shape);
  const strides = [...st];
  strides[a] = -st[a];
  const out = gatherRaw("flip", x, x.shape, strides, Math.max(0, x.shape[a] - 1) * st[a]);
  return record(out, "flip", [x], (g) => [flip(g, a)]);
}

// ---- patchify / unpatchify ----------------------------------------------------------------------------

/**
 * Patches of `x` [N, C, H, W]: [N, T = (H/p)(W/p), C·p·p], patches in row-major (h, w) order, each
 * flattened in (c, i, j) order, so that the patch-embedding conv (weight [D, C, p, p], stride p) equals
 * a Linear with the weight viewed as [D, C·p·p].
 */
export function patchify(x: Tensor, p: number): Tensor {
  if (x.ndim !== 4 || !Number.isInteger(p) || p < 1 || x.shape[2] % p !== 0 || x.shape[3] % p !== 0) {
    throw new ShapeError("patchify", `cannot cut ${fmtShape(x.shape)} (N, C, H, W) into ${p}x${p} patches`);
  }
  const [n, c, hh, ww] = x.shape;
  const h = hh / p, w = ww / p;
  const view = [n, c, h, p, w, p];
  const dims = [0, 2, 4, 1, 3, 5];
  const out = permuteRaw("patchify", x, view, dims, [n, h * w, c * p * p]);
  const inv = inversePerm(dims);
  return record(out, "patchify", [x], (g) => [
    permuteRaw("patchify backward", g, dims.map((d) => view[d]), inv, x.shape),
  ]);
}

/**
 * Images from patch tokens `x` [N, T, p·p·C] as the official DiT `unpatchify`:
 * `x.reshape(N, h, w, p, p, C)`, `einsum('nhwpqc->nchpwq')`, `reshape(N, C, h·p, w·p)`, with h = w = √T
 * unless `hw` = [h, w] is given.
 */
export function unpatchify(x: Tensor, p: number, c: number, hw?: [number, number]): Tensor {
  const bad = () =>
    new ShapeError(
      "unpatchify",
      `cannot assemble ${fmtShape(x.shape)} (N, T, p·p·C) with p = ${p}, C = ${c}` +
        (hw ? `, h x w = ${hw[0]} x ${hw[1]}` : ""),
    );
  if (x.ndim !== 3 || !Number.isInteger(p) || p < 1 || !Number.isInteger(c) || c < 1) throw bad();
  const [n, t, e] = x.shape;
  const side = Math.round(Math.sqrt(t));
  const [h, w] = hw ?? [side, side];
  if (h * w !== t || e !== p * p * c) throw bad();
  const view = [n, h, w, p, p, c];
  const dims = [0, 5, 1, 3, 2, 4];
  const out = permuteRaw("unpatchify", x, view, dims, [n, c, h * p, w * p]);
  const inv = inversePerm(dims);
  return record(out, "unpatchify", [x], (g) => [
    permuteRaw("unpatchify backward", g, dims.map((d) => view[d]), inv, x.shape),
  ]);
}

// ---- gatherRows ---------------------------------------------------------------------------------------

/**
 * Sorts the (idx[m], m) pairs (bitonic, deterministic) into a fresh [P, 2] u32 tensor, P a power of two.
 */
function sortedKeys(idx: Tensor): Tensor {
  const m = idx.size;
  const block = 2 * WG;
  let n = block;
  while (n < m) n *= 2;
  const keys = empty([n, 2], "u32", "gatherRows keys");
  launch(K, "sort_init", {
    params: { n, m, k: 0, j: 0 },
    inputs: { k_idx: idx },
    outputs: { k_keys: keys },
    workgroups: grid(n),
    label: "gatherRows backward: sort keys",
  });
  const local = (k: number) =>
    launch(K, "sort_local", {
      constants: { WG },
      params: { n, m, k, j: 0 },
      outputs: { l_keys: keys },
      workgroups: grid(n / block, 1),
      label: "gatherRows backward: sort",
    });
  local(0);
  for (let k = 2 * block; k <= n; k *= 2) {
    for (let j = k / 2; j > WG; j /= 2) {
      launch(K, "sort_global", {
        params: { n, m, k, j },
        outputs: { l_keys: keys },
        workgroups: grid(n / 2),
        label: "gatherRows backward: sort",
      });
    }
    local(k);
  }
  return keys;
}

/**
 * Rows of `x` [N, ...] picked by the u32 indices `idx` [M]: [M, ...] (as `index_select(x, 0, idx)`;
 * indices ≥ N give zero rows). Backward: the scatter-add of the gradient rows, computed without atomics
 * (the (index, position) pairs are sorted, then every gradient element sums its segment in increasing
 * position), so it is deterministic.
 */
export function gatherRows(x: Tensor, idx: Tensor): Tensor {
  if (x.ndim < 1 || idx.ndim !== 1 || idx.dtype !== "u32") {
    throw new ShapeError(
      "gatherRows",
      `needs x [N, ...] and u32 indices [M], got ${fmtShape(x.shape)} and ${
        fmtShape(idx.shape)
      } ${idx.dtype}`,
    );
  }
  const rows = x.shape[0];
  const d = rows === 0 ? 0 : x.size / rows;
  const m = idx.size;
  const out = empty([m, ...x.shape.slice(1)], x.dtype);
  if (out.size > 0) {
    launch(K, "gather_rows", {
      params: { n: m * d, d, rows, m },
      inputs: { r_x: x, r_idx: idx },
      outputs: { r_out: out },
      workgroups: grid(m * d),
      label: "gatherRows",
    });
  }
  return record(out, "gatherRows", [x], (g) => {
    const dx = empty(x.shape);
    if (x.size === 0) return [dx];
    if (m === 0) {
      rt().clear(dx.buffer, 0, dx.bytes);
      return [dx];
    }
    const keys = sortedKeys(idx);
    launch(K, "gather_rows_backward", {
      params: { n: x.size, d, rows, m },
      inputs: { b_g: g, b_keys: keys },
      outputs: { b_dx: dx },
      workgroups: grid(x.size),
      label: "gatherRows backward",
    });
    keys.dispose();
    return [debugCheck(dx, "gatherRows backward")];
  });
}

// ---- where --------------------------------------------------------------------------------------------

function bstrides(shape: Shape, out: Shape): number[] {
  const n = out.length;
  const st = stridesOf(shape);
  return out.map((_, i) => {
    const j = i - (n - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : st[j];
  });
}

/**
 * `mask != 0 ? a : b` elementwise, with broadcasting of all three (mask u32; a and b of one dtype).
 * Gradients flow to a where the mask is set and to b elsewhere (summed over broadcast dims).
 */
export function where(mask: Tensor, a: Tensor, b: Tensor): Tensor {
  if (mask.dtype !== "u32") throw new ShapeError("where", `mask must be u32, got ${mask.dtype}`);
  if (a.dtype !== b.dtype) {
    throw new ShapeError(
      "where",
      `a ${fmtShape(a.shape)} is ${a.dtype} but b ${fmtShape(b.shape)} is ${b.dtype}`,
    );
  }
  const shape = broadcastShapes("where", broadcastShapes("where", a.shape, b.shape), mask.shape);
  if (shape.length > 8) throw new ShapeError("where", `at most 8 dims, got ${fmtShape(shape)}`);
  const out = empty(shape, a.dtype);
  const params = {
    n: out.size,
    shape: dims8(shape, 1),
    astr: dims8(bstrides(a.shape, shape)),
    bstr: dims8(bstrides(b.shape, shape)),
    mstr: dims8(bstrides(mask.shape, shape)),
  };
  if (out.size > 0) {
    launch(K, "where_select", {
      constants: { NDIM: shape.length },
      params,
      inputs: { w_mask: mask, w_a: a, w_b: b },
      outputs: { w_out: out },
      workgroups: grid(out.size),
      label: "where",
    });
  }
  const side = (g: Tensor, s: 0 | 1, target: Tensor): Tensor => {
    assertF32("where backward", g);
    const { wb_out: full } = launch(K, "where_backward", {
      constants: { SIDE: s, NDIM: shape.length },
      params,
      inputs: { wb_mask: mask, wb_g: g },
      outputs: { wb_out: shape },
      workgroups: grid(out.size),
      label: "where backward",
    });
    const r = sumTo(full, target.shape);
    if (r !== full) full.dispose();
    return r;
  };
  return record(out, "where", [a, b], (g) => [
    a.requiresGrad ? side(g, 0, a) : null,
    b.requiresGrad ? side(g, 1, b) : null,
  ]);
}
