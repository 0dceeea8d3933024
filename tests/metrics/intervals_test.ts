/**
 * Tests of lib/metrics/kid.ts and lib/metrics/intervals.ts: KID's unbiased MMD² and the Wilson interval and
 * quantiles against numpy/scipy (fixtures from tools/golden_metrics.py), plus properties on fresh inputs:
 * KID of a set against itself is ≈ 0 in expectation, determinism of the subset and bootstrap draws, and a
 * bootstrap FID interval that brackets the spread of independent draws.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { kernelInceptionDistance, polynomialGram, unbiasedMmd2 } from "../../lib/metrics/kid.ts";
import {
  bootstrapFid,
  classAccuracy,
  drawSpread,
  quantile,
  wilsonInterval,
} from "../../lib/metrics/intervals.ts";
import { frechetDistance, meanCov } from "../../lib/metrics/frechet.ts";
import { Generator } from "../../lib/tensor/rng.ts";

const golden = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/golden/metrics.json", import.meta.url).pathname),
);

/** The deterministic features of tools/golden_metrics.py. */
function feats(n: number, d: number, seed: number, scale = 1, shift = 0): Float64Array {
  const f = new Float64Array(n * d);
  for (let i = 0; i < n * d; i++) {
    f[i] = (Math.sin(i * 0.7311 + seed * 1.37) * 2 + Math.cos(i * 0.131 + seed)) * scale + shift;
  }
  return f;
}

Deno.test("KID: unbiased MMD² on whole sets matches numpy's polynomial_mmd", () => {
  for (const c of golden.kid) {
    const x = feats(c.n, c.d, c.s1);
    const y = feats(c.n, c.d, c.s2, 1.1, 0.05);
    const r = kernelInceptionDistance(x, c.n, y, c.n, c.d, { subsets: 3, subsetSize: 10 ** 6 });
    assertEquals(r.subsetSize, c.n);
    assert(r.std === 0, "whole-set subsets are identical");
    const rel = Math.abs(r.kid - c.mmd2) / Math.max(1e-12, Math.abs(c.mmd2));
    assert(rel < 1e-9, `n=${c.n} d=${c.d}: ${r.kid} vs numpy ${c.mmd2} (rel ${rel})`);
  }
});

Deno.test("KID: subsets are deterministic, and KID of two draws of one distribution is near 0", () => {
  const g = new Generator(5);
  const d = 8;
  const a = Float64Array.from(g.normalCpu(400 * d));
  const b = Float64Array.from(g.normalCpu(400 * d));
  const shifted = b.map((v) => v + 0.5);
  const r1 = kernelInceptionDistance(a, 400, b, 400, d, { subsets: 20, subsetSize: 100, seed: 1 });
  const r2 = kernelInceptionDistance(a, 400, b, 400, d, { subsets: 20, subsetSize: 100, seed: 1 });
  assertEquals(r1, r2);
  const far = kernelInceptionDistance(a, 400, shifted, 400, d, { subsets: 20, subsetSize: 100, seed: 1 });
  assert(Math.abs(r1.kid) < 3 * r1.std + 1e-3, `same distribution: KID ${r1.kid} ± ${r1.std}`);
  assert(far.kid > r1.kid + 3 * far.std, `a shifted set must be far: ${far.kid} vs ${r1.kid}`);
});

Deno.test("KID: the subset sum equals a direct float64 evaluation", () => {
  const g = new Generator(9);
  const d = 3, n = 7;
  const x = Float64Array.from(g.normalCpu(n * d));
  const y = Float64Array.from(g.normalCpu(n * d));
  const k = (u: Float64Array, i: number, v: Float64Array, j: number) => {
    let s = 0;
    for (let t = 0; t < d; t++) s += u[i * d + t] * v[j * d + t];
    return (s / d + 1) ** 3;
  };
  const ix = [0, 3, 5], iy = [6, 1, 2];
  let sxx = 0, syy = 0, sxy = 0;
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 3; b++) {
      if (a !== b) {
        sxx += k(x, ix[a], x, ix[b]);
        syy += k(y, iy[a], y, iy[b]);
      }
      sxy += k(x, ix[a], y, iy[b]);
    }
  }
  const direct = sxx / 6 + syy / 6 - 2 * sxy / 9;
  const got = unbiasedMmd2(
    polynomialGram(x, n, x, n, d),
    n,
    polynomialGram(y, n, y, n, d),
    n,
    polynomialGram(x, n, y, n, d),
    ix,
    iy,
  );
  assert(Math.abs(got - direct) < 1e-12 * Math.abs(direct) + 1e-15, `${got} vs ${direct}`);
});

