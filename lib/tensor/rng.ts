/**
 * Counter-based random numbers: Philox-4x32-10, on the GPU (`kernels/rng.wgsl`) and on the CPU, bit for bit
 * the same stream.
 *
 * **The stream.** A {@link Generator} holds a 64-bit key (from the seed: key0 = low 32 bits, key1 = high 32
 * bits) and a 64-bit block offset. Philox block b is `philox4x32_10(counter = (b_lo, b_hi, 0, 0), key)`,
 * four 32-bit words x0..x3. A draw of n values starts at the generator's offset and uses whole blocks; the
 * offset then advances by the number of blocks used (the next draw starts at a fresh block), so the i-th
 * value of a draw depends only on (key, offset, i):
 * - `uniform`: 4 values a block, u = (x >> 8) · 2⁻²⁴, in [0, 1) on a grid of 2⁻²⁴.
 * - `normal`: 4 values a block: Box–Muller on (x0, x1) gives (r·cos θ, r·sin θ), on (x2, x3) the next
 *   two, with r = √(−2 ln u1), u1 = ((x0 >> 8) + 1) · 2⁻²⁴ ∈ (0, 1], θ = 2π·x1/2³². No rejection. It is
 *   computed in 32/64-bit fixed point (−ln u1 by a series in 1 − u1 when u1 > 1 − 2⁻⁵, else log2 by
 *   repeated squaring to 32 fraction bits; a digit-by-digit integer square root after normalising; Taylor
 *   sin/cos on [0, π/4] after an exact octant reduction, with sin θ kept relative to θ) and the f32 is
 *   assembled from its bits with round-to-nearest (ties up). No float operation is involved, so every
 *   adapter gives the same bits; they are within 0.54 ulp of the exact Box–Muller of the same words
 *   (measured on 4M values and the branch edges). |z| ≤ √(48 ln 2) ≈ 5.77: the 24-bit u1 cuts the tails
 *   beyond 5.77σ (probability 8e-9).
 * - `randint(bound)`: 2 values a block: floor(((x1·2³² + x0)·bound) / 2⁶⁴), then the same for (x2, x3)
 *   with x3 as the high word. 64 random bits per value and no rejection loop: every result in [0, bound)
 *   has probability within bound/2⁶⁴ ≤ 2⁻³² (relative) of 1/bound.
 * - `bernoulli(p)`: 4 values a block, 1 when (x >> 8) < round(p·2²⁴), i.e. probability round(p·2²⁴)/2²⁴.
 * @module
 */

import { wgsl } from "../gpu/runtime.ts";
import { empty, numel, type Shape, ShapeError, type Tensor } from "./tensor.ts";
import { grid } from "./ops/util.ts";
import { launch } from "./launch.ts";

const K = wgsl(new URL("../../kernels/rng.wgsl", import.meta.url));

const M0 = 0xD2511F53;
const M1 = 0xCD9E8D57;
const W0 = 0x9E3779B9;
const W1 = 0xBB67AE85;

/** High 32 bits of the 64-bit product of two u32 (16-bit halves, as the WGSL does it). */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

function mullo(a: number, b: number): number {
  return Math.imul(a, b) >>> 0;
}

/**
 * Philox-4x32 with `rounds` rounds (10 for Philox-4x32-10) of a 4-word counter under a 2-word key; writes
 * the 4 output words to `out` (default a new array).
 */
