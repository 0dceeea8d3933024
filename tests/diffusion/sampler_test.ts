import { assert } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { createSchedule, type Schedule } from "../../lib/diffusion/schedule.ts";
import { ddimSample, pMeanVariance, pSample } from "../../lib/diffusion/gaussian.ts";
import { Generator } from "../../lib/tensor/rng.ts";
import { noGrad } from "../../lib/tensor/autograd.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { scale, sub } from "../../lib/tensor/ops/elementwise.ts";

await gpu();

const N = 2;
const x0 = Float32Array.from({ length: 16 * N }, (_, i) => 0.8 * Math.sin(1.7 * i));

/** The exact ε for data that is the single point x0*: ε = (x_t − √ᾱ x0*) / √(1 − ᾱ). */
function oracle(sched: () => Schedule, step: () => number) {
  return {
    inChannels: 1,
    learnSigma: false,
    forward: (x: Tensor) => {
      const ab = sched().alphasCumprod[step()];
      return scale(sub(x, scale(tensor(x0, [N, 1, 4, 4]), Math.sqrt(ab))), 1 / Math.sqrt(1 - ab));
    },
  };
}

for (const [kind, spec] of [["ddpm", "100"], ["ddim", "ddim25"], ["ddpm", "ddim10"]] as const) {
  Deno.test(`${kind} on "${spec}" with an exact denoiser lands on the data point (and clipping keeps it)`, async () => {
    for (const clip of [false, true]) {
      const s = createSchedule(spec);
      let cur = 0;
      const model = oracle(() => s, () => cur);
      const g = new Generator(5);
      let x: Tensor = g.normal([N, 1, 4, 4]).keep();
      for (let i = s.numTimesteps - 1; i >= 0; i--) {
        cur = i;
        const y = new Uint32Array(N);
        const next = noGrad(() =>
          tidy(() =>
            kind === "ddpm"
              ? pSample(model, s, x, i, y, g, { clipDenoised: clip })
              : ddimSample(model, s, x, i, y, g, 0, { clipDenoised: clip })
          )
        );
        x.dispose();
        x = next;
      }
      const out = await x.data();
      x.dispose();
      let err = 0;
      for (let i = 0; i < out.length; i++) err = Math.max(err, Math.abs(out[i] - x0[i]));
      assert(err < 1e-5, `${kind} ${spec} clip=${clip}: max |x − x0*| = ${err}`);
    }
  });
}

Deno.test("clip_denoised clamps the predicted x0 to [-1, 1]", async () => {
  const s = createSchedule("");
  const xt = tensor(Float32Array.from({ length: 8 }, (_, i) => (i - 4) * 0.9), [2, 1, 2, 2]);
  const eps = tensor(new Float32Array(8), [2, 1, 2, 2]); // ε̂ = 0: x0 = x_t / √ᾱ, far outside at t = 900
  const { a, b } = noGrad(() =>
    tidy(() => ({
      a: pMeanVariance(s, xt, [900, 900], eps, null, false).predXstart,
      b: pMeanVariance(s, xt, [900, 900], eps, null, true).predXstart,
    }))
  );
  const ua = await a.data();
  const ub = await b.data();
  assert(Math.max(...ua.map(Math.abs)) > 10, "unclipped x0 should be far outside [-1, 1]");
  assert(ub.every((v, i) => v === Math.min(1, Math.max(-1, ua[i]))), `clipped ${ub}`);
  for (const t of [a, b, xt, eps]) t.dispose();
});
