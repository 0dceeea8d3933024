/**
 * The Gaussian diffusion schedule of DiT (guided-diffusion's `GaussianDiffusion`), in float64 on the host:
 * linear betas, the derived coefficient tables, and timestep respacing ("250", "ddim50", "10,15,20").
 *
 * Every per-timestep coefficient that the GPU code needs is read from these tables and uploaded as a
 * per-sample vector, so the arithmetic that the reference does in float64 stays in float64.
 * @module
 */

/** The coefficient tables of a (possibly respaced) diffusion process. All arrays have length T. */
export interface Schedule {
  /** Number of steps of this process. */
  numTimesteps: number;
  /** For a respaced process, the original timestep of each step (the model sees these); else 0..T-1. */
  timestepMap: Int32Array;
  betas: Float64Array;
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
  alphasCumprodNext: Float64Array;
  sqrtAlphasCumprod: Float64Array;
  sqrtOneMinusAlphasCumprod: Float64Array;
  logOneMinusAlphasCumprod: Float64Array;
  sqrtRecipAlphasCumprod: Float64Array;
  sqrtRecipm1AlphasCumprod: Float64Array;
  posteriorVariance: Float64Array;
  /** log of the posterior variance, with the first entry (0) replaced by the second. */
  posteriorLogVarianceClipped: Float64Array;
  posteriorMeanCoef1: Float64Array;
  posteriorMeanCoef2: Float64Array;
}

/** `np.linspace(start, stop, n)` in float64, exactly as NumPy computes it. */
export function linspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const div = n - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  // NumPy sets the last element to `stop` exactly.
  out[n - 1] = stop;
  return out;
}

/** The linear beta schedule of DiT/ADM: scale = 1000/T, betas = linspace(scale·1e-4, scale·0.02, T). */
export function linearBetas(numTimesteps = 1000): Float64Array {
  const scale = 1000 / numTimesteps;
  return linspace(scale * 0.0001, scale * 0.02, numTimesteps);
}

/** Builds every coefficient table from betas (guided-diffusion's `GaussianDiffusion.__init__`). */
export function scheduleFromBetas(betas: Float64Array, timestepMap?: Int32Array): Schedule {
  const T = betas.length;
  for (let i = 0; i < T; i++) {
    if (!(betas[i] > 0 && betas[i] <= 1)) throw new Error(`beta[${i}] = ${betas[i]} is not in (0, 1]`);
  }
  const ac = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) {
    prod *= 1 - betas[i];
    ac[i] = prod;
  }
  const acPrev = new Float64Array(T);
  const acNext = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    acPrev[i] = i === 0 ? 1 : ac[i - 1];
    acNext[i] = i === T - 1 ? 0 : ac[i + 1];
  }
  const map = (f: (i: number) => number) => Float64Array.from({ length: T }, (_, i) => f(i));
  const posteriorVariance = map((i) => betas[i] * (1 - acPrev[i]) / (1 - ac[i]));
  const posteriorLogVarianceClipped = map((i) =>
    Math.log(T > 1 && i === 0 ? posteriorVariance[1] : posteriorVariance[i])
  );
  return {
    numTimesteps: T,
    timestepMap: timestepMap ?? Int32Array.from({ length: T }, (_, i) => i),
    betas: Float64Array.from(betas),
    alphasCumprod: ac,
    alphasCumprodPrev: acPrev,
    alphasCumprodNext: acNext,
    sqrtAlphasCumprod: map((i) => Math.sqrt(ac[i])),
    sqrtOneMinusAlphasCumprod: map((i) => Math.sqrt(1 - ac[i])),
    logOneMinusAlphasCumprod: map((i) => Math.log(1 - ac[i])),
    sqrtRecipAlphasCumprod: map((i) => Math.sqrt(1 / ac[i])),
    sqrtRecipm1AlphasCumprod: map((i) => Math.sqrt(1 / ac[i] - 1)),
    posteriorVariance,
    posteriorLogVarianceClipped,
    posteriorMeanCoef1: map((i) => betas[i] * Math.sqrt(acPrev[i]) / (1 - ac[i])),
    posteriorMeanCoef2: map((i) => (1 - acPrev[i]) * Math.sqrt(1 - betas[i]) / (1 - ac[i])),
  };
}

/**
 * The timesteps kept by a respacing spec (guided-diffusion's `space_timesteps`):
 * - `""` or `"1000"` with T=1000: all steps;
 * - `"250"`: 250 evenly strided steps (`"10,15,20"`: that many steps in each of three equal sections);
 * - `"ddim50"`: the DDIM stride, `range(0, T, stride)` with exactly 50 steps.
 * Returns the sorted kept timesteps.
 */
export function spaceTimesteps(numTimesteps: number, spec: string): number[] {
  const s = spec.trim();
  if (s === "") return Array.from({ length: numTimesteps }, (_, i) => i);
  if (s.startsWith("ddim")) {
    const desired = Number(s.slice(4));
    if (!Number.isInteger(desired) || desired < 1) throw new Error(`invalid respacing "${spec}"`);
    for (let i = 1; i < numTimesteps; i++) {
      const steps = Math.ceil(numTimesteps / i);
      if (steps === desired) return Array.from({ length: steps }, (_, k) => k * i);
    }
    throw new Error(`cannot create exactly ${desired} steps with an integer stride from ${numTimesteps}`);
  }
  const counts = s.split(",").map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n) || n < 0) throw new Error(`invalid respacing "${spec}": "${x}" is not a count`);
    return n;
  });
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  let startIdx = 0;
  const all: number[] = [];
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) throw new Error(`cannot divide section of ${size} steps into ${count}`);
    const fracStride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      all.push(startIdx + pyRound(cur));
      cur += fracStride;
    }
    startIdx += size;
  });
  return [...new Set(all)].sort((a, b) => a - b);
}

/** Python 3's round(): half to even. */
function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The schedule of DiT's diffusion (`create_diffusion(timestep_respacing=spec)`): linear betas over
 * `numTimesteps` (1000), respaced by `spec` (guided-diffusion's `SpacedDiffusion`: new betas from the kept
 * alphas_cumprod, and a map to the original timesteps that the model sees).
 */
export function createSchedule(spec = "", numTimesteps = 1000): Schedule {
  const base = scheduleFromBetas(linearBetas(numTimesteps));
  const keep = new Set(spaceTimesteps(numTimesteps, spec));
  if (keep.size === numTimesteps) return base;
  const newBetas: number[] = [];
  const map: number[] = [];
  let last = 1;
  for (let i = 0; i < numTimesteps; i++) {
    if (keep.has(i)) {
      newBetas.push(1 - base.alphasCumprod[i] / last);
      last = base.alphasCumprod[i];
      map.push(i);
    }
  }
  return scheduleFromBetas(Float64Array.from(newBetas), Int32Array.from(map));
}
