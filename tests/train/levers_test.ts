/**
 * The training levers of the `train` stage: `lr_warmup` (linear learning-rate warm-up), `ema_warmup`
 * (EMA decay min(decay, (1 + t) / (10 + t))) and `t_sampling: logit-normal` (t = sigmoid(n), n ~ N(0, 1)
 * from the training Philox stream); each off by default, and all of them resumed exactly.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { assertSameBits, sameBits } from "../helpers/bits.ts";
import { customConfig } from "../../lib/models/config.ts";
import {
  type DiTTrainOptions,
  drawTimesteps,
  type TrainData,
  trainDiT,
} from "../../lib/train/dit_trainer.ts";
import { cosineLr, emaDecayAt, warmupLr } from "../../lib/train/loop.ts";
import { initRngFor } from "../../lib/train/init_rng.ts";
import type { Backbone } from "../../lib/models/arch.ts";
import { DiT } from "../../lib/models/dit.ts";
import { EMA } from "../../lib/tensor/optim.ts";
import { Generator } from "../../lib/tensor/rng.ts";
import { tensor } from "../../lib/tensor/tensor.ts";

await gpu();

const tiny = customConfig({
  inputSize: 8,
  patchSize: 2,
  inChannels: 4,
  hiddenSize: 32,
  depth: 1,
  numHeads: 2,
  numClasses: 2,
});

function data(n: number): TrainData {
  const per = 4 * 8 * 8;
  const x = new Float32Array(n * per).map((_, i) => 0.8 * Math.sin(i * 0.37 + Math.cos(i * 0.011)));
  return {
    x,
    y: Uint32Array.from({ length: n }, (_, i) => i % 2),
    shape: [4, 8, 8],
    count: n,
    numClasses: 2,
  };
}

const opts = (o: Partial<DiTTrainOptions> = {}): DiTTrainOptions => ({
  model: tiny,
  steps: 2,
  batch_size: 4,
  lr: 1e-3,
  ema_decay: 0.9,
  seed: 7,
  ckpt_every: 0,
  ...o,
});

async function raw(model: Backbone): Promise<Float32Array[]> {
  const w = [...(await model.stateDict()).values()].map((h) => h.data);
  model.dispose();
  return w;
}

Deno.test("warmupLr: lr · min(1, (step + 1) / warmup); none for 0", () => {
  const f = warmupLr(1e-3, 4)!;
  assertEquals([0, 1, 2, 3, 4, 100].map(f), [1e-3 * 0.25, 1e-3 * 0.5, 1e-3 * 0.75, 1e-3, 1e-3, 1e-3]);
  assertEquals(warmupLr(1e-3, 0), undefined);
});

Deno.test("cosineLr: lr · (1 + cos(π · step / total)) / 2, from lr to 0", () => {
  const f = cosineLr(2e-3, 4);
  assertEquals([0, 2, 4].map(f), [2e-3, 1e-3, 0]);
  assertEquals(f(1), 2e-3 * 0.5 * (1 + Math.cos(Math.PI / 4)));
});

Deno.test("lr_warmup: the first step is a step at lr / warmup; 0 (the default) is no warm-up", async () => {
  const d = data(8);
  const warm = await raw((await trainDiT(d, opts({ steps: 1, lr_warmup: 4 }))).model);
  const quarter = await raw((await trainDiT(d, opts({ steps: 1, lr: 1e-3 * 0.25 }))).model);
  assertSameBits(warm, quarter, "one warm-up step and one step at lr/4");
  const full = await raw((await trainDiT(d, opts({ steps: 1 }))).model);
  assert(!sameBits(warm, full), "lr_warmup had no effect");
  // lr_warmup: 0 is the default: bit-identical to leaving it out.
  assertSameBits(await raw((await trainDiT(d, opts({ steps: 1, lr_warmup: 0 }))).model), full, "lr_warmup 0");
});

Deno.test("emaDecayAt: min(decay, (1 + t) / (10 + t)) with the warm-up, the constant decay without", () => {
  const f = emaDecayAt(0.9999, true);
  assertEquals([0, 1, 8, 90].map(f), [0.1, 2 / 11, 9 / 18, 91 / 100]);
  assertEquals(f(1e6), 0.9999);
  assertEquals(emaDecayAt(0.5, true)(100), 0.5);
  assertEquals([0, 5, 1e6].map(emaDecayAt(0.9999, false)), [0.9999, 0.9999, 0.9999]);
});

Deno.test("ema_warmup: the EMA kernel follows the scheduled decay on a toy parameter (float64 reference)", async () => {
  const n = 37;
  const p0 = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const p = tensor(p0, [n], "f32", "toy").keep();
  const ema = EMA.copyOf([p], 0.999);
  p.dispose();
  const ref = Float64Array.from(p0);
  const decayAt = emaDecayAt(0.999, true);
  for (let t = 0; t < 25; t++) {
    // The "trained" parameter moves each step.
    const pt = Float32Array.from({ length: n }, (_, i) => Math.cos(0.3 * t + i) * (1 + t / 10));
    const cur = tensor(pt, [n], "f32", "toy");
    const d = decayAt(t);
    ema.update([cur], d);
    cur.dispose();
    for (let i = 0; i < n; i++) ref[i] = ref[i] * d + (1 - d) * pt[i];
  }
  const [got] = await ema.data();
  ema.dispose();
  let err = 0;
  for (let i = 0; i < n; i++) err = Math.max(err, Math.abs(got[i] - ref[i]) / Math.max(1, Math.abs(ref[i])));
  assert(err < 1e-5, `EMA vs float64 reference: max error ${err}`);
});

Deno.test("ema_warmup in training: after one step the EMA is 0.1·init + 0.9·weights", async () => {
  const res = await trainDiT(data(8), opts({ steps: 1, ema_warmup: true }));
  const init = DiT.init(tiny, initRngFor(7));
  const w0 = await init.stateDict();
  init.dispose();
  const w1 = await res.model.stateDict();
  res.model.dispose();
  let err = 0;
  for (const [k, e] of res.ema) {
    const a = w0.get(k)!.data, b = w1.get(k)!.data;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(e.data[i] - (0.1 * a[i] + 0.9 * b[i])));
  }
  assert(err < 1e-6, `EMA after one warm-up update: max error ${err}`);
});

Deno.test("t_sampling: logit-normal draws are sigmoid of the stream's normals, deterministic, about the right shape", () => {
  const n = 20000;
  const a = drawTimesteps(new Generator(3), n, "sit", "logit-normal", 1000);
  const b = drawTimesteps(new Generator(3), n, "sit", "logit-normal", 1000);
  assertEquals(a, b);
  const normals = new Generator(3).normalCpu(n);
  assert(a.every((t, i) => t === 1 / (1 + Math.exp(-normals[i]))), "not sigmoid of the stream's normals");
  assert(a.every((t) => t > 0 && t < 1), "t outside (0, 1)");
  const mean = a.reduce((s, t) => s + t, 0) / n;
  assert(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  // P(0.25 < sigmoid(n) < 0.75) = P(|n| < ln 3) = 0.7267.
  const mid = a.filter((t) => t > 0.25 && t < 0.75).length / n;
  assert(Math.abs(mid - 0.7267) < 0.015, `mass in (0.25, 0.75): ${mid}`);
  // ddpm: integer timesteps round(sigmoid(n) · 999).
  const d = drawTimesteps(new Generator(3), n, "ddpm", "logit-normal", 1000);
  assert(d.every((t, i) => t === Math.round(a[i] * 999)), "ddpm logit-normal timesteps");
  // uniform (the default) is today's draw: uniformCpu for sit, randintCpu for ddpm.
  assertEquals(
    drawTimesteps(new Generator(5), 9, "sit", "uniform", 1000),
    Array.from(new Generator(5).uniformCpu(9)),
  );
  assertEquals(
    drawTimesteps(new Generator(5), 9, "ddpm", "uniform", 1000),
    Array.from(new Generator(5).randintCpu(9, 1000)),
  );
});

Deno.test("all levers on: a run stopped at step k and resumed is bit-identical (EMA step count from the checkpoint)", async () => {
  const d = data(8);
  const levers = { objective: "sit", lr_warmup: 3, ema_warmup: true, t_sampling: "logit-normal" } as const;
  const full = await trainDiT(d, opts({ ...levers, steps: 4 }));
  const dir = await Deno.makeTempDir();
  try {
    (await trainDiT(d, opts({ ...levers, steps: 2, ckptDir: dir }))).model.dispose();
    const resumed = await trainDiT(d, opts({ ...levers, steps: 4, ckptDir: dir }));
    assertEquals(resumed.resumedFrom, 2);
    assertSameBits(
      [...resumed.ema.values()].map((h) => h.data),
      [...full.ema.values()].map((h) => h.data),
      "EMA",
    );
    assertSameBits(await raw(resumed.model), await raw(full.model), "weights");
    assertEquals(resumed.losses, full.losses);
    // The levers change training: the same run with uniform t differs (not at the first step: the
    // zero-initialised output layer makes the first loss independent of t).
    const uniform = await trainDiT(d, opts({ ...levers, t_sampling: "uniform", steps: 4 }));
    assert(uniform.losses[3].loss !== full.losses[3].loss, "t_sampling had no effect");
    uniform.model.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
