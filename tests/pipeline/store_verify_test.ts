/**
 * The verified store: promoted files are read-only, every use checks size and mtime against the record,
 * `ditflow verify` re-hashes, and `run` never feeds a modified artifact to a stage (a cached producer whose
 * artifact was modified is recomputed; a stage whose input is found modified fails naming the producer).
 */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, runIn, Sandbox, statusOf } from "./helpers.ts";
import { runStage, type StageJob } from "../../lib/pipeline/run_stage.ts";
import { add } from "./kinds.ts";

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
`;

/** Flips the first byte of a stored file (same size), and moves its mtime so the change is visible. */
function tamper(path: string): void {
  Deno.chmodSync(path, 0o644);
  const bytes = Deno.readFileSync(path);
  bytes[0] ^= 1;
  Deno.writeFileSync(path, bytes);
  const t = new Date(Date.now() + 5000);
  Deno.utimeSync(path, t, t);
}

function walkFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...walkFiles(p));
    else out.push(p);
  }
  return out;
}

Deno.test("promoted artifact files are read-only and record their mtime", async () => {
  using sb = new Sandbox();
  const r = await runIn(sb, sb.write("p.yaml", CHAIN));
  for (const s of r.report.stages) {
    const files = walkFiles(sb.store.objectDir(s.key!));
    assert(files.length >= 3, files.join(","));
    for (const f of files) assertEquals(Deno.statSync(f).mode! & 0o777, 0o444, f);
    const meta = sb.store.readMeta(s.key!)!;
    for (const o of Object.values(meta.outputs)) for (const f of o.files) assert(typeof f.mtime === "number");
  }
});

Deno.test("a modified artifact: status says so, verify names stage, file, expected vs found; run recomputes it", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", CHAIN);
  const r1 = await runIn(sb, f);
  const aKey = r1.report.stages.find((s) => s.name === "a")!.key!;
  const file = `${sb.store.outputDir(aKey, "data")}/value.txt`;
  tamper(file);
  assertEquals(sb.store.quickCheck(aKey).length, 1);
  const st = await statusOf(sb, f);
  assertEquals(st.a.action, "run");
  assertStringIncludes(st.a.reasons[0], "stored artifact was modified (stage a: out/data/value.txt");
  // verify: exit 1, naming the stage, the file, the expected and the found digest.
  const v = await cli(sb, ["verify", "a"]);
  assertEquals(v.code, 1, v.stderr);
  assertStringIncludes(v.stdout, "MODIFIED  a");
  assertStringIncludes(v.stdout, "stage a: out/data/value.txt: expected sha256 ");
  assertStringIncludes(v.stdout, ", found sha256 ");
  const all = await cli(sb, ["verify", "--all"]);
  assertEquals(all.code, 1);
  assertStringIncludes(all.stdout, "2 artifact(s) checked, 1 modified");
  const clean = await cli(sb, ["verify", "b"]);
  assertEquals(clean.code, 0, clean.stdout + clean.stderr);
  // run: the producer is recomputed (same key, replaced); its output is identical, so b stays cached.
  const r2 = await runIn(sb, f);
  assertEquals(r2.ran, ["a"]);
  assertEquals(r2.cached, ["b"]);
  assertEquals(Deno.readTextFileSync(file), "1");
  const after = await cli(sb, ["verify", "--all"]);
  assertEquals(after.code, 0, after.stdout);
});

Deno.test("a stage is never fed a modified input: it fails naming the producer and the file", async () => {
  using sb = new Sandbox();
  const r1 = await runIn(sb, sb.write("p.yaml", CHAIN));
  const a = r1.report.stages.find((s) => s.name === "a")!;
  const meta = sb.store.readMeta(a.key!)!;
  tamper(`${sb.store.outputDir(a.key!, "data")}/value.txt`);
  const job: StageJob = {
    key: "f".repeat(64),
    name: "b2",
    base: "b2",
    pipeline: "chain",
    kind: "add",
    module: add.module,
    params: { offset: 1 },
    seed: 0,
    point: {},
    inputs: {
      a: {
        many: false,
        artifacts: [{
          dir: sb.store.outputDir(a.key!, "data"),
          stage: "a",
          output: "data",
          key: a.key!,
          digest: meta.outputs.data.digest,
          point: {},
        }],
      },
    },
    components: meta.components,
    codeFiles: {},
  };
  const out = await runStage(job, { store: sb.store });
  assertEquals(out.status, "failed");
  if (out.status === "failed") {
    assertStringIncludes(out.error, "input a: the stored artifact of stage a was modified");
    assertStringIncludes(out.error, "out/data/value.txt");
  }
  assert(!sb.store.has(job.key));
});
