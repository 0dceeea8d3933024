/**
 * A longer `train` run continues from a cached shorter one (`extends: steps`): through the engine on a
 * tiny dataset, 6 steps then `steps: 12` gives bit-identical weights, EMA, checkpoint and loss log to 12
 * steps straight through, runs only the 6 extra steps, and carries the snapshots over; `sample` reads a
 * snapshot by step and names the steps it has when asked for a missing one, and runs guidance's
 * unconditional half on one (`guide_snapshot`).
 */
import { assert, assertEquals, assertRejects } from "../pipeline/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { runIn, Sandbox } from "../pipeline/helpers.ts";
import "../../lib/stages/mod.ts";

import { tinyDataKind } from "../helpers/tiny_data.ts";

await gpu();

tinyDataKind("extend-test-data");

const PIPE = (steps: number, snapshot = 0, guide = "") =>
  `name: extend
stages:
  data: { uses: extend-test-data }
  train:
    uses: train
    inputs: { data: data.dataset }
    seed: 3
    with:
      model: DiT-S/2
      depth: 1
      hidden_size: 32
      num_heads: 2
      objective: sit
      learn_sigma: false
      t_sampling: logit-normal
      ema_warmup: true
      lr_warmup: 4
      steps: ${steps}
      batch_size: 4
      lr: 0.001
      ema_decay: 0.99
      ckpt_every: 5
      snapshot_every: 3
      log_every: 1
  sample:
    uses: sample
    inputs: { model: train.model }
    with: { num_samples: 2, batch_size: 2, steps: 2, snapshot: ${snapshot}${guide} }
`;

async function files(sb: Sandbox, key: string): Promise<Record<string, Uint8Array>> {
  const out = sb.store.outputDir(key, "model");
  const got: Record<string, Uint8Array> = {};
  for (const f of ["model.safetensors", "model_raw.safetensors", "checkpoint.safetensors", "loss.csv"]) {
    got[f] = await Deno.readFile(`${out}/${f}`);
  }
  for await (const e of Deno.readDir(`${out}/snapshots`)) {
    got[`snapshots/${e.name}`] = await Deno.readFile(`${out}/snapshots/${e.name}`);
  }
  return got;
}

Deno.test("train: steps 6 then 12 continues from the cached run, bit-identical to 12 straight through", async () => {
  using straight = new Sandbox();
  const a = await runIn(straight, straight.write("p.yaml", PIPE(12)));
  assertEquals(a.failed, []);
  const keyA = a.report.stages.find((s) => s.name === "train")!.key!;

  using sb = new Sandbox();
  const b1 = await runIn(sb, sb.write("p.yaml", PIPE(6)));
  assertEquals(b1.failed, []);
  const b2 = await runIn(sb, sb.write("p.yaml", PIPE(12)));
  assertEquals(b2.failed, []);
  const row = b2.report.stages.find((s) => s.name === "train")!;
  assertEquals(row.key, keyA, "the cache key does not depend on how the run was reached");
  assertEquals(row.metrics?.resumed_from, 6);
  const first = b1.report.stages.find((s) => s.name === "train")!;
  assertEquals(row.metrics?.continued_from, first.key);
  const [t1, t2] = [first.metrics?.train_seconds, row.metrics?.train_seconds] as number[];
  assert(t1 > 0 && t2 > t1, `train_seconds covers the whole trajectory (${t2} after ${t1})`);
  const want = await files(straight, keyA);
  const got = await files(sb, row.key!);
  assertEquals(Object.keys(got).sort(), Object.keys(want).sort());
  assertEquals(Object.keys(got).filter((f) => f.startsWith("snapshots/")).sort(), [
    "snapshots/step_0000003.safetensors",
    "snapshots/step_0000006.safetensors",
    "snapshots/step_0000009.safetensors",
    "snapshots/step_0000012.safetensors",
  ]);
  for (const f of Object.keys(want)) {
    const i = got[f].findIndex((v, k) => v !== want[f][k]);
    assert(
      got[f].length === want[f].length && i < 0,
      `${f} differs (length ${got[f].length} vs ${want[f].length}, first byte ${i})`,
    );
  }
});

