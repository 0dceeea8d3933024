/**
 * The VAE stages: `train-vae` (trainer: loss falls, PSNR beats the untrained model, exact resume),
 * `encode` (shape, scale, metadata, flipped copies) and `decode` (decode(encode(x)) ≈ x better than an
 * untrained VAE), run end to end through the engine on 64 MNIST digits resized to 16×16 with a tiny VAE.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { runIn, Sandbox } from "../pipeline/helpers.ts";
import "../../lib/stages/mod.ts";
import { loadMnist } from "../../lib/data/mnist.ts";
import { readDataArtifact, writeDataArtifact } from "../../lib/data/artifact.ts";
import { defineKind } from "../../lib/pipeline/stage.ts";
import { registerKind } from "../../lib/pipeline/registry.ts";
import { AutoencoderKL, type AutoencoderKLConfig } from "../../lib/models/autoencoder_kl.ts";
import { trainVae, type VaeTrainOptions } from "../../lib/train/vae_trainer.ts";
import { readVaeFile } from "../../lib/models/vae_file.ts";
import { reconstruct } from "../../lib/models/vae_inference.ts";
import { psnr } from "../../lib/metrics/psnr.ts";
import { initRngFor } from "../../lib/train/init_rng.ts";
import { decodeLatents, resolveVae } from "../../lib/stages/decode.ts";
import { flipImages } from "../../lib/stages/encode.ts";
import { assertSameBits } from "../helpers/bits.ts";

await gpu();

const TINY: AutoencoderKLConfig = {
  name: "vae-tiny",
  inChannels: 1,
  outChannels: 1,
  blockOutChannels: [8, 16],
  layersPerBlock: 1,
  latentChannels: 4,
  normNumGroups: 4,
  scalingFactor: 1,
};

const digits = await loadMnist({ limit: 64, size: 16, layout: "resize" });
const PER = 16 * 16;

/** A test kind: the 64 digits at 16×16 (the `mnist` kind starts at 28 pixels). */
registerKind(defineKind({
  name: "vae-test-digits",
  module: import.meta.url,
  gpu: false,
  params: {},
  inputs: {},
  outputs: { dataset: {} },
  async run(ctx) {
    await writeDataArtifact(ctx.outputs.dataset, {
      x: digits.images,
      y: digits.labels,
      shape: digits.shape,
      count: digits.count,
      numClasses: digits.numClasses,
      classNames: [...digits.classNames],
      space: "pixels",
      info: { dataset: "mnist", size: 16, limit: 64 },
    });
  },
}));

function opts(o: Partial<VaeTrainOptions> = {}): VaeTrainOptions {
  return {
    config: TINY,
    steps: 4,
    batch_size: 4,
    lr: 2e-3,
    weight_decay: 0,
    betas: [0.5, 0.9],
    kl_weight: 1e-6,
    rec_loss: "mse",
    seed: 5,
    ckpt_every: 0,
    log_every: 1000,
    ...o,
  };
}

async function weights(model: AutoencoderKL): Promise<Float32Array[]> {
  return [...(await model.stateDict()).values()].map((h) => h.data);
}

