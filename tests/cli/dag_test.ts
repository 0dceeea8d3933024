import "../../lib/stages/mod.ts";
import { assert, assertEquals } from "../pipeline/assert.ts";
import { dagAscii } from "../../lib/cli/cmd_run.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";

const MINI = new URL("../../pipelines/mini.yaml", import.meta.url).pathname;

Deno.test("dag ascii: one unindented line per stage, edges spelled out (mini: train[steps=0] reads latents, not ref)", async () => {
  const l = await loadPipeline(MINI, {});
  assert(l.plan, JSON.stringify(l.diagnostics));
  const text = dagAscii(l.plan);
  const lines = text.split("\n");
  assertEquals(lines.length, l.plan.stages.length + 1);
  for (const line of lines) assert(!/^\s/.test(line) && !line.includes("└"), `indented: ${line}`);
  const row = (name: string) => {
    const r = lines.find((x) => x.startsWith(`${name} `));
    assert(r, `no line for ${name}:\n${text}`);
    return r;
  };
  // The line that used to sit under `ref` (depth indentation read as a tree): its only edge is latents.
  assert(
    /^train\[steps=0\]\s+train \(gpu\)\s+sample\[steps=0\], report\s+data ← latents\.latents$/.test(
      row("train[steps=0]"),
    ),
  );
  assert(!row("train[steps=0]").includes("ref"));
  // ref is used by the two fid stages only, and reads test_digits and classifier.
  assert(
    /\s+fid\[steps=0\], fid\[steps=800\]\s+data ← test_digits\.dataset; classifier ← classifier\.classifier$/
      .test(row("ref")),
  );
  // Every edge of the plan appears on its consumer's line.
  for (const s of l.plan.stages) {
    for (const i of s.inputs) {
      for (const r of i.refs) {
        assert(row(s.name).includes(`${r.stage}.${r.output}`), `${s.name} ← ${r.stage}`);
      }
    }
  }
  assert(/^digits\s+mnist\s+vae, latents\s+- \(source\)$/.test(row("digits")));
});
