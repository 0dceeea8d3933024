import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { createSchedule, type Schedule, spaceTimesteps } from "../../lib/diffusion/schedule.ts";
import { loadGolden } from "../helpers/golden.ts";

const golden = await loadGolden<Record<string, Record<string, number[]>>>("diffusion_schedule.json");

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

Deno.test("the training loss (mse + vb, decoder NLL at t = 0) matches guided-diffusion for a fixed model output", async () => {
  const { getRuntime } = await import("../../lib/gpu/runtime.ts");
  const { tensor, tidy } = await import("../../lib/tensor/tensor.ts");
  const { trainingLosses } = await import("../../lib/diffusion/gaussian.ts");
  await getRuntime();
  // deno-lint-ignore no-explicit-any
  const g = await loadGolden<any>("diffusion_loss.json");
  const [N, C, H, W] = g.shape;
  const s = createSchedule("");
  const fixedOut = Float32Array.from(g.out);
  const model = {
    inChannels: C,
    learnSigma: true,
    forward: () => tensor(fixedOut, [N, 2 * C, H, W]),
  };
  const res = tidy(() => {
    const r = trainingLosses(
      model,
      s,
      tensor(Float32Array.from(g.x0), [N, C, H, W]),
      g.t,
      tensor(new Uint32Array(N), [N], "u32"),
      tensor(Float32Array.from(g.noise), [N, C, H, W]),
    );
    return { loss: r.loss, mse: r.mse, vb: r.vb! };
  });
  const mse = await res.mse.data();
  const vb = await res.vb.data();
  const loss = await res.loss.item();
  for (let i = 0; i < N; i++) {
    assert(
      Math.abs(mse[i] - g.mse[i]) <= 1e-5 * Math.max(1, Math.abs(g.mse[i])),
      `mse[${i}] ${mse[i]} vs ${g.mse[i]}`,
    );
    assert(
      Math.abs(vb[i] - g.vb[i]) <= 1e-4 * Math.max(1, Math.abs(g.vb[i])),
      `vb[${i}] (t=${g.t[i]}) ${vb[i]} vs ${g.vb[i]}`,
    );
  }
  assert(Math.abs(loss - g.loss) <= 1e-4 * Math.abs(g.loss), `loss ${loss} vs ${g.loss}`);
});
