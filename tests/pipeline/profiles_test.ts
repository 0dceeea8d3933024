/**
 * Profiles: `profiles:` in a pipeline file, selected with `--set profile=NAME` (else `default` when
 * declared). Their `vars` merge over the top-level ones (and under `--set vars.x=...`), their `stages`
 * replace, add or (null) remove whole stage definitions; `${{ profile }}` names the selection. Cache keys
 * of stages a profile leaves alone do not change.
 */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { plan, runIn, Sandbox, statusOf } from "./helpers.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import { COMMAND_LINE } from "../../lib/pipeline/expand.ts";
import { formatDiagnostics } from "../../lib/pipeline/diagnostics.ts";
import { main } from "../../lib/cli/main.ts";

const PIPE = `name: prof
vars:
  base: 1
  scale: 2
  derived: "\${{ vars.base }}-\${{ vars.scale }}"
profiles:
  default:
    vars: { scale: 3 }
  paper:
    description: the full run
    vars: { base: 100, extra: "x" }
    stages:
      two:
        uses: gen
        with: { value: "\${{ vars.base }}", label: "\${{ vars.extra }}-\${{ profile }}" }
      three:
        uses: add
        inputs: { a: two.data }
  tiny:
    stages:
      sum: null
stages:
  one:
    uses: gen
    with: { value: 7, label: "\${{ profile }}" }
  two:
    uses: gen
    with: { value: "\${{ vars.scale }}", label: "\${{ vars.derived }}" }
  sum:
    uses: add
    inputs: { a: two.data }
  keep:
    uses: gen
    with: { value: 5 }
`;

function diagText(l: Awaited<ReturnType<typeof loadPipeline>>): string {
  return l.diagnostics.map((d) => `${d.pos.file}:${d.pos.line}:${d.pos.col}: ${d.message} | ${d.hint ?? ""}`)
    .join("\n");
}

Deno.test("profiles: `default` applies without --set; --set profile=NAME selects another", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE);
  const d = await plan(f);
  assertEquals(d.profile, "default");
  assertEquals(d.name, "prof");
  assertEquals(d.byName.get("two")!.params.value, 3); // default's scale
  assertEquals(d.byName.get("two")!.params.label, "1-3"); // later vars see the profile's value
  assertEquals(d.byName.get("one")!.params.label, "default");
  assertEquals(d.vars.scale, 3);

  const p = await plan(f, ["profile=paper"]);
  assertEquals(p.profile, "paper");
  assertEquals(p.name, "prof@paper"); // its own refs: runs of two profiles never evict each other
  assertEquals(p.byName.get("one")!.params.label, "paper");
  // `two` replaced entirely (its `with` is the profile's, not merged with the file's).
  assertEquals(p.byName.get("two")!.params.value, 100);
  assertEquals(p.byName.get("two")!.params.label, "x-paper");
  // `three` added, after the file's stages; positions point into the profile.
  assertEquals(p.stages.map((s) => s.name), ["one", "two", "sum", "keep", "three"]);
  assertEquals(p.byName.get("three")!.deps, ["two"]);
  assertEquals(p.byName.get("three")!.pos.line, 16);
  assertEquals(p.byName.get("two")!.pos.line, 13);
  assertEquals(p.vars.scale, 2); // paper leaves scale alone: the top-level value, not default's
  assertEquals(p.vars.extra, "x");

  // `--set profile=default` is the same as nothing.
  const again = await plan(f, ["profile=default"]);
  assertEquals(again.name, "prof");
  assertEquals(again.byName.get("two")!.params.value, 3);
});

Deno.test("profiles: without `default`, no profile applies and ${{ profile }} is `default`", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE.replace("  default:\n    vars: { scale: 3 }\n", ""));
  const p = await plan(f);
  assertEquals(p.profile, undefined);
  assertEquals(p.byName.get("two")!.params.value, 2);
  assertEquals(p.byName.get("one")!.params.label, "default");
  // A pipeline without profiles: plans as before.
  const g = sb.write(
    "q.yaml",
    "name: q\nstages:\n  a: { uses: gen, with: { value: 1, label: '${{ profile }}' } }\n",
  );
  const q = await plan(g);
  assertEquals(q.profile, undefined);
  assertEquals(q.byName.get("a")!.params.label, "default");
});

