/**
 * Cross-sampling for the PyTorch twin (tools/twin_mnist.py): samples a DiT weight file with ditflow's own
 * sampler (`sampleModel` of lib/stages/sample.ts, exactly as the main job's `sample` stage calls it) and
 * writes the samples as a latents dataset artifact for tools/twin_eval.ts. Given the twin's EMA weights
 * (converted by tools/convert_dit_checkpoint.py), it separates ditflow's sampling path from its training
 * path: the same weights sampled by PyTorch and by ditflow must score alike.
 *
 *   /usr/bin/python3 tools/convert_dit_checkpoint.py /tmp/twin/ddpm_lr2e-3_s0/ema.pt /tmp/x.safetensors --heads 4
 *   deno run -A tools/twin_crosscheck.ts --weights /tmp/x.safetensors --objective ddpm --out DIR
 *
 * Defaults as the main job: 300 samples (labels 0..9 cycling) in one batch, DDIM-50 (ddpm) or Heun-50 (sit),
 * guidance 3 on all channels, seed 0 (the stage's batch seed, seed·1000003 + batch). Also writes the
 * starting noise (`noise.safetensors`), so that PyTorch can sample the same weights from the same x_T:
 *
 *   /usr/bin/python3 tools/twin_mnist.py --latents L --objective ddpm --sample-from /tmp/x.safetensors \
 *     --noise-from DIR/noise.safetensors --out DIR_torch
 * @module
 */

import { parseArgs } from "node:util";
import { readModelFile } from "../lib/models/checkpoint.ts";
import { DiT } from "../lib/models/dit.ts";
import { sampleModel } from "../lib/stages/sample.ts";
import { writeDataArtifact } from "../lib/data/artifact.ts";
import { getRuntime } from "../lib/gpu/runtime.ts";
import { Generator } from "../lib/tensor/rng.ts";
import { writeSafetensors } from "../lib/io/safetensors.ts";

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      weights: { type: "string" },
      objective: { type: "string", default: "ddpm" },
      out: { type: "string" },
      samples: { type: "string", default: "300" },
      steps: { type: "string", default: "50" },
      cfg: { type: "string", default: "3" },
      seed: { type: "string", default: "0" },
    },
    strict: true,
  });
  if (!a.weights || !a.out || (a.objective !== "ddpm" && a.objective !== "sit")) {
    console.error(
      "usage: deno run -A tools/twin_crosscheck.ts --weights FILE.safetensors --objective ddpm|sit --out DIR " +
        "[--samples 300] [--steps 50] [--cfg 3] [--seed 0]",
    );
    Deno.exit(2);
  }
  const objective = a.objective as "ddpm" | "sit";
  const { cfg, state } = await readModelFile(a.weights);
  await getRuntime();
  const model = DiT.fromHost(cfg, state);
  const n = Number(a.samples);
  const labels = Uint32Array.from({ length: n }, (_, i) => i % cfg.numClasses);
  const sampler = objective === "ddpm" ? "ddim" : "heun";
  const seed = Number(a.seed);
  // The starting noise of sampleModel (its generator's first draw), saved so that
  // `twin_mnist.py --sample-from W --noise-from OUT/noise.safetensors` starts PyTorch from the same x_T.
  const shape = [n, cfg.inChannels, cfg.inputSize, cfg.inputSize];
  const z = new Generator(seed * 1_000_003).normal(shape);
  const noise = await z.data();
  z.dispose();
  const t0 = performance.now();
  const x = await sampleModel(model, labels, {
    sampler,
    steps: Number(a.steps),
    eta: 0,
    seed: seed * 1_000_003,
    objective,
    cfg_scale: Number(a.cfg),
    cfg_mode: "all",
    clip_denoised: "false",
  });
  model.dispose();
  const seconds = (performance.now() - t0) / 1000;
  await Deno.mkdir(a.out, { recursive: true });
  await writeDataArtifact(a.out, {
    x,
    y: labels,
    shape: [cfg.inChannels, cfg.inputSize, cfg.inputSize],
    count: n,
    numClasses: cfg.numClasses,
    classNames: Array.from({ length: cfg.numClasses }, (_, i) => String(i)),
    space: "latents",
    info: {
      sampled_by: "ditflow (tools/twin_crosscheck.ts)",
      weights: a.weights,
      objective,
      sampler,
      steps: Number(a.steps),
      cfg_scale: Number(a.cfg),
      cfg_mode: "all",
    },
  });
  await writeSafetensors(`${a.out}/noise.safetensors`, { noise: { dtype: "F32", shape, data: noise } });
  console.log(JSON.stringify({ out: a.out, samples: n, sampler, seconds }));
}
