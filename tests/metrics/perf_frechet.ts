/**
 * Timing of the Fréchet-distance pieces at FID scale (not a test; run by hand):
 *
 *   deno run -A tests/metrics/perf_frechet.ts [D=2048] [N=10000]
 *
 * Measures meanCov on N×D float32 features (fresh random), symmetricEigen of a D×D covariance (values and
 * vectors), and frechetDistance of two D×D statistics, and checks the eigendecomposition's accuracy.
 * @module
 */
import { gemmNT, symmetricEigen } from "../../lib/metrics/linalg.ts";
import { frechetDistanceStats, meanCov } from "../../lib/metrics/frechet.ts";

const D = Number(Deno.args[0] ?? 2048);
const N = Number(Deno.args[1] ?? 10000);

function features(n: number, d: number, seed: number): Float32Array {
  // Cheap correlated positive features: a few shared factors plus noise (fresh values per seed).
  let s = (seed * 2654435761) >>> 0;
  const rnd = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296 - 0.5;
  };
  const k = 16;
  const load = new Float64Array(k * d).map(rnd);
  const x = new Float32Array(n * d);
  const f = new Float64Array(k);
  for (let r = 0; r < n; r++) {
    for (let q = 0; q < k; q++) f[q] = rnd();
    for (let j = 0; j < d; j++) {
      let v = rnd();
      for (let q = 0; q < k; q++) v += f[q] * load[q * d + j];
      x[r * d + j] = Math.log1p(Math.exp(v));
    }
  }
  return x;
}

const ms = (t: number) => `${((performance.now() - t) / 1000).toFixed(1)} s`;
console.log(
  `D=${D} N=${N}, ${navigator.hardwareConcurrency} cores, load ${Deno.loadavg().map((x) => x.toFixed(2))}`,
);
const x1 = features(N, D, 1 + Math.floor(Math.random() * 1e6));
const x2 = features(N, D, 2 + Math.floor(Math.random() * 1e6));
let t = performance.now();
const s1 = meanCov(x1, N, D);
console.log(`meanCov ${N}×${D}: ${ms(t)}`);
const s2 = meanCov(x2, N, D);

t = performance.now();
symmetricEigen(s1.sigma, D, { vectors: false });
console.log(`symmetricEigen ${D} values only: ${ms(t)}`);
t = performance.now();
const { values, vectors } = symmetricEigen(s1.sigma, D);
console.log(`symmetricEigen ${D} with vectors: ${ms(t)}`);
// accuracy: ‖VVᵀ − I‖max and ‖A v − λ v‖max over all pairs, relative to ‖A‖
const g = gemmNT(vectors!, vectors!, D, D, D);
let orth = 0;
for (let i = 0; i < D; i++) {
  for (let j = 0; j < D; j++) orth = Math.max(orth, Math.abs(g[i * D + j] - (i === j ? 1 : 0)));
}
const av = gemmNT(vectors!, s1.sigma, D, D, D); // row j = (A v_j)ᵀ
let res = 0;
for (let j = 0; j < D; j++) {
  for (let k = 0; k < D; k++) {
    res = Math.max(res, Math.abs(av[j * D + k] - values[j] * vectors![j * D + k]));
  }
}
console.log(
  `  orthogonality ${orth.toExponential(2)}, residual/‖A‖ ${(res / values[D - 1]).toExponential(2)}`,
);

t = performance.now();
const r = frechetDistanceStats(s1, s2);
console.log(`frechetDistance ${D}: ${ms(t)} (fid ${r.fid.toFixed(6)}, rank ${r.details.rankSigma1})`);
