/**
 * Matrix multiply and linear layers, with backward.
 *
 * `matmul(a, b, {transA, transB})` multiplies the last two dims of `a` and `b` (optionally read transposed,
 * without a transpose copy) over leading batch dims; `linear(x, weight, bias)` is
 * `torch.nn.functional.linear` (weight in PyTorch's [out, in] layout, bias add fused into the matmul).
 * Gradients are matmuls with other transpose flags; the bias gradient is a deterministic column sum.
 *
 * Kernels (`kernels/matmul.wgsl`), picked per adapter and shape by {@link planMatmul}:
 * - `mm_reg4` on CPU adapters (llvmpipe): register-blocked, no workgroup memory; an invocation keeps up to
 *   16 × 16 outputs in registers, since there every buffer load costs one scalar load per SIMD lane;
 * - `mm_tile4` on GPUs: 128×128 (or 64-wide) workgroup tiles with K slices in workgroup memory, and a
 *   deterministic split-K (partial outputs summed in order) when there are too few tiles;
 * - `mm_reg1`: scalar loads for shapes whose contiguous dims are not multiples of 4.
 * Every output element is summed by one invocation in a fixed order: results are bit-identical run to run.
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { empty, fmtShape, numel, type Shape, ShapeError, type Tensor } from "../tensor.ts";
import { broadcastShapes, sumTo } from "./elementwise.ts";
import { launch } from "../launch.ts";
import { assertF32, debugCheck, grid, rt } from "./util.ts";

const K = wgsl(new URL("../../../kernels/matmul.wgsl", import.meta.url));

/** Options for {@link matmul}. */
export interface MatmulOptions {
  /** Read `a` as transposed: `a` is stored [..., K, M]. */
  transA?: boolean;
  /** Read `b` as transposed: `b` is stored [..., N, K] (e.g. a PyTorch Linear weight). */
  transB?: boolean;
}

/** The matmul kernels: `reg4`/`reg1` register-blocked (vec4 / scalar loads), `tile4` workgroup-tiled. */
export type MatmulKernel = "reg4" | "reg1" | "tile4";

/** How one matmul is launched: entry point, override constants and workgroup grid. */
export interface MatmulPlan {
  kernel: MatmulKernel;
  entry: string;
  constants: Record<string, number>;
  /** Workgroups in x (column blocks) and y (row blocks); z is the batch (times `splits`). */
  workgroups: [number, number];
  /** Split-K (tile4, reg4): K is cut into `splits` chunks of `kChunk`, summed in order afterwards. */
  splits: number;
  kChunk: number;
  /** `mm_reg4`: invocations of a workgroup's x along the columns (0: all of them), a params field. */
  lc: number;
}

/** One matmul problem: per batch z, C[z] (M×N) = op(A[z]) · op(B[z]); strides in elements (0 broadcasts). */
interface MMSpec {
  M: number;
  N: number;
  K: number;
  batch: number;
  strideA: number;
  strideB: number;
  tA: boolean;
  tB: boolean;
}

type KernelPolicy = "auto" | MatmulKernel;
let policy: KernelPolicy = "auto";

/**
 * Forces a kernel family for every following matmul ("auto" restores the per-adapter choice); a forced
 * `reg4`/`tile4` still falls back to `reg1` where the shape needs scalar loads. For tests and benchmarks.
 * Returns the previous setting.
 */
export function setMatmulKernel(p: KernelPolicy): KernelPolicy {
  const prev = policy;
  policy = p;
  return prev;
}

/** Whether the adapter is a CPU implementation (llvmpipe, lavapipe, SwiftShader, WARP). */
export function isCpuAdapter(): boolean {
  const a = rt().adapter;
  return a.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|warp|cpu/i.test(a.description);
}

/** Whether every contiguous dimension is a multiple of 4 (the vec4 kernels' requirement). */
function vec4Ok(M: number, N: number, K: number, tA: boolean, tB: boolean): boolean {
  return (tA ? M : K) % 4 === 0 && (tB ? K : N) % 4 === 0 && N % 4 === 0;
}

