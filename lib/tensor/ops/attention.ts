/**
 * Fused multi-head attention in the flash-attention manner, and the head split/merge permutes of a DiT
 * attention layer.
 *
 * `attention(q, k, v)` computes softmax(scale·q·kᵀ)·v per (batch, head) in one pass over key tiles with an
 * online softmax (running max and sum): the Tq×Tk score matrix never reaches global memory. The forward
 * saves the per-row logsumexp; the backward (FlashAttention-2 style) recomputes the scores tile by tile
 * from q, k and that logsumexp: one kernel for δᵢ = Σ dO∘O, one pass over key tiles per query block for
 * dQ, one pass over query tiles per key block for dK and dV. No atomics, so it is deterministic.
 *
 * Kernels: `kernels/attention.wgsl` (see its header for the tiling and the one-tile-per-dispatch form
 * used on software adapters).
 * @module
 */

import { grid1d, wgsl } from "../../gpu/runtime.ts";
import { needsGrad, record } from "../autograd.ts";
import { empty, fmtShape, numel, ShapeError, type Tensor, zeros } from "../tensor.ts";
import { launch } from "../launch.ts";
import { assertF32, debugCheck, grid, rt } from "./util.ts";

const K = wgsl(new URL("../../../kernels/attention.wgsl", import.meta.url));

/** Largest supported head dim (the kernels keep a row in registers as up to 32 vec4s). */
export const ATTENTION_MAX_HEAD_DIM = 128;
const MAX_BT = 64;
const MAX_RQ = 8;
const MAX_RQD4 = 64;

/**
 * Tile sizes and form of the attention kernels (WGSL overrides). Each kernel runs workgroups of `*WG`
 * invocations, each owning `*RQ` rows (query rows in the forward and dQ kernels, key rows in the dK/dV
 * kernel), so a workgroup covers WG·RQ rows; the other operand streams through workgroup memory in tiles
 * of `tileRows` rows. 0 picks the default: WG 128 and RQ 2 in the one-tile-per-dispatch form (measured
 * best on llvmpipe), WG 64 and RQ 1 in the looping form. RQ is lowered automatically where RQ·Dh/4 would
 * exceed 64.
 */
export interface AttentionTiles {
  fwdWG: number;
  fwdRQ: number;
  dqWG: number;
  dqRQ: number;
  dkdvWG: number;
  dkdvRQ: number;
  /** A multiple of 4, at most 64; 0 picks the largest that fits the device's workgroup memory. */
  tileRows: number;
  /**
   * `loop`: one dispatch walks all tiles (GPUs); `dispatch`: one dispatch per tile, the state carried in
   * the output buffers (faster on llvmpipe, see kernels/attention.wgsl); `auto`: `dispatch` on software
   * adapters, else `loop`.
   */
  mode: "auto" | "loop" | "dispatch";
  /** Most workgroups per grid dimension (0: the device limit); small values test 2-D grids. */
  gridX: number;
}

const DEFAULT_TILES: AttentionTiles = {
  fwdWG: 0,
  fwdRQ: 0,
  dqWG: 0,
  dqRQ: 0,
  dkdvWG: 0,
  dkdvRQ: 0,
  tileRows: 0,
  mode: "auto",
  gridX: 0,
};
let tiles: AttentionTiles = { ...DEFAULT_TILES };

/** Overrides tile sizes (for benchmarks and tuning); returns the previous setting, to restore it. */
export function setAttentionTiles(t: Partial<AttentionTiles>): AttentionTiles {
  const prev = { ...tiles };
  const next = { ...tiles, ...t };
  for (const [k, v] of Object.entries(next)) {
    if (k === "mode") {
      if (!["auto", "loop", "dispatch"].includes(v as string)) {
        throw new Error(`setAttentionTiles: mode must be auto, loop or dispatch, got ${v}`);
      }
      continue;
    }
    if (!Number.isInteger(v) || (v as number) < 0) {
      throw new Error(`setAttentionTiles: ${k} must be a non-negative integer, got ${v}`);
    }
    if (k.endsWith("RQ") && (v as number) > MAX_RQ) {
      throw new Error(`setAttentionTiles: ${k} must be ≤ ${MAX_RQ}`);
    }
  }
  if (next.tileRows > MAX_BT || next.tileRows % 4 !== 0) {
    throw new Error(`setAttentionTiles: tileRows must be a multiple of 4, at most ${MAX_BT}`);
  }
  tiles = next;
  return prev;
}

