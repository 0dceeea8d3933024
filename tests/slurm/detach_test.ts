/**
 * `run --executor slurm --detach`, `status` and `cancel` on a real cluster. Skipped with a message when
 * `sinfo` is not available.
 */

import { assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { cli, Sandbox } from "../pipeline/helpers.ts";
import { record, runningJob, SLURM, slurmCli, until } from "./helpers.ts";

const ignore = !SLURM;

interface StatusJson {
  stages: {
    name: string;
    action: string;
    slurm?: { status: string; job: string; state: string; reason?: string };
  }[];
}

async function statusOf(sb: Sandbox, f: string): Promise<Record<string, string>> {
  const r = await cli(sb, ["status", f, "--json"]);
  assertEquals(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as StatusJson;
  return Object.fromEntries(j.stages.map((s) => [s.name, s.slurm?.status ?? s.action]));
}

Deno.test({
  name:
    "slurm --detach: the whole DAG is submitted at once and runs to completion; a failure cancels dependents",
  ignore,
  async fn() {
    using sb = new Sandbox();
    const ok = sb.write(
      "ok.yaml",
      `name: ok
stages:
  g: {uses: gen, matrix: {v: [1, 2]}, with: {value: "\${{ matrix.v }}"}}
  a: {uses: add, inputs: {a: g.data}, with: {offset: 1}}
  all: {uses: collect, inputs: {items: "a[*].data"}}
`,
    );
    const bad = sb.write(
      "bad.yaml",
      `name: bad
stages:
  first: {uses: gen, with: {value: 5}}
  boom: {uses: flaky, inputs: {a: first.data}, with: {fail: true}}
  next: {uses: add, inputs: {a: boom.data}}
  last: {uses: add, inputs: {a: next.data}}
`,
    );
    const r1 = await slurmCli(sb, ["run", ok, "--executor", "slurm", "--detach"]);
    assertEquals(r1.code, 0, r1.stderr);
    assertStringIncludes(r1.stdout, "5 stage(s) on Slurm");
    const r2 = await slurmCli(sb, ["run", bad, "--executor", "slurm", "--detach"]);
    assertEquals(r2.code, 0, r2.stderr);
    // The head has exited; the jobs go on.
    await until(
      async () => Object.values(await statusOf(sb, ok)).every((s) => s === "cached"),
      90_000,
      "ok to finish",
    );
    await until(
      async () => {
        const s = await statusOf(sb, bad);
        return s.first === "cached" && s.boom === "failed" && s.next === "cancelled" &&
          s.last === "cancelled";
      },
      90_000,
      "bad to fail",
    );
    const text = await cli(sb, ["status", bad]);
    const boomJob = record(sb, "bad", "boom")!.job;
    assertStringIncludes(
      text.stdout,
      `failed (job ${boomJob}, FAILED: NonZeroExitCode); log ${sb.cache}/slurm/logs/bad/boom.log`,
    );
    assertStringIncludes(
      text.stdout,
      `cancelled (job ${record(sb, "bad", "next")!.job}: an upstream job failed)`,
    );
    // The detached jobs recorded their keys: `show` finds the artifacts, and a later run has nothing to do.
    const show = await cli(sb, ["show", "all", "--pipeline", "ok"]);
    assertEquals(show.code, 0, show.stderr);
    assertStringIncludes(show.stdout, "(detached)");
    const again = await cli(sb, ["run", ok]);
    assertStringIncludes(again.stdout, "0 ran, 5 cached");
    const failedShow = await cli(sb, ["show", "boom"]);
    assertStringIncludes(failedShow.stdout, `slurm log ${sb.cache}/slurm/logs/bad/boom.log`);
  },
});

Deno.test({
  name:
    "slurm: `ditflow cancel FILE` cancels what is queued or running; a detached rerun does not submit twice",
  ignore,
  async fn() {
    using sb = new Sandbox();
    const f = sb.write(
      "p.yaml",
      `name: slow
stages:
  s: {uses: sleep, with: {ms: 600000}}
  t: {uses: add, inputs: {a: s.data}}
`,
    );
    const r = await slurmCli(sb, ["run", f, "--executor", "slurm", "--detach"]);
    assertEquals(r.code, 0, r.stderr);
    const sJob = await runningJob(sb, "slow", "s");
    const tJob = record(sb, "slow", "t")!.job;
    const st = await statusOf(sb, f);
    assertEquals(st, { s: "running", t: "queued" });
    // Detaching again reuses the queued and running jobs.
    const again = await slurmCli(sb, ["run", f, "--executor", "slurm", "--detach"]);
    assertStringIncludes(again.stdout, `already queued  job ${sJob}  s`);
    assertStringIncludes(again.stdout, `already queued  job ${tJob}  t`);
    const c = await cli(sb, ["cancel", f]);
    assertEquals(c.code, 0, c.stderr);
    assertStringIncludes(c.stdout, `cancelled job ${sJob}  s  (was RUNNING)`);
    assertStringIncludes(c.stdout, `cancelled job ${tJob}  t  (was PENDING)`);
    await until(
      async () => {
        const s = await statusOf(sb, f);
        return s.s === "cancelled" && s.t === "cancelled";
      },
      20_000,
      "both cancelled",
    );
    const none = await cli(sb, ["cancel", f]);
    assertStringIncludes(none.stdout, "nothing of slow is queued or running");
  },
});