const ceil = (a: number, b: number) => Math.ceil(a / b);

/**
 * The launch plan of a matmul of op(A) [M, K] · op(B) [K, N] (per batch) on the current adapter.
 *
 * Tile table: CPU adapters run `reg4`, each lane TM rows × TN vec4 columns, so that every loaded vec4 feeds
 * up to 16 vec4 FMAs (measured on llvmpipe at 1024³ in CPU time: 16×4 ~15 GFLOP/s, 16×2 ~13, 8×4 ~12, a
 * naive vec4 kernel ~1–2.3). From 4 MFLOP on the tile is 16 × TN (TN 4, 3 or 2) with the 8 lanes of a
 * workgroup spread LC along the columns × 8 / LC along the rows, or 32 × 32 (TM 32, TN 8: half the loads
 * per flop of 16 × 16; the main job's L/4 linears on 256 rows run at ~30-34 GFLOP/s instead of ~20-25,
 * `deno task bench matmul --filter L/4`), picked per shape by `cpuTile` (the small-DiT linears,
 * N = 96..384 on 2048 rows: 16 × 16 with LC = 2, ~1.6x the 16 × 8 tile of 8 lanes along the columns);
 * smaller problems run 8 × 2 (few pipeline variants). Every tile variant compiles once per machine (Mesa's
 * disk cache keeps it): on a cold cache ~1-1.7 s for the 16- and 8-row tiles, but 16-21 s for each 32 × 32
 * variant (one per TA/TB layout: the lane split `lc` is a params field, not an override constant, so it
 * adds none; LLVM's register allocation over 1,024 live floats per lane). So the 32 × 32 tile trades a
 * one-off compile on a new machine (3 variants for the main job) for a ~15% faster step.
 * K ≥ 4096 is split into chunks of 2048 for cache locality. GPUs run `tile4` with
 * 128×128 tiles when that gives enough workgroups (≥ 256) to fill the device; with fewer than 128 tiles and
 * K ≥ 2048 (weight gradients) K is split to reach ~256 workgroups, else the tiles shrink to 64 wide; BK 16.
 * Shapes that need scalar loads run `reg1` (8 × 2 vec4 columns from 16 MFLOP on, else 4 × 1). Split-K
 * sums the partial outputs in a fixed order, so every plan is deterministic.
 */
