/**
 * Dense float64 linear algebra for metrics (Fréchet distance): symmetric eigendecomposition and the matrix
 * products it needs, in plain TypeScript on row-major `Float64Array`s.
 *
 * The eigensolver is the classic two-stage method (as in EISPACK `tred2` + `tql2`, LAPACK `dsytrd` +
 * `dsteqr`): Householder reduction to tridiagonal form, then the implicit QL algorithm with Wilkinson-type
 * shifts. It is backward stable: the computed eigenpairs are exact for a matrix within a few ulps × ‖A‖ of
 * the input, and the eigenvectors are orthonormal to working precision, even with repeated eigenvalues.
 *
 * Layout choices for speed in JavaScript (no SIMD): every inner loop runs over contiguous memory. The
 * tridiagonal reduction works on the upper triangle and fuses the rank-2 update of step k with the
 * symmetric matrix-vector product of step k+1 (one pass over the trailing block per step). The orthogonal
 * factor is accumulated transposed, so the QL rotations combine two contiguous rows.
 * @module
 */

/** Result of {@link symmetricEigen}. */
export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /**
   * Unit eigenvectors, row-major n×n: row j (`vectors[j*n .. j*n+n)`) is the eigenvector of `values[j]`, so
   * `A = Σ_j values[j] · v_j v_jᵀ` (this is the transpose of LAPACK's/NumPy's column layout). `undefined`
   * when only values were asked for.
   */
  vectors?: Float64Array;
}

/** Options of {@link symmetricEigen}. */
export interface SymmetricEigenOptions {
  /** Compute eigenvectors too (default true). Values only is much cheaper: about (4/3)n³ flops. */
  vectors?: boolean;
}

/**
 * Eigendecomposition of a real symmetric n×n matrix (row-major; only the upper triangle is read; the input
 * is not modified). Throws if an entry is not finite or if the QL iteration does not converge (it always
 * does in practice: 30 iterations per eigenvalue are allowed, about 2 are typical).
 *
 * Cost: about (4/3)n³ flops for values only; with vectors, + (4/3)n³ to form Qᵀ and ~0.6n² rotations of
 * length n (≈ 3.6n³ flops). Measured on a shared 2-core Xeon (2.3 GHz) for n = 2048: ~9 s values only,
 * ~31–35 s with vectors (`deno run -A tests/metrics/perf_frechet.ts`).
 */
export function symmetricEigen(a: Float64Array, n: number, opts: SymmetricEigenOptions = {}): SymmetricEigen {
  const wantVectors = opts.vectors ?? true;
  if (!Number.isInteger(n) || n < 0) throw new Error(`symmetricEigen: invalid order ${n}`);
  if (a.length < n * n) throw new Error(`symmetricEigen: matrix has ${a.length} entries, need ${n}×${n}`);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      if (!Number.isFinite(a[i * n + j])) {
        throw new Error(`symmetricEigen: entry (${i}, ${j}) is ${a[i * n + j]}, not finite`);
      }
    }
  }
  const w = a.slice(0, n * n);
  // Scale by a power of two (exact) so that the largest entry is in [1, 2): no under/overflow in the
  // Householder norms whatever the magnitude of the input.
  let amax = 0;
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) amax = Math.max(amax, Math.abs(w[i * n + j]));
  const scale = amax > 0 ? 2 ** Math.floor(Math.log2(amax)) : 1;
  if (scale !== 1) { for (let i = 0; i < n * n; i++) w[i] /= scale; }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const tau = new Float64Array(n);
  tridiagonalize(w, n, d, e, tau);
  let q: Float64Array | undefined;
  if (wantVectors) q = accumulateQt(w, n, tau);
  tql2(d, e, n, q);
  // Sort ascending (selection of the permutation; rows of q follow).
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x] - d[y]);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = d[order[i]] * scale;
  if (!q) return { values };
  let sorted = true;
  for (let i = 0; i < n; i++) if (order[i] !== i) sorted = false;
  if (sorted) return { values, vectors: q };
  const vectors = new Float64Array(n * n);
  for (let i = 0; i < n; i++) vectors.set(q.subarray(order[i] * n, order[i] * n + n), i * n);
  return { values, vectors };
}

