/**
 * `train` with `steps: 0`: the untrained baseline. Through the engine on a tiny dataset: the model files
 * hold exactly the initialised weights (EMA = raw = `DiT.init`), with the same metadata as a trained
 * model; loss.csv is a header only; metrics say nothing was trained; `sample` loads the model.
 */
import { assert, assertEquals } from "../pipeline/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { runIn, Sandbox } from "../pipeline/helpers.ts";
import "../../lib/stages/mod.ts";
import { readDataArtifact } from "../../lib/data/artifact.ts";
import { readModelFile } from "../../lib/models/checkpoint.ts";
import { DiT } from "../../lib/models/dit.ts";
import { initRngFor } from "../../lib/train/init_rng.ts";
import { assertSameBits } from "../helpers/bits.ts";

import { tinyDataKind } from "../helpers/tiny_data.ts";

await gpu();

tinyDataKind("zero-test-data", "zero-test");

const PIPE = (steps: number) =>
  `name: zero
stages:
  data: { uses: zero-test-data }
  train:
    uses: train
    inputs: { data: data.dataset }
    seed: 4
    with: { model: DiT-S/2, depth: 1, hidden_size: 32, num_heads: 2, steps: ${steps}, batch_size: 2, log_every: 1 }
  sample:
    uses: sample
    inputs: { model: train.model }
    with: { num_samples: 2, batch_size: 2, steps: 2 }
`;

Deno.test("train steps: 0 writes the initialised model, an empty loss log, and sample loads it", async () => {
  using sb = new Sandbox();
  const r = await runIn(sb, sb.write("p.yaml", PIPE(0)));
  assertEquals(r.failed, [], JSON.stringify(r.report.stages.map((s) => [s.name, s.error])));
  assertEquals(r.ran.sort(), ["data", "sample", "train"]);
  const row = r.report.stages.find((s) => s.name === "train")!;
  const out = sb.store.outputDir(row.key!, "model");
  const ema = await readModelFile(`${out}/model.safetensors`);
  const raw = await readModelFile(`${out}/model_raw.safetensors`);
  // The same weights as a fresh DiT.init with the stage's seed, in both files.
  const init = DiT.init(ema.cfg, initRngFor(4));
  const ref = await init.stateDict();
  init.dispose();
  assertEquals([...ema.state.keys()].sort(), [...ref.keys()].sort());
  for (const [k, v] of ref) {
    assertSameBits(ema.state.get(k)!.data, v.data, `EMA ${k} and the init weight`);
    assertSameBits(raw.state.get(k)!.data, v.data, `raw ${k} and the init weight`);
  }
  assertEquals(ema.metadata.weights, "ema");
  assertEquals(raw.metadata.weights, "raw");
  assertEquals(ema.metadata.steps, "0");
  assertEquals(ema.metadata.objective, "ddpm");
  assertEquals(ema.metadata.data_space, "pixels");
  assertEquals(JSON.parse(ema.metadata.data_info), { dataset: "zero-test" });
  assertEquals(ema.cfg.depth, 1);
  assertEquals(await Deno.readTextFile(`${out}/loss.csv`), "step,loss,mse,vb\n");
  assertEquals(row.metrics?.final_loss, null);
  assertEquals(row.metrics?.train_seconds, 0);
  assertEquals(row.metrics?.img_per_s, 0);
  // sample loaded it and drew finite samples.
  const s = r.report.stages.find((x) => x.name === "sample")!;
  const samples = await readDataArtifact(sb.store.outputDir(s.key!, "samples"));
  assertEquals(samples.count, 2);
  assertEquals(samples.shape, [1, 8, 8]);
  assert(samples.x.every(Number.isFinite));
  assert((await Deno.stat(`${sb.store.outputDir(s.key!, "samples")}/grid.png`)).size > 0);
});

Deno.test("train steps: 1 writes the same metadata keys as steps: 0 (and a loss row)", async () => {
  using sb = new Sandbox();
  const r = await runIn(sb, sb.write("p.yaml", PIPE(1)), { only: ["train"] });
  assertEquals(r.failed, []);
  const row = r.report.stages.find((s) => s.name === "train")!;
  const out = sb.store.outputDir(row.key!, "model");
  const one = await readModelFile(`${out}/model.safetensors`);
  assertEquals(Object.keys(one.metadata).sort(), [
    "batch_size",
    "data_info",
    "data_space",
    "ditflow_config",
    "objective",
    "steps",
    "weights",
  ]);
  assertEquals((await Deno.readTextFile(`${out}/loss.csv`)).trim().split("\n").length, 2);
  assert(typeof row.metrics?.final_loss === "number" && Number.isFinite(row.metrics.final_loss));
  assert((row.metrics?.train_seconds as number) > 0);
});