Deno.test("train-vae: a run stopped at step k and resumed is bit-identical to an uninterrupted run", async () => {
  const data = {
    x: digits.images.subarray(0, 16 * PER),
    shape: [1, 16, 16] as [number, number, number],
    count: 16,
  };
  const full = await trainVae(data, opts({ steps: 2, batch_size: 2, rec_loss: "l1" }));
  const wFull = await weights(full.model);
  full.model.dispose();
  const dir = await Deno.makeTempDir();
  try {
    const part = await trainVae(
      data,
      opts({ steps: 1, batch_size: 2, rec_loss: "l1", ckptDir: dir, ckpt_every: 1 }),
    );
    part.model.dispose();
    const resumed = await trainVae(
      data,
      opts({ steps: 2, batch_size: 2, rec_loss: "l1", ckptDir: dir, ckpt_every: 1 }),
    );
    assertEquals(resumed.resumedFrom, 1);
    assertEquals(resumed.losses.map((l) => l.loss), full.losses.map((l) => l.loss));
    const w = await weights(resumed.model);
    resumed.model.dispose();
    assertSameBits(w, wFull, "resumed and uninterrupted weights");
    // A checkpoint of another config is refused with a clear message.
    await assertRejects(
      () => trainVae(data, opts({ steps: 2, ckptDir: dir, config: { ...TINY, latentChannels: 2 } })),
      "another VAE config",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train-vae ema_decay: the trained VAE is the EMA of the raw weights along the run (with warm-up)", async () => {
  const data = {
    x: digits.images.subarray(0, 16 * PER),
    shape: [1, 16, 16] as [number, number, number],
    count: 16,
  };
  // The raw weights after 0 (init), 1, 2 and 3 steps: the EMA does not change the trajectory.
  const init = AutoencoderKL.init(TINY, initRngFor(5));
  const raw = [await weights(init)];
  init.dispose();
  for (const steps of [1, 2, 3]) {
    const r = await trainVae(data, opts({ steps, batch_size: 2 }));
    raw.push(await weights(r.model));
    r.model.dispose();
  }
  const withEma = await trainVae(data, opts({ steps: 3, batch_size: 2, ema_decay: 0.9 }));
  const got = await weights(withEma.model);
  withEma.model.dispose();
  // ema ← ema·d + (1 − d)·w, d = min(0.9, (1 + t) / (10 + t)) at update t, starting from the init.
  const want = raw[0].map((w) => Float64Array.from(w));
  for (let t = 0; t < 3; t++) {
    const d = Math.min(0.9, (1 + t) / (10 + t));
    want.forEach((e, k) => e.forEach((v, i) => e[i] = v * d + (1 - d) * raw[t + 1][k][i]));
  }
  let worst = 0;
  want.forEach((e, k) => e.forEach((v, i) => worst = Math.max(worst, Math.abs(got[k][i] - v))));
  assert(worst < 1e-6, `EMA weights off by ${worst}`);
  // and it is not the raw weights
  assert(got.some((w, k) => w.some((v, i) => v !== raw[3][k][i])), "the EMA equals the raw weights");
});

Deno.test("encode/decode: a missing VAE names the expected file and where", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejects(
      () => resolveVae(undefined, dir),
      `${dir}/vae.safetensors`,
      "diffusion_pytorch_model",
    );
    await assertRejects(() => resolveVae({ dir, stage: "vae" }, undefined), `${dir}/vae.safetensors`, "vae");
    await assertRejects(() => resolveVae(undefined, undefined), "vae_path");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("flipImages mirrors every row", () => {
  const x = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
  const f = flipImages(x, [1, 3, 4], 2);
  assertEquals([...f.subarray(0, 4)], [3, 2, 1, 0]);
  assertEquals([...f.subarray(20, 24)], [23, 22, 21, 20]);
});

Deno.test("mnist → train-vae → encode → decode through the engine: loss falls, PSNR and round trip beat untrained", async () => {
  using sb = new Sandbox();
  const file = sb.write(
    "vae.yaml",
    `name: vae-test
stages:
  digits:
    uses: vae-test-digits
  vae:
    uses: train-vae
    inputs: { data: digits.dataset }
    seed: 1
    with:
      block_out_channels: [8, 16]
      layers_per_block: 1
      norm_num_groups: 4
      steps: 16
      batch_size: 8
      lr: 0.003
      holdout: 16
      ckpt_every: 8
      log_every: 8
  enc:
    uses: encode
    inputs: { data: digits.dataset, vae: vae.vae }
    with: { flip: true, batch_size: 32 }
  dec:
    uses: decode
    inputs: { samples: enc.latents, vae: vae.vae }
`,
  );
  const res = await runIn(sb, file);
  const failed = res.report.stages.filter((s) => s.result === "failed");
  assertEquals(failed.map((s) => `${s.name}: ${s.error}`), []);
  const stage = (n: string) => res.report.stages.find((s) => s.name === n)!;
  const out = (n: string, o: string) => sb.store.outputDir(stage(n).key!, o);

  // train-vae: loss falls, PSNR on held-out digits beats the untrained model's.
  const vaeDir = out("vae", "vae");
  const csv = (await Deno.readTextFile(`${vaeDir}/loss.csv`)).trim().split("\n").slice(1);
  assertEquals(csv.length, 16);
  const losses = csv.map((l) => Number(l.split(",")[1]));
  const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  assert(avg(losses.slice(-5)) < 0.6 * avg(losses.slice(0, 5)), `loss did not fall: ${losses.join(" ")}`);
  for (const f of ["vae.safetensors", "recon.png", "loss.csv"]) await Deno.stat(`${vaeDir}/${f}`);
  const m = stage("vae").metrics!;
  const held = digits.images.subarray(48 * PER, 64 * PER);
  const vae = await readVaeFile(`${vaeDir}/vae.safetensors`);
  assertEquals(vae.inferred, false);
  assertEquals(vae.metadata.scale_factor_source.startsWith("auto"), true);
  const cfg = { ...vae.cfg, scalingFactor: 1 };
  const untrained = AutoencoderKL.init(cfg, initRngFor(1));
  const untrainedPsnr = psnr(held, await reconstruct(untrained, held, [1, 16, 16], 16), PER);
  assert(
    (m.psnr as number) > untrainedPsnr + 3,
    `PSNR ${m.psnr} dB is not clearly above the untrained ${untrainedPsnr} dB`,
  );
  assertEquals(m.scale_factor, vae.cfg.scalingFactor);

  // encode: [4, 8, 8] latents, flipped copies appended, scale and provenance in the metadata.
  const lat = await readDataArtifact(out("enc", "latents"));
  assertEquals(lat.space, "latents");
  assertEquals(lat.shape, [4, 8, 8]);
  assertEquals(lat.count, 128);
  assertEquals([...lat.y.subarray(64)], [...digits.labels]);
  assertEquals(lat.info.scale_factor, vae.cfg.scalingFactor);
  assertEquals(lat.info.flip, true);
  assertEquals(lat.info.posterior, "mean");
  assertEquals(lat.info.vae_key, stage("vae").key);
  assert(String(lat.info.flip_note).includes("frozen"), "the flip note is missing");
  const std = stage("enc").metrics!.latent_std as number;
  assert(std > 0.6 && std < 1.6, `scaled latents have std ${std}, expected about 1`);

  // decode: decode(encode(x)) ≈ x, better than an untrained VAE's round trip.
  const dec = await readDataArtifact(out("dec", "images"));
  assertEquals(dec.space, "pixels");
  assertEquals(dec.shape, [1, 16, 16]);
  assertEquals(dec.count, 128);
  await Deno.stat(`${out("dec", "images")}/grid.png`);
  const rt = psnr(digits.images, dec.x.subarray(0, 64 * PER), PER);
  const direct = await decodeLatents(
    vaeDir,
    lat.x.subarray(0, 64 * PER),
    [64, 4, 8, 8],
    vae.cfg.scalingFactor,
  );
  assertSameBits(direct.images, dec.x.subarray(0, 64 * PER), "decodeLatents and the decode stage");
  const untrainedRt = psnr(digits.images, await reconstruct(untrained, digits.images, [1, 16, 16], 64), PER);
  untrained.dispose();
  assert(
    rt > untrainedRt + 3,
    `round-trip PSNR ${rt} dB is not clearly above the untrained ${untrainedRt} dB`,
  );
  // The flipped half decodes to flipped digits.
  const flipRt = psnr(flipImages(digits.images, [1, 16, 16], 64), dec.x.subarray(64 * PER), PER);
  assert(flipRt > untrainedRt + 3, `flipped round-trip PSNR ${flipRt} dB`);
});
