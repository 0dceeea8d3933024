/**
 * Digests of the three trainers on tiny synthetic data, to show that a refactor keeps training
 * bit-identical: DiT (ddpm and sit, 20 steps with checkpoints every 7, and the same run stopped at 10 and
 * resumed), VAE (10 steps) and LeNet (2 epochs). Prints sha-256 prefixes of the raw weights, EMA, loss logs
 * and checkpoint files; run it before and after a change (same adapter) and diff the output.
 *
 *   deno run -A tools/train_digests.ts
 * @module
 */
import { createHash } from "node:crypto";
import { customConfig } from "../lib/models/config.ts";
import { trainDiT as train } from "../lib/train/dit_trainer.ts";
import { trainVae } from "../lib/train/vae_trainer.ts";
import { trainLeNet } from "../lib/stages/train_classifier.ts";

const sha = (parts: Iterable<Float32Array | Uint8Array | string>) => {
  const h = createHash("sha256");
  for (const p of parts) {
    h.update(typeof p === "string" ? p : new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  }
  return h.digest("hex").slice(0, 16);
};
const state = async (m: { stateDict(): Promise<Map<string, { data: Float32Array }>> }) =>
  [...(await m.stateDict()).entries()].flatMap(([k, v]) => [k, v.data]);

function data(n: number, C: number, S: number, classes: number) {
  const per = C * S * S;
  const x = new Float32Array(n * per).map((_, i) => 0.8 * Math.sin(i * 0.37 + Math.cos(i * 0.011)));
  const y = Uint32Array.from({ length: n }, (_, i) => i % classes);
  return { x, y, shape: [C, S, S] as [number, number, number], count: n, numClasses: classes };
}
const tiny = customConfig({
  inputSize: 8,
  patchSize: 2,
  inChannels: 4,
  hiddenSize: 32,
  depth: 2,
  numHeads: 2,
  numClasses: 2,
});
const d = data(16, 4, 8, 2);
const base = {
  model: tiny,
  batch_size: 4,
  lr: 1e-3,
  weight_decay: 0.01,
  betas: [0.9, 0.999] as [number, number],
  ema_decay: 0.9,
  flip: true,
  seed: 3,
  log_every: 1000,
};
const out: Record<string, string> = {};
for (const objective of ["ddpm", "sit"] as const) {
  const dir = await Deno.makeTempDir();
  const r = await train(d, { ...base, objective, steps: 20, ckpt_every: 7, ckptDir: dir });
  out[`dit-${objective} raw`] = sha(await state(r.model));
  out[`dit-${objective} ema`] = sha([...r.ema.entries()].flatMap(([k, v]) => [k, v.data]));
  out[`dit-${objective} losses`] = sha([JSON.stringify(r.losses)]);
  out[`dit-${objective} ckpt file`] = sha([await Deno.readFile(`${dir}/checkpoint.safetensors`)]);
  r.model.dispose();
  // resumed: 10 steps, then on to 20
  const dir2 = await Deno.makeTempDir();
  (await train(d, { ...base, objective, steps: 10, ckpt_every: 7, ckptDir: dir2 })).model.dispose();
  const r2 = await train(d, { ...base, objective, steps: 20, ckpt_every: 7, ckptDir: dir2 });
  out[`dit-${objective} resumed raw`] = sha(await state(r2.model));
  r2.model.dispose();
}
{
  const dv = data(12, 1, 16, 1);
  const cfg = {
    name: "vae-tiny",
    inChannels: 1,
    outChannels: 1,
    blockOutChannels: [8, 16],
    layersPerBlock: 1,
    latentChannels: 4,
    normNumGroups: 4,
    scalingFactor: 1,
  };
  const dir = await Deno.makeTempDir();
  const r = await trainVae({ x: dv.x, shape: dv.shape, count: dv.count }, {
    config: cfg,
    steps: 10,
    batch_size: 3,
    lr: 2e-3,
    weight_decay: 0,
    betas: [0.5, 0.9],
    kl_weight: 1e-3,
    rec_loss: "mse",
    seed: 5,
    ckpt_every: 4,
    ckptDir: dir,
    log_every: 1000,
  });
  out["vae raw"] = sha(await state(r.model));
  out["vae losses"] = sha([JSON.stringify(r.losses)]);
  out["vae ckpt file"] = sha([await Deno.readFile(`${dir}/vae_checkpoint.safetensors`)]);
  r.model.dispose();
}
{
  const dl = data(40, 1, 16, 4);
  const r = await trainLeNet(dl, {
    epochs: 2,
    batch_size: 8,
    lr: 2e-3,
    weight_decay: 1e-4,
    shift: 1,
    c1: 4,
    c2: 8,
    seed: 2,
  });
  out["lenet weights"] = sha([...r.net.params.entries()].flatMap(([k]) => [k])) + "/" +
    sha(await Promise.all([...r.net.params.values()].map((t) => t.data())));
  out["lenet epoch losses"] = sha([JSON.stringify(r.epochLosses)]);
  r.net.dispose();
}
for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(24)} ${v}`);
