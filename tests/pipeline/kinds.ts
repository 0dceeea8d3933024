/**
 * Synthetic stage kinds for the pipeline tests (loaded in-process, and by the CLI through
 * DITFLOW_STAGE_MODULES). They compute small files from params and inputs, fail on demand, sleep, and
 * checkpoint/resume.
 * @module
 */

import { defineKind } from "../../lib/pipeline/stage.ts";
import { registerKind } from "../../lib/pipeline/registry.ts";

async function readValue(dir: string): Promise<number> {
  return Number(await Deno.readTextFile(`${dir}/value.txt`));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Writes `value` (times `scale`) to data/value.txt. */
export const gen = registerAndReturn(defineKind({
  name: "gen",
  module: import.meta.url,
  description: "writes a number",
  gpu: false,
  params: {
    value: { type: "number", doc: "the number" },
    scale: { type: "int", default: 1, min: 1 },
    label: { type: "string", default: "" },
    mode: { type: "enum", values: ["plain", "fancy"], default: "plain" },
    tags: { type: "list", items: { type: "string" }, default: [] },
    opt: { type: "object", fields: { beta: { type: "number", default: 0.9 } }, default: { beta: 0.9 } },
    flag: { type: "bool", default: false },
  },
  inputs: {},
  outputs: { data: {} },
  headline: ["value"],
  async run(ctx) {
    const v = ctx.params.value * ctx.params.scale;
    await Deno.writeTextFile(`${ctx.outputs.data}/value.txt`, String(v));
    ctx.log(`wrote ${v}`);
    ctx.metrics({ value: v });
  },
}));

/** Adds its input (and an optional second input) to `offset`. */
export const add = registerAndReturn(defineKind({
  name: "add",
  module: import.meta.url,
  gpu: false,
  params: { offset: { type: "number", default: 0 } },
  inputs: { a: {}, b: { optional: true } },
  outputs: { data: {} },
  async run(ctx) {
    let v = ctx.params.offset + await readValue(ctx.inputs.a.dir);
    if (ctx.inputs.b) v += await readValue(ctx.inputs.b.dir);
    await Deno.writeTextFile(`${ctx.outputs.data}/value.txt`, String(v));
    ctx.metrics({ value: v });
  },
}));

/** Fan-in: lists the values of all its inputs. */
export const collect = registerAndReturn(defineKind({
  name: "collect",
  module: import.meta.url,
  gpu: false,
  params: {},
  inputs: { items: { many: true } },
  outputs: { summary: {} },
  async run(ctx) {
    const rows = [];
    for (const a of ctx.inputs.items) {
      rows.push({ stage: a.stage, point: a.point, value: await readValue(a.dir) });
    }
    await Deno.writeTextFile(`${ctx.outputs.summary}/summary.json`, JSON.stringify(rows));
    ctx.metrics({ count: rows.length });
  },
}));

/** Fails when `fail` is true (after writing a partial output). */
export const flaky = registerAndReturn(defineKind({
  name: "flaky",
  module: import.meta.url,
  gpu: false,
  params: { fail: { type: "bool", default: false }, value: { type: "number", default: 1 } },
  inputs: { a: { optional: true } },
  outputs: { data: {} },
  async run(ctx) {
    await Deno.writeTextFile(`${ctx.outputs.data}/partial.txt`, "partial");
    if (ctx.params.fail) {
      ctx.log("about to fail");
      throw new Error(`asked to fail (value ${ctx.params.value})`);
    }
    await Deno.writeTextFile(`${ctx.outputs.data}/value.txt`, String(ctx.params.value));
  },
}));

/** Sleeps `ms` and records when it ran (CPU stage; `gpu_sleep` is the GPU variant). */
export const sleeper = registerAndReturn(defineKind({
  name: "sleep",
  module: import.meta.url,
  gpu: false,
  params: {
    ms: { type: "int", default: 100 },
    id: { type: "number", default: 0 },
    trace: { type: "string", default: "", doc: "file to append `name pid` to when the stage starts" },
  },
  inputs: {},
  outputs: { data: {} },
  async run(ctx) {
    const start = Date.now();
    if (ctx.params.trace) {
      await Deno.writeTextFile(ctx.params.trace, `${ctx.name} ${Deno.pid}\n`, { append: true });
    }
    await sleep(ctx.params.ms, ctx.signal);
    await Deno.writeTextFile(`${ctx.outputs.data}/value.txt`, String(ctx.params.id));
    ctx.metrics({ start, end: Date.now() });
  },
}));

/** GPU variant of `sleep`. */
export const gpuSleeper = registerAndReturn(defineKind({ ...sleeper, name: "gpu_sleep", gpu: true }));

/**
 * Counts to `steps`, one step every `step_ms`, checkpointing the step count; on restart resumes from
 * the checkpoint (recorded as metric `resumed_from`). Writes `started` markers to the checkpoint dir.
 */
export const counter = registerAndReturn(defineKind({
  name: "counter",
  module: import.meta.url,
  gpu: false,
  params: { steps: { type: "int", default: 10 }, step_ms: { type: "int", default: 50 } },
  inputs: {},
  outputs: { data: {} },
  headline: ["resumed_from"],
  async run(ctx) {
    const ck = `${ctx.checkpointDir}/step.txt`;
    let step = 0;
    try {
      step = Number(await Deno.readTextFile(ck));
    } catch { /* fresh */ }
    const resumedFrom = step;
    ctx.log(`starting at step ${step}`);
    await Deno.writeTextFile(`${ctx.checkpointDir}/started-${Deno.pid}`, String(step));
    await Deno.writeTextFile(`${ctx.outputs.data}/partial.txt`, "partial");
    while (step < ctx.params.steps) {
      await sleep(ctx.params.step_ms, ctx.signal);
      step++;
      await Deno.writeTextFile(`${ck}.tmp`, String(step));
      await Deno.rename(`${ck}.tmp`, ck);
      ctx.progress({ step, total: ctx.params.steps, loss: 1 / step });
    }
    await Deno.remove(`${ctx.outputs.data}/partial.txt`);
    await Deno.writeTextFile(`${ctx.outputs.data}/value.txt`, String(step));
    ctx.metrics({ resumed_from: resumedFrom });
  },
}));

/** A `train`-like kind with realistic parameter names (for messages and examples). */
export const tinyEncode = registerAndReturn(defineKind({
  name: "tiny_encode",
  module: import.meta.url,
  gpu: false,
  params: {
    dataset: { type: "string" },
    image_size: { type: "int", default: 32, min: 8 },
    source: { type: "path", optional: true },
  },
  inputs: {},
  outputs: { latents: {} },
  async run(ctx) {
    await Deno.writeTextFile(`${ctx.outputs.latents}/value.txt`, String(ctx.params.image_size));
  },
}));

/** A `train`-like kind. */
export const tinyTrain = registerAndReturn(defineKind({
  name: "tiny_train",
  module: import.meta.url,
  gpu: true,
  params: {
    model: { type: "enum", values: ["DiT-S/2", "DiT-B/2", "DiT-L/2"] },
    learning_rate: { type: "number", default: 1e-4, min: 0 },
    steps: { type: "int", default: 10, min: 1 },
  },
  inputs: { latents: {} },
  outputs: { checkpoint: {}, samples: {} },
  headline: ["loss"],
  async run(ctx) {
    const v = await readValue(ctx.inputs.latents.dir);
    const loss = 1 / (v * ctx.params.learning_rate * ctx.params.steps);
    for (let s = 1; s <= ctx.params.steps; s++) ctx.progress({ step: s, total: ctx.params.steps, loss });
    await Deno.writeTextFile(`${ctx.outputs.checkpoint}/value.txt`, String(loss));
    await Deno.writeTextFile(`${ctx.outputs.samples}/value.txt`, String(ctx.params.steps));
    ctx.metrics({ loss });
    ctx.setAdapter({ description: "synthetic" });
  },
}));

/** Fan-in report over runs. */
export const tinyReport = registerAndReturn(defineKind({
  name: "tiny_report",
  module: import.meta.url,
  gpu: false,
  params: { title: { type: "string", default: "report" } },
  inputs: { runs: { many: true } },
  outputs: { report: {} },
  async run(ctx) {
    const lines = [`# ${ctx.params.title}`];
    for (const r of ctx.inputs.runs) lines.push(`${r.stage}: ${await readValue(r.dir)}`);
    await Deno.writeTextFile(`${ctx.outputs.report}/report.md`, lines.join("\n"));
  },
}));

function registerAndReturn<T extends { name: string }>(k: T): T {
  registerKind(k as unknown as Parameters<typeof registerKind>[0], { replace: true });
  return k;
}
