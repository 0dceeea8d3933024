/**
 * Tests of lib/metrics/frechet.ts against pytorch-fid's `calculate_frechet_distance` (scipy sqrtm) and
 * numpy's mean/cov, from fixtures written by tools/gen_frechet_fixtures.py, plus analytic cases on fresh
 * random inputs.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { readSafetensors } from "../../lib/io/safetensors.ts";
import {
  frechetDistance,
  frechetDistanceStats,
  FrechetError,
  meanCov,
  StatsAccumulator,
} from "../../lib/metrics/frechet.ts";

const FIX = new URL("../fixtures/frechet/", import.meta.url);
const file = await readSafetensors(new URL("cases.safetensors", FIX).pathname);
const expected = JSON.parse(await Deno.readTextFile(new URL("expected.json", FIX).pathname));

interface StatsRef {
  mu: number[];
  sigma_samples: [number, number, number][];
  sigma_trace: number;
  sigma_sum: number;
  sigma_fro: number;
}
interface Case {
  kind: "stats" | "features";
  dim: number;
  fid: number;
  eps_used: boolean;
  tr_covmean: number;
  trace1: number;
  trace2: number;
  mean_term: number;
  n1?: number;
  n2?: number;
  stats?: StatsRef[];
}
const cases = Object.entries(expected.cases) as [string, Case][];

/** |a − b| ≤ max(rel·|b|, abs). */
function close(a: number, b: number, rel = 1e-6, abs = 1e-6): boolean {
  return Math.abs(a - b) <= Math.max(rel * Math.abs(b), abs);
}

function assertClose(a: number, b: number, what: string, rel = 1e-6, abs = 1e-6): void {
  assert(close(a, b, rel, abs), `${what}: got ${a}, expected ${b} (diff ${a - b}, rel ${(a - b) / b})`);
}

function checkStats(name: string, got: { mu: Float64Array; sigma: Float64Array }, ref: StatsRef, d: number) {
  const muScale = Math.max(...ref.mu.map(Math.abs));
  for (let i = 0; i < d; i++) assertClose(got.mu[i], ref.mu[i], `${name} mu[${i}]`, 0, 1e-13 * muScale);
  const sScale = ref.sigma_fro;
  for (const [i, j, v] of ref.sigma_samples) {
    assertClose(got.sigma[i * d + j], v, `${name} sigma[${i},${j}]`, 0, 1e-12 * sScale);
  }
  let tr = 0, sum = 0, fro = 0;
  for (let i = 0; i < d; i++) tr += got.sigma[i * d + i];
  for (const x of got.sigma) {
    sum += x;
    fro += x * x;
  }
  assertClose(tr, ref.sigma_trace, `${name} trace`, 1e-12, 0);
  assertClose(sum, ref.sigma_sum, `${name} sum`, 0, 1e-11 * sScale * d);
  assertClose(Math.sqrt(fro), ref.sigma_fro, `${name} fro`, 1e-12, 0);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) assertEquals(got.sigma[i * d + j], got.sigma[j * d + i]);
  }
}

for (const [name, c] of cases) {
  Deno.test(`FID matches pytorch-fid/scipy: ${name} (D=${c.dim})`, () => {
    const d = c.dim;
    let r;
    if (c.kind === "stats") {
      r = frechetDistance(
        file.getF64(`${name}.mu1`),
        file.getF64(`${name}.sigma1`),
        file.getF64(`${name}.mu2`),
        file.getF64(`${name}.sigma2`),
      );
    } else {
      const x1 = file.getF32(`${name}.x1`);
      const x2 = file.getF32(`${name}.x2`);
      assertEquals(file.info(`${name}.x1`).shape, [c.n1, d]);
      const s1 = meanCov(x1, c.n1!, d);
      const s2 = meanCov(x2, c.n2!, d);
      checkStats(`${name}.x1`, s1, c.stats![0], d);
      checkStats(`${name}.x2`, s2, c.stats![1], d);
      // streaming, in uneven batches, with the default shift (first batch's mean)
      const acc = new StatsAccumulator(d);
      const cuts = [0, 7, 7 + Math.floor(c.n1! / 3), c.n1!];
      for (let k = 0; k + 1 < cuts.length; k++) acc.add(x1.subarray(cuts[k] * d, cuts[k + 1] * d));
      const s1b = acc.finish();
      assertEquals(s1b.count, c.n1);
      checkStats(`${name}.x1 streamed`, s1b, c.stats![0], d);
      r = frechetDistanceStats(s1, s2);
    }
    assertClose(r.fid, c.fid, `${name} fid`);
    assertClose(r.details.meanTerm, c.mean_term, `${name} mean term`, 1e-12, 1e-12);
    assertClose(r.details.traceSigma1, c.trace1, `${name} tr Σ1`, 1e-12, 1e-12);
    assertClose(r.details.traceSigma2, c.trace2, `${name} tr Σ2`, 1e-12, 1e-12);
    assertClose(r.details.traceSqrt, c.tr_covmean, `${name} tr sqrtm`, 1e-6, 1e-6);
    assertClose(r.details.traceTerm, c.fid - c.mean_term, `${name} trace term`, 1e-6, 1e-6);
    assertEquals(r.details.epsUsed, c.eps_used);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Analytic cases on fresh random inputs

function randn(): number {
  let s = 0;
  for (let i = 0; i < 12; i++) s += Math.random();
  return s - 6;
}

/** Fresh random features: n rows of d, correlated, positive. */
function randomFeatures(n: number, d: number): Float32Array {
  const mix = new Float64Array(d * d).map(() => randn() / Math.sqrt(d));
  const z = new Float64Array(d);
  const x = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) z[i] = randn();
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += z[i] * mix[i * d + j];
      x[r * d + j] = Math.log1p(Math.exp(s));
    }
  }
  return x;
}

