/**
 * 2-D convolution (NCHW, like `torch.nn.functional.conv2d`) and nearest-neighbour upsampling, with
 * backward. Kernels: `kernels/conv.wgsl`.
 *
 * `conv2d` runs as im2col + the batched matmul of `matmul.ts`: cols [N, C·kh·kw, Ho·Wo] = im2col(x),
 * out[n] = W [O, C·kh·kw] · cols[n], plus a per-channel bias. Its gradients follow from the pieces:
 * dW = Σₙ g[n] · cols[n]ᵀ (matmul backward over the broadcast weight), dcols = Wᵀ · g[n], dx = col2im(dcols)
 * (a gather in a fixed order: deterministic), db = Σ over batch and pixels (one small workgroup per
 * channel, lane sums added in order). 1×1 convolutions with stride 1 and no padding skip im2col (cols is
 * x itself).
 *
 * im2col, col2im and the upsampling kernels are specialised per geometry through override constants (one
 * pipeline per shape, compiled once, ~40 ms each on llvmpipe): their index arithmetic then divides by
 * constants, which on llvmpipe made them 4–5× faster (a division by a runtime value is scalarised per
 * lane). im2col writes 8 or 4 outputs per invocation as vec4s when Wo allows (another ~2×), else a row.
 *
 * Why not an implicit GEMM: on llvmpipe the `conv_direct` kernel (patches read on the fly, 4×4 register
 * tiles) took 1081 ms against 168 ms for im2col + the register-blocked matmul on a 3×3 conv at
 * 32×32×128 → 128 (N = 1, bias, padding 1), and 2.6–12× longer than im2col + matmul on the small VAE
 * shapes (N = 16, 8–16 channels, 8²–32² pixels). A geometry-specialised variant (8 output channels × 4
 * pixels per invocation, unrolled) was ~1.3× faster than im2col + matmul at 8 → 8 channels but 2–3× slower
 * from 16 channels on, and training needs the cols for dW anyway, so `conv2d` uses im2col; `conv2dDirect`
 * is kept as a forward-only alternative for GPUs and future tuning.
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { empty, fmtShape, numel, type Shape, ShapeError, type Tensor } from "../tensor.ts";
import { launch } from "../launch.ts";
import { concat, narrow, reshape } from "./layout.ts";
import { matmul } from "./matmul.ts";
import type { ParamValues } from "../../gpu/wgsl_layout.ts";
import { assertF32, debugCheck, grid, rt } from "./util.ts";

const K = wgsl(new URL("../../../kernels/conv.wgsl", import.meta.url));
/** Workgroup size of the bias kernel (its grid's x covers the pixels of one (n, o) plane). */
const BIAS_WG = 64;
/**
 * Workgroup size of the per-channel reductions: one 8-lane SIMD group, the fastest on llvmpipe, where a
 * workgroup with barriers runs its SIMD groups as coroutines (see kernels/groupnorm.wgsl).
 */
const REDUCE_WG = 8;

/**
 * Zero padding of a convolution: one number for all sides, `[ph, pw]` (top = bottom = ph, left = right
 * = pw), or `[top, bottom, left, right]` (asymmetric, e.g. SD's Downsample2D `[0, 1, 0, 1]`).
 */
export type Padding = number | readonly [number, number] | readonly [number, number, number, number];

/** Options of {@link conv2d}. */
export interface Conv2dOptions {
  /** Stride, one number or `[sh, sw]` (default 1). */
  stride?: number | readonly [number, number];
  /** Zero padding (default 0). */
  padding?: Padding;
  /**
   * Bytes one cols matrix (or output) may take before the batch is convolved in chunks (default: the
   * adapter's maxStorageBufferBindingSize, 128 MiB on llvmpipe). Chunking is the same computation.
   */
  chunkBytes?: number;
}

/** The resolved geometry of one convolution. */
interface Geom {
  n: number;
  c: number;
  h: number;
  w: number;
  o: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  pt: number;
  pb: number;
  pl: number;
  pr: number;
  ho: number;
  wo: number;
}

function pads(p: Padding): [number, number, number, number] {
  if (typeof p === "number") return [p, p, p, p];
  if (p.length === 2) return [p[0], p[0], p[1], p[1]];
  return [p[0], p[1], p[2], p[3]];
}

