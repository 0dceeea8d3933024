import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { type Denoiser, guidedOutput } from "../../lib/diffusion/gaussian.ts";
import { withWeakGuide } from "../../lib/diffusion/weak_guide.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { customConfig } from "../../lib/models/config.ts";
import { type TrainData, trainDiT } from "../../lib/train/dit_trainer.ts";
import { sampleModel } from "../../lib/stages/sample.ts";

await gpu();

// A fake 4-channel model with learned sigma: rows of the conditional half output 1 + channel,
// rows of the unconditional half output 10 + channel (8 output channels, 2×2 pixels).
const N = 2, C = 4, S = 2;
const fake = {
  inChannels: C,
  learnSigma: true,
  forward: (x: Tensor): Tensor => {
    const B = x.shape[0];
    const v = new Float32Array(B * 2 * C * S * S);
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < 2 * C; c++) {
        for (let p = 0; p < S * S; p++) v[((b * 2 * C) + c) * S * S + p] = (b < B / 2 ? 1 : 10) + c;
      }
    }
    return tensor(v, [B, 2 * C, S, S]);
  },
};

/** Every output value of one guided step of `model` on N zero latents with labels 0, 1 (null label 5). */
async function guidedValues(model: Denoiser, mode: "official" | "all", scale: number): Promise<Float32Array> {
  const out = tidy(() =>
    guidedOutput(
      model,
      tensor(new Float32Array(N * C * S * S), [N, C, S, S]),
      tensor(new Float32Array(N * 256), [N, 256]),
      new Uint32Array([0, 1]),
      { cfgScale: scale, cfgMode: mode, nullClass: 5 },
    )
  );
  const d = await out.data();
  out.dispose();
  return d;
}

/** One value per output channel of the first sample of the fake model's guided step. */
async function guided(mode: "official" | "all", scale: number): Promise<number[]> {
  const d = await guidedValues(fake, mode, scale);
  return Array.from({ length: 2 * C }, (_, c) => d[c * S * S]);
}

Deno.test("classifier-free guidance: the official mode guides 3 channels, the all mode every ε channel", async () => {
  const s = 4;
  const g = (c: number) => (10 + c) + s * ((1 + c) - (10 + c)); // uncond + s (cond − uncond)
  assertEquals(await guided("official", s), [g(0), g(1), g(2), 1 + 3, 1 + 4, 1 + 5, 1 + 6, 1 + 7]);
  assertEquals(await guided("all", s), [g(0), g(1), g(2), g(3), 1 + 4, 1 + 5, 1 + 6, 1 + 7]);
  // scale 1 runs the conditional model alone
  assertEquals(await guided("official", 1), [1, 2, 3, 4, 5, 6, 7, 8]);
});

Deno.test("weak guide: the guide model runs the unconditional half (null labels), the model the conditional", async () => {
  // Every output row of a constant model is base + channel; `seen` records each call's batch and labels.
  const seen: string[] = [];
  const constant = (base: number, name: string) => ({
    inChannels: C,
    learnSigma: true,
    forward: (x: Tensor, _t: Tensor, y: Tensor): Tensor => {
      seen.push(`${name} ${x.shape[0]} ${y.shape[0]}`);
      const B = x.shape[0];
      const v = Float32Array.from(
        { length: B * 2 * C * S * S },
        (_, i) => base + Math.floor(i / (S * S)) % (2 * C),
      );
      return tensor(v, [B, 2 * C, S, S]);
    },
  });
  const s = 3;
  const den = withWeakGuide(constant(1, "model"), constant(20, "guide"));
  const d = await guidedValues(den, "all", s);
  const g = (c: number) => (20 + c) + s * ((1 + c) - (20 + c)); // guide + s (model − guide)
  for (let n = 0; n < N; n++) {
    const row = Array.from({ length: 2 * C }, (_, c) => d[(n * 2 * C + c) * S * S]);
    assertEquals(row, [g(0), g(1), g(2), g(3), 5, 6, 7, 8]); // the variance channels from the model
  }
  assertEquals(seen, [`model ${N} ${N}`, `guide ${N} ${N}`]);
  // the halves get the batch's halves: the model the labels, the guide the null labels
  const halves: Promise<ArrayLike<number>>[] = [];
  const spy = (name: string) => ({
    ...constant(0, name),
    forward: (x: Tensor, _t: Tensor, y: Tensor) => {
      halves.push(y.read());
      return tensor(new Float32Array(x.shape[0] * 2 * C * S * S), [x.shape[0], 2 * C, S, S]);
    },
  });
  tidy(() => {
    withWeakGuide(spy("model"), spy("guide")).forward(
      tensor(new Float32Array(2 * N * C * S * S), [2 * N, C, S, S]),
      tensor(new Float32Array(2 * N * 256), [2 * N, 256]),
      tensor(new Uint32Array([0, 1, 5, 5]), [2 * N], "u32"),
    );
  });
  assertEquals((await Promise.all(halves)).map((h) => Array.from(h)), [[0, 1], [5, 5]]);
  assertThrows(() => withWeakGuide(spy("a"), { ...spy("b"), learnSigma: false }));
});

