/**
 * Fréchet distance between two Gaussians fitted to feature sets — the FID formula of pytorch-fid
 * (`calculate_frechet_distance`), in float64 throughout (see shared/spec/fid.md):
 *
 *   d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·tr sqrtm(Σ1 Σ2)
 *
 * `tr sqrtm(Σ1Σ2)` is computed by the symmetric route: with Σ1 = V Λ Vᵀ and A = sqrtm(Σ1) = V Λ^½ Vᵀ,
 * Σ1Σ2 is similar to A Σ2 A, which is symmetric positive semi-definite, so tr sqrtm(Σ1Σ2) is the sum of
 * the square roots of the eigenvalues of A Σ2 A. We diagonalise the orthogonally similar
 * B = Λ^½ Vᵀ Σ2 V Λ^½ = Vᵀ (A Σ2 A) V instead (it has the same eigenvalues and skips forming A), restricted to
 * the directions where Σ1 has a positive eigenvalue (the others contribute exactly 0). Eigenvalues that
 * round-off makes slightly negative are clamped to 0 before the square root.
 *
 * Failure handling mirrors the reference: if the result is not finite (or the eigensolver fails), 1e-6·I is
 * added to both covariances for the square-root term and it is retried (the trace terms keep the original
 * covariances, as in the reference); where the reference raises "Imaginary component" (complex square root
 * with an imaginary diagonal beyond 1e-3), this raises when an eigenvalue of A Σ2 A (or of Σ1) is negative
 * beyond round-off: below −1e-3 × the largest eigenvalue.
 *
 * Statistics: {@link meanCov} and {@link StatsAccumulator} give the mean and covariance of feature rows in
 * float64 (rowvar=False, N−1 normalisation, like `np.mean(x, 0)` and `np.cov(x, rowvar=False)`).
 * @module
 */

import { gemmNT, mirrorUpper, symmetricEigen } from "./linalg.ts";

/** Mean and covariance of a feature set (dimension `dim`). */
export interface GaussianStats {
  /** Mean, length dim. */
  mu: Float64Array;
  /** Covariance, dim×dim row-major, symmetric. */
  sigma: Float64Array;
  /** Feature dimension. */
  dim: number;
  /** Number of feature rows the statistics came from. */
  count: number;
}

/** Result of {@link frechetDistance}. */
export interface FrechetResult {
  /** The Fréchet distance d² (what FID reports). */
  fid: number;
  details: {
    /** ‖μ1 − μ2‖². */
    meanTerm: number;
    /** tr Σ1 + tr Σ2 − 2·tr sqrtm(Σ1Σ2). */
    traceTerm: number;
    /** tr Σ1. */
    traceSigma1: number;
    /** tr Σ2. */
    traceSigma2: number;
    /** tr sqrtm(Σ1Σ2) (of the offset covariances when `epsUsed`). */
    traceSqrt: number;
    /** Whether the first attempt was not finite and eps·I was added to both covariances. */
    epsUsed: boolean;
    /** The offset that was (or would have been) added. */
    eps: number;
    /** Rank of Σ1 used (eigenvalues > 0 after clamping). */
    rankSigma1: number;
    /** Most negative eigenvalue of A Σ2 A relative to its largest (0 if none negative): round-off level. */
    negativeEigenRatio: number;
    /** Wall time of the computation in milliseconds. */
    ms: number;
  };
}

/** Options of {@link frechetDistance}. */
export interface FrechetOptions {
  /** Diagonal offset for the retry when the first attempt is not finite (default 1e-6, as pytorch-fid). */
  eps?: number;
  /** Relative size of a negative eigenvalue that is an error rather than round-off (default 1e-3). */
  negativeTolerance?: number;
}

/** Error raised when the Fréchet distance cannot be computed; the message says why. */
export class FrechetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrechetError";
  }
}

function checkFinite(x: Float64Array, what: string): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw new FrechetError(`Fréchet distance: ${what}[${i}] is ${x[i]}, not finite`);
    }
  }
}

interface SqrtTrace {
  trace: number;
  rank: number;
  negativeRatio: number;
}

/**
 * tr sqrtm(Σ1Σ2) for symmetric positive semi-definite Σ1, Σ2 (d×d, row-major) by the symmetric route (see
 * the module documentation). Throws {@link FrechetError} when Σ1 or A Σ2 A has an eigenvalue below
 * −`negativeTolerance` × its largest.
 */