function geometry(op: string, x: Tensor, w: Tensor, b: Tensor | null | undefined, o: Conv2dOptions): Geom {
  assertF32(op, x);
  assertF32(op, w);
  if (b) assertF32(op, b);
  const shapes = `x ${fmtShape(x.shape)} and weight ${fmtShape(w.shape)}` +
    (b ? ` and bias ${fmtShape(b.shape)}` : "");
  if (x.ndim !== 4) throw new ShapeError(op, `${shapes}: x must be [N, C, H, W]`);
  if (w.ndim !== 4) throw new ShapeError(op, `${shapes}: weight must be [O, C, kh, kw]`);
  const [n, c, h, wd] = x.shape;
  const [oc, wc, kh, kw] = w.shape;
  if (wc !== c) throw new ShapeError(op, `${shapes}: x has ${c} channels, weight ${wc}`);
  if (b && (b.ndim !== 1 || b.shape[0] !== oc)) throw new ShapeError(op, `${shapes}: bias must be [${oc}]`);
  const st = o.stride ?? 1;
  const [sh, sw] = typeof st === "number" ? [st, st] : st;
  const [pt, pb, pl, pr] = pads(o.padding ?? 0);
  const ints = [sh, sw, pt, pb, pl, pr];
  if (ints.some((v) => !Number.isInteger(v) || v < 0) || sh < 1 || sw < 1) {
    throw new ShapeError(
      op,
      `${shapes}: invalid stride [${sh}, ${sw}] or padding [${pt}, ${pb}, ${pl}, ${pr}]`,
    );
  }
  const ho = Math.floor((h + pt + pb - kh) / sh) + 1;
  const wo = Math.floor((wd + pl + pr - kw) / sw) + 1;
  if (kh < 1 || kw < 1 || ho < 1 || wo < 1) {
    throw new ShapeError(op, `${shapes}: the kernel does not fit the padded input`);
  }
  return { n, c, h, w: wd, o: oc, kh, kw, sh, sw, pt, pb, pl, pr, ho, wo };
}

function convParams(g: Geom, total: number, hasBias = false): ParamValues {
  const { c, h, w, ho, wo, kh, kw, sh, sw, pt, pl, o, n } = g;
  return { total, c, h, w, ho, wo, kh, kw, sh, sw, pt, pl, o, n, has_bias: hasBias ? 1 : 0 };
}

/** The override constants that specialise `im2col` / `col2im` to one geometry. */
function geomConstants(g: Geom): Record<string, number> {
  return {
    GH: g.h,
    GW: g.w,
    GHO: g.ho,
    GWO: g.wo,
    GKH: g.kh,
    GKW: g.kw,
    GSH: g.sh,
    GSW: g.sw,
    GPT: g.pt,
    GPL: g.pl,
  };
}

function im2colRaw(x: Tensor, g: Geom): Tensor {
  const cols = empty([g.n, g.c * g.kh * g.kw, g.ho * g.wo], "f32", "conv2d cols");
  // Outputs per invocation: a whole cols row segment of Wo (scalar stores), or 8 / 4 as vec4s.
  const vq = cols.size === 0 ? 0 : g.wo % 8 === 0 ? 2 : g.wo % 4 === 0 ? 1 : 0;
  const total = vq ? cols.size / (4 * vq) : cols.size / g.wo;
  launch(K, vq ? "im2col4" : "im2col", {
    constants: { ...geomConstants(g), VQ: vq || 1 },
    params: convParams(g, total),
    inputs: { ix: x },
    outputs: vq ? { icols4: cols } : { icols: cols },
    workgroups: grid(total),
    label: "conv2d im2col",
  });
  return debugCheck(cols, "conv2d im2col");
}

function col2imRaw(dcols: Tensor, g: Geom, xShape: Shape): Tensor {
  const n = numel(xShape);
  return launch(K, "col2im", {
    constants: geomConstants(g),
    params: convParams(g, n),
    inputs: { ccols: dcols },
    outputs: { cdx: xShape },
    workgroups: grid(n),
    label: "conv2d col2im",
  }).cdx;
}

/** im2col as a differentiable op (backward: col2im). */
function im2col(x: Tensor, g: Geom): Tensor {
  const cols = im2colRaw(x, g);
  return record(cols, "conv2d im2col", [x], (gr) => [col2imRaw(gr, g, x.shape)]);
}

/** y[n, o, p] = x[n, o, p] + b[o] for x [N, O, P], differentiable in both. */
function channelBias(x: Tensor, b: Tensor, g: Geom): Tensor {
  const P = g.ho * g.wo;
  const v4 = P % 4 === 0 && x.size > 0; // vec4 kernels (vec4 bindings need 16 bytes)
  const { by } = launch(K, "channel_bias", {
    vec4: v4,
    constants: { WG: BIAS_WG },
    params: convParams(g, x.size),
    inputs: { bx: x, bb: b },
    outputs: { by: x.shape },
    workgroups: [Math.ceil((v4 ? P / 4 : P) / BIAS_WG), g.o, g.n],
    label: "conv2d bias",
  });
  return record(by, "conv2d bias", [x, b], (gr) => {
    if (!b.requiresGrad) return [gr, null];
    const db = launch(K, "channel_bias_backward", {
      vec4: v4,
      constants: { WG: REDUCE_WG },
      params: convParams(g, g.o),
      inputs: { gg: gr },
      outputs: { gdb: [g.o] },
      workgroups: grid(g.o, 1),
      label: "conv2d bias backward",
    }).gdb;
    return [gr, db];
  });
}

