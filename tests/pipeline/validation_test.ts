/**
 * Malformed pipelines: every fixture in tests/fixtures/pipelines/bad/ declares the errors it must
 * produce (`# expect: LINE:COL: fragment`, `# expect-hint: fragment`); the CLI must exit 2 and leave the
 * cache untouched.
 */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, FIXTURES, Sandbox } from "./helpers.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import { formatDiagnostics } from "../../lib/pipeline/diagnostics.ts";
import { main } from "../../lib/cli/main.ts";

const BAD = `${FIXTURES}/bad`;
const files = [...Deno.readDirSync(BAD)].map((e) => e.name).filter((n) => n.endsWith(".yaml")).sort();

/** Runs `main` with stderr captured. */
async function mainCaptured(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const orig = Deno.stderr.writeSync;
  const dec = new TextDecoder();
  Deno.stderr.writeSync = (p: Uint8Array) => {
    stderr += dec.decode(p);
    return p.length;
  };
  try {
    return { code: await main(args), stderr };
  } finally {
    Deno.stderr.writeSync = orig;
  }
}

Deno.test("at least 15 malformed fixtures", () => {
  assert(files.length >= 15, `only ${files.length} fixtures`);
});

for (const name of files) {
  Deno.test(`bad pipeline ${name}: file:line:col, message, exit 2, cache untouched`, async () => {
    const file = `${BAD}/${name}`;
    const text = Deno.readTextFileSync(file);
    // `# expect: [FILE:]LINE:COL: fragment`; FILE (relative to the fixture's folder) for errors in an
    // `include:`d file.
    const expects = [...text.matchAll(/^# expect: (?:([^\s:]+):)?(\d+):(\d+): (.*)$/gm)].map((m) => ({
      file: m[1] ? `${BAD}/${m[1]}` : file,
      line: Number(m[2]),
      col: Number(m[3]),
      fragment: m[4],
    }));
    const hints = [...text.matchAll(/^# expect-hint: (.*)$/gm)].map((m) => m[1]);
    assert(expects.length > 0, "fixture declares no expectation");
    const loaded = await loadPipeline(file);
    assert(!loaded.plan);
    for (const e of expects) {
      const d = loaded.diagnostics.find((d) =>
        d.pos.file === e.file && d.pos.line === e.line && d.pos.col === e.col &&
        d.message.includes(e.fragment)
      );
      assert(
        d,
        `expected ${e.line}:${e.col}: ${e.fragment}\ngot:\n${
          loaded.diagnostics.map((d) => `${d.pos.file}:${d.pos.line}:${d.pos.col}: ${d.message}`).join("\n")
        }`,
      );
    }
    for (const h of hints) assert(loaded.diagnostics.some((d) => d.hint?.includes(h)), `hint ${h}`);
    // One screen: the rendered message stays short.
    const rendered = formatDiagnostics(loaded.diagnostics, { sources: loaded.sources });
    assert(rendered.split("\n").length <= 40, rendered);
    assertStringIncludes(rendered, `${expects[0].file}:${expects[0].line}:${expects[0].col}: error:`);
    // Through the CLI: exit code 2, and the cache directory is never created.
    using sb = new Sandbox();
    const r = await mainCaptured(["run", file, "--cache", sb.cache]);
    assertEquals(r.code, 2, r.stderr);
    assertStringIncludes(r.stderr, `${expects[0].file}:${expects[0].line}:${expects[0].col}: error:`);
    assertEquals([...Deno.readDirSync(sb.dir)].length, 0, "cache was touched");
  });
}

Deno.test("a missing pipeline file is reported with exit code 2", async () => {
  using sb = new Sandbox();
  const r = await mainCaptured(["run", `${sb.dir}/nope.yaml`, "--cache", sb.cache]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.stderr, `${sb.dir}/nope.yaml:1:1: error: cannot read pipeline: no such file`);
});

Deno.test("source line and caret are shown; unknown --set keys get suggestions", async () => {
  using sb = new Sandbox();
  const r = await mainCaptured([
    "status",
    `${FIXTURES}/demo.yaml`,
    "--cache",
    sb.cache,
    "--set",
    "train.lerning_rate=2e-4",
    "--set",
    "sise=3",
    "--set",
    "trian.steps=3",
  ]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.stderr, "<command line>:1:7: error: unknown parameter `lerning_rate` in `train`");
  assertStringIncludes(r.stderr, "did you mean `learning_rate`?");
  assertStringIncludes(r.stderr, "did you mean `size`?");
  assertStringIncludes(r.stderr, "did you mean `train.steps`?");
  assertStringIncludes(r.stderr, "^^^^^^^^^^^^^^^^^^");
});

Deno.test("the CLI subprocess exits 2 for an invalid pipeline", async () => {
  using sb = new Sandbox();
  const r = await cli(sb, ["run", `${BAD}/20_many_errors.yaml`]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.stderr, "4 errors; nothing was run");
  assertEquals([...Deno.readDirSync(sb.dir)].length, 0);
});

Deno.test("bad usage exits 2", async () => {
  using sb = new Sandbox();
  assertEquals(
    (await mainCaptured(["run", `${FIXTURES}/demo.yaml`, "--cache", sb.cache, "--jobz", "2"])).code,
    2,
  );
  assertEquals((await mainCaptured(["frobnicate"])).code, 2);
  const r = await mainCaptured(["run", `${FIXTURES}/demo.yaml`, "--cache", sb.cache, "--only", "trian"]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.stderr, "did you mean `train`?");
});

Deno.test("an alias bomb exits 2 within a second, with the location", async () => {
  const file = `${BAD}/30_alias_bomb.yaml`;
  const t0 = performance.now();
  const loaded = await loadPipeline(file);
  const ms = performance.now() - t0;
  assert(!loaded.plan);
  assert(ms < 1000, `took ${ms.toFixed(0)} ms`);
  assert(loaded.diagnostics.some((d) => d.pos.line === 14 && /aliases expand too much/.test(d.message)));
});

Deno.test("a sweep over the limit plans with allowLargeSweep (--allow-large-sweep)", async () => {
  using sb = new Sandbox();
  const file = `${sb.dir}/big.yaml`;
  const vals = Array.from({ length: 22 }, (_, i) => i + 1).join(", ");
  Deno.writeTextFileSync(
    file,
    `name: big\nstages:\n  data:\n    uses: mnist\n    matrix:\n      a: [${vals}]\n      b: [${vals}]\n      c: [${vals}]\n    with: { limit: "\${{ matrix.a }}" }\n`,
  );
  const refused = await loadPipeline(file);
  assert(refused.diagnostics.some((d) => d.message.includes("10,648 points")), "not refused");
  const allowed = await loadPipeline(file, { allowLargeSweep: true });
  assertEquals(allowed.diagnostics, []);
  assertEquals(allowed.plan!.stages.length, 22 ** 3);
});

Deno.test("publish: inside the project is fine; outside needs allowOutsideWrites; ../ escapes are caught", async () => {
  using sb = new Sandbox();
  const write = (publish: string) => {
    const file = `${sb.dir}/p.yaml`;
    Deno.writeTextFileSync(
      file,
      `name: p\nstages:\n  data:\n    uses: mnist\n  train:\n    uses: train\n    inputs: { data: data.dataset }\n` +
        `  report:\n    uses: report\n    inputs: { models: train.model }\n    with: { publish: "${publish}" }\n`,
    );
    return file;
  };
  // The sandbox is not in git: its directory is the project. Paths resolve against the current directory.
  const inside = await loadPipeline(write(`${sb.dir}/out/report`));
  assertEquals(inside.diagnostics, []);
  const escape = await loadPipeline(write(`${sb.dir}/out/../../elsewhere`));
  assert(escape.diagnostics.some((d) => d.message.includes("outside the project")), "escape not caught");
  const allowed = await loadPipeline(write("/etc/ditflow_probe"), { allowOutsideWrites: true });
  assertEquals(allowed.diagnostics, []);
  // The CLI flag.
  const r = await mainCaptured(["status", write("/etc/ditflow_probe"), "--cache", sb.cache]);
  assertEquals(r.code, 2, r.stderr);
  const ok = await mainCaptured([
    "dag",
    write("/etc/ditflow_probe"),
    "--allow-outside-writes",
  ]);
  assertEquals(ok.code, 0, ok.stderr);
});

Deno.test("model: DiT-M/3 fails at plan time through --set, before any stage runs", async () => {
  using sb = new Sandbox();
  const r = await mainCaptured([
    "run",
    "pipelines/mini.yaml",
    "--set",
    "train.model=DiT-M/3",
    "--cache",
    sb.cache,
  ]);
  assertEquals(r.code, 2, r.stderr);
  assertStringIncludes(r.stderr, '<command line>:1:19: error: unknown model "DiT-M/3"');
  assertEquals([...Deno.readDirSync(sb.dir)].length, 0, "cache was touched");
});
