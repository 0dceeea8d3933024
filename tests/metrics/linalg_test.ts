/** Tests of lib/metrics/linalg.ts: eigendecomposition accuracy and the matrix-product kernels. */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { gemmNT, mirrorUpper, symmetricEigen, transpose } from "../../lib/metrics/linalg.ts";

/** Fresh random symmetric n×n matrix with entries in (−1, 1). */
function randomSymmetric(n: number): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = Math.random() * 2 - 1;
  return a;
}

/** Fresh random orthogonal matrix (row-major) as a product of n random Householder reflectors. */
function randomOrthogonal(n: number): Float64Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const v = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let nn = 0;
    for (let i = 0; i < n; i++) nn += (v[i] = Math.random() * 2 - 1) ** 2;
    for (let i = 0; i < n; i++) { // q ← q (I − 2 v vᵀ / vᵀv)
      let dot = 0;
      for (let j = 0; j < n; j++) dot += q[i * n + j] * v[j];
      const f = (2 * dot) / nn;
      for (let j = 0; j < n; j++) q[i * n + j] -= f * v[j];
    }
  }
  return q;
}

/** Q diag(λ) Qᵀ, exactly symmetrised. */
function withSpectrum(lambda: number[]): Float64Array {
  const n = lambda.length;
  const q = randomOrthogonal(n);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[i * n + k] * lambda[k] * q[j * n + k];
      a[i * n + j] = a[j * n + i] = s;
    }
  }
  return a;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

/** Max-norm errors of reconstruction (relative to ‖A‖max) and of VVᵀ = I. */
function check(a: Float64Array, n: number): { recon: number; orth: number; values: Float64Array } {
  const { values, vectors } = symmetricEigen(a, n);
  assert(vectors !== undefined && vectors.length === n * n);
  for (let i = 1; i < n; i++) assert(values[i - 1] <= values[i], "ascending");
  let recon = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += vectors[j * n + i] * values[j] * vectors[j * n + k];
      recon = Math.max(recon, Math.abs(s - a[i * n + k]));
    }
  }
  const g = gemmNT(vectors, vectors, n, n, n);
  let orth = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) orth = Math.max(orth, Math.abs(g[i * n + k] - (i === k ? 1 : 0)));
  }
  return { recon: recon / Math.max(maxAbs(a), 1e-300), orth, values };
}

Deno.test("symmetricEigen: random symmetric matrices reconstruct and are orthonormal", () => {
  for (const n of [1, 2, 3, 4, 5, 10, 33, 64, 150]) {
    const a = randomSymmetric(n);
    const { recon, orth } = check(a, n);
    assert(recon < 1e-14 * Math.max(n, 10), `n=${n} reconstruction error ${recon}`);
    assert(orth < 1e-14 * Math.max(n, 10), `n=${n} orthogonality error ${orth}`);
  }
});

Deno.test("symmetricEigen: repeated eigenvalues (QL on clusters)", () => {
  const lambda = [5, 5, 5, 5, -2, -2, 1e-3, 1e-3, 1e-3, 0, 0, 0, 0, 0, 7, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3];
  const n = lambda.length;
  const a = withSpectrum(lambda);
  const { recon, orth, values } = check(a, n);
  assert(recon < 1e-14 * n, `reconstruction ${recon}`);
  assert(orth < 1e-14 * n, `orthogonality ${orth}`);
  const want = [...lambda].sort((x, y) => x - y);
  for (let i = 0; i < n; i++) {
    assert(Math.abs(values[i] - want[i]) < 1e-13 * 7, `λ${i} ${values[i]} vs ${want[i]}`);
  }
  // the exactly repeated case: identity and a multiple of it, with and without vectors
  const eye = new Float64Array(16 * 16);
  for (let i = 0; i < 16; i++) eye[i * 16 + i] = 2.5;
  const r = symmetricEigen(eye, 16);
  assertEquals([...r.values], new Array(16).fill(2.5));
  const g = gemmNT(r.vectors!, r.vectors!, 16, 16, 16);
  for (let i = 0; i < 16; i++) for (let j = 0; j < 16; j++) assertEquals(g[i * 16 + j], i === j ? 1 : 0);
});

