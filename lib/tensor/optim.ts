/**
 * Optimisers on GPU tensors: {@link AdamW} exactly as `torch.optim.AdamW` (single-tensor path), the
 * {@link EMA} of DiT's `update_ema`, and gradient helpers ({@link zeroGrad}, {@link clipGradNorm}).
 * Parameters are updated in place (their buffers keep their identity, so views of them see the update).
 * The optimiser's moments and the EMA's average of the small tensors live in one flat buffer each
 * ({@link FlatLayout}), so that one dispatch updates them all. Kernels: `kernels/optim.wgsl`.
 * @module
 */

import { type BufferRef, wgsl } from "../gpu/runtime.ts";
import { empty, fmtShape, numel, type Shape, ShapeError, type Tensor, tensor, zeros } from "./tensor.ts";
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

/** AdamW's per-parameter state, in parameter order, for checkpoints ({@link AdamW.state}: copies). */
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
  #layout: FlatLayout;
  #m: ParamState;
  #v: ParamState;

  constructor(params: Tensor[], opts: AdamWOptions = {}) {
    this.params = [...params];
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    for (const p of params) assertF32("AdamW", p);
    this.#steps = params.map(() => 0);
    this.#layout = new FlatLayout(params);
    this.#m = ParamState.zeros(this.#layout, "exp_avg");
    this.#v = ParamState.zeros(this.#layout, "exp_avg_sq");
  }

  /**
   * One step for every parameter whose `.grad` is set. When every tensor of the flat layout has a gradient
   * and they share a step count (the usual step), they are updated by one dispatch: parameters and
   * gradients are copied into flat buffers laid out as the moments (see {@link FlatLayout}) and the
   * parameters back. Otherwise each runs its own dispatch on its slice of the moments. The per-element
   * arithmetic is the same kernel's either way, so the results are bit-identical.
   */
  step(): void {
    const f = Math.fround;
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
    const L = this.#layout;
    const flatSteps = new Set<number>();
    let flatWithGrad = 0;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i];
      if (!p.grad) continue;
      checkPair("AdamW.step", p, p.grad);
      const t = ++this.#steps[i];
      if (L.inFlat(i)) {
        flatSteps.add(t);
        flatWithGrad++;
      }
    }
    const together = flatWithGrad === L.members.length && flatSteps.size === 1 && L.members.length > 1;
    if (together) {
      const ps = L.members.map((i) => this.params[i]);
      const fp = L.gather(ps, "params");
      const fg = L.gather(ps.map((p) => p.grad!), "grads");
      const t = this.#steps[L.members[0]];
      adamwLaunch(coeffs(t, L.total), fp, fg, this.#m.flat!, this.#v.flat!, `AdamW ${ps.length} tensors`);
      L.scatter(fp, ps);
      fp.dispose();
      fg.dispose();
    }
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i];
      if (!p.grad || (together && L.inFlat(i))) continue;
      const c = coeffs(this.#steps[i], p.size);
      adamwLaunch(c, p, p.grad, this.#m.ref(i), this.#v.ref(i), `AdamW ${p.name}`);
    }
  }

  /** Disposes every parameter's gradient (see {@link zeroGrad}). */
  zeroGrad(): void {
    zeroGrad(this.params);
  }

  /** A copy of the state: new moment tensors, which the caller disposes. */
  state(): AdamWState {
    const n = this.params.length;
    const copies = (s: ParamState) => Array.from({ length: n }, (_, i) => s.copy(i));
    return { steps: [...this.#steps], m: copies(this.#m), v: copies(this.#v) };
  }

  /** The state read back to the host, for checkpoint files. */
  async toHost(): Promise<AdamWHostState> {
    return {
      step: Math.max(0, ...this.#steps),
      steps: [...this.#steps],
      m: await this.#m.toHost(),
      v: await this.#v.toHost(),
    };
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
      const p = this.params[i];
      for (const theirs of [s.m[i], s.v[i]]) {
        if (theirs instanceof Float32Array) {
          if (theirs.length !== p.size) {
            throw new ShapeError(
              "AdamW.loadState",
              `${theirs.length} values for the state of ${p.name} of shape ${fmtShape(p.shape)}`,
            );
          }
        } else checkPair("AdamW.loadState", p, theirs);
      }
      if (!Number.isInteger(steps[i]) || steps[i] < 0) {
        throw new Error(`AdamW.loadState: bad step count ${steps[i]}`);
      }
    }
    for (let i = 0; i < n; i++) {
      this.#steps[i] = steps[i];
      this.#m.set(i, s.m[i]);
      this.#v.set(i, s.v[i]);
    }
  }

  /** Releases the moment tensors. */
  dispose(): void {
    this.#m.dispose();
    this.#v.dispose();
  }
}

/**
 * Tensors of at most this many elements keep their state in one flat buffer and are updated together
 * (AdamW, EMA; {@link FlatLayout}): one dispatch over flat copies of the parameters (and gradients)
 * instead of one each. On llvmpipe a dispatch costs far more than copying a small tensor (every dispatch
 * wakes and joins the worker threads), and on a shared machine much more again; large tensors keep their
 * own dispatch (copying them would cost more than it saves). Read when an optimiser or EMA is created.
 */
export let MULTI_TENSOR_MAX = 1 << 16;

/** Sets {@link MULTI_TENSOR_MAX} (0: one dispatch per tensor) and returns the previous value; for benchmarks. */
export function setMultiTensorMax(n: number): number {
  const prev = MULTI_TENSOR_MAX;
  MULTI_TENSOR_MAX = n;
  return prev;
}

/** Elements per 256 bytes: WebGPU's storage-binding offset alignment, so a tensor's slot can be bound alone. */
const SLOT_ALIGN = 64;

/**
 * Where per-parameter state sits: the tensors of at most {@link MULTI_TENSOR_MAX} elements (the
 * `members`) back to back in one flat buffer of `total` elements, each at an offset that is a multiple of
 * 64 elements (256 bytes), so that one dispatch updates them all and one of them can be bound alone; the
 * larger tensors keep buffers of their own. The padding between slots is never read back.
 */
export class FlatLayout {
  /** Element offset of each tensor's slot in the flat buffer; -1 for tensors with their own buffer. */
  readonly offsets: number[];
  /** Indices of the tensors in the flat buffer, in order. */
  readonly members: number[];
  /** Length of the flat buffer (the last slot padded too). */
  readonly total: number;
  /** The tensors' shapes and names, in order. */
  readonly shapes: Shape[];
  /** The tensors' names, in order. */
  readonly names: string[];

  /** A layout for tensors of these shapes (`names` label their own buffers in errors). */
  constructor(tensors: readonly { shape: Shape; name: string }[]) {
    this.shapes = tensors.map((t) => [...t.shape]);
    this.names = tensors.map((t) => t.name);
    this.offsets = [];
    this.members = [];
    let off = 0;
    for (const shape of this.shapes) {
      const n = numel(shape);
      if (n > MULTI_TENSOR_MAX) {
        this.offsets.push(-1);
        continue;
      }
      this.offsets.push(off);
      this.members.push(this.offsets.length - 1);
      off += Math.ceil(Math.max(1, n) / SLOT_ALIGN) * SLOT_ALIGN;
    }
    this.total = off;
  }

  /** Whether tensor `i` sits in the flat buffer. */
  inFlat(i: number): boolean {
    return this.offsets[i] >= 0;
  }

  /** The members' tensors (in member order) copied into a new flat buffer of this layout. */
  gather(ts: readonly Tensor[], what: string): Tensor {
    const flat = empty([this.total], "f32", `flat ${what}`);
    const r = rt();
    this.members.forEach((i, k) => r.copy(ts[k].buffer, 0, flat.buffer, this.offsets[i] * 4, ts[k].bytes));
    return flat;
  }

  /** Copies each member's slot of `flat` back into its tensor (`ts` in member order). */
  scatter(flat: Tensor, ts: readonly Tensor[]): void {
    const r = rt();
    this.members.forEach((i, k) => r.copy(flat.buffer, this.offsets[i] * 4, ts[k].buffer, 0, ts[k].bytes));
  }
}

/**
 * One value per element of every tensor of a {@link FlatLayout} (AdamW's moments, the EMA's average):
 * the members' slots in one flat buffer, the others in buffers of their own.
 */
class ParamState {
  private constructor(
    readonly layout: FlatLayout,
    readonly flat: Tensor | null,
    readonly own: (Tensor | null)[],
  ) {}

  /** A state of this layout, zeroed (`what` names it in errors: `exp_avg`, `ema`). */
  static zeros(layout: FlatLayout, what: string): ParamState {
    const flat = layout.members.length ? zeros([layout.total], "f32", `flat ${what}`).keep() : null;
    const own = layout.shapes.map((s, i) =>
      layout.inFlat(i) ? null : zeros(s, "f32", `${layout.names[i]}.${what}`).keep()
    );
    return new ParamState(layout, flat, own);
  }

  /** Tensor `i`'s values, as a binding: its own buffer, or its slot of the flat buffer. */
  ref(i: number): Tensor | BufferRef {
    return this.own[i] ?? {
      buffer: this.flat!.buffer,
      offset: this.layout.offsets[i] * 4,
      size: Math.max(4, numel(this.layout.shapes[i]) * 4),
    };
  }

  /** The buffer and byte offset where tensor `i`'s values start. */
  #at(i: number): [GPUBuffer, number] {
    const own = this.own[i];
    return own ? [own.buffer, 0] : [this.flat!.buffer, this.layout.offsets[i] * 4];
  }

  /** Sets tensor `i`'s values (a tensor of its shape or host data of its size; checked by the caller). */
  set(i: number, src: Tensor | Float32Array): void {
    const [dst, off] = this.#at(i);
    if (src instanceof Float32Array) rt().upload(dst, src, off);
    else rt().copy(src.buffer, 0, dst, off, src.bytes);
  }

  /** A new tensor with tensor `i`'s values (the caller disposes it). */
  copy(i: number): Tensor {
    const out = empty(this.layout.shapes[i], "f32", this.own[i]?.name ?? `${this.layout.names[i]} state`);
    const [src, off] = this.#at(i);
    rt().copy(src, off, out.buffer, 0, out.bytes);
    return out;
  }

  /** Every tensor's values on the host, in order (the flat buffer read once). */
  async toHost(): Promise<Float32Array[]> {
    const flat = this.flat ? await this.flat.data() : null;
    const out: Float32Array[] = [];
    for (let i = 0; i < this.own.length; i++) {
      const own = this.own[i];
      if (own) out.push(await own.data());
      else {
        const o = this.layout.offsets[i];
        out.push(flat!.slice(o, o + numel(this.layout.shapes[i])));
      }
    }
    return out;
  }

  /** Releases the buffers. */
  dispose(): void {
    this.flat?.dispose();
    for (const t of this.own) t?.dispose();
  }
}

/**
 * The AdamW kernel over the first `c.n` elements of p, g, m, v: its vec4 form when `c.n` is a multiple of
 * 4 (the same arithmetic per element, about twice as fast on llvmpipe), else the f32 one.
 */
function adamwLaunch(
  c: Record<string, number> & { n: number },
  p: Tensor,
  g: Tensor,
  m: Tensor | BufferRef,
  v: Tensor | BufferRef,
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
function emaLaunch(n: number, e: Tensor | BufferRef, p: Tensor, decay: number, label: string): void {
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
 * and {@link update} applies `update_ema` (`ema.mul_(decay).add_(p, alpha=1 - decay)`). The averages of
 * the small tensors live in one flat buffer ({@link FlatLayout}).
 */
export class EMA {
  /** The default decay of {@link update}. */
  decay: number;
  #layout: FlatLayout;
  #avg: ParamState;

  constructor(params: Tensor[], decay = 0.9999) {
    this.decay = decay;
    for (const p of params) assertF32("EMA", p);
    this.#layout = new FlatLayout(params.map((p) => ({ shape: p.shape, name: `ema.${p.name}` })));
    this.#avg = ParamState.zeros(this.#layout, "ema");
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

  /** The number of averaged tensors. */
  get length(): number {
    return this.#layout.shapes.length;
  }

  /** The averaged tensors read back to the host, in parameter order. */
  data(): Promise<Float32Array[]> {
    return this.#avg.toHost();
  }

  /** The averaged tensors read back to the host, by name (`names` in parameter order). */
  async toHost(
    names: readonly string[],
    shapes?: readonly (readonly number[])[],
  ): Promise<Map<string, HostData>> {
    const mine = this.#layout.shapes;
    if (names.length !== mine.length) {
      throw new ShapeError("EMA.toHost", `${names.length} names for an EMA of ${mine.length}`);
    }
    for (let i = 0; i < names.length; i++) {
      const want = shapes?.[i];
      if (want && (want.length !== mine[i].length || want.some((d, k) => d !== mine[i][k]))) {
        throw new ShapeError("EMA.toHost", `${names[i]}: shape ${fmtShape(want)} vs ${fmtShape(mine[i])}`);
      }
    }
    const data = await this.#avg.toHost();
    return new Map(names.map((n, i) => [n, { shape: [...mine[i]], data: data[i] }]));
  }

  #check(op: string, params: readonly Tensor[]): void {
    const mine = this.#layout.shapes;
    if (params.length !== mine.length) {
      throw new ShapeError(op, `${params.length} parameters for an EMA of ${mine.length}`);
    }
    for (let i = 0; i < params.length; i++) {
      assertF32(op, params[i]);
      if (!sameShape(params[i].shape, mine[i])) {
        throw new ShapeError(op, `shapes ${fmtShape(mine[i])} and ${fmtShape(params[i].shape)} differ`);
      }
    }
  }

  /**
   * One EMA step towards `params`: the tensors of the flat layout by one dispatch over a flat copy of
   * them, the larger ones by one dispatch each (bit-identical to one dispatch per tensor).
   */
  update(params: readonly Tensor[], decay = this.decay): void {
    this.#check("EMA.update", params);
    const L = this.#layout;
    if (L.members.length > 1) {
      const fp = L.gather(L.members.map((i) => params[i]), "ema params");
      emaLaunch(L.total, this.#avg.flat!, fp, decay, `EMA ${L.members.length} tensors`);
      fp.dispose();
    }
    for (let i = 0; i < params.length; i++) {
      if (L.members.length > 1 && L.inFlat(i)) continue;
      emaLaunch(params[i].size, this.#avg.ref(i), params[i], decay, `EMA ${L.names[i]}`);
    }
  }

  /** Sets the average to a copy of `params`. */
  copyFrom(params: readonly Tensor[]): void {
    this.#check("EMA.copyFrom", params);
    for (let i = 0; i < params.length; i++) this.#avg.set(i, params[i]);
  }

  /** Releases the averaged tensors. */
  dispose(): void {
    this.#avg.dispose();
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
