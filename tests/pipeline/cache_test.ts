/** Cache behaviour, status reasons, overrides, scheduling flags, gc. */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, FIXTURES, listTree, plan, runIn, Sandbox, statusOf } from "./helpers.ts";

const CHAIN = `
name: chain
stages:
  a:
    uses: gen
    with: {value: 1}
  b:
    uses: add
    inputs: {a: a.data}
    with: {offset: 10}
  c:
    uses: add
    inputs: {a: b.data}
  side:
    uses: gen
    with: {value: 5}
`;

Deno.test("first run executes everything; an unchanged re-run executes nothing", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  const r1 = await runIn(sb, f);
  assertEquals(r1.ran, ["a", "b", "c", "side"]);
  assertEquals(r1.report.exitCode, 0);
  const r2 = await runIn(sb, f);
  assertEquals(r2.ran, []);
  assertEquals(r2.cached, ["a", "b", "c", "side"]);
  const c = r2.report.stages.find((s) => s.name === "c")!;
  assertEquals(Deno.readTextFileSync(`${sb.store.outputDir(c.key!, "data")}/value.txt`), "11");
});

Deno.test("changing one parameter reruns exactly that stage and its dependents", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  await runIn(sb, f);
  const st = await statusOf(sb, f, ["b.offset=20"]);
  assertEquals(st.a.action, "cached");
  assertEquals(st.b.action, "run");
  assertEquals(st.b.reasons, ["param b.offset 10 → 20"]);
  assertEquals(st.c.action, "run");
  assertEquals(st.c.reasons, ["input a: upstream b will run"]);
  assertEquals(st.side.action, "cached");
  const r = await runIn(sb, f, { sets: ["b.offset=20"] });
  assertEquals(r.ran, ["b", "c"]);
  assertEquals(r.cached, ["a", "side"]);
  // And status afterwards explains the input change of c against its last run.
  const back = await statusOf(sb, f);
  assertEquals(back.b.action, "cached"); // the old result is still in the cache
  assertEquals(back.c.action, "cached");
});

Deno.test("early cutoff: an upstream rerun with identical output does not rerun dependents", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  await runIn(sb, f);
  // label does not change gen's output, only its key.
  const r = await runIn(sb, f, { sets: ["a.label=x"] });
  assertEquals(r.ran, ["a"]);
  assertEquals(r.cached, ["b", "c", "side"]);
});

Deno.test("status explains field by field: params, nested params, seed, inputs", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  await runIn(sb, f);
  await runIn(sb, f, { sets: ["a.value=2", "a.seed=3", "a.opt.beta=0.5", "a.tags=[x]"] });
  const st = await statusOf(sb, f, ["a.value=3", "a.opt.beta=0.25"]);
  assertEquals(st.a.reasons, [
    "param a.opt.beta 0.5 → 0.25",
    'param a.tags ["x"] → []',
    "param a.value 2 → 3",
    "seed 3 → 0",
  ]);
  // With the last run's values b would have a changed input compared with what b last saw.
  await runIn(sb, f, { sets: ["a.value=7"], only: ["a"] });
  const st2 = await statusOf(sb, f, ["a.value=7"]);
  assertEquals(st2.a.action, "cached");
  assertEquals(st2.b.action, "run");
  assertEquals(st2.b.reasons, ["input a changed"]);
});

Deno.test("numbers are canonical: 1e-4 and 0.0001 are the same parameter; reasons use short forms", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "p.yaml",
    `
name: lr
stages:
  enc: {uses: tiny_encode, with: {dataset: d}}
  train:
    uses: tiny_train
    inputs: {latents: enc.latents}
    with: {model: DiT-S/2, learning_rate: 1e-4}
`,
  );
  await runIn(sb, f);
  assertEquals((await statusOf(sb, f, ["train.learning_rate=0.0001"])).train.action, "cached");
  const st = await statusOf(sb, f, ["train.learning_rate=2e-4"]);
  assertEquals(st.train.reasons, ["param train.learning_rate 1e-4 → 2e-4"]);
});