/**
 * Householder reduction of the symmetric matrix in `a` (upper triangle used) to tridiagonal T = Qᵀ A Q:
 * `d` gets the diagonal, `e[i]` = T[i][i+1] (e[n-1] = 0). Q = H_0 H_1 ⋯ H_{n-3}, H_k = I − τ_k v_k v_kᵀ,
 * with v_k[k+1] = 1 and v_k[j] (j > k+1) stored in a[k][j]; τ_k in `tau[k]`.
 */
function tridiagonalize(
  a: Float64Array,
  n: number,
  d: Float64Array,
  e: Float64Array,
  tau: Float64Array,
): void {
  if (n === 0) return;
  const v = new Float64Array(n); // current Householder vector (absolute indices)
  const p = new Float64Array(n); // A22 v for the current step
  const w = new Float64Array(n);
  const vn = new Float64Array(n); // next step's vector
  const pn = new Float64Array(n); // next step's A22 v, accumulated during the fused pass

  /** Builds the reflector from row k (entries k+1..n-1) into `out`; returns τ and stores β in e[k]. */
  const house = (k: number, out: Float64Array): number => {
    const r = k * n;
    const alpha = a[r + k + 1];
    let sigma = 0;
    for (let j = k + 2; j < n; j++) sigma += a[r + j] * a[r + j];
    out.fill(0, 0, k + 1);
    out[k + 1] = 1;
    if (sigma === 0) {
      e[k] = alpha;
      for (let j = k + 2; j < n; j++) out[j] = 0;
      return 0;
    }
    const norm = Math.sqrt(alpha * alpha + sigma);
    const beta = alpha <= 0 ? norm : -norm;
    const scale = 1 / (alpha - beta);
    for (let j = k + 2; j < n; j++) {
      const x = a[r + j] * scale;
      out[j] = x;
      a[r + j] = x; // keep v_k in row k for accumulateQt
    }
    e[k] = beta;
    return (beta - alpha) / beta;
  };

  /** p[i] = Σ_j A22[i][j] v[j] over the trailing block from row/col `s`, from the upper triangle. */
  const symv = (s: number, vec: Float64Array, out: Float64Array): void => {
    out.fill(0);
    for (let i = s; i < n; i++) {
      const r = i * n;
      const vi = vec[i];
      let acc = a[r + i] * vi;
      for (let j = i + 1; j < n; j++) {
        const x = a[r + j];
        acc += x * vec[j];
        out[j] += x * vi;
      }
      out[i] += acc;
    }
  };

  if (n >= 3) {
    tau[0] = house(0, v);
    symv(1, v, p);
  }
  for (let k = 0; k <= n - 3; k++) {
    d[k] = a[k * n + k];
    const t = tau[k];
    // w = τ p − (τ²/2)(pᵀv) v, so that H A22 H = A22 − v wᵀ − w vᵀ.
    let pv = 0;
    for (let j = k + 1; j < n; j++) pv += p[j] * v[j];
    const c = -0.5 * t * t * pv;
    for (let j = k + 1; j < n; j++) w[j] = t * p[j] + c * v[j];
    // Row k+1 first: once updated it yields the next reflector.
    const s = k + 1;
    {
      const r = s * n;
      const vi = v[s], wi = w[s];
      for (let j = s; j < n; j++) a[r + j] -= vi * w[j] + wi * v[j];
    }
    const next = s <= n - 3;
    if (next) {
      tau[s] = house(s, vn);
      pn.fill(0);
      // Rows s+1..n-1: rank-2 update, then this row's share of the next A22·vn, while the row is hot.
      for (let i = s + 1; i < n; i++) {
        const r = i * n;
        const vi = v[i], wi = w[i], vni = vn[i];
        const x0 = a[r + i] - (vi * w[i] + wi * v[i]);
        a[r + i] = x0;
        let acc0 = x0 * vni, acc1 = 0;
        let j = i + 1;
        for (; j + 1 < n; j += 2) {
          const x = a[r + j] - (vi * w[j] + wi * v[j]);
          const y = a[r + j + 1] - (vi * w[j + 1] + wi * v[j + 1]);
          a[r + j] = x;
          a[r + j + 1] = y;
          acc0 += x * vn[j];
          acc1 += y * vn[j + 1];
          pn[j] += x * vni;
          pn[j + 1] += y * vni;
        }
        if (j < n) {
          const x = a[r + j] - (vi * w[j] + wi * v[j]);
          a[r + j] = x;
          acc0 += x * vn[j];
          pn[j] += x * vni;
        }
        pn[i] += acc0 + acc1;
      }
      p.set(pn);
      v.set(vn);
    } else {
      for (let i = s + 1; i < n; i++) {
        const r = i * n;
        const vi = v[i], wi = w[i];
        for (let j = i; j < n; j++) a[r + j] -= vi * w[j] + wi * v[j];
      }
    }
  }
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * n + n - 2];
    e[n - 2] = a[(n - 2) * n + n - 1];
  }
  d[n - 1] = a[(n - 1) * n + n - 1];
  e[n - 1] = 0;
}