/** The current tile sizes. */
export function getAttentionTiles(): AttentionTiles {
  return { ...tiles };
}

/** Options for {@link attention}. */
export interface AttentionOptions {
  /** Softmax scale; defaults to Dh^-0.5. */
  scale?: number;
}

interface Dims {
  b: number;
  h: number;
  bh: number;
  tq: number;
  tk: number;
  /** The head dim of the tensors. */
  dh: number;
  /** The head dim the kernels see: dh rounded up to a multiple of 4. */
  dp: number;
  scale: number;
}

/**
 * Streamed rows per tile: the largest power of two (token counts usually are powers of two, so tiles divide
 * them) up to 64 whose two vec4 tiles plus two f32 arrays fit the device's workgroup memory; in the
 * one-tile-per-dispatch form also BT·Dh/4 ≤ 640, which bounds the size of the fully unrolled shader
 * (llvmpipe's compile time grows faster than linearly with it).
 */
function tileRowsFor(dp: number, loop: boolean): number {
  if (tiles.tileRows > 0) return tiles.tileRows;
  const nd4 = dp / 4;
  const limit = rt().adapter.limits.maxComputeWorkgroupStorageSize ?? 16384;
  let bt = MAX_BT;
  while (bt > 4 && (bt * (2 * nd4 * 16 + 8) > limit || (!loop && bt * nd4 > 640))) bt /= 2;
  return bt;
}

function loopMode(): boolean {
  if (tiles.mode !== "auto") return tiles.mode === "loop";
  const a = rt().adapter;
  return !(a.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(a.description));
}

/** Rows per invocation, lowered so that RQ·Dh/4 fits the kernels' register arrays. */
function rqFor(rq: number, dp: number): number {
  return Math.max(1, Math.min(rq, Math.floor(MAX_RQD4 / (dp / 4))));
}

/**
 * Dispatches one of the tiled kernels: over `rows` own rows in blocks of WG·RQ, streaming `streamed`
 * rows, all in one dispatch or one dispatch per tile.
 */
function dispatchTiled(
  entry: string,
  label: string,
  d: Dims,
  wg: number,
  rqWanted: number,
  rows: number,
  streamed: number,
  inputs: Record<string, Tensor>,
  outputs: Record<string, Tensor>,
): void {
  const loop = loopMode();
  const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));
  // Defaults shrink for short sequences (e.g. cross-attention over 2 condition tokens): no tile longer
  // than the streamed rows, no workgroup much wider than the own rows (at least a SIMD group / warp).
  const bt = tiles.tileRows || Math.min(tileRowsFor(d.dp, loop), pow2(Math.max(4, streamed)));
  const rq = rqFor(rqWanted || (loop ? 1 : 2), d.dp);
  wg ||= Math.min(loop ? 64 : 128, Math.max(loop ? 32 : 8, pow2(Math.ceil(rows / rq))));
  const nrb = Math.ceil(rows / (wg * rq));
  const constants = { WG: wg, RQ: rq, BT: bt, ND4: d.dp / 4, LOOP: loop ? 1 : 0 };
  const steps = loop ? [0] : Array.from({ length: Math.ceil(streamed / bt) }, (_, i) => i * bt);
  for (const t0 of steps) {
    const t1 = loop ? streamed : Math.min(streamed, t0 + bt);
    launch(K, entry, {
      constants,
      params: { bh: d.bh, tq: d.tq, tk: d.tk, nrb, scale: d.scale, scale2: d.scale * Math.LOG2E, t0, t1 },
      inputs,
      outputs,
      workgroups: grid1d(
        d.bh * nrb,
        1,
        tiles.gridX || rt().adapter.limits.maxComputeWorkgroupsPerDimension,
      ),
      label,
    });
  }
}