Deno.test("Wilson interval and quantiles match scipy/numpy", () => {
  for (const c of golden.wilson) {
    const w = wilsonInterval(c.k, c.n);
    const got = [w.value, w.low, w.high];
    got.forEach((v, i) =>
      assert(Math.abs(v - c.expected[i]) < 1e-12, `wilson ${c.k}/${c.n}: ${got} vs ${c.expected}`)
    );
  }
  for (const c of golden.quantile) {
    const sorted = [...c.values].sort((a: number, b: number) => a - b);
    assert(Math.abs(quantile(sorted, c.q) - c.expected) < 1e-12, `quantile ${c.q}`);
  }
});

Deno.test("class accuracy: arg-max against the conditioned labels, per class, with its interval", () => {
  // 4 samples of 3 classes: predictions 0, 2, 2, 1 for labels 0, 1, 2, 1.
  const logits = Float32Array.from([5, 1, 0, 0, 1, 3, 0, 0, 9, 0, 2, 1]);
  const acc = classAccuracy(logits, Uint32Array.from([0, 1, 2, 1]), 3);
  assertEquals(acc.value, 0.75);
  assertEquals(acc.perClass, [1, 0.5, 1]);
  assert(acc.low < 0.75 && acc.high > 0.75);
});

Deno.test("bootstrap FID: deterministic; the bias-corrected interval covers the mean FID of independent draws", () => {
  const d = 6, n = 200;
  const g = new Generator(3);
  const ref = meanCov(Float64Array.from(g.normalCpu(4000 * d)), 4000, d);
  const draw = () => Float64Array.from(g.normalCpu(n * d)).map((v) => v * 1.2 + 0.3);
  const first = draw();
  const a = bootstrapFid(ref, first, n, d, { reps: 100, seed: 2 });
  assertEquals(a, bootstrapFid(ref, first, n, d, { reps: 100, seed: 2 }));
  assert(a.low < a.value && a.value < a.high, `interval [${a.low}, ${a.high}] around ${a.value}`);
  assert(a.bias > 0, `resampling with replacement biases FID upward (bias ${a.bias})`);
  const draws = [first, ...Array.from({ length: 19 }, draw)];
  const fids = draws.map((f) => bootstrapFid(ref, f, n, d, { reps: 0 }).value);
  const truth = fids.reduce((x, y) => x + y, 0) / fids.length;
  let covered = 0;
  for (const f of draws) {
    const b = bootstrapFid(ref, f, n, d, { reps: 60, seed: 1 });
    if (b.low <= truth && truth <= b.high) covered++;
  }
  assert(covered >= 15, `${covered}/20 intervals cover the mean FID over draws (${truth})`);
});

Deno.test("FID of disjoint draws: mean, spread and the draws themselves", () => {
  const d = 3;
  const g = new Generator(4);
  const ref = meanCov(Float64Array.from(g.normalCpu(500 * d)), 500, d);
  const f = Float64Array.from(g.normalCpu(350 * d));
  const r = drawSpread(ref, f, 350, d, 100);
  assertEquals(r.draws.length, 3);
  const s1 = meanCov(f.subarray(100 * d, 200 * d), 100, d);
  assertEquals(r.draws[1], frechetDistance(ref.mu, ref.sigma, s1.mu, s1.sigma).fid);
  assert(Math.abs(r.value - (r.draws[0] + r.draws[1] + r.draws[2]) / 3) < 1e-12);
  assert(
    r.low <= r.value && r.value <= r.high && r.low >= Math.min(...r.draws) && r.high <= Math.max(...r.draws),
  );
});