/**
 * Forms Qᵀ = H_{n-3} ⋯ H_1 H_0 (row-major) from the reflectors left in `a` by {@link tridiagonalize}, by
 * right-multiplying from k = n−3 down to 0; each step touches only the trailing block, rows contiguous.
 * Reflectors are applied four at a time: for each row r, the four dots y_g = r·v_g are taken in one pass,
 * the sequential coefficients c_g = τ_g (y_g − Σ_{h before g} c_h v_h·v_g) follow from the Gram matrix of
 * the v's, and r −= Σ c_g v_g is a second pass (the row stays in L1 and there are no long dependency chains).
 */
function accumulateQt(a: Float64Array, n: number, tau: Float64Array): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  const G = 4;
  const vs = [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const ts = new Float64Array(G);
  const gram = new Float64Array(G * G);
  const y = new Float64Array(G);
  const c = new Float64Array(G);
  for (let kHi = n - 3; kHi >= 0; kHi -= G) {
    const kLo = Math.max(0, kHi - G + 1);
    const g = kHi - kLo + 1; // reflectors in this group, applied in order kHi, kHi−1, ..., kLo
    for (let q = 0; q < G; q++) {
      const v = vs[q];
      v.fill(0);
      ts[q] = 0;
      if (q >= g) continue;
      const k = kHi - q;
      ts[q] = tau[k];
      v[k + 1] = 1;
      for (let j = k + 2; j < n; j++) v[j] = a[k * n + j];
    }
    const s = kLo + 1;
    for (let p = 0; p < G; p++) {
      for (let q = p + 1; q < G; q++) {
        let dot = 0;
        for (let j = s; j < n; j++) dot += vs[p][j] * vs[q][j];
        gram[p * G + q] = dot;
      }
    }
    const v0 = vs[0], v1 = vs[1], v2 = vs[2], v3 = vs[3];
    for (let i = s; i < n; i++) {
      const r = i * n;
      let y0 = 0, y1 = 0, y2 = 0, y3 = 0;
      for (let j = s; j < n; j++) {
        const x = m[r + j];
        y0 += x * v0[j];
        y1 += x * v1[j];
        y2 += x * v2[j];
        y3 += x * v3[j];
      }
      y[0] = y0;
      y[1] = y1;
      y[2] = y2;
      y[3] = y3;
      let any = false;
      for (let q = 0; q < G; q++) {
        let t = y[q];
        for (let p = 0; p < q; p++) t -= c[p] * gram[p * G + q];
        c[q] = ts[q] * t;
        if (c[q] !== 0) any = true;
      }
      if (!any) continue;
      const c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
      for (let j = s; j < n; j++) m[r + j] -= c0 * v0[j] + c1 * v1[j] + c2 * v2[j] + c3 * v3[j];
    }
  }
  return m;
}

/**
 * Implicit QL iteration on the symmetric tridiagonal matrix with diagonal `d` and off-diagonal `e` (`e[i]`
 * couples i and i+1; `e[n-1]` is ignored) — the QL branch of LAPACK `dsteqr`, with the absolute deflation
 * test |e[i]| ≤ ε‖T‖. On return `d` holds the eigenvalues (unsorted). When `z` is given, every rotation is
 * applied to its rows as well (row i ↔ column i of the eigenvector matrix), so if `z` = Qᵀ on entry, row j
 * of `z` is the eigenvector of `d[j]` on return.
 *
 * With vectors, the rotations dominate the cost (each touches two rows of length n). Two measures:
 * - the eigenvalues are computed first (values only, O(n²)) and each index's first QL step uses the nearest
 *   unused one as a "perfect" shift, which usually deflates in one sweep instead of about two; later steps
 *   use the standard shift (eigenvalue of the leading 2×2 block nearest d[l]). Any shift keeps the rotations
 *   orthogonal, so this changes only the speed of convergence, never the backward stability (after a
 *   perfect-shift sweep e[l] is deflated below 16 ε‖T‖ instead of ε‖T‖, see below);
 * - the rotations are logged and applied in batches by {@link RotationLog}, 8 columns at a time on a packed
 *   copy, which keeps the working set in cache and turns each sweep into a register-carried recurrence.
 */
