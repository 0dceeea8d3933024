/**
 * Cheap stage kinds that write what the real ones do, in milliseconds: a dataset, a "train" with a
 * `loss.csv` (step,loss), a "sample" with a `grid.png`, and an "fid" with `fid` / `class_accuracy` metrics. The
 * UI tests run a small pipeline of them through the real engine, so the cache has the store's real format.
 * The fid stand-in records the metric names of the real `fid` kind (`fid`, `fid_low`, `fid_high`,
 * `class_accuracy` with its interval, precision, recall).
 * @module
 */

import { defineKind } from "../../lib/pipeline/stage.ts";
import { registerKind } from "../../lib/pipeline/registry.ts";
import { encodePng } from "../../lib/data/png.ts";

function reg<T extends { name: string }>(k: T): T {
  registerKind(k as unknown as Parameters<typeof registerKind>[0], { replace: true });
  return k;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

/** A dataset stand-in. */
export const uiData = reg(defineKind({
  name: "ui_data",
  module: import.meta.url,
  gpu: false,
  params: { size: { type: "int", default: 8 } },
  inputs: {},
  outputs: { dataset: {} },
  async run(ctx) {
    await Deno.writeTextFile(`${ctx.outputs.dataset}/data.txt`, String(ctx.params.size));
    ctx.metrics({ count: 100 * ctx.params.size, num_classes: 10 });
  },
}));

/** A training stand-in: a decaying noisy loss curve in loss.csv; `step_ms` slows it down (live progress). */
export const uiTrain = reg(defineKind({
  name: "ui_train",
  module: import.meta.url,
  gpu: false,
  params: {
    model: { type: "enum", values: ["DiT-S/2", "DiT-B/2"], default: "DiT-S/2" },
    lr: { type: "number", default: 1e-3 },
    steps: { type: "int", default: 100, min: 0 },
    log_every: { type: "int", default: 2, min: 1 },
    step_ms: { type: "int", default: 0 },
  },
  inputs: { data: {} },
  outputs: { model: {} },
  headline: ["final_loss"],
  async run(ctx) {
    const p = ctx.params;
    const rows = ["step,loss,mse,vb"];
    const losses: number[] = [];
    let s = ctx.seed * 7919 + 17;
    const rand = () => ((s = (s * 16807) % 2147483647) / 2147483647);
    const size = Number(await Deno.readTextFile(`${ctx.inputs.data.dir}/data.txt`));
    const speed = p.lr * 1000 * (p.model === "DiT-B/2" ? 1.5 : 1) * (size / 8);
    for (let step = 1; step <= p.steps; step++) {
      if (p.step_ms) await sleep(p.step_ms, ctx.signal);
      const loss = 0.08 + 0.9 * Math.exp(-step * speed / 40) * (1 + 0.3 * (rand() - 0.5));
      if (step % p.log_every === 0 || step === 1) {
        rows.push(`${step},${loss},${loss * 0.98},`);
        losses.push(loss);
      }
      ctx.progress({ step, total: p.steps, loss });
    }
    await Deno.writeTextFile(`${ctx.outputs.model}/loss.csv`, rows.join("\n") + "\n");
    await Deno.writeTextFile(`${ctx.outputs.model}/model.safetensors`, "weights");
    const tail = losses.slice(-Math.max(1, Math.floor(losses.length / 10)));
    const gflops = p.model === "DiT-B/2" ? 0.0155 : 0.0039;
    ctx.metrics({
      final_loss: tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : null,
      params: p.model === "DiT-B/2" ? 1_578_000 : 394_592,
      gflops,
      train_gflops: gflops * p.steps * 64 * 3,
      train_seconds: p.steps * 0.3,
      model: p.model,
    });
  },
}));

/** A sampling stand-in: a colourful 4×4 grid of 16×16 tiles (its colours depend on the model's loss). */
export const uiSample = reg(defineKind({
  name: "ui_sample",
  module: import.meta.url,
  gpu: false,
  params: { num_samples: { type: "int", default: 16 } },
  inputs: { model: {} },
  outputs: { samples: {} },
  async run(ctx) {
    const csv = await Deno.readTextFile(`${ctx.inputs.model.dir}/loss.csv`);
    const last = Number(csv.trim().split("\n").at(-1)!.split(",")[1]) || 1;
    const W = 66, H = 66;
    const data = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const tx = Math.floor((x - 2) / 16), ty = Math.floor((y - 2) / 16);
        const border = (x - 2) % 16 < 1 || (y - 2) % 16 < 1 || x < 2 || y < 2;
        const i = (y * W + x) * 3;
        if (border) continue;
        const v = Math.round(255 * Math.min(1, last * 3));
        data[i] = (v + tx * 40) & 255;
        data[i + 1] = (255 - v + ty * 40) & 255;
        data[i + 2] = ((x * y) / 4 + v) & 255;
      }
    }
    await Deno.writeFile(
      `${ctx.outputs.samples}/grid.png`,
      encodePng({ width: W, height: H, channels: 3, data }),
    );
    ctx.metrics({ images: ctx.params.num_samples });
  },
}));

/** An FID stand-in (values from the grid's bytes; their names are the real kind's). */
export const uiFid = reg(defineKind({
  name: "ui_fid",
  module: import.meta.url,
  gpu: false,
  params: {},
  inputs: { samples: {} },
  outputs: { fid: {} },
  headline: ["fid"],
  async run(ctx) {
    const up = ctx.inputs.samples;
    const bytes = await Deno.readFile(`${up.dir}/grid.png`);
    const h = bytes.reduce((a, b) => (a * 31 + b) % 1000, 7) / 1000;
    const fid = 40 + 250 * h;
    await Deno.writeTextFile(`${ctx.outputs.fid}/fid.json`, JSON.stringify({ fid }));
    const acc = 0.5 + 0.4 * (1 - h);
    // The names the real fid kind records (bootstrap interval of FID, Wilson interval of class accuracy).
    ctx.metrics({
      fid,
      fid_low: fid * 0.9,
      fid_high: fid * 1.12,
      class_accuracy: acc,
      class_accuracy_low: acc - 0.05,
      class_accuracy_high: Math.min(1, acc + 0.04),
      precision: 0.7,
      recall: 0.2 + 0.3 * (1 - h),
    });
  },
}));