function checkAttentionShapes(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Dims {
  const op = "attention";
  assertF32(op, q);
  assertF32(op, k);
  assertF32(op, v);
  const all = `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`;
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new ShapeError(op, `expects q [B, H, Tq, Dh] and k, v [B, H, Tk, Dh], got ${all}`);
  }
  const [b, h, tq, dh] = q.shape;
  const [kb, kh, tk, kd] = k.shape;
  if (kb !== b || kh !== h || kd !== dh) {
    throw new ShapeError(op, `q ${fmtShape(q.shape)} and k ${fmtShape(k.shape)} differ in B, H or Dh`);
  }
  if (v.shape.some((x, i) => x !== k.shape[i])) {
    throw new ShapeError(op, `k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} differ`);
  }
  if (dh < 1 || dh > ATTENTION_MAX_HEAD_DIM) {
    throw new ShapeError(op, `head dim ${dh} is outside 1..${ATTENTION_MAX_HEAD_DIM} (${all})`);
  }
  if (tk < 1) throw new ShapeError(op, `needs at least one key, got ${all}`);
  const scale = opts.scale ?? Math.pow(dh, -0.5);
  if (!Number.isFinite(scale)) throw new Error(`attention: scale must be finite, got ${scale}`);
  return { b, h, bh: b * h, tq, tk, dh, dp: Math.ceil(dh / 4) * 4, scale };
}

/** x [..., cin] → [..., cout], cut or zero-padded. */
function padCols(x: Tensor, cout: number, label: string): Tensor {
  const cin = x.shape[x.ndim - 1];
  const shape = [...x.shape.slice(0, -1), cout];
  const n = numel(shape);
  return launch(K, "pad_cols", {
    constants: { PWG: 256 },
    params: { n, cin, cout },
    inputs: { pin: x },
    outputs: { pout: shape },
    workgroups: grid(n, 256),
    label,
  }).pout;
}

/** The forward on head-dim-padded tensors: out (padded) and lse. */
function forwardRaw(q: Tensor, k: Tensor, v: Tensor, d: Dims): { out: Tensor; lse: Tensor } {
  const out = empty([d.b, d.h, d.tq, d.dp]);
  const lse = empty([d.b, d.h, d.tq], "f32", "attention lse");
  if (d.bh * d.tq === 0) return { out, lse };
  const ml = empty([d.bh * d.tq * 2], "f32", "attention running max and sum");
  dispatchTiled("attn_fwd", "attention", d, tiles.fwdWG, tiles.fwdRQ, d.tq, d.tk, { fq: q, fk: k, fv: v }, {
    fo: out,
    flse: lse,
    fml: ml,
  });
  ml.dispose();
  debugCheck(lse, "attention (lse)");
  return { out: debugCheck(out, "attention"), lse };
}

/** The backward on head-dim-padded tensors. */
function backwardRaw(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  g: Tensor,
  d: Dims,
  need: [boolean, boolean, boolean],
): [Tensor | null, Tensor | null, Tensor | null] {
  const delta = empty(lse.shape, "f32", "attention delta");
  const rows = d.bh * d.tq;
  if (rows > 0) {
    launch(K, "attn_bwd_delta", {
      constants: { WG: 256 },
      params: { rows, nd4: d.dp / 4 },
      inputs: { dgo: g, dout: out },
      outputs: { ddelta: delta },
      workgroups: grid(rows, 256),
      label: "attention backward (delta)",
    });
  }
  let dq: Tensor | null = null;
  let dk: Tensor | null = null;
  let dv: Tensor | null = null;
  if (need[0]) {
    dq = empty(q.shape);
    if (rows > 0) {
      dispatchTiled(
        "attn_bwd_dq",
        "attention backward (dq)",
        d,
        tiles.dqWG,
        tiles.dqRQ,
        d.tq,
        d.tk,
        { qq: q, qk: k, qv: v, qgo: g, qlse: lse, qdelta: delta },
        { qdq: dq },
      );
    }
    debugCheck(dq, "attention backward (dq)");
  }
  if (need[1] || need[2]) {
    dk = empty(k.shape);
    dv = empty(v.shape);
    if (rows > 0) {
      dispatchTiled(
        "attn_bwd_dkdv",
        "attention backward (dk, dv)",
        d,
        tiles.dkdvWG,
        tiles.dkdvRQ,
        d.tk,
        d.tq,
        { kq: q, kk: k, kv: v, kgo: g, klse: lse, kdelta: delta },
        { kdk: dk, kdv: dv },
      );
    } else {
      rt().clear(dk.buffer, 0, Math.max(4, dk.bytes));
      rt().clear(dv.buffer, 0, Math.max(4, dv.bytes));
    }
    debugCheck(dk, "attention backward (dk)");
    debugCheck(dv, "attention backward (dv)");
  }
  delta.dispose();
  if (!need[1]) dk?.dispose();
  if (!need[2]) dv?.dispose();
  return [dq, need[1] ? dk : null, need[2] ? dv : null];
}