Deno.test("SiT: a tiny model trained with the velocity loss samples one class's latents with Heun steps", async () => {
  const per = 4 * 8 * 8;
  const x = new Float32Array(16 * per);
  for (let k = 0; k < 16; k++) {
    for (let i = 0; i < per; i++) {
      x[k * per + i] = 0.9 * Math.sin(i * 0.37) * Math.cos(i * 0.11) + 0.02 * Math.sin(k + i);
    }
  }
  const data: TrainData = { x, y: new Uint32Array(16), shape: [4, 8, 8], count: 16, numClasses: 1 };
  const cfg = customConfig({
    inputSize: 8,
    patchSize: 2,
    inChannels: 4,
    hiddenSize: 32,
    depth: 2,
    numHeads: 2,
    numClasses: 1,
    classDropoutProb: 0,
    learnSigma: false,
  });
  const res = await trainDiT(data, {
    model: cfg,
    objective: "sit",
    steps: 300,
    batch_size: 16,
    lr: 2e-3,
    ema_decay: 0.95,
    seed: 1,
    ckpt_every: 0,
  });
  const first = res.losses[0].loss;
  const last = res.losses.slice(-30).reduce((a, l) => a + l.loss, 0) / 30;
  assert(last < 0.5 * first, `SiT loss ${last.toFixed(4)} did not halve from ${first.toFixed(4)}`);
  const out = await sampleModel(res.model, new Uint32Array(4), {
    sampler: "heun",
    steps: 20,
    seed: 3,
    objective: "sit",
  });
  res.model.dispose();
  let d = 0;
  for (let n = 0; n < 4; n++) {
    let s2 = 0;
    for (let i = 0; i < per; i++) s2 += (out[n * per + i] - x[i]) ** 2;
    d += Math.sqrt(s2 / per) / 4;
  }
  assert(d < 0.3, `SiT samples are ${d.toFixed(3)} (rms) from the latents; bound 0.3`);
});

Deno.test("guidance interval: [0, 1] is every step, an interval holding no step is no guidance, others differ", async () => {
  const { DiT } = await import("../../lib/models/dit.ts");
  const { initRngFor } = await import("../../lib/train/init_rng.ts");
  const cfg = customConfig({
    inputSize: 4,
    patchSize: 2,
    inChannels: 4,
    hiddenSize: 16,
    depth: 1,
    numHeads: 2,
    numClasses: 3,
    learnSigma: false,
  });
  // The init weights with the zero-initialised adaLN and output layers perturbed, so the label matters.
  const init = DiT.init(cfg, initRngFor(7));
  const state = await init.stateDict();
  init.dispose();
  for (const [name, h] of state) {
    if (name.includes("adaLN") || name.startsWith("final_layer")) {
      h.data = h.data.map((_, i) => 0.05 * Math.sin(i * 1.3 + name.length));
    }
  }
  const model = DiT.fromHost(cfg, state);
  const labels = Uint32Array.from([0, 1, 2]);
  const run = async (cfgScale: number, cfgInterval?: [number, number]) =>
    await sampleModel(model, labels, {
      sampler: "euler",
      steps: 10,
      seed: 5,
      objective: "sit",
      cfg_scale: cfgScale,
      cfg_interval: cfgInterval,
    });
  const full = await run(4);
  const none = await run(1);
  assertEquals(await run(4, [0, 1]), full);
  assertEquals(await run(4, [0.95, 1]), none); // positions 0, 0.1, …, 0.9: none in [0.95, 1)
  const late = await run(4, [0.5, 1]);
  assert(
    late.some((v, i) => v !== full[i]) && late.some((v, i) => v !== none[i]),
    "a partial interval differs",
  );
  model.dispose();
});