export function planMatmul(M: number, N: number, K: number, tA = false, tB = false, batch = 1): MatmulPlan {
  const v4 = vec4Ok(M, N, K, tA, tB);
  let kind: MatmulKernel = policy === "auto" ? (isCpuAdapter() ? "reg4" : "tile4") : policy;
  if (!v4) kind = "reg1";
  const flags = { TA: tA ? 1 : 0, TB: tB ? 1 : 0 };
  if (kind === "tile4") {
    const bk = 16;
    const tiles = (m: number, n: number) => ceil(M, m) * ceil(N, n) * batch;
    let [bm, bn] = [128, 128];
    let splits = 1;
    if (tiles(bm, bn) < 256) {
      if (K >= 2048 && tiles(bm, bn) < 128) {
        // Few tiles and a long K (weight gradients): split K rather than shrink the tiles.
        if (M < 128) bm = 64;
        if (N < 128) bn = 64;
        splits = Math.max(1, Math.min(Math.floor(256 / tiles(bm, bn)), Math.floor(K / 512)));
      } else {
        if (M >= N) bn = 64;
        else bm = 64;
        if (tiles(bm, bn) < 256) [bm, bn] = [64, 64];
      }
    }
    const kChunk = Math.max(bk, ceil(ceil(K, splits), bk) * bk);
    splits = Math.max(1, ceil(K, kChunk));
    return {
      kernel: kind,
      entry: "mm_tile4",
      constants: { ...flags, BM: bm, BN: bn, BK: bk },
      workgroups: [ceil(N, bn), ceil(M, bm)],
      splits,
      kChunk,
      lc: 0,
    };
  }
  const cpu = isCpuAdapter();
  const wx = cpu ? 8 : 16;
  const wy = cpu ? 1 : 4;
  const quads = ceil(N, 4);
  const flops = 2 * M * N * K * batch;
  // A long K (the weight gradients, K = all rows) runs in chunks of 2048 k, each into its own partial
  // output, so that the operand panels stay in the CPU's L2 (measured on llvmpipe: 1152x384 with K = 8192
  // at ~10-15 GFLOP/s of CPU time, with K = 2048 ~13-20), when the partials take at most 64 MiB.
  let splits = 1;
  let kChunk = 4 * ceil(K, 4);
  if (kind === "reg4" && cpu && K >= 4096) {
    const n = ceil(K, 2048);
    if (n * M * N * batch * 4 <= 64 * 2 ** 20) [splits, kChunk] = [n, 2048];
  }
  if (kind === "reg4" && cpu && flops >= 2 ** 22) {
    const t = cpuTile(M, quads, ceil(kChunk, 4), batch * splits);
    return {
      kernel: kind,
      entry: "mm_reg4",
      constants: { ...flags, TM: t.tm, TN: t.tn, WX: wx, WY: wy },
      workgroups: [ceil(quads, t.lc * t.tn), ceil(M, (t.tm * wx) / t.lc)],
      splits,
      kChunk,
      lc: t.lc === wx ? 0 : t.lc,
    };
  }
  // Small problems (and reg1, GPUs) keep small fixed tiles: few pipeline variants, fast to compile.
  let [tm, tn] = [8, 2];
  if (kind === "reg1") [tm, tn] = flops >= 2 ** 24 ? [8, 2] : [4, 1];
  if (!cpu) [tm, tn] = [4, 1];
  return {
    kernel: kind,
    entry: kind === "reg4" ? "mm_reg4" : "mm_reg1",
    constants: { ...flags, TM: tm, TN: tn, WX: wx, WY: wy },
    workgroups: [ceil(quads, wx * tn), ceil(M, tm * wy)],
    splits,
    kChunk,
    lc: 0,
  };
}

/** Threads llvmpipe runs workgroups on (one per CPU core). */
const cpuThreads = () => Math.max(1, navigator.hardwareConcurrency || 1);

/**
 * The register tile of `mm_reg4` on a CPU adapter for `quads` vec4 columns × M rows, `kb` k blocks of 4,
 * `z` batches (× splits): 16 rows × TN vec4 columns (TN 4, 3, 2), 32 rows × 8, or 8 rows × 8 or 4 (for
 * the 8 or 16 output channels of the VAE's convolutions, M = 8: VAE step 255 → 238 ms) per invocation, the 8
 * invocations of a workgroup spread as LC along the columns × 8 / LC along the rows. Picked by a cost
 * model of llvmpipe: every lane pays ~5 ns per vec4 it loads (TM + 4·TN per k block) and ~0.5 ns per vec4
 * FMA (TM·TN·4), so the 32 × 32 tile has the fewest loads per flop (32 × 12 and 32 × 16 were slower than
 * the model says on N = 144, so they are not candidates), and LC places the lanes so that few of them
 * compute padding (N = 96: LC = 2, 32 columns × 64 rows per workgroup); workgroups are dealt to the
 * cores in rounds, so a last partial round counts in full. Ties keep LC = 8 (the large-shape tile).
 */
function cpuTile(M: number, quads: number, kb: number, z: number): { tm: number; tn: number; lc: number } {
  const threads = cpuThreads();
  const maxWg = rt().adapter.limits.maxComputeWorkgroupsPerDimension;
  let best = { tm: 16, tn: 4, lc: 8 };
  let bestCost = Infinity;
  for (const [tm, tn] of [[16, 4], [16, 3], [16, 2], [32, 8], [8, 8], [8, 4]]) {
    for (const lc of [8, 4, 2, 1]) {
      const [wgx, wgy] = [ceil(quads, lc * tn), ceil(M, (tm * 8) / lc)];
      if ((wgx > maxWg || wgy > maxWg) && bestCost < Infinity) continue;
      const wgs = wgx * wgy * z;
      const perLane = kb * ((tm + 4 * tn) * 5 + tm * tn * 4 * 0.5) + tm * tn * 2;
      const cost = ceil(wgs, threads) * 8 * perLane;
      if (cost < bestCost * 0.999) [best, bestCost] = [{ tm, tn, lc }, cost];
    }
  }
  return best;
}

