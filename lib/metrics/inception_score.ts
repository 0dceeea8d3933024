/**
 * Inception Score (Salimans et al., 2016) exactly as the original TF code computes it (improved-gan
 * `inception_score.py` `get_inception_score`, followed by torch-fidelity and the ADM evaluation suite):
 *
 *   p(y|x) = softmax over all 1008 logits of the 2015 Inception (the 1000 ImageNet classes and the 8 unused
 *            ones, as the original does; no class is dropped), where the logits are pool3 · Wᵀ of the
 *            `softmax/logits` layer *without its bias* (the original multiplies pool_3 by the MatMul weight
 *            only; torch-fidelity's `logits_unbiased`), see `inceptionFeatures(..., { logits: "unbiased" })`;
 *   the N predictions are cut in order into `splits` parts [⌊iN/s⌋, ⌊(i+1)N/s⌋) (no shuffling);
 *   per part: p(y) = the mean of p(y|x) over the part, score = exp(mean over the part of KL(p(y|x) ‖ p(y)));
 *   IS = the mean of the scores, ± their standard deviation (population, `np.std`).
 *
 * Everything is float64 here (the original ran in float32). 0 · log 0 counts as 0.
 * @module
 */

/** Result of {@link inceptionScore}. */
export interface InceptionScoreResult {
  /** Mean of the split scores. */
  mean: number;
  /** Population standard deviation of the split scores (np.std). */
  std: number;
  /** The score of each split. */
  scores: number[];
  splits: number;
}

/** Row-wise softmax in float64 of `n` rows of `k` logits. */
export function softmaxRows(logits: ArrayLike<number>, n: number, k: number): Float64Array {
  if (logits.length < n * k) throw new Error(`softmaxRows: ${logits.length} values are fewer than ${n}×${k}`);
  const p = new Float64Array(n * k);
  for (let r = 0; r < n; r++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[r * k + j]);
    if (!Number.isFinite(m)) throw new Error(`softmaxRows: row ${r} has a non-finite logit (${m})`);
    let s = 0;
    for (let j = 0; j < k; j++) {
      const e = Math.exp(logits[r * k + j] - m);
      p[r * k + j] = e;
      s += e;
    }
    for (let j = 0; j < k; j++) p[r * k + j] /= s;
  }
  return p;
}

/**
 * The Inception Score of `n` rows of `k` logits (see the module documentation for the exact recipe).
 * Needs n ≥ splits (every split non-empty).
 */
export function inceptionScore(
  logits: ArrayLike<number>,
  n: number,
  k: number,
  splits = 10,
): InceptionScoreResult {
  if (!Number.isInteger(splits) || splits < 1) {
    throw new Error(`inceptionScore: splits ${splits} must be ≥ 1`);
  }
  if (n < splits) throw new Error(`inceptionScore: ${n} predictions cannot fill ${splits} splits`);
  const p = softmaxRows(logits, n, k);
  const scores: number[] = [];
  const py = new Float64Array(k);
  for (let i = 0; i < splits; i++) {
    const lo = Math.floor((i * n) / splits);
    const hi = Math.floor(((i + 1) * n) / splits);
    py.fill(0);
    for (let r = lo; r < hi; r++) for (let j = 0; j < k; j++) py[j] += p[r * k + j];
    for (let j = 0; j < k; j++) py[j] /= hi - lo;
    let kl = 0;
    for (let r = lo; r < hi; r++) {
      let s = 0;
      for (let j = 0; j < k; j++) {
        const v = p[r * k + j];
        if (v > 0) s += v * (Math.log(v) - Math.log(py[j]));
      }
      kl += s;
    }
    scores.push(Math.exp(kl / (hi - lo)));
  }
  const mean = scores.reduce((a, b) => a + b, 0) / splits;
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / splits);
  return { mean, std, scores, splits };
}
