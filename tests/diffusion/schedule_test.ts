import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { createSchedule, type Schedule, spaceTimesteps } from "../../lib/diffusion/schedule.ts";

const golden = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/golden/diffusion_schedule.json", import.meta.url)),
) as Record<string, Record<string, number[]>>;

for (const [name, spec] of [["full", ""], ["250", "250"], ["ddim50", "ddim50"], ["10,15,20", "10,15,20"]]) {
  Deno.test(`schedule "${name}" matches guided-diffusion's float64 tables`, () => {
    const s = createSchedule(spec) as unknown as Record<string, Float64Array | Int32Array | number>;
    const g = golden[name];
    for (const [key, want] of Object.entries(g)) {
      const got = s[key] as Float64Array | Int32Array;
      assert(got !== undefined, `missing table ${key}`);
      assertEquals(got.length, want.length, `${name}.${key} length`);
      for (let i = 0; i < want.length; i++) {
        const tol = 1e-12 * Math.max(1, Math.abs(want[i]));
        if (!(Math.abs(got[i] - want[i]) <= tol)) {
          throw new Error(`${name}.${key}[${i}]: got ${got[i]}, want ${want[i]}`);
        }
      }
    }
  });
}

Deno.test("respacing keeps the right steps and maps to the original timesteps", () => {
  assertEquals(spaceTimesteps(1000, "ddim50").length, 50);
  assertEquals(spaceTimesteps(1000, "ddim50").slice(0, 3), [0, 20, 40]);
  const s: Schedule = createSchedule("250");
  assertEquals(s.numTimesteps, 250);
  assertEquals(s.timestepMap[0], 0);
  assertEquals(s.timestepMap[249], 999);
  // Respaced alphas_cumprod equal the base ones at the kept steps.
  const base = createSchedule("");
  for (let i = 0; i < 250; i++) {
    const t = s.timestepMap[i];
    assert(Math.abs(s.alphasCumprod[i] - base.alphasCumprod[t]) < 1e-15, `step ${i}`);
  }
  assertThrows(() => spaceTimesteps(1000, "ddim999"), "cannot create exactly 999 steps");
  assertThrows(() => spaceTimesteps(1000, "abc"), "invalid respacing");
});