const PERFECT_SHIFT_SLACK = 16;

function tql2(d: Float64Array, e: Float64Array, n: number, z?: Float64Array): void {
  if (n <= 1) return;
  let tnorm = 0;
  for (let i = 0; i < n; i++) {
    tnorm = Math.max(
      tnorm,
      Math.abs(d[i]) + (i + 1 < n ? Math.abs(e[i]) : 0) + (i > 0 ? Math.abs(e[i - 1]) : 0),
    );
  }
  if (tnorm === 0) return;
  const tol = 2 ** -52 * tnorm;
  const log = z ? new RotationLog(z, n) : undefined;
  const known = z ? new ShiftPool(d, e, n) : undefined;
  const C = log?.c, S = log?.s;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      let m = l;
      while (m < n - 1 && Math.abs(e[m]) > tol) m++;
      if (m === l) break;
      if (++iter > 30) throw new Error(`symmetricEigen: QL iteration did not converge for eigenvalue ${l}`);
      // Shift: eigenvalue of the leading 2×2 block nearest d[l], or the nearest known eigenvalue.
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      let sigma = d[l] - e[l] / (g + (g >= 0 ? r : -r));
      if (known && iter === 1) sigma = known.nearest(sigma) ?? sigma;
      g = d[m] - sigma;
      let s = 1, c = 1, p = 0;
      const at = log ? log.begin(l, m) : 0;
      for (let i = m - 1; i >= l; i--) {
        const f = s * e[i], b = c * e[i];
        if (f === 0) {
          c = 1;
          s = 0;
          r = g;
        } else if (g === 0) {
          c = 0;
          s = 1;
          r = f;
        } else {
          r = Math.hypot(g, f);
          c = g / r;
          s = f / r;
        }
        if (i !== m - 1) e[i + 1] = r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        if (C) {
          C[at + m - 1 - i] = c;
          S![at + m - 1 - i] = s;
        }
      }
      d[l] -= p;
      e[l] = g;
      // A perfect shift is only as exact as the known eigenvalue (error ~ ε‖T‖), so the sweep leaves e[l] at a
      // few ε‖T‖ rather than below ε‖T‖; deflating there costs at most PERFECT_SHIFT_SLACK·ε‖T‖ of backward
      // error and saves a second sweep for ~90% of the eigenvalues.
      if (known && iter === 1 && Math.abs(e[l]) <= PERFECT_SHIFT_SLACK * tol) e[l] = 0;
    }
    known?.take(d[l]);
  }
  log?.flush();
}

/** Eigenvalues of a tridiagonal matrix, computed up front and handed out as shifts (see {@link tql2}). */
class ShiftPool {
  readonly #values: Float64Array;
  readonly #used: Uint8Array;

  constructor(d: Float64Array, e: Float64Array, n: number) {
    const dv = d.slice(), ev = e.slice();
    tql2(dv, ev, n);
    this.#values = dv.sort();
    this.#used = new Uint8Array(n);
  }

  #find(x: number): number {
    const v = this.#values, used = this.#used;
    let lo = 0, hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    let a = lo - 1, b = lo;
    while (a >= 0 && used[a]) a--;
    while (b < v.length && used[b]) b++;
    if (a < 0) return b < v.length ? b : -1;
    if (b >= v.length) return a;
    return x - v[a] <= v[b] - x ? a : b;
  }

  /** The unused eigenvalue nearest x. */
  nearest(x: number): number | undefined {
    const i = this.#find(x);
    return i < 0 ? undefined : this.#values[i];
  }

  /** Marks the unused eigenvalue nearest the converged value x as used. */
  take(x: number): void {
    const i = this.#find(x);
    if (i >= 0) this.#used[i] = 1;
  }
}

/**
 * Deferred application of QL sweeps to the rows of an n×n matrix. A sweep (l, m) is the sequence of
 * rotations on row pairs (i, i+1) for i = m−1 down to l, with rotation t (i = m−1−t) stored at `c/s[at+t]`:
 * row i+1 ← s·row i + c·row i+1, row i ← c·row i − s·row i+1.
 */
