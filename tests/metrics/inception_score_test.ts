/**
 * Inception Score against numpy/scipy (tools/golden_inception_score.py: the original TF computation,
 * cross-checked with scipy.stats.entropy) on random, peaked, single-class and identical logits, uneven
 * splits; and the errors.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { readSafetensors } from "../../lib/io/safetensors.ts";
import { inceptionScore, softmaxRows } from "../../lib/metrics/inception_score.ts";

const FIX = new URL("../fixtures/inception/", import.meta.url);

interface Case {
  name: string;
  n: number;
  k: number;
  splits: number;
  mean: number;
  std: number;
  scores: number[];
}

Deno.test("inceptionScore matches numpy/scipy (mean, std and every split's score)", async () => {
  const { cases } = JSON.parse(await Deno.readTextFile(new URL("inception_score.json", FIX))) as {
    cases: Case[];
  };
  const f = await readSafetensors(new URL("inception_score.safetensors", FIX).pathname);
  assert(cases.length >= 6, "cases missing");
  for (const c of cases) {
    const r = inceptionScore(f.getF32(c.name), c.n, c.k, c.splits);
    assertEquals(r.splits, c.splits);
    assertEquals(r.scores.length, c.scores.length, c.name);
    const close = (a: number, b: number, what: string) =>
      assert(Math.abs(a - b) <= 1e-10 * Math.max(1, Math.abs(b)), `${c.name} ${what}: ${a} vs ${b}`);
    close(r.mean, c.mean, "mean");
    close(r.std, c.std, "std");
    r.scores.forEach((s, i) => close(s, c.scores[i], `split ${i}`));
  }
  // Sanity of the fixture itself: confident diverse predictions score far above one repeated class.
  const by = Object.fromEntries(cases.map((c) => [c.name, c.mean]));
  assert(by.peaked_1008 > 2 && by.one_class_1008 < 1.01 && by.identical_rows === 1, JSON.stringify(by));
});

Deno.test("softmaxRows is stable for large logits; inceptionScore refuses bad arguments", () => {
  const p = softmaxRows([1000, 1000, -1000, 0], 2, 2);
  assertEquals([...p], [0.5, 0.5, 0, 1]);
  assertThrows(() => inceptionScore(new Float32Array(12), 3, 4, 4), "3 predictions cannot fill 4 splits");
  assertThrows(() => inceptionScore(new Float32Array(12), 3, 4, 0), "splits 0");
  assertThrows(() => softmaxRows([0, Infinity], 1, 2), "non-finite");
});