export function philox4x32(
  ctr: ArrayLike<number>,
  key: ArrayLike<number>,
  rounds = 10,
  out: Uint32Array = new Uint32Array(4),
): Uint32Array {
  let c0 = ctr[0] >>> 0, c1 = ctr[1] >>> 0, c2 = ctr[2] >>> 0, c3 = ctr[3] >>> 0;
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const h0 = mulhi(M0, c0), l0 = mullo(M0, c0);
    const h1 = mulhi(M1, c2), l1 = mullo(M1, c2);
    c0 = (h1 ^ c1 ^ k0) >>> 0;
    c1 = l1;
    c2 = (h0 ^ c3 ^ k1) >>> 0;
    c3 = l0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

// ---- the integer Box-Muller, a line-by-line port of kernels/rng.wgsl ------------------------------
// 64-bit values are (hi, lo) pairs of u32; to avoid allocations the 64-bit results of the helpers are
// returned in the module variables RH, RL.

const TWO_LN2_Q31 = 2977044472;
const PI_Q30 = 3373259426;
const ONE_Q31 = 0x80000000;

let RH = 0;
let RL = 0;

function mulq31(a: number, b: number): number {
  return ((mulhi(a, b) << 1) | (mullo(a, b) >>> 31)) >>> 0;
}

/** (RH, RL) = (h, l) << s for s in [0, 63]. */
function shl64(h: number, l: number, s: number): void {
  if (s === 0) {
    RH = h;
    RL = l;
  } else if (s < 32) {
    RH = ((h << s) | (l >>> (32 - s))) >>> 0;
    RL = (l << s) >>> 0;
  } else {
    RH = (l << (s - 32)) >>> 0;
    RL = 0;
  }
}

/** The low word of (h, l) >> s for s in [0, 63]. */
function shr64lo(h: number, l: number, s: number): number {
  if (s === 0) return l;
  if (s < 32) return ((l >>> s) | (h << (32 - s))) >>> 0;
  return h >>> (s - 32);
}

function clz64(h: number, l: number): number {
  return h !== 0 ? Math.clz32(h) : 32 + Math.clz32(l);
}

/** (RH, RL) = -2 ln(((w >> 8) + 1) / 2^24) in Q58. */
function neg2lnQ58(w: number): void {
  const d = 0xffffff - (w >>> 8);
  if (d < 0x80000) {
    const v = d << 7;
    let h = 306783378;
    h = (357913941 + mulq31(v, h)) >>> 0;
    h = (429496730 + mulq31(v, h)) >>> 0;
    h = (536870912 + mulq31(v, h)) >>> 0;
    h = (715827883 + mulq31(v, h)) >>> 0;
    h = (1073741824 + mulq31(v, h)) >>> 0;
    const sr = (ONE_Q31 + mulq31(v, h)) >>> 0;
    shl64(mulhi(d, sr), mullo(d, sr), 4);
    return;
  }
  const u = (w >>> 8) + 1;
  const e = 31 - Math.clz32(u);
  let x = (u << (31 - e)) >>> 0;
  let f = 0;
  for (let i = 0; i < 32; i++) {
    const hi = mulhi(x, x);
    f = (f << 1) >>> 0;
    if (hi >= 0x80000000) {
      f = (f | 1) >>> 0;
      x = hi;
    } else x = ((hi << 1) | (mullo(x, x) >>> 31)) >>> 0;
  }
  const ah = f !== 0 ? 23 - e : 24 - e;
  const al = (0 - f) >>> 0;
  const p1h = mulhi(al, TWO_LN2_Q31), p1l = mullo(al, TWO_LN2_Q31);
  const p2h = mulhi(ah, TWO_LN2_Q31), p2l = mullo(ah, TWO_LN2_Q31);
  const w1 = (p1h + p2l) >>> 0;
  const w2 = (p2h + (w1 < p1h ? 1 : 0)) >>> 0;
  RH = ((w2 << 27) | (w1 >>> 5)) >>> 0;
  RL = ((w1 << 27) | (p1l >>> 5)) >>> 0;
}

function isqrt64(nhIn: number, nlIn: number): number {
  let nh = nhIn, nl = nlIn, rh = 0, rl = 0, root = 0;
  for (let i = 0; i < 32; i++) {
    rh = ((rh << 2) | (rl >>> 30)) >>> 0;
    rl = ((rl << 2) | (nh >>> 30)) >>> 0;
    nh = ((nh << 2) | (nl >>> 30)) >>> 0;
    nl = (nl << 2) >>> 0;
    const th = root >>> 30;
    const tl = ((root << 2) | 1) >>> 0;
    root = (root << 1) >>> 0;
    if (rh > th || (rh === th && rl >= tl)) {
      const borrow = rl < tl ? 1 : 0;
      rl = (rl - tl) >>> 0;
      rh = (rh - th - borrow) >>> 0;
      root = (root | 1) >>> 0;
    }
  }
  return root;
}

/** f32 bits of (h, l)·2^-k, rounded to nearest (ties up), negated when neg = 1. */
function toF32Bits(h: number, l: number, k: number, neg: number): number {
  if (h === 0 && l === 0) return 0;
  const msb = 63 - clz64(h, l);
  const m25 = msb >= 24 ? shr64lo(h, l, msb - 24) : (l << (24 - msb)) >>> 0;
  let m = (m25 + 1) >>> 1;
  let e = msb;
  if (m === 0x1000000) {
    m = 0x800000;
    e += 1;
  }
  return (((e + 127 - k) << 23) | (m & 0x7fffff) | (neg << 31)) >>> 0;
}

/** Writes the f32 bits of the two Box–Muller normals of (w0, w1) to out[i], out[i + 1] (when < n). */
function boxMuller(w0: number, w1: number, out: Uint32Array, i: number, n: number): void {
  neg2lnQ58(w0);
  if (RH === 0 && RL === 0) {
    out[i] = 0;
    if (i + 1 < n) out[i + 1] = 0;
    return;
  }
  const s = clz64(RH, RL) >>> 1;
  shl64(RH, RL, 2 * s);
  const root = isqrt64(RH, RL);
  const rk = 29 + s;
  const q = w1 >>> 30;
  const f = w1 & 0x3fffffff;
  const swap = f > 0x20000000;
  const g = swap ? 0x40000000 - f : f;
  const th = ((mulhi(g, PI_Q30) << 2) | (mullo(g, PI_Q30) >>> 30)) >>> 0;
  const t = mulq31(th, th);
  let sp = ONE_Q31 - mulhi(t, 39045157);
  sp = ONE_Q31 - mulq31(mulhi(t, 59652324), sp);
  sp = ONE_Q31 - mulq31(mulhi(t, 102261126), sp);
  sp = ONE_Q31 - mulq31(mulhi(t, 214748365), sp);
  sp = ONE_Q31 - mulq31(mulhi(t, 715827883), sp);
  let c = ONE_Q31 - mulhi(t, 32537631);
  c = ONE_Q31 - mulq31(mulhi(t, 47721859), c);
  c = ONE_Q31 - mulq31(mulhi(t, 76695845), c);
  c = ONE_Q31 - mulq31(mulhi(t, 143165577), c);
  c = ONE_Q31 - mulq31(mulhi(t, 357913941), c);
  c = ONE_Q31 - mulq31(mulhi(t, 0x80000000), c);
  const kq = mulq31(PI_Q30, sp);
  const sgh = mulhi(g, kq), sgl = mullo(g, kq);
  let sm = sgl;
  let sk = 61;
  if (sgh !== 0) {
    const sh = 32 - Math.clz32(sgh);
    sm = shr64lo(sgh, sgl, sh);
    sk = 61 - sh;
  }
  const odd = (q & 1) === 1;
  const sinIsS = swap === odd;
  const sM = sinIsS ? sm : c, sK = sinIsS ? sk : 31;
  const cM = sinIsS ? c : sm, cK = sinIsS ? 31 : sk;
  const sNeg = q >= 2 ? 1 : 0;
  const cNeg = q === 1 || q === 2 ? 1 : 0;
  out[i] = toF32Bits(mulhi(root, cM), mullo(root, cM), rk + cK, cNeg);
  if (i + 1 < n) out[i + 1] = toF32Bits(mulhi(root, sM), mullo(root, sM), rk + sK, sNeg);
}

/**
 * The two standard normals that the stream derives from the word pair (w0, w1): (r·cos θ, r·sin θ) with
 * r = √(−2 ln(((w0 >> 8) + 1)/2²⁴)) and θ = 2π·w1/2³², computed as the GPU does. For tests and CPU use.
 */
export function normalPair(w0: number, w1: number): [number, number] {
  const b = new Uint32Array(2);
  boxMuller(w0 >>> 0, w1 >>> 0, b, 0, 2);
  const f = new Float32Array(b.buffer);
  return [f[0], f[1]];
}

function bounded(lo: number, hi: number, bound: number): number {
  const ah = mulhi(lo, bound);
  const bh = mulhi(hi, bound);
  const mid = (mullo(hi, bound) + ah) >>> 0;
  return (bh + (mid < ah ? 1 : 0)) >>> 0;
}

// ---- the generator ----------------------------------------------------------------------------------

const MODE = { uniform: 0, normal: 1, randint: 2, bernoulli: 3 } as const;
type Mode = keyof typeof MODE;

const U64 = (1n << 64n) - 1n;

/** A generator's position in its stream: JSON-serialisable, for checkpoints. */
export interface GeneratorState {
  /** Always `philox4x32-10`. */
  algorithm: "philox4x32-10";
  /** The Philox key, [low, high] 32-bit words of the seed. */
  key: [number, number];
  /** The next block, [low, high] 32-bit words. */
  offset: [number, number];
}

function checkU32Pair(what: string, v: unknown): [number, number] {
  if (
    !Array.isArray(v) || v.length !== 2 ||
    !v.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)
  ) {
    throw new Error(`Generator.setState: ${what} must be two u32 words, got ${JSON.stringify(v)}`);
  }
  return [v[0], v[1]];
}