let dummy: { device: GPUDevice; buf: GPUBuffer } | null = null;

/** A 16-byte buffer bound as the bias when there is none (the kernels never read it then). */
function dummyBias(): GPUBuffer {
  const device = rt().device;
  if (!dummy || dummy.device !== device) {
    dummy = {
      device,
      buf: device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE, label: "matmul no-bias" }),
    };
  }
  return dummy.buf;
}

/** The prefix of the binding names (`ra`, `rb`, `rbias`, `rc`, ...) of each matmul entry point. */
const BINDING_PREFIX: Record<string, string> = { mm_reg4: "r", mm_reg1: "s", mm_tile4: "t" };

/** Runs one matmul problem into a new tensor of `outShape` (not recorded). */
function mmRaw(a: Tensor, b: Tensor, s: MMSpec, outShape: Shape, bias: Tensor | null, label: string): Tensor {
  const out = empty(outShape, "f32", label);
  if (out.size === 0) return out;
  const plan = planMatmul(s.M, s.N, s.K, s.tA, s.tB, s.batch);
  const unit = plan.kernel === "reg1" ? 1 : 4;
  const splits = plan.splits;
  // With split-K the matmul writes `splits` partial outputs per batch, summed (with the bias) afterwards.
  const dst = splits > 1 ? empty([s.batch * splits * s.M * s.N], "f32", `${label} split-K partials`) : out;
  const maxZ = rt().adapter.limits.maxComputeWorkgroupsPerDimension;
  const zTotal = s.batch * splits;
  const pre = BINDING_PREFIX[plan.entry];
  for (let z0 = 0; z0 < zTotal; z0 += maxZ) {
    const nz = Math.min(maxZ, zTotal - z0);
    launch(K, plan.entry, {
      constants: plan.constants,
      params: {
        M: s.M,
        N: s.N,
        K: s.K,
        z0,
        strideA: s.strideA / unit,
        strideB: s.strideB / unit,
        strideC: (s.M * s.N) / unit,
        hasBias: bias && splits === 1 ? 1 : 0,
        kChunk: plan.kChunk,
        splits,
        lc: plan.lc,
      },
      inputs: { [`${pre}a`]: a, [`${pre}b`]: b, [`${pre}bias`]: bias && splits === 1 ? bias : dummyBias() },
      outputs: { [`${pre}c`]: dst },
      workgroups: [plan.workgroups[0], plan.workgroups[1], nz],
      label,
    });
  }
  if (splits > 1) {
    const n4 = (s.M * s.N) / 4;
    const total = s.batch * n4;
    launch(K, "splitk_sum", {
      params: { n4, splits, N4: s.N / 4, hasBias: bias ? 1 : 0, total },
      inputs: { kpart: dst, kbias: bias ?? dummyBias() },
      outputs: { kout: out },
      workgroups: grid(total, 256),
      label: `${label} split-K sum`,
    });
    dst.dispose();
  }
  return debugCheck(out, label);
}

