/**
 * Every backbone with both objectives: U-ViT, DiT + long skips and MDT train (DDPM and SiT), resume
 * bit-identically (MDT's masks come from the training Philox stream, so its resume covers them), and
 * sample through the same code as the DiT (the SiT ODE and DDIM; MDT without masks).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { customConfig, type DiTConfig } from "../../lib/models/config.ts";
import { type DiTTrainOptions, type TrainData, trainDiT as train } from "../../lib/train/dit_trainer.ts";
import type { Backbone } from "../../lib/models/arch.ts";
import { UViT } from "../../lib/models/uvit.ts";
import { DiT } from "../../lib/models/dit.ts";
import { MDT } from "../../lib/models/mdt.ts";
import { drawMask } from "../../lib/train/dit_trainer.ts";
import { Generator } from "../../lib/tensor/rng.ts";
import { sampleModel } from "../../lib/stages/sample.ts";
import { modelConfigFromParams } from "../../lib/stages/train.ts";
import { assertSameBits } from "../helpers/bits.ts";

await gpu();

function data(n: number): TrainData {
  const per = 4 * 8 * 8;
  const x = new Float32Array(n * per).map((_, i) => 0.8 * Math.sin(i * 0.37 + Math.cos(i * 0.011)));
  const y = Uint32Array.from({ length: n }, (_, i) => i % 2);
  return { x, y, shape: [4, 8, 8], count: n, numClasses: 2 };
}

const base = {
  inputSize: 8,
  patchSize: 2,
  inChannels: 4,
  hiddenSize: 32,
  depth: 2,
  numHeads: 2,
  numClasses: 2,
};
const CONFIGS: Record<string, DiTConfig> = {
  uvit: customConfig({ ...base, learnSigma: false, arch: "uvit" }),
  skips: customConfig({ ...base, depth: 3, learnSigma: false, skips: true }),
  mdt: customConfig({ ...base, depth: 3, learnSigma: false, arch: "mdt", decodeLayers: 1 }),
};

function opts(model: DiTConfig, o: Partial<DiTTrainOptions> = {}): DiTTrainOptions {
  return {
    model,
    steps: 4,
    batch_size: 4,
    lr: 1e-3,
    ema_decay: 0.9,
    seed: 5,
    ckpt_every: 0,
    log_every: 1000,
    ...o,
  };
}

async function weights(model: Backbone): Promise<Float32Array[]> {
  return [...(await model.stateDict()).values()].map((h) => h.data);
}

for (const [name, cfg] of Object.entries(CONFIGS)) {
  for (const objective of ["ddpm", "sit"] as const) {
    Deno.test(`${name} (${objective}): trains, resumes bit-identically, samples`, async () => {
      const d = data(8);
      const full = await train(d, opts(cfg, { objective }));
      assert(full.model instanceof (name === "uvit" ? UViT : name === "mdt" ? MDT : DiT), "backbone class");
      assert(full.losses.every((l) => Number.isFinite(l.loss)), "finite losses");
      const wFull = await weights(full.model);
      const dir = await Deno.makeTempDir();
      try {
        (await train(d, opts(cfg, { objective, steps: 2, ckpt_every: 2, ckptDir: dir }))).model.dispose();
        const resumed = await train(d, opts(cfg, { objective, ckpt_every: 2, ckptDir: dir }));
        assertEquals(resumed.resumedFrom, 2);
        assertSameBits(await weights(resumed.model), wFull, `${name} ${objective} resumed`);
        resumed.model.dispose();
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
      const x = await sampleModel(full.model, Uint32Array.from([0, 1]), {
        sampler: objective === "sit" ? "heun" : "ddim",
        steps: 2,
        seed: 1,
        objective,
        cfg_scale: 2,
      });
      assertEquals(x.length, 2 * 4 * 8 * 8);
      assert(x.every(Number.isFinite), "finite samples");
      full.model.dispose();
    });
  }
}

Deno.test("train stage params: arch and skips build the configs and names; skips is DiT-only", () => {
  const p = {
    model: "DiT-B/2",
    family: "mini",
    block: "adaLN-Zero",
    learn_sigma: true,
    class_dropout: 0.1,
  } as Parameters<typeof modelConfigFromParams>[0];
  const shape = { shape: [4, 8, 8] as [number, number, number], numClasses: 10 };
  const u = modelConfigFromParams({ ...p, arch: "uvit" }, shape);
  assertEquals([u.name, u.arch, u.learnSigma], ["U-ViT-B/2-mini", "uvit", false]);
  const s = modelConfigFromParams({ ...p, skips: true }, shape);
  assertEquals([s.name, s.skips, s.arch], ["DiT-B/2-mini+skips", true, undefined]);
  const plain = modelConfigFromParams(p, shape);
  assertEquals("arch" in plain || "skips" in plain, false); // a DiT's config (and checkpoints) unchanged
  let msg = "";
  try {
    modelConfigFromParams({ ...p, arch: "uvit", skips: true }, shape);
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("skips is a DiT option"), msg);
});

Deno.test("MDT masks: drawn from the Philox stream (same state, same mask), ratio in [r, r + 0.2]", () => {
  const a = drawMask(new Generator(9), 4, 16, 0.3);
  const b = drawMask(new Generator(9), 4, 16, 0.3);
  assertEquals([...a.idsKeep], [...b.idsKeep]);
  assert(a.keep >= Math.floor(16 * 0.5) && a.keep <= Math.floor(16 * 0.7), `keep ${a.keep}`);
  for (let n = 0; n < 4; n++) {
    const masked = a.mask.subarray(n * 16, (n + 1) * 16).reduce((s, v) => s + v, 0);
    assertEquals(masked, 16 - a.keep);
    for (let k = 0; k < a.keep; k++) assertEquals(a.mask[n * 16 + a.idsKeep[n * a.keep + k]], 0);
  }
  const c = drawMask(new Generator(10), 4, 16, 0.3);
  assert([...c.idsKeep].join() !== [...a.idsKeep].join(), "another seed, same mask");
});
