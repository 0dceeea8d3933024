/**
 * One DDPM training step of ditflow on a given batch, for tools/twin_step_check.py: reads the weights (a
 * DiT model file) and the batch (`x0`, `y`, `t`, `noise`), runs `trainingLosses` (lib/diffusion/gaussian.ts,
 * as the trainer calls it: the full 1000-step schedule) and `backward`, and writes the per-sample `mse` and
 * `vb`, the `loss`, and every trainable parameter's gradient (`grad.NAME`) as safetensors.
 *
 *   deno run -A tools/twin_step_check.ts WEIGHTS.safetensors BATCH.safetensors OUT.safetensors
 * @module
 */

import { readModelFile } from "../lib/models/checkpoint.ts";
import { DiT } from "../lib/models/dit.ts";
import { createSchedule } from "../lib/diffusion/schedule.ts";
import { trainingLosses } from "../lib/diffusion/gaussian.ts";
import { backward } from "../lib/tensor/backward.ts";
import { tensor, tidy } from "../lib/tensor/tensor.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../lib/io/safetensors.ts";
import { getRuntime } from "../lib/gpu/runtime.ts";

if (import.meta.main) {
  const [weights, batchFile, outFile] = Deno.args;
  if (!outFile) {
    console.error(
      "usage: deno run -A tools/twin_step_check.ts WEIGHTS.safetensors BATCH.safetensors OUT.safetensors",
    );
    Deno.exit(2);
  }
  const { cfg, state } = await readModelFile(weights);
  await getRuntime();
  const model = DiT.fromHost(cfg, state);
  const b = await readSafetensors(batchFile);
  const shape = [...b.info("x0").shape];
  const N = shape[0];
  const t = Array.from(b.get("t") as Int32Array);
  const denoiser = {
    inChannels: cfg.inChannels,
    learnSigma: cfg.learnSigma,
    forward: model.forward.bind(model),
  };
  const res = tidy(() => {
    const r = trainingLosses(
      denoiser,
      createSchedule(""),
      tensor(b.getF32("x0"), shape),
      t,
      tensor(Uint32Array.from(b.get("y") as Int32Array), [N], "u32"),
      tensor(b.getF32("noise"), shape),
    );
    backward(r.loss);
    return { loss: r.loss, mse: r.mse, vb: r.vb! };
  });
  const out: Record<string, TensorInput> = {
    loss: { dtype: "F32", shape: [1], data: Float32Array.of(await res.loss.item()) },
    mse: { dtype: "F32", shape: [N], data: await res.mse.data() },
    vb: { dtype: "F32", shape: [N], data: await res.vb.data() },
  };
  for (const s of model.specs) {
    const p = model.params.get(s.name)!;
    if (s.trainable && p.grad) {
      out[`grad.${s.name}`] = { dtype: "F32", shape: [...s.shape], data: await p.grad.data() };
    }
  }
  await writeSafetensors(outFile, out);
  model.dispose();
}