Deno.test("code change invalidates exactly the kinds whose module graph changed", async () => {
  using sb = new Sandbox();
  const engine = new URL("../../lib/pipeline/", import.meta.url).href;
  Deno.mkdirSync(`${sb.dir}/kinds/kernels`, { recursive: true });
  Deno.writeTextFileSync(`${sb.dir}/kinds/helper.ts`, "export const factor = 2;\n");
  Deno.writeTextFileSync(`${sb.dir}/kinds/kernels/k.wgsl`, "// kernel v1\nconst K = 1.0;\n");
  Deno.writeTextFileSync(
    `${sb.dir}/kinds/uses_helper.ts`,
    `import { defineKind } from "${engine}stage.ts";
import { registerKind } from "${engine}registry.ts";
import { factor } from "./helper.ts";
const KERNEL = new URL("./kernels/k.wgsl", import.meta.url);
registerKind(defineKind({
  name: "code_a", module: import.meta.url, gpu: false, params: {}, inputs: {}, outputs: { o: {} },
  async run(ctx) { await Deno.writeTextFile(ctx.outputs.o + "/v", String(factor) + KERNEL.pathname.length); },
}), { replace: true });
`,
  );
  Deno.writeTextFileSync(
    `${sb.dir}/kinds/standalone.ts`,
    `import { defineKind } from "${engine}stage.ts";
import { registerKind } from "${engine}registry.ts";
registerKind(defineKind({
  name: "code_b", module: import.meta.url, gpu: false, params: {}, inputs: { x: { optional: true } }, outputs: { o: {} },
  async run(ctx) { await Deno.writeTextFile(ctx.outputs.o + "/v", "b"); },
}), { replace: true });
`,
  );
  const f = sb.write(
    "p.yaml",
    `
name: code
plugins: [kinds/uses_helper.ts, kinds/standalone.ts]
stages:
  a: {uses: code_a}
  b: {uses: code_b}
`,
  );
  await runIn(sb, f);
  assertEquals((await runIn(sb, f)).ran, []);
  const { clearFingerprintCache } = await import("../../lib/pipeline/fingerprint.ts");
  Deno.writeTextFileSync(`${sb.dir}/kinds/helper.ts`, "export const factor = 3;\n");
  clearFingerprintCache();
  let st = await statusOf(sb, f);
  assertEquals(st.a.action, "run");
  assertEquals(st.a.reasons.length, 1);
  assertStringIncludes(st.a.reasons[0], "code of stage a changed (");
  assertStringIncludes(st.a.reasons[0], "kinds/helper.ts");
  assertEquals(st.b.action, "cached");
  assertEquals((await runIn(sb, f)).ran, ["a"]);
  // A kernel referenced with new URL(..., import.meta.url) is part of the fingerprint too (its code, not
  // its comments).
  Deno.writeTextFileSync(
    `${sb.dir}/kinds/kernels/k.wgsl`,
    "// kernel v2, a comment only\nconst K  =  1.0;\n",
  );
  clearFingerprintCache();
  st = await statusOf(sb, f);
  assertEquals(st.a.action, "cached");
  Deno.writeTextFileSync(`${sb.dir}/kinds/kernels/k.wgsl`, "// kernel v2\nconst K = 2.0;\n");
  clearFingerprintCache();
  st = await statusOf(sb, f);
  assertStringIncludes(st.a.reasons[0], "kinds/kernels/k.wgsl");
  assertEquals(st.b.action, "cached");
  clearFingerprintCache();
});

Deno.test("matrix: readable names, shared upstream, exclude/include, fan-in", async () => {
  using sb = new Sandbox();
  const p = await plan(`${FIXTURES}/demo.yaml`);
  assertEquals(p.stages.map((s) => s.name), [
    "encode",
    "train[model=DiT-S/2,lr=0.0001]",
    "train[model=DiT-S/2,lr=0.0002]",
    "train[model=DiT-B/2,lr=0.0001]",
    "report",
  ]);
  for (const s of p.stages.filter((s) => s.base === "train")) assertEquals(s.deps, ["encode"]);
  assertEquals(p.byName.get("report")!.inputs[0].refs.length, 3);
  assertEquals(p.byName.get("train[model=DiT-B/2,lr=0.0001]")!.params.learning_rate, 1e-4);
  const r = await runIn(sb, `${FIXTURES}/demo.yaml`);
  assertEquals(r.ran.length, 5);
  const inc = sb.write(
    "inc.yaml",
    `
name: inc
stages:
  g:
    uses: gen
    matrix:
      v: [1, 2]
      s: [1]
      include: [{v: 9, s: 3}]
      exclude: [{v: 2}]
    with: {value: "\${{ matrix.v }}", scale: "\${{ matrix.s }}", label: "v\${{ matrix.v }}-s\${{ matrix.s }}"}
`,
  );
  const pi = await plan(inc);
  assertEquals(pi.stages.map((s) => s.name), ["g[v=1,s=1]", "g[v=9,s=3]"]);
  assertEquals(pi.stages.map((s) => s.params.label), ["v1-s1", "v9-s3"]);
});

