/**
 * Optimisers on GPU tensors: {@link AdamW} exactly as `torch.optim.AdamW` (single-tensor path), the
 * {@link EMA} of DiT's `update_ema`, and gradient helpers ({@link zeroGrad}, {@link clipGradNorm}).
 * Parameters are updated in place (their buffers keep their identity, so views of them see the update).
 * Kernels: `kernels/optim.wgsl`.
 * @module
 */

import { wgsl } from "../gpu/runtime.ts";
import { empty, fmtShape, ShapeError, type Tensor, tensor, zeros } from "./tensor.ts";
import { assertF32, grid, rt, sameShape, WG } from "./ops/util.ts";
import { launch } from "./launch.ts";

const K = wgsl(new URL("../../kernels/optim.wgsl", import.meta.url));

/**
 * Elements per invocation of the norm reduction (a workgroup sums WG · NORM_PER): large enough that the
 * tree reduction and its barriers are rare (llvmpipe: 4.2M elements in 28 ms at 64 vs 248 ms at 4).
 */
const NORM_PER = 64;

function checkPair(op: string, a: Tensor, b: Tensor): void {
  assertF32(op, a);
  assertF32(op, b);
  if (!sameShape(a.shape, b.shape)) {
    throw new ShapeError(op, `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`);
  }
}

/** Options of {@link AdamW}; the defaults are torch's except weight decay (0, as DiT trains). */
export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** (β1, β2) (default (0.9, 0.999)). */
  betas?: [number, number];
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0; torch's default is 0.01). */
  weightDecay?: number;
}

/** AdamW's per-parameter state, in parameter order, for checkpoints. */
export interface AdamWState {
  /** Steps taken by each parameter (a parameter without a gradient at a step is skipped, as in torch). */
  steps: number[];
  /** First moments (`exp_avg`). */
  m: Tensor[];
  /** Second moments (`exp_avg_sq`). */
  v: Tensor[];
}

/** AdamW's state read back to the host (see {@link AdamW.toHost}). */
export interface AdamWHostState {
  /**
   * The step count, for checkpoints that keep one for all parameters (the largest per-parameter count;
   * equal to every count when each parameter had a gradient at every step). Used by
   * {@link AdamW.loadState} when `steps` is absent.
   */
  step: number;
  /** Steps per parameter (exact even when some parameters skipped steps). */
  steps?: number[];
  /** First moments, flat. */
  m: Float32Array[];
  /** Second moments, flat. */
  v: Float32Array[];
}

/** A tensor's data on the host. */
export interface HostData {
  shape: number[];
  data: Float32Array;
}

/**
 * AdamW as `torch.optim.AdamW(params, lr, betas, eps, weight_decay)` with `foreach=False`: one fused
 * kernel per parameter that has a gradient; the bias corrections are computed in float64 on the host and
 * passed rounded to f32 as torch's scalar arguments are, and the per-element arithmetic follows torch's
 * order (see `kernels/optim.wgsl`), so results agree with torch to float32 rounding.
 */
export class AdamW {
  /** Learning rate; may be changed between steps. */
  lr: number;
  /** β1. */
  beta1: number;
  /** β2. */
  beta2: number;
  /** ε. */
  eps: number;
  /** Decoupled weight decay. */
  weightDecay: number;
  /** The parameters, in the order of the state. */
  readonly params: readonly Tensor[];
  #steps: number[];
  #m: Tensor[];
  #v: Tensor[];

  constructor(params: Tensor[], opts: AdamWOptions = {}) {
    this.params = [...params];
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    for (const p of params) assertF32("AdamW", p);
    this.#steps = params.map(() => 0);
    this.#m = params.map((p) => zeros(p.shape, "f32", `${p.name}.exp_avg`).keep());
    this.#v = params.map((p) => zeros(p.shape, "f32", `${p.name}.exp_avg_sq`).keep());
  }