/**
 * A Philox-4x32-10 random number generator with a GPU and a CPU path that draw from the same stream
 * (see the module documentation for its exact layout). GPU draws need the runtime (`await getRuntime()`).
 */
export class Generator {
  #key: [number, number];
  #offset: bigint;

  /** A generator for a seed in [0, 2⁶⁴) (a number must be a safe non-negative integer). */
  constructor(seed: bigint | number) {
    let s: bigint;
    if (typeof seed === "number") {
      if (!Number.isSafeInteger(seed) || seed < 0) {
        throw new Error(`Generator: seed must be a non-negative safe integer or a bigint, got ${seed}`);
      }
      s = BigInt(seed);
    } else s = seed;
    if (s < 0n || s > U64) throw new Error(`Generator: seed ${s} is outside [0, 2^64)`);
    this.#key = [Number(s & 0xffffffffn), Number(s >> 32n)];
    this.#offset = 0n;
  }

  /** A generator resumed from a saved state. */
  static fromState(state: GeneratorState): Generator {
    const g = new Generator(0);
    g.setState(state);
    return g;
  }

  /** The current position (a copy). */
  state(): GeneratorState {
    return {
      algorithm: "philox4x32-10",
      key: [...this.#key],
      offset: [Number(this.#offset & 0xffffffffn), Number(this.#offset >> 32n)],
    };
  }

  /** Restores a position saved with {@link state}; later draws continue that stream exactly. */
  setState(state: GeneratorState): void {
    if (state.algorithm !== "philox4x32-10") {
      throw new Error(`Generator.setState: unknown algorithm ${JSON.stringify(state.algorithm)}`);
    }
    this.#key = checkU32Pair("key", state.key);
    const [lo, hi] = checkU32Pair("offset", state.offset);
    this.#offset = (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** An independent copy at the same position. */
  clone(): Generator {
    return Generator.fromState(this.state());
  }

  /** Reserves the blocks for n values of a mode and returns the first block. */
  #take(mode: Mode, n: number): bigint {
    const per = mode === "randint" ? 2 : 4;
    const first = this.#offset;
    this.#offset = (this.#offset + BigInt(Math.ceil(n / per))) & U64;
    return first;
  }

  #gpu(op: string, mode: Mode, shape: Shape, arg: number): Tensor {
    const n = numel(shape);
    const first = this.#take(mode, n);
    const out = empty(shape, mode === "uniform" || mode === "normal" ? "f32" : "u32");
    const per = mode === "randint" ? 2 : 4;
    launch(K, "generate", {
      constants: { MODE: MODE[mode] },
      params: {
        n,
        key0: this.#key[0],
        key1: this.#key[1],
        off_lo: Number(first & 0xffffffffn),
        off_hi: Number(first >> 32n),
        arg,
      },
      outputs: { out },
      workgroups: grid(Math.ceil(n / per)),
      label: op,
    });
    return out;
  }

  #cpu(mode: Mode, n: number, arg: number): Uint32Array {
    if (!Number.isInteger(n) || n < 0) throw new ShapeError(`Generator.${mode}Cpu`, `bad count ${n}`);
    const first = this.#take(mode, n);
    let lo = Number(first & 0xffffffffn);
    let hi = Number(first >> 32n);
    const out = new Uint32Array(n);
    const outF = new Float32Array(out.buffer);
    const x = new Uint32Array(4);
    const ctr = [0, 0, 0, 0];
    const per = mode === "randint" ? 2 : 4;
    for (let i = 0; i < n; i += per) {
      ctr[0] = lo;
      ctr[1] = hi;
      lo = (lo + 1) >>> 0;
      if (lo === 0) hi = (hi + 1) >>> 0;
      philox4x32(ctr, this.#key, 10, x);
      switch (mode) {
        case "uniform":
          for (let k = 0; k < 4 && i + k < n; k++) outF[i + k] = (x[k] >>> 8) * 5.9604644775390625e-8;
          break;
        case "normal":
          boxMuller(x[0], x[1], out, i, n);
          if (i + 2 < n) boxMuller(x[2], x[3], out, i + 2, n);
          break;
        case "randint":
          out[i] = bounded(x[0], x[1], arg);
          if (i + 1 < n) out[i + 1] = bounded(x[2], x[3], arg);
          break;
        case "bernoulli":
          for (let k = 0; k < 4 && i + k < n; k++) out[i + k] = (x[k] >>> 8) < arg ? 1 : 0;
          break;
      }
    }
    return out;
  }

  /** Uniform f32 in [0, 1) (multiples of 2⁻²⁴), on the GPU. */
  uniform(shape: Shape): Tensor {
    return this.#gpu("uniform", "uniform", shape, 0);
  }

  /** Standard normal f32, on the GPU. */
  normal(shape: Shape): Tensor {
    return this.#gpu("normal", "normal", shape, 0);
  }

  /** Uniform integers in [0, bound) as a u32 tensor, on the GPU. */
  randint(shape: Shape, bound: number): Tensor {
    return this.#gpu("randint", "randint", shape, checkBound(bound));
  }

  /** A u32 mask of ones with probability `p` (see the module doc for the exact probability), on the GPU. */
  bernoulli(shape: Shape, p: number): Tensor {
    return this.#gpu("bernoulli", "bernoulli", shape, threshold(p));
  }

  /** The same numbers as {@link uniform}, computed on the CPU. */
  uniformCpu(n: number): Float32Array {
    return new Float32Array(this.#cpu("uniform", n, 0).buffer);
  }

  /** The same numbers as {@link normal}, computed on the CPU. */
  normalCpu(n: number): Float32Array {
    return new Float32Array(this.#cpu("normal", n, 0).buffer);
  }

  /** The same numbers as {@link randint}, computed on the CPU. */
  randintCpu(n: number, bound: number): Uint32Array {
    return this.#cpu("randint", n, checkBound(bound));
  }

  /** The same numbers as {@link bernoulli}, computed on the CPU. */
  bernoulliCpu(n: number, p: number): Uint32Array {
    return this.#cpu("bernoulli", n, threshold(p));
  }
}

function checkBound(bound: number): number {
  if (!Number.isInteger(bound) || bound < 1 || bound > 0xffffffff) {
    throw new Error(`Generator.randint: bound must be an integer in [1, 2^32), got ${bound}`);
  }
  return bound;
}

function threshold(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new Error(`Generator.bernoulli: p must be in [0, 1], got ${p}`);
  return Math.round(p * 16777216);
}