Deno.test("matrix: downstream single inputs expand along upstream axes and join on shared axes", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "p.yaml",
    `
name: join
stages:
  base: {uses: gen, with: {value: 1}}
  g:
    uses: gen
    matrix: {v: [1, 2, 3]}
    with: {value: "\${{ matrix.v }}"}
  h:
    uses: gen
    matrix: {v: [1, 2, 3], w: [10, 20]}
    with: {value: "\${{ matrix.w }}"}
  plus:
    uses: add
    inputs: {a: g.data, b: h.data}
    with: {offset: "\${{ matrix.v }}"}
  pick:
    uses: add
    inputs: {a: "g[v=2].data", b: base.data}
  all:
    uses: collect
    inputs: {items: plus.data}
  per_w:
    uses: collect
    matrix: {w: [10, 20]}
    inputs: {items: plus.data}
`,
  );
  const p = await plan(f);
  const plus = p.groups.get("plus")!;
  assertEquals(plus.length, 6);
  assertEquals(plus[0], "plus[v=1,w=10]");
  assertEquals(p.byName.get("plus[v=2,w=20]")!.deps, ["g[v=2]", "h[v=2,w=20]"]);
  assertEquals(p.groups.get("pick"), ["pick"]);
  assertEquals(p.byName.get("pick")!.deps, ["g[v=2]", "base"]);
  assertEquals(p.byName.get("all")!.inputs[0].refs.length, 6);
  assertEquals(p.groups.get("per_w"), ["per_w[w=10]", "per_w[w=20]"]);
  assertEquals(p.byName.get("per_w[w=20]")!.inputs[0].refs.map((r) => r.stage), [
    "plus[v=1,w=20]",
    "plus[v=2,w=20]",
    "plus[v=3,w=20]",
  ]);
  const r = await runIn(sb, f);
  assertEquals(r.report.exitCode, 0);
  const key = r.report.stages.find((s) => s.name === "plus[v=3,w=20]")!.key!;
  assertEquals(Deno.readTextFileSync(`${sb.store.outputDir(key, "data")}/value.txt`), String(3 + 3 + 20));
});

Deno.test("matrix: selectors consume their axes, so one stage can take two points of one matrix", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "p.yaml",
    `
name: pair
stages:
  g:
    uses: gen
    matrix: {v: [1, 2]}
    with: {value: "\${{ matrix.v }}"}
  both:
    uses: add
    inputs: {a: "g[v=1].data", b: "g[v=2].data"}
`,
  );
  const p = await plan(f);
  assertEquals(p.groups.get("both"), ["both"]);
  assertEquals(p.byName.get("both")!.deps, ["g[v=1]", "g[v=2]"]);
  assertEquals(p.byName.get("both")!.point, {});
});

Deno.test("--set var=value and stage.param=value, validated like the file", async () => {
  const p = await plan(`${FIXTURES}/demo.yaml`, [
    "size=64",
    "train.steps=5",
    "vars.models=[DiT-L/2]",
    "report.seed=4",
  ]);
  assertEquals(p.byName.get("encode")!.params.image_size, 64);
  assertEquals(p.groups.get("train"), ["train[lr=0.0001]", "train[lr=0.0002]"]);
  assertEquals(p.byName.get("train[lr=0.0001]")!.params.steps, 5);
  assertEquals(p.byName.get("train[lr=0.0001]")!.params.model, "DiT-L/2");
  assertEquals(p.byName.get("report")!.seed, 4);
  assertEquals(p.byName.get("report")!.params.title, "sweep over 64px");
});

Deno.test("--only runs a stage and what it needs; --force reruns a cached stage", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  const r1 = await runIn(sb, f, { only: ["b"] });
  assertEquals(r1.ran, ["a", "b"]);
  assertEquals(r1.report.stages.map((s) => s.name), ["a", "b"]);
  const r2 = await runIn(sb, f, { force: ["b"] });
  assertEquals(r2.ran, ["b", "c", "side"]);
  assertEquals(r2.cached, ["a"]);
  const r3 = await runIn(sb, f, { force: ["b"] });
  assertEquals(r3.ran, ["b"]); // deterministic output: c stays cached (early cutoff)
});