/** Rows of x [rows, cols] summed per column, deterministically (the bias gradient); not recorded. */
export function columnSums(x: Tensor, rows: number, cols: number, outShape: Shape = [cols]): Tensor {
  const out = empty(outShape, "f32", "column sums");
  if (cols === 0) return out;
  const rpc = Math.max(64, ceil(rows, 64));
  const chunks = Math.max(1, ceil(rows, rpc));
  const part = chunks === 1 ? out : empty([chunks, cols], "f32", "column sum partials");
  const params = { rows, cols, rowsPerChunk: rpc, chunks };
  launch(K, "colsum_partial", {
    params,
    inputs: { cx: x },
    outputs: { cpart: part },
    workgroups: [ceil(cols, 64), chunks],
    label: "column sums",
  });
  if (chunks > 1) {
    launch(K, "colsum_final", {
      params,
      inputs: { fpart: part },
      outputs: { fout: out },
      workgroups: [ceil(cols, 64)],
      label: "column sums",
    });
    part.dispose();
  }
  return debugCheck(out, "column sums");
}

/** Sums r [batch, rows, cols] over the batch into a fresh tensor of `shape` (rows·cols elements). */
function sumBatch(r: Tensor, shape: Shape): Tensor {
  const s = sumTo(r, r.shape.slice(1));
  if (s.ndim === shape.length && s.shape.every((d, i) => d === shape[i])) return s;
  const v = s.view(shape);
  s.dispose();
  return v;
}

/**
 * The gradients of C = op(A)·op(B) for one spec: each as a matmul with other transpose flags, summed over
 * the batch (with `sumTo`) where the operand was broadcast.
 */
function mmBackward(a: Tensor, b: Tensor, s: MMSpec, g: Tensor, op: string): [Tensor | null, Tensor | null] {
  const { M, N, K, batch, tA, tB } = s;
  const gStride = M * N;
  let da: Tensor | null = null;
  let db: Tensor | null = null;
  if (a.requiresGrad) {
    const sumA = s.strideA === 0 && batch > 1;
    const shape = sumA ? [batch, ...(tA ? [K, M] : [M, K])] : a.shape;
    // !tA: dA = G · op(B)ᵀ ;  tA: dA (stored [K, M]) = op(B) · Gᵀ
    const spec: MMSpec = tA
      ? { M: K, N: M, K: N, batch, strideA: s.strideB, strideB: gStride, tA: tB, tB: true }
      : { M, N: K, K: N, batch, strideA: gStride, strideB: s.strideB, tA: false, tB: !tB };
    const r = tA ? mmRaw(b, g, spec, shape, null, `${op} dA`) : mmRaw(g, b, spec, shape, null, `${op} dA`);
    if (sumA) {
      da = sumBatch(r, a.shape);
      r.dispose();
    } else da = r;
  }
  if (b.requiresGrad) {
    const sumB = s.strideB === 0 && batch > 1;
    const shape = sumB ? [batch, ...(tB ? [N, K] : [K, N])] : b.shape;
    // !tB: dB = op(A)ᵀ · G ;  tB: dB (stored [N, K]) = Gᵀ · op(A)
    const spec: MMSpec = tB
      ? { M: N, N: K, K: M, batch, strideA: gStride, strideB: s.strideA, tA: true, tB: tA }
      : { M: K, N, K: M, batch, strideA: s.strideA, strideB: gStride, tA: !tA, tB: false };
    const r = tB ? mmRaw(g, a, spec, shape, null, `${op} dB`) : mmRaw(a, g, spec, shape, null, `${op} dB`);
    if (sumB) {
      db = sumBatch(r, b.shape);
      r.dispose();
    } else db = r;
  }
  return [da, db];
}

