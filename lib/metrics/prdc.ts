/**
 * Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds in feature space, as the
 * ADM evaluation suite computes them (k = 3): each sample of a set gets a ball whose radius is the distance
 * to its k-th nearest neighbour within the set (the sample itself counted as the 0th, at distance 0);
 * precision is the fraction of generated samples inside at least one real ball, recall the fraction of
 * real samples inside at least one generated ball. Distances are squared Euclidean in float64 (comparing
 * squared distances with squared radii decides the same as the distances themselves).
 * @module
 */

/** Squared Euclidean distance of rows i of `a` and j of `b` (dimension d). */
function dist2(
  a: Float32Array | Float64Array,
  i: number,
  b: Float32Array | Float64Array,
  j: number,
  d: number,
) {
  let s = 0;
  const ai = i * d;
  const bj = j * d;
  for (let t = 0; t < d; t++) {
    const u = a[ai + t] - b[bj + t];
    s += u * u;
  }
  return s;
}

/**
 * The squared k-NN radius of each of the `n` rows of `f` (dimension d) within the set: the (k+1)-th
 * smallest squared distance to all rows including itself (so the k-th neighbour other than itself).
 */
export function knnRadii(f: Float32Array | Float64Array, n: number, d: number, k = 3): Float64Array {
  if (n <= k) throw new Error(`k-NN radii: ${n} samples are too few for k = ${k}`);
  const radii = new Float64Array(n);
  const best = new Float64Array(k + 1);
  for (let i = 0; i < n; i++) {
    best.fill(Infinity);
    for (let j = 0; j < n; j++) {
      const v = dist2(f, i, f, j, d);
      if (v >= best[k]) continue;
      let p = k;
      while (p > 0 && best[p - 1] > v) {
        best[p] = best[p - 1];
        p--;
      }
      best[p] = v;
    }
    radii[i] = best[k];
  }
  return radii;
}

/** Fraction of the `nq` rows of `q` that lie within the ball of at least one of the `nm` rows of `m`. */
export function coveredFraction(
  q: Float32Array | Float64Array,
  nq: number,
  m: Float32Array | Float64Array,
  mRadii: Float64Array,
  nm: number,
  d: number,
): number {
  let inside = 0;
  for (let i = 0; i < nq; i++) {
    for (let j = 0; j < nm; j++) {
      if (dist2(q, i, m, j, d) <= mRadii[j]) {
        inside++;
        break;
      }
    }
  }
  return inside / nq;
}

/** Result of {@link precisionRecall}. */
export interface PrecisionRecall {
  /** Fraction of generated samples on the real manifold. */
  precision: number;
  /** Fraction of real samples on the generated manifold. */
  recall: number;
  /** The k of the k-NN radii. */
  k: number;
}

/**
 * Improved precision and recall of `fake` (nf rows) against `real` (nr rows), both row-major features of
 * dimension d, with k-NN manifolds (default k = 3, as the ADM suite).
 */
export function precisionRecall(
  real: Float32Array | Float64Array,
  nr: number,
  fake: Float32Array | Float64Array,
  nf: number,
  d: number,
  k = 3,
): PrecisionRecall {
  if (real.length < nr * d || fake.length < nf * d) {
    throw new Error(`precision/recall: feature arrays are shorter than ${nr}×${d} and ${nf}×${d}`);
  }
  const rr = knnRadii(real, nr, d, k);
  const fr = knnRadii(fake, nf, d, k);
  return {
    precision: coveredFraction(fake, nf, real, rr, nr, d),
    recall: coveredFraction(real, nr, fake, fr, nf, d),
    k,
  };
}