Deno.test("run --dry-run --json prints the plan with actions and reasons", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  await runIn(sb, f, { only: ["a"] });
  const r = await cli(sb, ["run", f, "--dry-run", "--json", "--set", "side.value=6"]);
  assertEquals(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assertEquals(j.pipeline, "chain");
  assertEquals(j.stages.map((s: { name: string; action: string }) => [s.name, s.action]), [
    ["a", "cached"],
    ["b", "run"],
    ["c", "run"],
    ["side", "run"],
  ]);
  assertEquals(j.stages[0].reasons, []);
  assertEquals(j.stages[1].reasons, ["no cached result"]);
  assertEquals(j.stages[2].reasons, ["input a: upstream b will run"]);
  assert(typeof j.stages[1].key === "string" && j.stages[2].key === null);
  assertEquals(sb.store.listKeys().length, 1, "dry run must not write");
});

Deno.test("--keep-going: one failing sweep point does not stop or lose the others", async () => {
  using sb = new Sandbox();
  // Point v=2 fails (include/exclude give it fail=true).
  const g = sb.write(
    "q.yaml",
    `
name: kg2
stages:
  f:
    uses: flaky
    matrix:
      v: [1, 2, 3, 4]
      fail: [false]
      exclude: [{v: 2}]
      include: [{v: 2, fail: true}]
    with: {value: "\${{ matrix.v }}", fail: "\${{ matrix.fail }}"}
  down:
    uses: add
    inputs: {a: f.data}
`,
  );
  const r = await runIn(sb, g, { keepGoing: true, jobs: 1 });
  assertEquals(r.report.exitCode, 1);
  assertEquals(r.failed, ["f[v=2,fail=true]"]);
  assertEquals(r.skipped, ["down[v=2,fail=true]"]);
  assertEquals(r.ran.length, 6);
  const failed = r.report.stages.find((s) => s.result === "failed")!;
  assertStringIncludes(failed.error!, "asked to fail (value 2)");
  assertStringIncludes(Deno.readTextFileSync(failed.logPath!), "about to fail");
  // Without --keep-going the run stops scheduling after the failure (jobs=1: nothing after it ran).
  using sb2 = new Sandbox();
  const r2 = await runIn(sb2, g, { keepGoing: false, jobs: 1 });
  assertEquals(r2.failed, ["f[v=2,fail=true]"]);
  assert(r2.ran.length < 6, `ran ${r2.ran}`);
  // Rerun with keep-going: the finished points come from the cache.
  const r3 = await runIn(sb2, g, { keepGoing: true, jobs: 1 });
  assertEquals(r3.failed, ["f[v=2,fail=true]"]);
  assert(r3.cached.length === r2.ran.length);
  // No partial output of the failed stage is visible anywhere.
  assertEquals(listTree(`${sb2.cache}/tmp`), []);
});

Deno.test("--jobs overlaps independent CPU stages; GPU stages hold a GPU slot", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "p.yaml",
    `
name: par
stages:
  s:
    uses: sleep
    matrix: {id: [1, 2, 3, 4]}
    with: {ms: 200, id: "\${{ matrix.id }}"}
  g:
    uses: gpu_sleep
    matrix: {id: [1, 2, 3]}
    with: {ms: 100, id: "\${{ matrix.id }}"}
`,
  );
  const t0 = performance.now();
  const r = await runIn(sb, f, { jobs: 8, gpus: 1 });
  const wall = performance.now() - t0;
  assertEquals(r.ran.length, 7);
  const span = (prefix: string) =>
    r.report.stages.filter((s) => s.name.startsWith(prefix)).map((s) =>
      s.metrics as { start: number; end: number }
    );
  const cpu = span("s[");
  const overlap = Math.min(...cpu.map((m) => m.end)) > Math.max(...cpu.map((m) => m.start));
  assert(overlap, "CPU stages did not overlap");
  const gpu = span("g[").sort((a, b) => a.start - b.start);
  for (let i = 1; i < gpu.length; i++) assert(gpu[i].start >= gpu[i - 1].end - 5, "GPU stages overlapped");
  assert(wall < 1200 * 2, `took ${wall}ms`);
  // jobs=1: strictly sequential.
  using sb2 = new Sandbox();
  const r2 = await runIn(sb2, f, { jobs: 1 });
  const all = r2.report.stages.map((s) => s.metrics as { start: number; end: number }).sort((a, b) =>
    a.start - b.start
  );
  for (let i = 1; i < all.length; i++) assert(all[i].start >= all[i - 1].end - 5, "jobs=1 overlapped");
});