Deno.test("profiles: merge order is top-level vars < profile vars < --set", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE);
  const a = await plan(f, ["profile=paper", "vars.base=5"]);
  assertEquals(a.byName.get("two")!.params.value, 5);
  // Order on the command line does not matter for the profile selection.
  const b = await plan(f, ["vars.base=6", "profile=paper", "two.value=9"]);
  assertEquals(b.byName.get("two")!.params.value, 9); // a stage override beats the var
  assertEquals(b.vars.base, 6);
  // A variable only a profile defines is unknown under another one, with a hint naming the profile.
  const c = await loadPipeline(f, { sets: ["vars.extra=1"] });
  assert(!c.plan);
  const d = c.diagnostics.find((x) => x.message.includes("unknown variable `extra`"));
  assert(d, diagText(c));
  assertStringIncludes(d.hint ?? "", "--set profile=paper");
});

Deno.test("profiles: a stage removed with null disappears; dependents get the usual diagnostic", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE);
  const t = await plan(f, ["profile=tiny"]);
  assertEquals(t.stages.map((s) => s.name), ["one", "two", "keep"]);
  // Removing a stage that others use: the reference in `sum` is reported where it is written, and the
  // hint names the profile's `null` line.
  const g = sb.write("q.yaml", PIPE.replace("      sum: null", "      two: null"));
  const l = await loadPipeline(g, { sets: ["profile=tiny"] });
  assert(!l.plan);
  const d = l.diagnostics.find((x) => x.message.includes("references unknown stage `two`"));
  assert(d, diagText(l));
  assertEquals([d.pos.file, d.pos.line, d.pos.col], [g, 31, 18]);
  assertStringIncludes(d.hint ?? "", `profile \`tiny\` removes stage \`two\` (${g}:21:7)`);
  // Overriding a parameter of a removed stage says why it is not there.
  const o = await loadPipeline(f, { sets: ["profile=tiny", "sum.offset=1"] });
  assertEquals(o.diagnostics.map((x) => x.hint), ["profile `tiny` removes stage `sum`"]);
  // Removing a stage that does not exist is an error at the profile's line, with a suggestion.
  const h = sb.write("r.yaml", PIPE.replace("      sum: null", "      summ: null"));
  const m = await loadPipeline(h, { sets: ["profile=tiny"] });
  const e = m.diagnostics.find((x) => x.message.includes("removes stage `summ`"));
  assert(e, diagText(m));
  assertEquals([e.pos.line, e.pos.col], [21, 7]);
  assertEquals(e.hint, "did you mean `sum`?");
});

Deno.test("profiles: unknown profile names point at the command line and suggest declared ones", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE);
  const l = await loadPipeline(f, { sets: ["vars.base=2", "profile=papr"] });
  assert(!l.plan);
  assertEquals(l.diagnostics.length, 1, diagText(l)); // nothing else cascades from it
  const d = l.diagnostics[0];
  // `--set vars.base=2 --set profile=papr`: the value starts at column 33.
  assertEquals([d.pos.file, d.pos.line, d.pos.col, d.pos.len], [COMMAND_LINE, 1, 33, 4]);
  assertStringIncludes(d.message, "unknown profile `papr`");
  assertStringIncludes(d.message, `\`profiles:\` at ${f}:6:1 declares \`default\`, \`paper\`, \`tiny\``);
  assertEquals(d.hint, "did you mean `paper`?");
  const text = formatDiagnostics(l.diagnostics, { sources: l.sources });
  assertStringIncludes(text, "<command line>:1:33: error: unknown profile `papr`");
  assertStringIncludes(text, "^^^^");
  // Nothing close: the declared names are listed.
  const far = await loadPipeline(f, { sets: ["profile=zzzzzzzz"] });
  assertEquals(far.diagnostics[0].hint, "declared profiles: `default`, `paper`, `tiny`");
  // A pipeline without profiles says so.
  const g = sb.write("q.yaml", "name: q\nstages:\n  a: { uses: gen, with: { value: 1 } }\n");
  const n = await loadPipeline(g, { sets: ["profile=paper"] });
  assertEquals(n.diagnostics.length, 1, diagText(n));
  assertStringIncludes(n.diagnostics[0].message, "pipeline `q`");
  assertStringIncludes(n.diagnostics[0].message, "declares no `profiles:`");
  assertEquals(n.diagnostics[0].pos.file, COMMAND_LINE);
  // A profile is chosen by name, not by a list.
  const bad = await loadPipeline(f, { sets: ["profile=[a]"] });
  assertStringIncludes(bad.diagnostics[0].message, "a profile is selected by name, not a list");
});