/**
 * Multi-head scaled dot-product attention: softmax(scale·q·kᵀ, over keys)·v.
 *
 * q is [B, H, Tq, Dh]; k and v are [B, H, Tk, Dh] (Tk may differ from Tq, e.g. cross-attention over a
 * short condition sequence); the result is [B, H, Tq, Dh]. `scale` defaults to Dh^-0.5. Head dims up to
 * {@link ATTENTION_MAX_HEAD_DIM} (fastest when a multiple of 4; others are zero-padded internally).
 * Differentiable in q, k and v. When recorded, the saved tensors (the [B, H, Tq] logsumexp, and the
 * padded copies for head dims that are not a multiple of 4) belong to the enclosing tidy scope, like the
 * op's inputs and output.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const d = checkAttentionShapes(q, k, v, opts);
  const padded = d.dp !== d.dh;
  const [qp, kp, vp] = padded
    ? [q, k, v].map((x) => padCols(x, d.dp, "attention (pad head dim)"))
    : [q, k, v];
  const { out: outp, lse } = forwardRaw(qp, kp, vp, d);
  const out = padded ? padCols(outp, d.dh, "attention (unpad head dim)") : outp;
  const recorded = record(out, "attention", [q, k, v], (g) => {
    const need: [boolean, boolean, boolean] = [q.requiresGrad, k.requiresGrad, v.requiresGrad];
    if (!padded) return backwardRaw(q, k, v, out, lse, g, d, need);
    const gp = padCols(g, d.dp, "attention backward (pad head dim)");
    const grads = backwardRaw(qp, kp, vp, outp, lse, gp, d, need).map((t) => {
      if (!t) return null;
      const u = padCols(t, d.dh, "attention backward (unpad head dim)");
      t.dispose();
      return u;
    });
    gp.dispose();
    return grads;
  });
  if (!recorded.node) {
    lse.dispose();
    if (padded) { for (const t of [qp, kp, vp, outp]) t.dispose(); }
  }
  return recorded;
}

/**
 * The forward only, also returning the saved per-row logsumexp (natural log of Σⱼ exp(scale·qᵢ·kⱼ)),
 * [B, H, Tq]. Not recorded on the tape; the caller owns both tensors.
 */
export function attentionForward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): { out: Tensor; lse: Tensor } {
  const d = checkAttentionShapes(q, k, v, opts);
  if (d.dp === d.dh) return forwardRaw(q, k, v, d);
  const [qp, kp, vp] = [q, k, v].map((x) => padCols(x, d.dp, "attention (pad head dim)"));
  const { out: outp, lse } = forwardRaw(qp, kp, vp, d);
  const out = padCols(outp, d.dh, "attention (unpad head dim)");
  for (const t of [qp, kp, vp, outp]) t.dispose();
  return { out, lse };
}

// ---- head split / merge ---------------------------------------------------------------------------------

/**
 * Dispatches a head permute (`split_qkv`, `join_qkv`, `heads_merge`, `heads_split` in attention.wgsl): one
 * invocation per (b, h, t) on a [T, H, B] grid, vec4 entry points when Dh % 4 == 0 (their bindings are named
 * with a `4` appended).
 */
function headDispatch(
  entry: string,
  inputs: Record<string, Tensor>,
  outputs: Record<string, Tensor>,
  [b, t, h, dh]: number[],
  op: string,
): void {
  const v4 = dh % 4 === 0;
  const maxZ = rt().adapter.limits.maxComputeWorkgroupsPerDimension;
  // Workgroups of the tokens' power of two, from one 8-lane SIMD group (llvmpipe) to 64: DiT-L/4's 4
  // tokens in 64-lane groups left 60 lanes idle (a merge of its heads: 0.27 → 0.15 ms).
  const hwg = Math.min(64, Math.max(8, 2 ** Math.ceil(Math.log2(t))));
  for (let z0 = 0; z0 < b; z0 += maxZ) {
    launch(K, entry, {
      vec4: v4,
      constants: { HWG: hwg },
      params: { t, h, dh: v4 ? dh / 4 : dh, z0 },
      inputs,
      outputs,
      workgroups: [Math.ceil(t / hwg), h, Math.min(maxZ, b - z0)],
      label: op,
    });
  }
}

