/**
 * The PyTorch golden values in tests/fixtures/golden/ (written by the tools/golden_*.py scripts).
 * @module
 */

/** One golden case of ops.json, written by tools/golden_ops.py. */
export interface GoldenCase {
  inputs: { shape: number[]; data: number[] }[];
  output: number[];
  cotangent: number[];
  grads: (number[] | null)[];
  [k: string]: unknown;
}

/** Reads tests/fixtures/golden/`file` (default `ops.json`, the cases by name). */
export async function loadGolden<T = Record<string, GoldenCase>>(file = "ops.json"): Promise<T> {
  return JSON.parse(await Deno.readTextFile(new URL(`../fixtures/golden/${file}`, import.meta.url)));
}