Deno.test("profiles: malformed profiles are reported at their position in the file", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "p.yaml",
    `name: bad
profiles:
  paper: [1, 2]
  fast:
    var: { steps: 1 }
    stages:
      a: 3
      b:
        uses: gen
        with: { valeu: 1 }
  "no good": {}
stages:
  a: { uses: gen, with: { value: 1 } }
`,
  );
  const l = await loadPipeline(f);
  const has = (line: number, col: number, frag: string) =>
    assert(
      l.diagnostics.some((d) => d.pos.line === line && d.pos.col === col && d.message.includes(frag)),
      `expected ${line}:${col}: ${frag}\n${diagText(l)}`,
    );
  has(3, 10, "profile `paper` must be a mapping (with `vars:` and/or `stages:`), not a list");
  has(5, 5, "unknown key `var` in profile `fast`");
  assert(l.diagnostics.some((d) => d.hint === "did you mean `vars`?"));
  has(7, 10, "stage `a` of profile `fast` must be a whole stage definition");
  has(11, 3, "invalid profile name `no good`");
  // Errors inside the selected profile's stages point into the profile.
  const g = sb.write(
    "q.yaml",
    `name: q
profiles:
  fast:
    stages:
      a:
        uses: gen
        with: { valeu: 1 }
stages:
  a: { uses: gen, with: { value: 1 } }
`,
  );
  const m = await loadPipeline(g, { sets: ["profile=fast"] });
  const d = m.diagnostics.find((x) => x.message.includes("unknown parameter `valeu`"));
  assert(d, diagText(m));
  assertEquals([d.pos.line, d.pos.col], [7, 17]);
  assertEquals(d.hint, "did you mean `value`?");
  assert(
    m.diagnostics.some((x) => x.message.includes("missing required parameter `a.value`") && x.pos.line === 5),
  );
  // Without the profile the file is valid.
  assert((await loadPipeline(g)).plan);
});

Deno.test("profiles: stages a profile leaves alone keep their cache keys", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE);
  const first = await runIn(sb, f, { sets: ["profile=tiny"] });
  assertEquals(first.failed, []);
  assertEquals(first.ran.sort(), ["keep", "one", "two"]);
  // `default` changes `scale` (so `two` and its dependents) and `${{ profile }}` in `one`'s label;
  // `keep` is identical under both profiles and is a cache hit.
  const second = await runIn(sb, f);
  assertEquals(second.cached, ["keep"]);
  assertEquals(second.ran.sort(), ["one", "sum", "two"]);
  const keyOf = (r: typeof first, n: string) => r.report.stages.find((s) => s.name === n)!.key;
  assertEquals(keyOf(first, "keep"), keyOf(second, "keep"));
  // A profile that changes nothing about `two` and `sum` (tiny removes `sum` only): same keys as in
  // the first run, so `status` reports them cached even though the last run was another profile.
  const st = await statusOf(sb, f, ["profile=tiny"]);
  assertEquals(Object.keys(st).sort(), ["keep", "one", "two"]);
  for (const n of ["keep", "one", "two"]) assertEquals(st[n].action, "cached", n);
  assertEquals(st.two.key, keyOf(first, "two"));
});