/** src [B, H, T, Dh] → [B, T, H·Dh]. */
function mergeRaw(src: Tensor, op: string): Tensor {
  const [b, h, t, dh] = src.shape;
  const out = empty([b, t, h * dh]);
  headDispatch("heads_merge", { msrc: src }, { mout: out }, [b, t, h, dh], op);
  return debugCheck(out, op);
}

/** src [B, T, H·Dh] → [B, H, T, Dh]. */
function splitRaw(src: Tensor, h: number, op: string): Tensor {
  const [b, t, w] = src.shape;
  const dh = w / h;
  const out = empty([b, h, t, dh]);
  headDispatch("heads_split", { hsrc: src }, { hout: out }, [b, t, h, dh], op);
  return debugCheck(out, op);
}

/**
 * Splits a fused qkv projection [B, T, 3·D] into q, k, v, each [B, H, T, D/H], in the layout of the
 * official DiT: `qkv.reshape(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)`. Differentiable: the three outputs'
 * gradients are joined into one [B, T, 3·D] gradient by one dispatch (`join_qkv`).
 */
export function splitHeads(qkv: Tensor, heads: number): { q: Tensor; k: Tensor; v: Tensor } {
  const op = "splitHeads";
  assertF32(op, qkv);
  if (!Number.isInteger(heads) || heads < 1) throw new ShapeError(op, `heads must be ≥ 1, got ${heads}`);
  if (qkv.ndim !== 3 || qkv.shape[2] % (3 * heads) !== 0) {
    throw new ShapeError(
      op,
      `expects qkv [B, T, 3·D] with D divisible by ${heads} heads, got ${fmtShape(qkv.shape)}`,
    );
  }
  const [b, t, w] = qkv.shape;
  const dh = w / (3 * heads);
  const shape = [b, heads, t, dh];
  const q = empty(shape);
  const k = empty(shape);
  const v = empty(shape);
  headDispatch("split_qkv", { sqkv: qkv }, { sq: q, sk: k, sv: v }, [b, t, heads, dh], op);
  for (const x of [q, k, v]) debugCheck(x, op);
  if (!needsGrad(qkv)) return { q, k, v };
  // The backward joins the three gradients in one dispatch once all are in (zeros for one without): each
  // output's backward keeps a view of its gradient and hands a collector, reached after all three, a
  // dummy one-element gradient (the pattern of layout.ts's split).
  const got: (Tensor | null)[] = [null, null, null];
  const collector = empty([1], "f32", `splitHeads of ${qkv.name}`);
  collector.requiresGrad = true;
  collector.node = {
    op,
    inputs: [qkv],
    ignoresGrad: true,
    backward: () => {
      const [gq, gk, gv] = got.map((g) => g ?? zeros(shape));
      const out = empty(qkv.shape);
      headDispatch(
        "join_qkv",
        { jq: gq, jk: gk, jv: gv },
        { jqkv: out },
        [b, t, heads, dh],
        `${op} backward`,
      );
      for (const g of [gq, gk, gv]) g.dispose();
      got.fill(null);
      return [debugCheck(out, `${op} backward`)];
    },
  };
  const outs = [q, k, v].map((x, slot) =>
    record(x, op, [collector], (g) => {
      got[slot]?.dispose();
      got[slot] = g.view(g.shape); // shares g's buffer: alive after backward disposes g
      return [zeros([1])];
    })
  );
  return { q: outs[0], k: outs[1], v: outs[2] };
}

/** Merges heads: o [B, H, T, Dh] → [B, T, H·Dh] (the inverse of one {@link splitHeads} output). */
export function mergeHeads(o: Tensor): Tensor {
  const op = "mergeHeads";
  assertF32(op, o);
  if (o.ndim !== 4) throw new ShapeError(op, `expects [B, H, T, Dh], got ${fmtShape(o.shape)}`);
  const out = mergeRaw(o, op);
  const h = o.shape[1];
  return record(out, op, [o], (g) => [splitRaw(g, h, `${op} backward`)]);
}
