/**
 * A small real cache for the runs/diff/ui tests: the `uitest` pipeline of the cheap kinds in `kinds.ts`
 * (a dataset, a 2×2 sweep of lr × steps through train → sample → fid), run through the engine into a
 * temporary directory, plus a report folder with a README.md.
 * @module
 */

import "./kinds.ts";
import { clearEngineMemo, executePlan } from "../../lib/pipeline/engine.ts";
import { LocalExecutor } from "../../lib/pipeline/executor.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import { SilentReporter } from "../../lib/pipeline/progress.ts";
import { Store } from "../../lib/pipeline/store.ts";

/** Absolute path of the UI test kinds module (for DITFLOW_STAGE_MODULES). */
export const UI_KINDS: string = new URL("./kinds.ts", import.meta.url).pathname;

/** The sweep pipeline. */
export const UI_PIPELINE = `name: uitest
description: a cheap sweep for the UI tests
stages:
  data:
    uses: ui_data
    with: { size: 8 }
  train:
    uses: ui_train
    matrix:
      lr: [0.001, 0.003]
      steps: [60, 200]
    inputs: { data: data.dataset }
    with: { lr: "\${{ matrix.lr }}", steps: "\${{ matrix.steps }}", model: DiT-S/2 }
  sample:
    uses: ui_sample
    inputs: { model: train.model }
  fid:
    uses: ui_fid
    inputs: { samples: sample.samples }
`;

/** A pipeline with one slow training stage (live progress). */
export const UI_SLOW_PIPELINE = `name: uislow
stages:
  data:
    uses: ui_data
    with: { size: 8 }
  slow:
    uses: ui_train
    inputs: { data: data.dataset }
    with: { steps: 400, step_ms: 50, model: DiT-B/2 }
`;

/** A fixture: a directory with the cache, pipeline files and report folders. */
export interface UiFixture {
  dir: string;
  cache: string;
  store: Store;
  pipeline: string;
  slowPipeline: string;
  reports: string;
  [Symbol.dispose](): void;
}

async function run(file: string, store: Store, sets: string[] = []): Promise<void> {
  clearEngineMemo();
  const l = await loadPipeline(file, { sets });
  if (!l.plan) throw new Error(l.diagnostics.map((d) => d.message).join("; "));
  const r = await executePlan(l.plan, {
    store,
    executor: new LocalExecutor(store),
    reporter: new SilentReporter(),
    jobs: 2,
    gpus: 1,
    keepGoing: false,
    signal: new AbortController().signal,
  });
  if (r.exitCode !== 0) throw new Error(`fixture pipeline failed: ${JSON.stringify(r.stages)}`);
}

/**
 * Builds the fixture: runs `uitest`, then again with `seed: 1` on the steps=200, lr=0.003 train point (a
 * second, older run of the same stages, so the cache holds history), and writes a report folder.
 */
export async function buildFixture(dir?: string): Promise<UiFixture> {
  const root = dir ?? Deno.makeTempDirSync({ prefix: "ditflow-ui-" });
  Deno.mkdirSync(root, { recursive: true });
  const cache = `${root}/cache`;
  const store = new Store(cache);
  const pipeline = `${root}/uitest.yaml`;
  const slowPipeline = `${root}/uislow.yaml`;
  // First an older variant (different data size), so the cache holds history that `diff` can walk.
  Deno.writeTextFileSync(pipeline, UI_PIPELINE.replace("size: 8", "size: 6"));
  await run(pipeline, store);
  Deno.writeTextFileSync(pipeline, UI_PIPELINE);
  await run(pipeline, store);
  Deno.writeTextFileSync(slowPipeline, UI_SLOW_PIPELINE);
  const reports = `${root}/experiments`;
  Deno.mkdirSync(`${reports}/uitest`, { recursive: true });
  Deno.writeTextFileSync(
    `${reports}/uitest/README.md`,
    [
      "# uitest: a cheap sweep",
      "",
      "Generated for the UI tests. **Bold**, `code` and a [link](results.csv).",
      "",
      "| run | fid |",
      "| --- | ---: |",
      "| lr=0.001 | 120.5 |",
      "| lr=0.003 | 98.1 |",
      "",
      "![a grid](grid.png)",
      "",
    ].join("\n"),
  );
  const grid = store.listKeys().map((k) => store.readMeta(k)!).find((m) => m.kind === "ui_sample")!;
  Deno.copyFileSync(`${store.outputDir(grid.key, "samples")}/grid.png`, `${reports}/uitest/grid.png`);
  Deno.writeTextFileSync(`${root}/secret.txt`, "not to be served");
  return {
    dir: root,
    cache,
    store,
    pipeline,
    slowPipeline,
    reports,
    [Symbol.dispose]() {
      if (dir) return;
      try {
        Deno.removeSync(root, { recursive: true });
      } catch { /* ignore */ }
    },
  };
}