/** Runs `main` with stdout and stderr captured. */
async function mainCaptured(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const dec = new TextDecoder();
  const o = Deno.stdout.writeSync;
  const e = Deno.stderr.writeSync;
  Deno.stdout.writeSync = (p: Uint8Array) => (stdout += dec.decode(p), p.length);
  Deno.stderr.writeSync = (p: Uint8Array) => (stderr += dec.decode(p), p.length);
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    Deno.stdout.writeSync = o;
    Deno.stderr.writeSync = e;
  }
}

Deno.test("profiles: status, dag and run --dry-run take --set profile=NAME", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE);
  const st = await mainCaptured(["status", f, "--cache", sb.cache, "--set", "profile=paper"]);
  assertEquals(st.code, 0, st.stderr);
  assertStringIncludes(st.stdout, `pipeline prof@paper (${f}, profile paper): 5 to run, 0 cached`);
  const dag = await mainCaptured(["dag", f, "--set", "profile=tiny"]);
  assertEquals(dag.code, 0, dag.stderr);
  assert(!dag.stdout.includes("sum"), dag.stdout);
  const dry = await mainCaptured([
    "run",
    f,
    "--cache",
    sb.cache,
    "--dry-run",
    "--json",
    "--set",
    "profile=paper",
  ]);
  assertEquals(dry.code, 0, dry.stderr);
  const j = JSON.parse(dry.stdout);
  assertEquals(j.profile, "paper");
  assert(j.stages.some((s: { name: string }) => s.name === "three"));
  const bad = await mainCaptured(["status", f, "--cache", sb.cache, "--set", "profile=papr"]);
  assertEquals(bad.code, 2);
  assertStringIncludes(bad.stderr, "<command line>:1:15: error: unknown profile `papr`");
  assertStringIncludes(bad.stderr, "help: did you mean `paper`?");
});

Deno.test("profiles: an optional path set to an empty variable is unset", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "p.yaml",
    `name: paths
vars: { src: "" }
profiles:
  local:
    vars: { src: "p.yaml" }
stages:
  enc:
    uses: tiny_encode
    with: { dataset: d, source: "\${{ vars.src }}" }
`,
  );
  const a = await plan(f);
  assert(!("source" in a.byName.get("enc")!.params));
  assertEquals(a.byName.get("enc")!.paths, []);
  const b = await plan(f, ["profile=local"]);
  assertEquals(b.byName.get("enc")!.params.source, `${sb.dir}/p.yaml`);
  assertEquals(b.byName.get("enc")!.paths, [`${sb.dir}/p.yaml`]);
});

Deno.test("path params: written in the file → relative to the file; typed with --set → relative to the cwd", async () => {
  using sb = new Sandbox();
  Deno.mkdirSync(`${sb.dir}/sub`);
  Deno.writeTextFileSync(`${sb.dir}/sub/w.bin`, "weights");
  const f = sb.write(
    "sub/p.yaml",
    `
name: paths
vars: { w: w.bin }
stages:
  a: { uses: tiny_encode, with: { dataset: x, source: "\${{ vars.w }}" } }
`,
  );
  const fromFile = await plan(f);
  assertEquals(fromFile.byName.get("a")!.params.source, `${sb.dir}/sub/w.bin`);
  const cwd = Deno.cwd();
  Deno.chdir(sb.dir);
  try {
    const typed = await plan(f, ["vars.w=sub/w.bin"]);
    assertEquals(typed.byName.get("a")!.params.source, `${sb.dir}/sub/w.bin`);
    const direct = await plan(f, ["a.source=sub/w.bin"]);
    assertEquals(direct.byName.get("a")!.params.source, `${sb.dir}/sub/w.bin`);
  } finally {
    Deno.chdir(cwd);
  }
});
