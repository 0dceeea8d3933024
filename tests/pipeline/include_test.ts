/**
 * `include:`: shared stage definitions in their own file. The cache keys are those of the same stages
 * written out; errors in an included file point into it (see also the malformed fixtures 41-44).
 */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { plan, runIn, Sandbox, statusOf } from "./helpers.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import "../../lib/stages/mod.ts";

const SHARED = `
stages:
  a:
    uses: gen
    with: {value: 1}
  enc:
    uses: tiny_encode
    with: {dataset: d, source: data.bin}
`;

Deno.test("included stages have the keys of the same stages written out; path parameters resolve next to the included file", async () => {
  using sb = new Sandbox();
  Deno.mkdirSync(`${sb.dir}/common`);
  Deno.writeTextFileSync(`${sb.dir}/common/data.bin`, "payload");
  Deno.writeTextFileSync(`${sb.dir}/common/shared.yaml`, SHARED);
  const written = sb.write(
    "written.yaml",
    `name: p
stages:
  a:
    uses: gen
    with: {value: 1}
  enc:
    uses: tiny_encode
    with: {dataset: d, source: common/data.bin}
  b:
    uses: add
    inputs: {a: a.data}
`,
  );
  const included = sb.write(
    "included.yaml",
    `name: p
include: [common/shared.yaml]
stages:
  b:
    uses: add
    inputs: {a: a.data}
`,
  );
  const r = await runIn(sb, written);
  assertEquals(r.ran, ["a", "enc", "b"]);
  const st = await statusOf(sb, included);
  for (const s of r.report.stages) {
    assertEquals(st[s.name].action, "cached", s.name);
    assertEquals(st[s.name].key, s.key, s.name);
  }
  assertEquals((await runIn(sb, included)).ran, []);
});

Deno.test("an include cycle and a missing included file are errors at the include entry", async () => {
  using sb = new Sandbox();
  Deno.writeTextFileSync(
    `${sb.dir}/x.yaml`,
    "include: [y.yaml]\nstages:\n  a: {uses: gen, with: {value: 1}}\n",
  );
  Deno.writeTextFileSync(
    `${sb.dir}/y.yaml`,
    "include: [x.yaml]\nstages:\n  b: {uses: gen, with: {value: 2}}\n",
  );
  const f = sb.write("p.yaml", "name: p\ninclude: [x.yaml]\nstages:\n  c: {uses: gen, with: {value: 3}}\n");
  const l = await loadPipeline(f);
  assert(!l.plan);
  const d = l.diagnostics.find((d) => d.message.startsWith("include cycle"));
  assert(d, l.diagnostics.map((d) => d.message).join("\n"));
  assertStringIncludes(d.pos.file, "y.yaml");
  assertEquals([d.pos.line, d.pos.col], [1, 11]);
});

Deno.test("guidance.yaml samples the main job's model: its train stage is mnist.yaml's (the same cache key)", async () => {
  const a = (await plan("pipelines/mnist.yaml")).stages.filter((s) => s.name.startsWith("train"));
  const b = (await plan("pipelines/guidance.yaml")).stages.filter((s) => s.name.startsWith("train"));
  assertEquals(a.length, 1);
  assertEquals(b.length, 1);
  assertEquals(
    { kind: b[0].kind.name, params: b[0].params, inputs: b[0].inputs, seed: b[0].seed },
    { kind: a[0].kind.name, params: a[0].params, inputs: a[0].inputs, seed: a[0].seed },
  );
});

Deno.test("the converted pipelines share the MNIST stages of pipelines/mnist.yaml (same kind, params, inputs, seed)", async () => {
  const ref = await plan("pipelines/mnist.yaml");
  const shared = ["data", "heldout", "vae", "latents", "classifier", "ref"];
  for (
    const file of ["pipelines/conditioning.yaml", "pipelines/guidance.yaml", "pipelines/scaling.yaml"]
  ) {
    const p = await plan(file);
    for (const name of shared) {
      const a = ref.byName.get(name)!;
      const b = p.byName.get(name);
      assert(b, `${file} lacks ${name}`);
      assertEquals(
        { kind: b.kind.name, params: b.params, inputs: b.inputs, seed: b.seed, paths: b.paths },
        { kind: a.kind.name, params: a.params, inputs: a.inputs, seed: a.seed, paths: a.paths },
        `${file}: ${name}`,
      );
    }
  }
});