class RotationLog {
  readonly c: Float64Array;
  readonly s: Float64Array;
  #used = 0;
  readonly #sweeps: number[] = []; // triples (at, l, m)
  readonly #pack: Float64Array;

  constructor(readonly z: Float64Array, readonly n: number) {
    const cap = Math.max(64, 128 * n);
    this.c = new Float64Array(cap);
    this.s = new Float64Array(cap);
    this.#pack = new Float64Array(8 * n);
  }

  /** Reserves room for a sweep over rows l..m and returns where its rotations go. */
  begin(l: number, m: number): number {
    if (this.#used + (m - l) > this.c.length) this.flush();
    const at = this.#used;
    this.#used += m - l;
    this.#sweeps.push(at, l, m);
    return at;
  }

  /** Applies every logged sweep, in order, to z; empties the log. */
  flush(): void {
    const { z, n, c: C, s: S } = this;
    const sw = this.#sweeps;
    if (sw.length === 0) return;
    const p = this.#pack;
    for (let k0 = 0; k0 < n; k0 += 8) {
      const w = Math.min(8, n - k0);
      if (w < 8) p.fill(0);
      for (let i = 0; i < n; i++) for (let q = 0; q < w; q++) p[i * 8 + q] = z[i * n + k0 + q];
      for (let t = 0; t < sw.length; t += 3) applySweep8(p, C, S, sw[t], sw[t + 1], sw[t + 2]);
      for (let i = 0; i < n; i++) for (let q = 0; q < w; q++) z[i * n + k0 + q] = p[i * 8 + q];
    }
    sw.length = 0;
    this.#used = 0;
  }
}

/** One sweep on a packed 8-column block `p` (row i at p[8i..8i+8)); the moving row is carried in registers. */
function applySweep8(
  p: Float64Array,
  C: Float64Array,
  S: Float64Array,
  at: number,
  l: number,
  m: number,
): void {
  let r = m * 8;
  let c0 = p[r], c1 = p[r + 1], c2 = p[r + 2], c3 = p[r + 3];
  let c4 = p[r + 4], c5 = p[r + 5], c6 = p[r + 6], c7 = p[r + 7];
  for (let i = m - 1, t = at; i >= l; i--, t++) {
    const c = C[t], s = S[t];
    const ri = i * 8;
    const rj = ri + 8;
    let x = p[ri];
    p[rj] = s * x + c * c0;
    c0 = c * x - s * c0;
    x = p[ri + 1];
    p[rj + 1] = s * x + c * c1;
    c1 = c * x - s * c1;
    x = p[ri + 2];
    p[rj + 2] = s * x + c * c2;
    c2 = c * x - s * c2;
    x = p[ri + 3];
    p[rj + 3] = s * x + c * c3;
    c3 = c * x - s * c3;
    x = p[ri + 4];
    p[rj + 4] = s * x + c * c4;
    c4 = c * x - s * c4;
    x = p[ri + 5];
    p[rj + 5] = s * x + c * c5;
    c5 = c * x - s * c5;
    x = p[ri + 6];
    p[rj + 6] = s * x + c * c6;
    c6 = c * x - s * c6;
    x = p[ri + 7];
    p[rj + 7] = s * x + c * c7;
    c7 = c * x - s * c7;
  }
  r = l * 8;
  p[r] = c0;
  p[r + 1] = c1;
  p[r + 2] = c2;
  p[r + 3] = c3;
  p[r + 4] = c4;
  p[r + 5] = c5;
  p[r + 6] = c6;
  p[r + 7] = c7;
}

// ---------------------------------------------------------------------------------------------------------
// Products

const BK = 256; // k-block: 8 rows × 256 doubles = 16 KiB stay in L1
const BJ = 64; // j-block of B rows reused across all rows of A

/**
 * C = A·Bᵀ (+ C when `accumulate`), with A m×k, B n×k and C m×n, all row-major. Every inner product runs
 * over contiguous rows, in 4×4 register tiles over 256-long slices of k. With `upper`, only entries with
 * j ≥ i are guaranteed (for symmetric results such as A·Aᵀ; requires m = n); entries below the diagonal
 * are unspecified (fill them with {@link mirrorUpper}).
 */
export function gemmNT(
  a: Float64Array,
  b: Float64Array,
  m: number,
  n: number,
  k: number,
  c: Float64Array = new Float64Array(m * n),
  opts: { accumulate?: boolean; upper?: boolean } = {},
): Float64Array {
  const upper = opts.upper ?? false;
  if (upper && m !== n) throw new Error("gemmNT: upper requires a square result");
  if (a.length < m * k || b.length < n * k || c.length < m * n) throw new Error("gemmNT: array too small");
  if (!opts.accumulate) {
    if (upper) { for (let i = 0; i < m; i++) c.fill(0, i * n + i, i * n + n); }
    else c.fill(0, 0, m * n);
  }
  for (let p0 = 0; p0 < k; p0 += BK) {
    const p1 = Math.min(k, p0 + BK);
    for (let j0 = 0; j0 < n; j0 += BJ) {
      const j1 = Math.min(n, j0 + BJ);
      const iEnd = upper ? Math.min(m, j1) : m;
      for (let i = 0; i < iEnd; i += 4) {
        const i4 = Math.min(4, iEnd - i);
        const jStart = upper ? Math.max(j0, i - (i % 4)) : j0;
        for (let j = jStart; j < j1; j += 4) {
          const j4 = Math.min(4, j1 - j);
          if (i4 === 4 && j4 === 4) kernel44(a, b, c, i, j, n, k, p0, p1);
          else kernelEdge(a, b, c, i, j, i4, j4, n, k, p0, p1);
        }
      }
    }
  }
  return c;
}

function kernel44(
  a: Float64Array,
  b: Float64Array,
  c: Float64Array,
  i: number,
  j: number,
  n: number,
  k: number,
  p0: number,
  p1: number,
): void {
  const a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
  const b0 = j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let p = p0; p < p1; p++) {
    const y0 = b[b0 + p], y1 = b[b1 + p], y2 = b[b2 + p], y3 = b[b3 + p];
    let x = a[a0 + p];
    c00 += x * y0;
    c01 += x * y1;
    c02 += x * y2;
    c03 += x * y3;
    x = a[a1 + p];
    c10 += x * y0;
    c11 += x * y1;
    c12 += x * y2;
    c13 += x * y3;
    x = a[a2 + p];
    c20 += x * y0;
    c21 += x * y1;
    c22 += x * y2;
    c23 += x * y3;
    x = a[a3 + p];
    c30 += x * y0;
    c31 += x * y1;
    c32 += x * y2;
    c33 += x * y3;
  }
  let o = i * n + j;
  c[o] += c00;
  c[o + 1] += c01;
  c[o + 2] += c02;
  c[o + 3] += c03;
  o += n;
  c[o] += c10;
  c[o + 1] += c11;
  c[o + 2] += c12;
  c[o + 3] += c13;
  o += n;
  c[o] += c20;
  c[o + 1] += c21;
  c[o + 2] += c22;
  c[o + 3] += c23;
  o += n;
  c[o] += c30;
  c[o + 1] += c31;
  c[o + 2] += c32;
  c[o + 3] += c33;
}

