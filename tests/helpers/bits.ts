/**
 * Bit-level comparison of f32 results: exact equality (NaN payloads and signed zeros included), and the
 * "run twice, compare bits" determinism check.
 * @module
 */

/** The bits of f32 values (a view, no copy). */
export function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** True when `a` and `b` (arrays, or lists of arrays) hold the same bits. */
export function sameBits(
  a: Float32Array | readonly Float32Array[],
  b: Float32Array | readonly Float32Array[],
): boolean {
  return firstDifference(a, b) === null;
}

function firstDifference(
  a: Float32Array | readonly Float32Array[],
  b: Float32Array | readonly Float32Array[],
): string | null {
  const la = a instanceof Float32Array ? [a] : a;
  const lb = b instanceof Float32Array ? [b] : b;
  if (la.length !== lb.length) return `${la.length} arrays vs ${lb.length}`;
  for (let k = 0; k < la.length; k++) {
    const x = bits(la[k]);
    const y = bits(lb[k]);
    if (x.length !== y.length) return `array ${k}: ${x.length} values vs ${y.length}`;
    for (let i = 0; i < x.length; i++) {
      if (x[i] !== y[i]) return `array ${k} at [${i}]: ${la[k][i]} vs ${lb[k][i]}`;
    }
  }
  return null;
}

/** Throws unless `a` and `b` hold the same bits, naming `what` and the first difference. */
export function assertSameBits(
  a: Float32Array | readonly Float32Array[],
  b: Float32Array | readonly Float32Array[],
  what = "results",
): void {
  const d = firstDifference(a, b);
  if (d !== null) throw new Error(`${what} differ: ${d}`);
}

/**
 * Runs `run` twice and asserts that both runs return the same bits (a determinism check of a kernel or a
 * training run). Returns the first run's result.
 */
export async function assertDeterministic<T extends Float32Array | Float32Array[]>(
  run: () => Promise<T>,
  what = "outputs",
): Promise<T> {
  const a = await run();
  const b = await run();
  assertSameBits(a, b, `${what} of two runs`);
  return a;
}