export function traceSqrtProduct(
  sigma1: Float64Array,
  sigma2: Float64Array,
  d: number,
  negativeTolerance = 1e-3,
): SqrtTrace {
  const { values: lam, vectors: v } = symmetricEigen(sigma1, d);
  const lamMax = d ? lam[d - 1] : 0;
  if (d && lam[0] < 0 && -lam[0] > negativeTolerance * Math.max(lamMax, 0)) {
    throw new FrechetError(
      `Fréchet distance: Σ1 has eigenvalue ${
        lam[0]
      } below −${negativeTolerance} × its largest (${lamMax}): ` +
        `it is not a covariance matrix (not positive semi-definite)`,
    );
  }
  // H = Λ^½ Vᵀ restricted to positive eigenvalues (rows of v are eigenvectors).
  let r = 0;
  for (let j = 0; j < d; j++) if (lam[j] > 0) r++;
  const h = new Float64Array(r * d);
  for (let j = d - r, row = 0; j < d; j++, row++) {
    const s = Math.sqrt(lam[j]);
    const src = j * d, dst = row * d;
    for (let k = 0; k < d; k++) h[dst + k] = s * v![src + k];
  }
  // T = H Σ2 (= H Σ2ᵀ, Σ2 symmetric), B = T Hᵀ = Λ^½ Vᵀ Σ2 V Λ^½ (upper triangle, then mirrored).
  const t = gemmNT(h, sigma2, r, d, d);
  const b = mirrorUpper(gemmNT(t, h, r, r, d, undefined, { upper: true }), r);
  const mu = symmetricEigen(b, r, { vectors: false }).values;
  const muMax = r ? mu[r - 1] : 0;
  let trace = 0;
  for (let i = 0; i < r; i++) if (mu[i] > 0) trace += Math.sqrt(mu[i]);
  const negativeRatio = r && mu[0] < 0 ? (muMax > 0 ? -mu[0] / muMax : Infinity) : 0;
  if (negativeRatio > negativeTolerance) {
    throw new FrechetError(
      `Fréchet distance: Σ1^½ Σ2 Σ1^½ has eigenvalue ${mu[0]} below −${negativeTolerance} × its largest ` +
        `(${muMax}), far beyond round-off: the covariances are not positive semi-definite ` +
        `(pytorch-fid raises "Imaginary component" here)`,
    );
  }
  return { trace, rank: r, negativeRatio };
}

function addDiagonal(s: Float64Array, d: number, eps: number): Float64Array {
  const out = s.slice();
  for (let i = 0; i < d; i++) out[i * d + i] += eps;
  return out;
}

/**
 * Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2): `mu*` have length d, `sigma*` are d×d row-major
 * symmetric positive semi-definite (float64). See the module documentation for the method and the failure
 * handling. Throws {@link FrechetError} on mismatched sizes, non-finite inputs, non-PSD covariances, or a
 * result that stays non-finite after the eps retry.
 */
export function frechetDistance(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
  opts: FrechetOptions = {},
): FrechetResult {
  const t0 = performance.now();
  const eps = opts.eps ?? 1e-6;
  const tol = opts.negativeTolerance ?? 1e-3;
  const d = mu1.length;
  if (mu2.length !== d) {
    throw new FrechetError(`Fréchet distance: mean lengths differ (${d} vs ${mu2.length})`);
  }
  if (sigma1.length !== d * d || sigma2.length !== d * d) {
    throw new FrechetError(
      `Fréchet distance: covariances must be ${d}×${d} = ${
        d * d
      } entries, got ${sigma1.length} and ${sigma2.length}`,
    );
  }
  checkFinite(mu1, "mu1");
  checkFinite(mu2, "mu2");
  checkFinite(sigma1, "sigma1");
  checkFinite(sigma2, "sigma2");
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (mu1[i] - mu2[i]) ** 2;
  let tr1 = 0, tr2 = 0;
  for (let i = 0; i < d; i++) {
    tr1 += sigma1[i * d + i];
    tr2 += sigma2[i * d + i];
  }
  let epsUsed = false;
  let st: SqrtTrace | undefined;
  try {
    st = traceSqrtProduct(sigma1, sigma2, d, tol);
  } catch (e) {
    if (e instanceof FrechetError) throw e;
    st = undefined; // eigensolver failure (e.g. overflow to non-finite): retry as the reference does
  }
  if (!st || !Number.isFinite(st.trace)) {
    epsUsed = true;
    try {
      st = traceSqrtProduct(addDiagonal(sigma1, d, eps), addDiagonal(sigma2, d, eps), d, tol);
    } catch (e) {
      if (e instanceof FrechetError) throw e;
      throw new FrechetError(
        `Fréchet distance: sqrtm(Σ1Σ2) is not finite, even after adding ${eps}·I to both covariances ` +
          `(${(e as Error).message})`,
      );
    }
    if (!Number.isFinite(st.trace)) {
      throw new FrechetError(
        `Fréchet distance: sqrtm(Σ1Σ2) is not finite, even after adding ${eps}·I to both covariances`,
      );
    }
  }
  const traceTerm = tr1 + tr2 - 2 * st.trace;
  return {
    fid: meanTerm + traceTerm,
    details: {
      meanTerm,
      traceTerm,
      traceSigma1: tr1,
      traceSigma2: tr2,
      traceSqrt: st.trace,
      epsUsed,
      eps,
      rankSigma1: st.rank,
      negativeEigenRatio: st.negativeRatio,
      ms: performance.now() - t0,
    },
  };
}

/** {@link frechetDistance} of two {@link GaussianStats}. */
export function frechetDistanceStats(
  a: GaussianStats,
  b: GaussianStats,
  opts?: FrechetOptions,
): FrechetResult {
  if (a.dim !== b.dim) throw new FrechetError(`Fréchet distance: dimensions differ (${a.dim} vs ${b.dim})`);
  return frechetDistance(a.mu, a.sigma, b.mu, b.sigma, opts);
}