/**
 * Batched matrix multiply: op(a) · op(b) over the last two dims, where op(a) = a [..., M, K] or, with
 * `transA`, the transpose of a [..., K, M]; op(b) = b [..., K, N] or, with `transB`, the transpose of
 * b [..., N, K]. The batch dims (all but the last two) must be equal, or one side's batch must have a
 * single element (a 2-D operand, or batch dims of size 1), which is broadcast; the result is
 * [...batch, M, N]. A batched `a` times a 2-D `b` (the Linear case) runs as one matmul over all rows.
 * Differentiable in both inputs.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const tA = opts.transA ?? false;
  const tB = opts.transB ?? false;
  assertF32("matmul", a);
  assertF32("matmul", b);
  const both = `a ${fmtShape(a.shape)}${tA ? " (transA)" : ""} and b ${fmtShape(b.shape)}${
    tB ? " (transB)" : ""
  }`;
  if (a.ndim < 2 || b.ndim < 2) throw new ShapeError("matmul", `${both}: both operands need at least 2 dims`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = tA ? ac : ar;
  const Ka = tA ? ar : ac;
  const Kb = tB ? bc : br;
  const N = tB ? br : bc;
  if (Ka !== Kb) throw new ShapeError("matmul", `${both}: inner dimensions ${Ka} and ${Kb} differ`);
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  let outBatch: number[];
  try {
    outBatch = broadcastShapes("matmul", aBatch, bBatch);
  } catch {
    throw new ShapeError("matmul", `${both}: batch dimensions cannot be broadcast`);
  }
  const batch = numel(outBatch);
  const nA = numel(aBatch);
  const nB = numel(bBatch);
  if ((nA !== batch && nA !== 1) || (nB !== batch && nB !== 1)) {
    throw new ShapeError(
      "matmul",
      `${both}: batch dimensions must be equal, or one side must have a single batch element`,
    );
  }
  const K = Ka;
  const outShape = [...outBatch, M, N];
  let spec: MMSpec;
  if (!tA && nB === 1 && batch > 1) {
    // Flatten the batch of `a` into rows: one matmul [batch·M, K] · op(B).
    spec = { M: batch * M, N, K, batch: 1, strideA: 0, strideB: 0, tA, tB };
  } else {
    spec = {
      M,
      N,
      K,
      batch,
      strideA: nA === 1 ? 0 : M * K,
      strideB: nB === 1 ? 0 : K * N,
      tA,
      tB,
    };
  }
  const out = mmRaw(a, b, spec, outShape, null, "matmul");
  return record(out, "matmul", [a, b], (g) => mmBackward(a, b, spec, g, "matmul"));
}

/**
 * `torch.nn.functional.linear`: y = x · weightᵀ + bias, with x [..., in], weight [out, in] (PyTorch's layout,
 * so state dicts load unchanged) and an optional bias [out]; y is [..., out]. One matmul over all rows of
 * x with the bias add fused. Backward: dx = dy · weight, dweight = dyᵀ · x summed over every row (one
 * matmul over the flattened rows), dbias = the column sums of dy (deterministic).
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  assertF32("linear", x);
  assertF32("linear", weight);
  if (bias) assertF32("linear", bias);
  const shapes = `x ${fmtShape(x.shape)} and weight ${fmtShape(weight.shape)}` +
    (bias ? ` and bias ${fmtShape(bias.shape)}` : "");
  if (weight.ndim !== 2) throw new ShapeError("linear", `${shapes}: weight must be 2-D [out, in]`);
  if (x.ndim < 1) throw new ShapeError("linear", `${shapes}: x needs at least 1 dim`);
  const [outF, inF] = weight.shape;
  if (x.shape[x.ndim - 1] !== inF) {
    throw new ShapeError("linear", `${shapes}: x has ${x.shape[x.ndim - 1]} input features, weight ${inF}`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outF)) {
    throw new ShapeError("linear", `${shapes}: bias must be [${outF}]`);
  }
  const rows = x.size / Math.max(inF, 1);
  const rowsI = inF === 0 ? numel(x.shape.slice(0, -1)) : rows;
  const outShape = [...x.shape.slice(0, -1), outF];
  const spec: MMSpec = { M: rowsI, N: outF, K: inF, batch: 1, strideA: 0, strideB: 0, tA: false, tB: true };
  const out = mmRaw(x, weight, spec, outShape, bias ?? null, "linear");
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, "linear", inputs, (g) => {
    const [dx, dw] = mmBackward(x, weight, spec, g, "linear");
    const grads: (Tensor | null)[] = [dx, dw];
    if (bias) grads.push(bias.requiresGrad ? columnSums(g, rowsI, outF) : null);
    return grads;
  });
}
