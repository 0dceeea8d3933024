/**
 * Test helpers: seeded random inputs, float64 references, and gradient checks by central finite
 * differences of the float64 reference.
 * @module
 */

import { assert } from "./assert.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { getRuntime } from "../../lib/gpu/runtime.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";

/** Initialises the GPU runtime once for a test file. */
export async function gpu(): Promise<void> {
  await getRuntime();
}

/** A small seeded PRNG (mulberry32) for test inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` standard normal values from a seeded generator (never all zeros). */
export function randn(n: number, seed: number, scale = 1, shift = 0): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    out[i] = shift + scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** `n` uniform values in [lo, hi). */
export function randu(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Rounds float64 values to float32 (what the GPU sees). */
export function f32(x: Float64Array): Float64Array {
  return Float64Array.from(Float32Array.from(x));
}

/** Norm-relative error ‖a − b‖ / ‖b‖ (absolute when ‖b‖ is tiny). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert(a.length === b.length, `length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Asserts ‖a − b‖/‖b‖ < tol with a readable message, and that b is not all zeros. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  let nz = false;
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) nz = true;
  assert(nz, `${what}: the reference is all zeros, which proves nothing`);
  const e = relErr(a, b);
  if (!(e < tol)) {
    let worst = 0;
    let wi = 0;
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i] - b[i]);
      if (d > worst) {
        worst = d;
        wi = i;
      }
    }
    throw new Error(
      `${what}: relative error ${e.toExponential(3)} ≥ ${tol} (worst at [${wi}]: got ${a[wi]}, want ${
        b[wi]
      })`,
    );
  }
}

/** One input of a gradient check. */
export interface CheckInput {
  shape: number[];
  data: Float64Array;
  /** Whether to check this input's gradient (default true). */
  grad?: boolean;
}

/** Options for {@link checkOp}. */
export interface CheckOpOptions {
  name: string;
  inputs: CheckInput[];
  /** The op on GPU tensors. */
  gpu: (xs: Tensor[]) => Tensor;
  /** The op in float64 on host arrays; returns the output (row-major, same shape as the GPU output). */
  ref: (xs: Float64Array[]) => Float64Array;
  /** Tolerance of the forward comparison (norm-relative). Default 1e-5. */
  fwdTol?: number;
  /** Tolerance of the gradient comparison (norm-relative). Default 1e-4. */
  gradTol?: number;
  /** Finite-difference step (float64). Default 1e-6. */
  h?: number;
  seed?: number;
}

/**
 * Checks an op's forward against its float64 reference and its gradient (vector-Jacobian product with a
 * random cotangent) against central finite differences of that reference.
 */
export async function checkOp(o: CheckOpOptions): Promise<{ fwdErr: number; gradErrs: number[] }> {
  const xs64 = o.inputs.map((i) => f32(i.data));
  const want = o.ref(xs64);
  const w = f32(randn(want.length, (o.seed ?? 7) + 1000));
  const { out, grads } = await (async () => {
    const res = tidy(() => {
      const ts = o.inputs.map((inp, k) => {
        const t = tensor(Float32Array.from(xs64[k]), inp.shape);
        t.requiresGrad = inp.grad !== false;
        return t.keep();
      });
      const y = o.gpu(ts);
      const seed = tensor(Float32Array.from(w), y.shape);
      backward(y, seed);
      return { y, ts };
    });
    const out = await res.y.data();
    const grads: (Float32Array | null)[] = [];
    for (const t of res.ts) grads.push(t.grad ? await t.grad.data() : null);
    res.y.dispose();
    for (const t of res.ts) t.dispose();
    return { out, grads };
  })();
  const fwdErr = relErr(out, want);
  assertClose(out, want, o.fwdTol ?? 1e-5, `${o.name} forward`);
  const h = o.h ?? 1e-6;
  const gradErrs: number[] = [];
  for (let k = 0; k < o.inputs.length; k++) {
    if (o.inputs[k].grad === false) continue;
    const x = xs64[k];
    const fd = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const orig = x[i];
      x[i] = orig + h;
      const yp = o.ref(xs64);
      x[i] = orig - h;
      const ym = o.ref(xs64);
      x[i] = orig;
      let s = 0;
      for (let j = 0; j < yp.length; j++) s += (yp[j] - ym[j]) * w[j];
      fd[i] = s / (2 * h);
    }
    const g = grads[k];
    assert(g !== null, `${o.name}: input ${k} got no gradient`);
    gradErrs.push(relErr(g!, fd));
    assertClose(g!, fd, o.gradTol ?? 1e-4, `${o.name} gradient of input ${k}`);
  }
  return { fwdErr, gradErrs };
}