// ---------------------------------------------------------------------------------------------------------
// Statistics

const ROW_BLOCK = 256;

/**
 * Streaming mean and covariance of feature rows in float64. Rows are accumulated around a shift K (the mean
 * of the first batch, or one given): S1 = Σ(x−K), S2 = Σ(x−K)(x−K)ᵀ, then μ = K + S1/N and
 * Σ = (S2 − S1 S1ᵀ/N)/(N−1). With K at (or near) the mean this is the two-pass formula of `np.cov`.
 * S2 is accumulated in blocks of 256 rows by a cache-blocked A·Aᵀ kernel (upper triangle only).
 */
export class StatsAccumulator {
  /** Rows added so far. */
  count = 0;
  readonly #s1: Float64Array;
  readonly #s2: Float64Array;
  #shift: Float64Array | undefined;
  readonly #block: Float64Array;

  /**
   * @param dim feature dimension D.
   * @param shift optional K (length D); by default the mean of the first batch added.
   */
  constructor(readonly dim: number, shift?: Float64Array) {
    if (!Number.isInteger(dim) || dim <= 0) throw new Error(`StatsAccumulator: invalid dimension ${dim}`);
    if (shift && shift.length !== dim) {
      throw new Error(`StatsAccumulator: shift has length ${shift.length} ≠ ${dim}`);
    }
    this.#s1 = new Float64Array(dim);
    this.#s2 = new Float64Array(dim * dim);
    this.#shift = shift?.slice();
    this.#block = new Float64Array(dim * ROW_BLOCK);
  }

  /** Adds `n` rows (row-major n×D, float32 or float64); `n` defaults to `rows.length / D`. */
  add(rows: Float32Array | Float64Array, n = rows.length / this.dim): this {
    const d = this.dim;
    if (!Number.isInteger(n) || n * d > rows.length) {
      throw new Error(`StatsAccumulator.add: ${rows.length} values are not ${n} rows of ${d}`);
    }
    if (n === 0) return this;
    for (let i = 0; i < n * d; i++) {
      if (!Number.isFinite(rows[i])) {
        throw new Error(
          `StatsAccumulator.add: value ${rows[i]} at row ${Math.floor(i / d)}, column ${i % d}`,
        );
      }
    }
    if (!this.#shift) {
      const k = new Float64Array(d);
      for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) k[j] += rows[r * d + j];
      for (let j = 0; j < d; j++) k[j] /= n;
      this.#shift = k;
    }
    const k = this.#shift;
    const yt = this.#block;
    for (let r0 = 0; r0 < n; r0 += ROW_BLOCK) {
      const nb = Math.min(ROW_BLOCK, n - r0);
      // yt (D × nb) = (rows[r0..r0+nb) − K)ᵀ, transposed in 32-row tiles.
      for (let t0 = 0; t0 < nb; t0 += 32) {
        const t1 = Math.min(nb, t0 + 32);
        for (let j0 = 0; j0 < d; j0 += 64) {
          const j1 = Math.min(d, j0 + 64);
          for (let t = t0; t < t1; t++) {
            const src = (r0 + t) * d;
            for (let j = j0; j < j1; j++) yt[j * nb + t] = rows[src + j] - k[j];
          }
        }
      }
      for (let j = 0; j < d; j++) {
        let s = 0;
        const o = j * nb;
        for (let t = 0; t < nb; t++) s += yt[o + t];
        this.#s1[j] += s;
      }
      gemmNT(yt, yt, d, d, nb, this.#s2, { accumulate: true, upper: true });
    }
    this.count += n;
    return this;
  }

  /** μ and Σ (N−1 normalisation) of the rows added; needs at least 2 rows. */
  finish(): GaussianStats {
    const n = this.count, d = this.dim;
    if (n < 2) throw new Error(`StatsAccumulator: need at least 2 rows for a covariance, have ${n}`);
    const k = this.#shift!;
    const s1 = this.#s1;
    const mu = new Float64Array(d);
    for (let j = 0; j < d; j++) mu[j] = k[j] + s1[j] / n;
    const sigma = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      const ci = s1[i] / n;
      for (let j = i; j < d; j++) sigma[i * d + j] = (this.#s2[i * d + j] - ci * s1[j]) / (n - 1);
    }
    mirrorUpper(sigma, d);
    return { mu, sigma, dim: d, count: n };
  }
}

/**
 * Mean and covariance (rowvar=False, N−1) of `n` feature rows of dimension `d` (row-major), in float64:
 * two passes, the exact mean first and then the centred cross products, like `np.cov`.
 */
export function meanCov(features: Float32Array | Float64Array, n: number, d: number): GaussianStats {
  if (features.length < n * d) throw new Error(`meanCov: ${features.length} values are fewer than ${n}×${d}`);
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += features[r * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  return new StatsAccumulator(d, mean).add(features, n).finish();
}