Deno.test("FID of identical statistics is 0; FID is symmetric", () => {
  const d = 24;
  const a = meanCov(randomFeatures(200, d), 200, d);
  const b = meanCov(randomFeatures(150, d), 150, d);
  const same = frechetDistanceStats(a, a);
  assert(Math.abs(same.fid) < 1e-10, `identical: ${same.fid}`);
  assertEquals(same.details.meanTerm, 0);
  const ab = frechetDistanceStats(a, b).fid, ba = frechetDistanceStats(b, a).fid;
  assert(ab > 0 && Math.abs(ab - ba) < 1e-10 * ab, `asymmetric ${ab} vs ${ba}`);
});

Deno.test("FID of diagonal covariances has the closed form Σ(μ1−μ2)² + Σ(√a − √b)²", () => {
  const d = 37;
  const mu1 = new Float64Array(d).map(randn), mu2 = new Float64Array(d).map(randn);
  const s1 = new Float64Array(d * d), s2 = new Float64Array(d * d);
  let want = 0;
  for (let i = 0; i < d; i++) {
    const a = Math.random() * 3 + 1e-4, b = i % 5 === 0 ? 0 : Math.random() * 3;
    s1[i * d + i] = a;
    s2[i * d + i] = b;
    want += (mu1[i] - mu2[i]) ** 2 + (Math.sqrt(a) - Math.sqrt(b)) ** 2;
  }
  const r = frechetDistance(mu1, s1, mu2, s2);
  assertClose(r.fid, want, "closed form", 1e-12, 1e-12);
  assertEquals(r.details.rankSigma1, d);
  assertEquals(r.details.epsUsed, false);
});

Deno.test("FID errors: sizes, non-finite input, non-PSD covariance, non-finite after the eps retry", () => {
  const d = 3;
  const mu = new Float64Array(d).map(randn);
  const eye = new Float64Array([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assertThrows(() => frechetDistance(mu, eye, new Float64Array(2), eye), "mean lengths differ (3 vs 2)");
  assertThrows(() => frechetDistance(mu, eye, mu, new Float64Array(4)), "must be 3×3 = 9 entries");
  const bad = eye.slice();
  bad[4] = NaN;
  const e = assertThrows(() => frechetDistance(mu, bad, mu, eye), "sigma1[4] is NaN");
  assert(e instanceof FrechetError);
  const neg = new Float64Array([1, 0, 0, 0, -0.5, 0, 0, 0, 1]);
  assertThrows(
    () => frechetDistance(mu, neg, mu, eye),
    "Σ1 has eigenvalue -0.5",
    "not positive semi-definite",
  );
  assertThrows(
    () => frechetDistance(mu, eye, mu, neg),
    "Σ1^½ Σ2 Σ1^½ has eigenvalue -0.5",
    "Imaginary component",
  );
  const huge = eye.map((x) => x * 1e300);
  assertThrows(() => frechetDistance(mu, huge, mu, huge), "not finite, even after adding 0.000001·I");
  // round-off-level negative eigenvalues are clamped, not errors
  const tiny = new Float64Array([1, 0, 0, 0, -1e-17, 0, 0, 0, 1]);
  const r = frechetDistance(mu, tiny, mu, tiny);
  assert(Math.abs(r.fid) < 1e-12 && r.details.rankSigma1 === 2);
});

Deno.test("StatsAccumulator / meanCov input checks", () => {
  assertThrows(() => new StatsAccumulator(4).add(new Float32Array(6)), "not 1.5 rows of 4");
  assertThrows(() => new StatsAccumulator(2).add(new Float32Array([1, 2])).finish(), "at least 2 rows");
  assertThrows(() => new StatsAccumulator(2).add(new Float32Array([1, NaN])), "value NaN at row 0, column 1");
  assertThrows(() => meanCov(new Float32Array(5), 3, 2), "fewer than 3×2");
});