Deno.test("symmetricEigen: known spectra (Toeplitz tridiagonal, diagonal, zero, rank-deficient)", () => {
  const n = 40;
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    t[i * n + i] = 2;
    if (i + 1 < n) t[i * n + i + 1] = t[(i + 1) * n + i] = -1;
  }
  const { values } = symmetricEigen(t, n, { vectors: false });
  for (let k = 1; k <= n; k++) {
    const want = 2 - 2 * Math.cos((k * Math.PI) / (n + 1));
    assert(Math.abs(values[k - 1] - want) < 1e-14 * 4, `Toeplitz λ${k}`);
  }
  const diag = [3.5, -1, 0.25, 8, 8, -1];
  const d = new Float64Array(36);
  diag.forEach((x, i) => (d[i * 6 + i] = x));
  assertEquals([...symmetricEigen(d, 6).values], [...diag].sort((x, y) => x - y));
  const z = symmetricEigen(new Float64Array(25), 5);
  assertEquals([...z.values], [0, 0, 0, 0, 0]);
  // rank 3 PSD matrix of order 30: 27 eigenvalues at round-off level
  const n2 = 30, r = 3;
  const gm = new Float64Array(n2 * r).map(() => Math.random() * 2 - 1);
  const p = mirrorUpper(gemmNT(gm, gm, n2, n2, r, undefined, { upper: true }), n2);
  const e = check(p, n2);
  assert(e.recon < 1e-13 && e.orth < 1e-13, `rank-deficient recon ${e.recon} orth ${e.orth}`);
  for (let i = 0; i < n2 - r; i++) {
    assert(Math.abs(e.values[i]) < 1e-13 * e.values[n2 - 1], `null eigenvalue ${e.values[i]}`);
  }
  assert(e.values[n2 - r] > 1e-3);
});

Deno.test("symmetricEigen: values-only agrees with full; only the upper triangle is read; input untouched", () => {
  const n = 57;
  const a = randomSymmetric(n);
  const copy = a.slice();
  const full = symmetricEigen(a, n);
  const vals = symmetricEigen(a, n, { vectors: false });
  assertEquals(vals.vectors, undefined);
  for (let i = 0; i < n; i++) assert(Math.abs(full.values[i] - vals.values[i]) < 1e-13 * n);
  assertEquals([...a], [...copy]);
  const junkLower = a.slice();
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) junkLower[i * n + j] = Math.random();
  assertEquals([...symmetricEigen(junkLower, n).values], [...full.values]);
});

Deno.test("symmetricEigen: rejects non-finite input and bad sizes", () => {
  const a = randomSymmetric(4);
  a[1] = NaN;
  assertThrows(() => symmetricEigen(a, 4), "entry (0, 1) is NaN");
  assertThrows(() => symmetricEigen(new Float64Array(3), 2), "need 2×2");
});

Deno.test("gemmNT / transpose agree with a naive product (odd sizes, upper, accumulate)", () => {
  for (const [m, n, k] of [[1, 1, 1], [5, 7, 3], [17, 9, 300], [70, 70, 33], [130, 66, 257]]) {
    const a = new Float64Array(m * k).map(() => Math.random() - 0.5);
    const b = new Float64Array(n * k).map(() => Math.random() - 0.5);
    const c = gemmNT(a, b, m, n, k);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[i * k + p] * b[j * k + p];
        assert(Math.abs(c[i * n + j] - s) < 1e-13 * k, `(${m},${n},${k}) [${i},${j}]`);
      }
    }
    const c2 = c.slice();
    gemmNT(a, b, m, n, k, c2, { accumulate: true });
    for (let i = 0; i < m * n; i++) assert(Math.abs(c2[i] - 2 * c[i]) < 1e-13 * k);
    const at = transpose(a, m, k);
    for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) assertEquals(at[p * m + i], a[i * k + p]);
    const s = mirrorUpper(gemmNT(a, a, m, m, k, undefined, { upper: true }), m);
    const full = gemmNT(a, a, m, m, k);
    for (let i = 0; i < m * m; i++) assert(Math.abs(s[i] - full[i]) < 1e-13 * k, "upper");
  }
});

Deno.test("symmetricEigen: extreme magnitudes (scaled internally by a power of two)", () => {
  for (const mag of [1e-170, 1e-300, 1e170, 1e300]) {
    const n = 12;
    const a = randomSymmetric(n);
    const ref = symmetricEigen(a, n).values;
    const b = a.map((x) => x * mag);
    const { values, vectors } = symmetricEigen(b, n);
    for (let i = 0; i < n; i++) assert(Math.abs(values[i] / mag - ref[i]) < 1e-13, `${mag}: λ${i}`);
    const g = gemmNT(vectors!, vectors!, n, n, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) assert(Math.abs(g[i * n + j] - (i === j ? 1 : 0)) < 1e-14);
    }
  }
});