  /**
   * One step for every parameter whose `.grad` is set. Parameters below {@link MULTI_TENSOR_MAX} elements
   * that share a step count are updated by one dispatch over flat copies (see {@link gatherUpdate}); the
   * per-element arithmetic is the same kernel's, so the results are bit-identical to one dispatch each.
   */
  step(): void {
    const f = Math.fround;
    const groups = new Map<number, number[]>();
    const coeffs = (t: number, n: number) => {
      const bc1 = 1 - this.beta1 ** t;
      const bc2 = 1 - this.beta2 ** t;
      return {
        n,
        decay: f(1 - this.lr * this.weightDecay),
        b1: f(this.beta1),
        omb1: f(1 - this.beta1),
        b2: f(this.beta2),
        omb2: f(1 - this.beta2),
        bc2_sqrt: f(Math.sqrt(bc2)),
        eps: f(this.eps),
        neg_step: f(-this.lr / bc1),
      };
    };
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i];
      const g = p.grad;
      if (!g) continue;
      checkPair("AdamW.step", p, g);
      const t = ++this.#steps[i];
      if (p.size <= MULTI_TENSOR_MAX) {
        const grp = groups.get(t) ?? [];
        grp.push(i);
        groups.set(t, grp);
        continue;
      }
      adamwLaunch(coeffs(t, p.size), p, g, this.#m[i], this.#v[i], `AdamW ${p.name}`);
    }
    for (const [t, idx] of groups) {
      gatherUpdate(
        idx.map((i) => [this.params[i], this.params[i].grad!, this.#m[i], this.#v[i]]),
        [true, false, true, true],
        (n, [fp, fg, fm, fv]) => adamwLaunch(coeffs(t, n), fp, fg, fm, fv, `AdamW ${idx.length} tensors`),
      );
    }
  }

  /** Disposes every parameter's gradient (see {@link zeroGrad}). */
  zeroGrad(): void {
    zeroGrad(this.params);
  }

  /** The live state (the moment tensors are the optimiser's own: read or copy them, do not dispose). */
  state(): AdamWState {
    return { steps: [...this.#steps], m: [...this.#m], v: [...this.#v] };
  }

  /** The state read back to the host, for checkpoint files. */
  async toHost(): Promise<AdamWHostState> {
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (let i = 0; i < this.params.length; i++) {
      m.push(await this.#m[i].data());
      v.push(await this.#v[i].data());
    }
    return { step: Math.max(0, ...this.#steps), steps: [...this.#steps], m, v };
  }

  /**
   * Loads a state saved with {@link state} (tensors) or {@link toHost} (host arrays; one `step` for all
   * parameters unless `steps` is given). The data is copied.
   */
  loadState(s: AdamWState | AdamWHostState): void {
    const n = this.params.length;
    const steps = s.steps ?? new Array(n).fill((s as AdamWHostState).step);
    if (steps.length !== n || s.m.length !== n || s.v.length !== n) {
      throw new ShapeError(
        "AdamW.loadState",
        `state for ${steps.length}/${s.m.length}/${s.v.length} parameters, optimiser has ${n}`,
      );
    }
    for (let i = 0; i < n; i++) {
      for (const [mine, theirs] of [[this.#m[i], s.m[i]], [this.#v[i], s.v[i]]] as const) {
        if (theirs instanceof Float32Array) {
          if (theirs.length !== mine.size) {
            throw new ShapeError(
              "AdamW.loadState",
              `${theirs.length} values for ${mine.name} of shape ${fmtShape(mine.shape)}`,
            );
          }
        } else checkPair("AdamW.loadState", mine, theirs);
      }
      if (!Number.isInteger(steps[i]) || steps[i] < 0) {
        throw new Error(`AdamW.loadState: bad step count ${steps[i]}`);
      }
    }
    for (let i = 0; i < n; i++) {
      this.#steps[i] = steps[i];
      setFrom(this.#m[i], s.m[i]);
      setFrom(this.#v[i], s.v[i]);
    }
  }

  /** Releases the moment tensors. */
  dispose(): void {
    for (const t of [...this.#m, ...this.#v]) t.dispose();
  }
}

function copyInto(dst: Tensor, src: Tensor): void {
  rt().copy(src.buffer, 0, dst.buffer, 0, dst.bytes);
}

function setFrom(dst: Tensor, src: Tensor | Float32Array): void {
  if (src instanceof Float32Array) rt().upload(dst.buffer, src);
  else copyInto(dst, src);
}

/**
 * Tensors of at most this many elements are updated together (AdamW, EMA): one dispatch over flat copies
 * instead of one each. On llvmpipe a dispatch costs far more than copying a small tensor (every dispatch
 * wakes and joins the worker threads), and on a shared machine much more again; large tensors keep their
 * own dispatch (copying them would cost more than it saves).
 */
export let MULTI_TENSOR_MAX = 1 << 16;

/** Sets {@link MULTI_TENSOR_MAX} (0: one dispatch per tensor) and returns the previous value; for benchmarks. */
export function setMultiTensorMax(n: number): number {
  const prev = MULTI_TENSOR_MAX;
  MULTI_TENSOR_MAX = n;
  return prev;
}

/**
 * Runs one elementwise in-place update over several groups of same-shaped tensors at once: each column j
 * of `groups` (e.g. parameter, gradient, m, v) is copied into one flat buffer (tensor by tensor,
 * back to back), `run` dispatches once over the flat buffers, and the columns with `writeBack[j]` are
 * copied back. Copies are recorded in order with the dispatches, so the result equals one dispatch per row.
 */
export function gatherUpdate(
  groups: Tensor[][],
  writeBack: boolean[],
  run: (n: number, flat: Tensor[]) => void,
): void {
  if (groups.length === 0) return;
  const n = groups.reduce((a, g) => a + g[0].size, 0);
  const cols = groups[0].length;
  const flat = Array.from({ length: cols }, (_, j) => empty([n], "f32", `multi-tensor flat ${j}`));
  const r = rt();
  let off = 0;
  for (const g of groups) {
    for (let j = 0; j < cols; j++) r.copy(g[j].buffer, 0, flat[j].buffer, off * 4, g[j].bytes);
    off += g[0].size;
  }
  run(n, flat);
  off = 0;
  for (const g of groups) {
    for (let j = 0; j < cols; j++) {
      if (writeBack[j]) r.copy(flat[j].buffer, off * 4, g[j].buffer, 0, g[j].bytes);
    }
    off += g[0].size;
  }
  for (const t of flat) t.dispose();
}

/** `ema ← ema·decay + (1 − decay)·p` in place, as `ema.mul_(decay).add_(p, alpha=1 - decay)`. */
export function emaUpdate(ema: Tensor, p: Tensor, decay: number): void {
  checkPair("emaUpdate", ema, p);
  emaLaunch(ema.size, ema, p, decay, `EMA ${ema.name}`);
}

/**
 * The AdamW kernel over the first `c.n` elements of p, g, m, v: its vec4 form when `c.n` is a multiple of
 * 4 (the same arithmetic per element, about twice as fast on llvmpipe), else the f32 one.
 */
function adamwLaunch(
  c: Record<string, number> & { n: number },
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  label: string,
): void {
  const vec4 = c.n % 4 === 0;
  launch(K, "adamw", {
    vec4,
    params: c,
    inputs: { a_g: g },
    outputs: { a_p: p, a_m: m, a_v: v },
    workgroups: grid(vec4 ? c.n / 4 : c.n),
    label,
  });
}

/** The EMA kernel over the first `n` elements of e and p (vec4 when `n` is a multiple of 4, as AdamW). */
function emaLaunch(n: number, e: Tensor, p: Tensor, decay: number, label: string): void {
  const vec4 = n % 4 === 0;
  launch(K, "ema", {
    vec4,
    params: { n, decay, alpha: 1 - decay },
    inputs: { e_p: p },
    outputs: { e_e: e },
    workgroups: grid(vec4 ? n / 4 : n),
    label,
  });
}

/**
 * An exponential moving average of parameters, as DiT keeps it: it starts as a copy of the parameters
 * and {@link update} applies `update_ema` (`ema.mul_(decay).add_(p, alpha=1 - decay)`).
 */
export class EMA {
  /** The averaged tensors, in parameter order. */
  readonly shadow: Tensor[];
  /** The default decay of {@link update}. */
  decay: number;

  constructor(params: Tensor[], decay = 0.9999) {
    this.decay = decay;
    this.shadow = params.map((p) => {
      assertF32("EMA", p);
      return empty(p.shape, "f32", `ema.${p.name}`).keep();
    });
    this.copyFrom(params);
  }

  /** An EMA that starts as a copy of `params` (the same as the constructor). */
  static copyOf(params: Tensor[], decay = 0.9999): EMA {
    return new EMA(params, decay);
  }

  /** An EMA restored from host data (e.g. a checkpoint), in parameter order. */
  static fromHost(data: readonly HostData[], decay = 0.9999): EMA {
    const ts = data.map((h, i) => tensor(h.data, h.shape, "f32", `ema.${i}`));
    const ema = new EMA(ts, decay);
    for (const t of ts) t.dispose();
    return ema;
  }

  /** The averaged tensors read back to the host, by name (`names` in parameter order). */
  async toHost(
    names: readonly string[],
    shapes?: readonly (readonly number[])[],
  ): Promise<Map<string, HostData>> {
    if (names.length !== this.shadow.length) {
      throw new ShapeError("EMA.toHost", `${names.length} names for an EMA of ${this.shadow.length}`);
    }
    const out = new Map<string, HostData>();
    for (let i = 0; i < names.length; i++) {
      const t = this.shadow[i];
      const want = shapes?.[i];
      if (want && (want.length !== t.ndim || want.some((d, k) => d !== t.shape[k]))) {
        throw new ShapeError("EMA.toHost", `${names[i]}: shape ${fmtShape(want)} vs ${fmtShape(t.shape)}`);
      }
      out.set(names[i], { shape: [...t.shape], data: await t.data() });
    }
    return out;
  }

  #check(op: string, params: readonly Tensor[]): void {
    if (params.length !== this.shadow.length) {
      throw new ShapeError(op, `${params.length} parameters for an EMA of ${this.shadow.length}`);
    }
    for (let i = 0; i < params.length; i++) checkPair(op, this.shadow[i], params[i]);
  }

  /**
   * One EMA step towards `params`. Tensors below {@link MULTI_TENSOR_MAX} elements are updated by one
   * dispatch over flat copies (bit-identical to one dispatch each).
   */
  update(params: readonly Tensor[], decay = this.decay): void {
    this.#check("EMA.update", params);
    const small: Tensor[][] = [];
    for (let i = 0; i < params.length; i++) {
      if (params[i].size <= MULTI_TENSOR_MAX) small.push([this.shadow[i], params[i]]);
      else emaUpdate(this.shadow[i], params[i], decay);
    }
    if (small.length === 1) emaUpdate(small[0][0], small[0][1], decay);
    else {
      gatherUpdate(
        small,
        [true, false],
        (n, [e, p]) => emaLaunch(n, e, p, decay, `EMA ${small.length} tensors`),
      );
    }
  }

  /** Sets the average to a copy of `params`. */
  copyFrom(params: readonly Tensor[]): void {
    this.#check("EMA.copyFrom", params);
    for (let i = 0; i < params.length; i++) copyInto(this.shadow[i], params[i]);
  }

  /** Releases the averaged tensors. */
  dispose(): void {
    for (const t of this.shadow) t.dispose();
  }
}

/** Disposes the `.grad` of every tensor and sets it to null (the next backward starts from zero). */
export function zeroGrad(params: readonly Tensor[]): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}

function normOf(grads: Tensor[], maxNorm: number): Tensor {
  const chunk = WG * NORM_PER;
  const counts = grads.map((g) => Math.ceil(g.size / chunk));
  const total = counts.reduce((a, b) => a + b, 0);
  const partials = empty([Math.max(1, total)], "f32", "grad norm partials");
  if (total === 0) rt().clear(partials.buffer, 0, 4);
  let off = 0;
  for (let i = 0; i < grads.length; i++) {
    if (counts[i] === 0) continue;
    launch(K, "sumsq_partial", {
      constants: { WG, PER: NORM_PER },
      params: { n: grads[i].size, offset: off },
      inputs: { sq_x: grads[i] },
      outputs: { sq_part: partials },
      workgroups: grid(counts[i], 1),
      label: `grad norm of ${grads[i].name}`,
    });
    off += counts[i];
  }
  const out = empty([2], "f32", "grad norm");
  launch(K, "norm_final", {
    constants: { WG },
    params: { count: total, max_norm: maxNorm },
    inputs: { nf_part: partials },
    outputs: { nf_out: out },
    workgroups: [1],
    label: "grad norm",
  });
  partials.dispose();
  return out;
}

function gradsOf(op: string, params: readonly Tensor[]): Tensor[] {
  const gs: Tensor[] = [];
  for (const p of params) {
    if (!p.grad) continue;
    assertF32(op, p.grad);
    gs.push(p.grad);
  }
  return gs;
}

/**
 * The global L2 norm of the parameters' gradients (those without `.grad` are skipped), as a one-element
 * tensor (no read-back). Deterministic: per-workgroup tree reductions and a fixed-order final sum.
 */
export function gradNorm(params: readonly Tensor[]): Tensor {
  const both = normOf(gradsOf("gradNorm", params), Infinity);
  const out = empty([1], "f32", "grad norm");
  rt().copy(both.buffer, 0, out.buffer, 0, 4);
  both.dispose();
  return out;
}

/**
 * `torch.nn.utils.clip_grad_norm_(params, maxNorm)`: scales every gradient in place by
 * min(maxNorm / (norm + 1e-6), 1) and returns the total norm before clipping as a one-element tensor
 * (computed and applied on the GPU, no read-back).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): Tensor {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be positive, got ${maxNorm}`);
  const grads = gradsOf("clipGradNorm", params);
  const both = normOf(grads, maxNorm);
  for (const g of grads) {
    launch(K, "scale_by", {
      params: { n: g.size },
      inputs: { sc_coef: { buffer: both.buffer, offset: 0, size: 8 } },
      outputs: { sc_x: g },
      workgroups: grid(g.size),
      label: `clip ${g.name}`,
    });
  }
  const out = empty([1], "f32", "grad norm");
  rt().copy(both.buffer, 0, out.buffer, 0, 4);
  both.dispose();
  return out;
}
