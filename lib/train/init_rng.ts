/**
 * The CPU-side random stream that initialises a model's weights, derived from the stage's seed (a stream
 * separate from the training stream of the same seed).
 * @module
 */

import { Generator } from "../tensor/rng.ts";

/** The CPU-side init RNG of a seed (a separate stream from the training stream). */
export function initRngFor(
  seed: number,
): { uniform(n: number): Float64Array; normal(n: number): Float64Array } {
  const g = new Generator(BigInt(seed) * 2n + 1n);
  return {
    uniform: (n) => Float64Array.from(g.uniformCpu(n)),
    normal: (n) => Float64Array.from(g.normalCpu(n)),
  };
}