function kernelEdge(
  a: Float64Array,
  b: Float64Array,
  c: Float64Array,
  i: number,
  j: number,
  ni: number,
  nj: number,
  n: number,
  k: number,
  p0: number,
  p1: number,
): void {
  for (let ii = 0; ii < ni; ii++) {
    const ar = (i + ii) * k;
    for (let jj = 0; jj < nj; jj++) {
      const br = (j + jj) * k;
      let s = 0;
      for (let p = p0; p < p1; p++) s += a[ar + p] * b[br + p];
      c[(i + ii) * n + j + jj] += s;
    }
  }
}

/** Copies the upper triangle of the n×n row-major matrix onto its lower triangle. */
export function mirrorUpper(c: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) c[j * n + i] = c[i * n + j];
  return c;
}

/** Transpose of the r×c row-major matrix `a` (into `out`, c×r). */
export function transpose(
  a: Float64Array,
  r: number,
  c: number,
  out = new Float64Array(r * c),
): Float64Array {
  const B = 32;
  for (let i0 = 0; i0 < r; i0 += B) {
    for (let j0 = 0; j0 < c; j0 += B) {
      const i1 = Math.min(r, i0 + B), j1 = Math.min(c, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * r + i] = a[i * c + j];
    }
  }
  return out;
}