Deno.test("artifacts carry metadata: params, inputs, timings, metrics, log, adapter", async () => {
  using sb = new Sandbox();
  const r = await runIn(sb, `${FIXTURES}/demo.yaml`);
  const t = r.report.stages.find((s) => s.name.startsWith("train["))!;
  const meta = sb.store.readMeta(t.key!)!;
  assertEquals(meta.kind, "tiny_train");
  assertEquals(meta.components.params.model, "DiT-S/2");
  assertEquals(meta.inputs.latents[0].stage, "encode");
  assert(meta.timings.ms >= 0 && meta.metrics.loss !== undefined);
  assertEquals(meta.adapter, { description: "synthetic" });
  assertEquals(meta.outputs.checkpoint.files.map((f) => f.path), ["value.txt"]);
  assertStringIncludes(Deno.readTextFileSync(`${sb.store.objectDir(t.key!)}/log.txt`), "finished in");
  assert(Object.keys(meta.code_files).some((p) => p.endsWith("tests/pipeline/kinds.ts")));
});

Deno.test("gc: dry run by default, --apply removes what no pipeline references", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  await runIn(sb, f);
  await runIn(sb, f, { sets: ["side.value=6"] }); // the old side artifact is now unreferenced
  const before = sb.store.listKeys().length;
  assertEquals(before, 5);
  const dry = await cli(sb, ["gc", "--json"]);
  assertEquals(dry.code, 0, dry.stderr);
  const j = JSON.parse(dry.stdout);
  assertEquals(j.applied, false);
  assertEquals(j.remove.map((r: { name: string }) => r.name), ["side"]);
  assertEquals(sb.store.listKeys().length, 5);
  const app = await cli(sb, ["gc", "--apply"]);
  assertEquals(app.code, 0, app.stderr);
  assertStringIncludes(app.stdout, "removed 1 artifacts");
  assertEquals(sb.store.listKeys().length, 4);
  assertEquals((await runIn(sb, f, { sets: ["side.value=6"] })).ran, []);
});

Deno.test("CLI: run summary, status text, show, dag", async () => {
  using sb = new Sandbox();
  const f = `${FIXTURES}/demo.yaml`;
  const r = await cli(sb, ["run", f, "--jobs", "2"]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "STAGE");
  assertStringIncludes(r.stdout, "train[model=DiT-S/2,lr=0.0001]  ran");
  assertStringIncludes(r.stdout, "5 ran, 0 cached");
  const r2 = await cli(sb, ["run", f]);
  assertStringIncludes(r2.stdout, "0 ran, 5 cached");
  const st = await cli(sb, ["status", f, "--set", "train.steps=30"]);
  assertEquals(st.code, 0);
  assertStringIncludes(st.stdout, "param train.steps 20 → 30");
  const show = await cli(sb, ["show", "train[model=DiT-B/2,lr=0.0001]"]);
  assertEquals(show.code, 0, show.stderr);
  assertStringIncludes(show.stdout, "kind tiny_train");
  assertStringIncludes(show.stdout, "out/checkpoint");
  assertStringIncludes(show.stdout, "metrics");
  const showJson = JSON.parse((await cli(sb, ["show", "encode", "--json"])).stdout);
  assertEquals(showJson[0].name, "encode");
  const miss = await cli(sb, ["show", "encod"]);
  assertEquals(miss.code, 1);
  assertStringIncludes(miss.stderr, "did you mean `encode`?");
  const dag = await cli(sb, ["dag", f, "--format", "mermaid"]);
  assertStringIncludes(dag.stdout, "flowchart TD");
  assertStringIncludes(dag.stdout, "s0 -->|latents| s1");
  const ascii = await cli(sb, ["dag", f]);
  // One line per stage, no indentation; its edges spelled out (users and inputs).
  assert(
    /^train\[model=DiT-S\/2,lr=0\.0001\]\s+tiny_train \(gpu\)\s+report\s+latents ← encode\.latents$/m.test(
      ascii.stdout,
    ),
    ascii.stdout,
  );
});