/**
 * `torch.nn.functional.conv2d(x, w, b, stride, padding)` with x [N, C, H, W], w [O, C, kh, kw] and an
 * optional bias [O]; the result is [N, O, Ho, Wo] with Ho = ⌊(H + top + bottom − kh) / sh⌋ + 1. Padding
 * may be asymmetric (see {@link Padding}). Differentiable in x, w and b (deterministic). When recorded,
 * the intermediate cols tensor belongs to the enclosing tidy scope.
 */
export function conv2d(x: Tensor, w: Tensor, b?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const g = geometry("conv2d", x, w, b, opts);
  // A large batch's cols matrix (or output) can exceed the storage binding limit: convolve the batch in
  // chunks that fit (each image's convolution is independent, so the result is bit-identical).
  const perImage = 4 * g.ho * g.wo * Math.max(g.c * g.kh * g.kw, g.o);
  const budget = opts.chunkBytes ?? rt().adapter.limits.maxStorageBufferBindingSize;
  const chunk = Math.max(1, Math.floor(budget / perImage));
  if (g.n > chunk) {
    const parts: Tensor[] = [];
    for (let i = 0; i < g.n; i += chunk) {
      const xi = narrow(x, 0, i, Math.min(chunk, g.n - i));
      parts.push(conv2d(xi, w, b, { ...opts, chunkBytes: Infinity }));
      if (!xi.node) xi.dispose();
    }
    const out = concat(parts, 0);
    if (!out.node) { for (const t of parts) t.dispose(); }
    return out;
  }
  const pointwise = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 &&
    g.pt + g.pb + g.pl + g.pr === 0;
  const P = g.ho * g.wo;
  const cols = pointwise ? reshape(x, [g.n, g.c, P]) : im2col(x, g);
  const w2 = reshape(w, [g.o, g.c * g.kh * g.kw]);
  const mm = matmul(w2, cols); // [N, O, P]
  const biased = b ? channelBias(mm, b, g) : mm;
  const out = reshape(biased, [g.n, g.o, g.ho, g.wo]);
  if (!out.node) {
    // Not recorded: nothing needs the intermediates.
    for (const t of new Set([cols, w2, mm, biased])) t.dispose();
  }
  return out;
}

/**
 * The same convolution as {@link conv2d} by the implicit-GEMM kernel `conv_direct` (no cols buffer),
 * forward only (not recorded): for benchmarks and inference.
 */
export function conv2dDirect(x: Tensor, w: Tensor, b?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const g = geometry("conv2dDirect", x, w, b, opts);
  const P = g.ho * g.wo;
  const total = g.n * Math.ceil(g.o / 4) * Math.ceil(P / 4);
  return launch(K, "conv_direct", {
    constants: { WG: 64 },
    params: convParams(g, total, !!b),
    inputs: { dx_in: x, dw: w, db: b ?? w },
    outputs: { dout: [g.n, g.o, g.ho, g.wo] },
    workgroups: grid(total, 64),
    label: "conv2d direct",
  }).dout;
}

/**
 * Nearest-neighbour upsampling of x [N, C, H, W] by an integer factor (default 2), like
 * `F.interpolate(x, scale_factor=f, mode="nearest")`: [N, C, H·f, W·f]. Backward sums each f×f block.
 */
export function upsampleNearest(x: Tensor, factor = 2): Tensor {
  assertF32("upsampleNearest", x);
  if (x.ndim !== 4) {
    throw new ShapeError("upsampleNearest", `x must be [N, C, H, W], got ${fmtShape(x.shape)}`);
  }
  if (!Number.isInteger(factor) || factor < 1) {
    throw new ShapeError("upsampleNearest", `factor must be a positive integer, got ${factor}`);
  }
  const [n, c, h, w] = x.shape;
  const shape = [n, c, h * factor, w * factor];
  const total = numel(shape);
  const { uy } = launch(K, "upsample_forward", {
    constants: { UH: h, UW: w, UF: factor },
    params: { total, h, w, f: factor },
    inputs: { ux: x },
    outputs: { uy: shape },
    workgroups: grid(total),
    label: "upsampleNearest",
  });
  return record(uy, "upsampleNearest", [x], (gr) => [
    launch(K, "upsample_backward", {
      constants: { UH: h, UW: w, UF: factor },
      params: { total: x.size, h, w, f: factor },
      inputs: { ug: gr },
      outputs: { udx: x.shape },
      workgroups: grid(x.size),
      label: "upsampleNearest backward",
    }).udx,
  ]);
}
