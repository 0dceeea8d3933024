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
    const expects = [...text.matchAll(/^# expect: (\d+):(\d+): (.*)$/gm)].map((m) => ({
      line: Number(m[1]),
      col: Number(m[2]),
      fragment: m[3],
    }));
    const hints = [...text.matchAll(/^# expect-hint: (.*)$/gm)].map((m) => m[1]);
    assert(expects.length > 0, "fixture declares no expectation");
    const loaded = await loadPipeline(file);
    assert(!loaded.plan);
    for (const e of expects) {
      const d = loaded.diagnostics.find((d) =>
        d.pos.line === e.line && d.pos.col === e.col && d.message.includes(e.fragment)
      );
      assert(
        d,
        `expected ${e.line}:${e.col}: ${e.fragment}\ngot:\n${
          loaded.diagnostics.map((d) => `${d.pos.line}:${d.pos.col}: ${d.message}`).join("\n")
        }`,
      );
    }
    for (const h of hints) assert(loaded.diagnostics.some((d) => d.hint?.includes(h)), `hint ${h}`);
    // One screen: the rendered message stays short.
    const rendered = formatDiagnostics(loaded.diagnostics, { sources: loaded.sources });
    assert(rendered.split("\n").length <= 40, rendered);
    assertStringIncludes(rendered, `${file}:${expects[0].line}:${expects[0].col}: error:`);
    // Through the CLI: exit code 2, and the cache directory is never created.
    using sb = new Sandbox();
    const r = await mainCaptured(["run", file, "--cache", sb.cache]);
    assertEquals(r.code, 2, r.stderr);
    assertStringIncludes(r.stderr, `${file}:${expects[0].line}:${expects[0].col}: error:`);
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