Deno.test("sample: snapshot STEP reads that step's EMA weights; a missing one names the steps there are", async () => {
  using sb = new Sandbox();
  const r = await runIn(sb, sb.write("p.yaml", PIPE(7, 6)));
  assertEquals(r.failed, []);
  const s = r.report.stages.find((x) => x.name === "sample")!;
  assertEquals(s.metrics?.train_step, 6);
  assert(typeof s.metrics?.train_gflops === "number" && (s.metrics.train_gflops as number) > 0);
  // A step the train stage keeps no snapshot of is an error of the YAML, before anything runs.
  const q = sb.write("q.yaml", PIPE(7, 5));
  await assertRejects(() => runIn(sb, q), "`snapshot: 5` names no snapshot of `train`: it keeps steps 3, 6");
});

Deno.test("sample: guide_snapshot runs guidance's unconditional half on that snapshot's EMA weights", async () => {
  using sb = new Sandbox();
  const samples = async (name: string, guide: string) => {
    const r = await runIn(sb, sb.write(name, PIPE(7, 0, guide)));
    assertEquals(r.failed, []);
    const s = r.report.stages.find((x) => x.name === "sample")!;
    return {
      metrics: s.metrics!,
      x: await Deno.readFile(`${sb.store.outputDir(s.key!, "samples")}/data.safetensors`),
    };
  };
  const plain = await samples("a.yaml", "");
  const by3 = await samples("b.yaml", ", cfg_scale: 2, guide_snapshot: 3");
  const by6 = await samples("c.yaml", ", cfg_scale: 2, guide_snapshot: 6");
  assertEquals(by3.metrics.guide_snapshot, 3);
  assertEquals(plain.metrics.guide_snapshot, 0);
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);
  assert(!same(plain.x, by3.x), "guidance changes the samples");
  assert(!same(by3.x, by6.x), "another guide gives other samples");
  const d = sb.write("d.yaml", PIPE(7, 0, ", cfg_scale: 2, guide_snapshot: 4"));
  await assertRejects(() => runIn(sb, d), "`guide_snapshot: 4` names no snapshot of `train`");
});

Deno.test("sample: snapshotDiagnostic names the kept steps and how to fix the step", async () => {
  const { snapshotDiagnostic } = await import("../../lib/stages/sample.ts");
  const m = (steps: number, snapshotEvery: number) => ({ steps, snapshotEvery, stage: "train" });
  assertEquals(snapshotDiagnostic("snapshot", 500, m(2000, 500)), undefined);
  assertEquals(snapshotDiagnostic("snapshot", 2000, m(2000, 500)), undefined);
  assertEquals(snapshotDiagnostic("snapshot", 0, m(2000, 0)), undefined);
  assertEquals(snapshotDiagnostic("snapshot", 300, { stage: "train" }), undefined); // unknown at plan time
  const off = snapshotDiagnostic("guide_snapshot", 500, m(2000, 500 * 0))!;
  assert(off.message.includes("keeps none") && off.hint.includes("set `snapshot_every`"), off.message);
  const odd = snapshotDiagnostic("guide_snapshot", 700, m(2000, 500))!;
  assert(odd.message.includes("it keeps steps 500, 1000, 1500, 2000"), odd.message);
  assertEquals(odd.hint, "use a multiple of 500 up to 2000");
  const late = snapshotDiagnostic("snapshot", 3050, m(12000, 100))!;
  assert(late.message.includes("it keeps steps 100, 200, …, 12000"), late.message);
  assertEquals(snapshotDiagnostic("snapshot", 3000, m(12000, 1000)), undefined);
  const none = snapshotDiagnostic("snapshot", 300, m(200, 300))!;
  assert(none.message.includes("it keeps none (snapshot_every 300 > its 200 steps)"), none.message);
});
