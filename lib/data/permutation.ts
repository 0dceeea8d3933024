/**
 * Seeded, portable permutations and splits, defined with 32-bit integer arithmetic only so that any
 * language reproduces them (`tools/golden_center_crop.py` reimplements them in Python as a check).
 *
 * - Generator: mulberry32 (Tommy Ettinger's public-domain 32-bit generator): the state advances by
 *   `0x6D2B79F5`; the output is `t = imul(s ^ s >>> 15, s | 1); t ^= t + imul(t ^ t >>> 7, t | 61);
 *   (t ^ t >>> 14) >>> 0`, and a uniform draw is that output / 2^32.
 * - Permutation: Fisher–Yates from the end, `for i = n-1 … 1: j = floor(u · (i + 1)); swap(i, j)`, starting
 *   from the identity.
 * @module
 */

/** A mulberry32 generator: each call returns the next uniform draw in [0, 1) (a multiple of 2^-32). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seeded permutation of `0 … n-1` described in the module doc. */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rand = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * Splits `total` into integer quotas proportional to `counts` (largest-remainder / Hamilton method: floor
 * of each exact share, then one more to the largest remainders, ties to the lower index). The quotas sum to
 * `total`; `total` must not exceed the sum of `counts`.
 */
export function apportion(counts: ArrayLike<number>, total: number): number[] {
  let sum = 0;
  for (let i = 0; i < counts.length; i++) sum += counts[i];
  if (!Number.isInteger(total) || total < 0 || total > sum) {
    throw new RangeError(`apportion: total ${total} must be an integer in [0, ${sum}]`);
  }
  const q: number[] = [];
  const rem: { r: number; i: number }[] = [];
  let given = 0;
  for (let i = 0; i < counts.length; i++) {
    // Exact rational comparison: share = counts[i]·total / sum; floor and remainder numerator in integers.
    const num = counts[i] * total;
    q.push(Math.floor(num / sum));
    rem.push({ r: num - q[i] * sum, i });
    given += q[i];
  }
  rem.sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; k < total - given; k++) q[rem[k].i]++;
  return q;
}

/**
 * A stratified split in a seeded order: walks `seededPermutation(labels.length, seed)` and sends each index
 * to `test` while its class's quota (from {@link apportion} of `testSize` over the class counts) is not
 * full, otherwise to `train`. Both lists keep the permutation's order, so classes are interleaved.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  numClasses: number,
  testSize: number,
  seed: number,
): { train: Uint32Array; test: Uint32Array; order: Uint32Array } {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const quota = apportion(counts, testSize);
  const order = seededPermutation(labels.length, seed);
  const train = new Uint32Array(labels.length - testSize);
  const test = new Uint32Array(testSize);
  let a = 0, b = 0;
  for (const idx of order) {
    const c = labels[idx];
    if (quota[c] > 0) {
      quota[c]--;
      test[b++] = idx;
    } else train[a++] = idx;
  }
  return { train, test, order };
}
