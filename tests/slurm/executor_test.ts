/**
 * `--executor slurm` on a real cluster (the one-node cluster of tools/slurm/local-cluster.sh), with the
 * cheap test kinds of tests/pipeline/kinds.ts. Skipped with a message when `sinfo` is not available.
 */

import { assert, assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { cli, runIn, Sandbox } from "../pipeline/helpers.ts";
import { sbatch, scancel } from "../../lib/pipeline/slurm/cli.ts";
import { jobState, readTree, record, runningJob, SLURM, slurmCli, spawnSlurmCli, until } from "./helpers.ts";
import type { RunReport } from "../../lib/pipeline/engine.ts";

const ignore = !SLURM;

const SAME = `
name: same
stages:
  g:
    uses: gen
    matrix: {v: [1, 2, 3]}
    with: {value: "\${{ matrix.v }}", label: "v\${{ matrix.v }}"}
  a:
    uses: add
    inputs: {a: g.data}
    with: {offset: 10}
    resources: {cpus: 1, mem: 500M, time: 5}
  all:
    uses: collect
    inputs: {items: "a[*].data"}
`;

Deno.test({
  name: "slurm: artifacts (keys and every output byte) are identical to the local executor's",
  ignore,
  async fn() {
    using local = new Sandbox();
    using remote = new Sandbox();
    const lf = local.write("p.yaml", SAME);
    const rf = remote.write("p.yaml", SAME);
    const l = await runIn(local, lf);
    assertEquals(l.ran.length, 7);
    const r = await slurmCli(remote, ["run", rf, "--executor", "slurm", "--json"]);
    assertEquals(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as RunReport;
    assertEquals(report.stages.map((s) => s.result), Array(7).fill("ran"));
    for (const s of l.report.stages) {
      const other = report.stages.find((x) => x.name === s.name)!;
      assertEquals(other.key, s.key, s.name);
      const a = readTree(`${local.store.objectDir(s.key!)}/out`);
      const b = readTree(`${remote.store.objectDir(other.key!)}/out`);
      assertEquals([...b.keys()], [...a.keys()]);
      for (const [p, bytes] of a) assertEquals(b.get(p), bytes, `${s.name}: ${p}`);
    }
    // Each stage ran as its own job; its log is at the stable path `show` prints.
    const show = await cli(remote, ["show", "all", "--pipeline", "same"]);
    assertStringIncludes(show.stdout, `slurm log ${remote.cache}/slurm/logs/same/all.log`);
    assertStringIncludes(Deno.readTextFileSync(`${remote.cache}/slurm/logs/same/all.log`), "all: ran");
    assertStringIncludes(
      Deno.readTextFileSync(record(remote, "same", "a[v=1]")!.script),
      "#SBATCH --mem=500M",
    );
    // Run again: everything cached, nothing submitted.
    const again = await slurmCli(remote, ["run", rf, "--executor", "slurm", "--json"]);
    assertEquals(
      (JSON.parse(again.stdout) as RunReport).stages.map((s) => s.result),
      Array(7).fill("cached"),
    );
  },
});

const TROUBLE = `
name: trouble
stages:
  bad: {uses: flaky, with: {fail: true, value: 7}}
  long: {uses: sleep, with: {ms: 600000}}
  count:
    uses: counter
    with: {steps: 105, step_ms: 1000}
    resources: {time: 1}
  after_bad: {uses: add, inputs: {a: bad.data}}
`;

Deno.test({
  name: "slurm: a failing stage, an scancel'ed job, and a job that hits its time limit and resumes on retry",
  ignore,
  async fn() {
    using sb = new Sandbox();
    const f = sb.write("p.yaml", TROUBLE);
    const t0 = Date.now();
    const head = spawnSlurmCli(sb, ["run", f, "--executor", "slurm", "--keep-going", "--json"]);
    const longJob = await runningJob(sb, "trouble", "long");
    assertEquals(await scancel([longJob]), undefined);
    const out = await head.output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    const report = JSON.parse(stdout) as RunReport;
    const by = Object.fromEntries(report.stages.map((s) => [s.name, s]));
    // The failure: stage, job id, state, reason, the error, the tail of the stable log.
    const bad = by.bad;
    assertEquals(bad.result, "failed");
    assertEquals(bad.job?.state, "FAILED");
    assertEquals(bad.job?.id, record(sb, "trouble", "bad")!.job);
    assertStringIncludes(bad.error!, `Slurm job ${bad.job!.id} FAILED (NonZeroExitCode)`);
    assertStringIncludes(bad.error!, "asked to fail (value 7)");
    assertEquals(bad.logPath, `${sb.cache}/slurm/logs/trouble/bad.log`);
    assert(bad.logTail!.some((l) => l.includes("about to fail")), bad.logTail!.join("\n"));
    assertEquals(by.after_bad.result, "skipped");
    // The cancelled job.
    assertEquals(by.long.result, "failed");
    assertEquals(by.long.job?.state, "CANCELLED");
    assertStringIncludes(by.long.error!, `Slurm job ${longJob} CANCELLED`);
    // The human summary says the same.
    assertStringIncludes(stderr, `stage bad failed: Slurm job ${bad.job!.id} FAILED`);
    assertStringIncludes(stderr, `slurm job ${longJob}: CANCELLED`);
    assertStringIncludes(stderr, `log: ${sb.cache}/slurm/logs/trouble/long.log`);
    // The counter hit its 1-minute limit, was resubmitted, and resumed from its checkpoint.
    assertEquals(by.count.result, "ran", stderr);
    assert((by.count.metrics!.resumed_from as number) > 0, JSON.stringify(by.count.metrics));
    const rec = record(sb, "trouble", "count")!;
    assert(rec.attempt >= 2, JSON.stringify(rec));
    assertStringIncludes(stderr, "TIMEOUT (TimeLimit); resubmitting (retry 1 of 2)");
    assertEquals(Deno.readTextFileSync(`${sb.store.outputDir(by.count.key!, "data")}/value.txt`), "105");
    console.log(`  (time-limit test: ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  },
});

const RESTART = `
name: restart
stages:
  a: {uses: gen, with: {value: 1}}
  quick: {uses: sleep, with: {ms: 3000, id: 1, trace: TRACE}, inputs: {}}
  slow: {uses: sleep, with: {ms: 12000, id: 2, trace: TRACE}}
  sum: {uses: add, inputs: {a: quick.data, b: slow.data}}
`;

Deno.test({
  name: "slurm: the head is killed (SIGKILL) mid-run and restarted: nothing is submitted twice",
  ignore,
  async fn() {
    using sb = new Sandbox();
    const trace = `${sb.dir}/trace.txt`;
    const f = sb.write("p.yaml", RESTART.replaceAll("TRACE", trace));
    const head = spawnSlurmCli(sb, ["run", f, "--executor", "slurm"]);
    const quick = await runningJob(sb, "restart", "quick");
    const slow = await runningJob(sb, "restart", "slow");
    head.kill("SIGKILL");
    await head.status;
    await head.stdout.cancel();
    await head.stderr.cancel();
    // While the head is gone, `quick` finishes; `slow` is still running when the head comes back.
    await until(async () => (await jobState(quick)) === "COMPLETED", 30_000, "quick's job to complete");
    assertEquals(await jobState(slow), "RUNNING");
    const r = await slurmCli(sb, ["run", f, "--executor", "slurm", "--json"]);
    assertEquals(r.code, 0, r.stderr);
    const by = Object.fromEntries((JSON.parse(r.stdout) as RunReport).stages.map((s) => [s.name, s.result]));
    // `quick` finished while no head was there: picked up from the cache. `slow`'s job was adopted: it ran the
    // stage (in the job the first head submitted).
    assertEquals(by, { a: "cached", quick: "cached", slow: "ran", sum: "ran" });
    assertStringIncludes(r.stderr, `slow: waiting for Slurm job ${slow} (adopted`);
    // Each sleep ran once, in the jobs the first head submitted.
    const lines = Deno.readTextFileSync(trace).trim().split("\n").map((l) => l.split(" ")[0]).sort();
    assertEquals(lines, ["quick", "slow"]);
    assertEquals(record(sb, "restart", "quick")!.job, quick);
    assertEquals(record(sb, "restart", "slow")!.job, slow);
  },
});

Deno.test({
  name: "slurm: Ctrl-C cancels the jobs this run submitted and nothing else",
  ignore,
  async fn() {
    using sb = new Sandbox();
    const other = sb.write("other.sh", "#!/bin/bash\nsleep 600\n");
    const otherJob = await sbatch(other, [`--output=${sb.dir}/other.out`]);
    try {
      const f = sb.write(
        "p.yaml",
        `name: intr
stages:
  long: {uses: sleep, with: {ms: 600000}}
  first: {uses: gen, with: {value: 1}}
`,
      );
      const head = spawnSlurmCli(sb, ["run", f, "--executor", "slurm"]);
      const job = await runningJob(sb, "intr", "long");
      head.kill("SIGINT");
      const out = await head.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 130, stderr);
      await until(
        async () => (await jobState(job)) === "CANCELLED",
        20_000,
        "the stage's job to be cancelled",
      );
      const st = await jobState(otherJob);
      assert(st === "RUNNING" || st === "PENDING", `the unrelated job is ${st}`);
    } finally {
      await scancel([otherJob]);
    }
  },
});

const SHARED = `
name: shared
stages:
  s1: {uses: sleep, with: {ms: 2500, id: 1, trace: TRACE}}
  s2: {uses: sleep, with: {ms: 2500, id: 2, trace: TRACE}}
  s3: {uses: sleep, with: {ms: 2500, id: 3, trace: TRACE}}
  s4: {uses: sleep, with: {ms: 2500, id: 4, trace: TRACE}}
  t1: {uses: add, inputs: {a: s1.data, b: s2.data}}
  t2: {uses: add, inputs: {a: s3.data, b: s4.data}}
  top: {uses: add, inputs: {a: t1.data, b: t2.data}}
`;

Deno.test({
  name: "slurm: a local run and a Slurm run share one cache without duplicate work",
  ignore,
  async fn() {
    using sb = new Sandbox();
    const trace = `${sb.dir}/trace.txt`;
    const f = sb.write("p.yaml", SHARED.replaceAll("TRACE", trace));
    const onSlurm = spawnSlurmCli(sb, ["run", f, "--executor", "slurm", "--json"]);
    await new Promise((r) => setTimeout(r, 300));
    const local = spawnSlurmCli(sb, ["run", f, "--jobs", "2", "--json"]);
    const [a, b] = await Promise.all([onSlurm.output(), local.output()]);
    const dec = new TextDecoder();
    assertEquals(a.code, 0, dec.decode(a.stderr));
    assertEquals(b.code, 0, dec.decode(b.stderr));
    // Every sleep ran exactly once, in one process or the other.
    const ran = Deno.readTextFileSync(trace).trim().split("\n").map((l) => l.split(" ")[0]).sort();
    assertEquals(ran, ["s1", "s2", "s3", "s4"]);
    const ra = JSON.parse(dec.decode(a.stdout)) as RunReport;
    const rb = JSON.parse(dec.decode(b.stdout)) as RunReport;
    const producers = ra.stages.filter((s) => s.result === "ran").length +
      rb.stages.filter((s) => s.result === "ran").length;
    assertEquals(producers, 7, `${JSON.stringify(ra.stages)}\n${JSON.stringify(rb.stages)}`);
    for (const s of ra.stages) assertEquals(rb.stages.find((x) => x.name === s.name)!.key, s.key);
  },
});

/** Runs `scontrol` (errors ignored: e.g. RESUME on a node that is already back). */
async function scontrol(...args: string[]): Promise<void> {
  await new Deno.Command("scontrol", { args, stdout: "null", stderr: "null" }).output();
}

Deno.test({
  name: "slurm: a job lost to NODE_FAIL is resubmitted and the stage resumes from its checkpoint",
  ignore,
  async fn() {
    using sb = new Sandbox();
    const f = sb.write(
      "p.yaml",
      `name: nodefail
stages:
  count: {uses: counter, with: {steps: 20, step_ms: 300}}
  after: {uses: add, inputs: {a: count.data}}
`,
    );
    const node = await new Deno.Command("sinfo", { args: ["-h", "-o", "%N"], stdout: "piped" }).output();
    const nodeName = new TextDecoder().decode(node.stdout).trim().split(/[\s,]/)[0];
    const head = spawnSlurmCli(sb, ["run", f, "--executor", "slurm", "--json"]);
    try {
      const job = await runningJob(sb, "nodefail", "count");
      const step = () => {
        try {
          for (const e of Deno.readDirSync(`${sb.cache}/checkpoints`)) {
            return Number(Deno.readTextFileSync(`${sb.cache}/checkpoints/${e.name}/step.txt`));
          }
        } catch { /* not yet */ }
        return 0;
      };
      await until(() => step() >= 4, 30_000, "checkpoint step 4");
      // The node goes down under the job: Slurm ends it with NODE_FAIL; then the node comes back.
      await scontrol("update", `NodeName=${nodeName}`, "State=DOWN", "Reason=ditflow-test");
      await until(async () => (await jobState(job)) === "NODE_FAIL", 20_000, "NODE_FAIL");
    } finally {
      await scontrol("update", `NodeName=${nodeName}`, "State=RESUME");
    }
    const out = await head.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    assertStringIncludes(stderr, "NODE_FAIL (NodeDown); resubmitting (retry 1 of 2)");
    const by = Object.fromEntries(
      (JSON.parse(new TextDecoder().decode(out.stdout)) as RunReport).stages.map((s) => [s.name, s]),
    );
    assertEquals(by.count.result, "ran");
    assert((by.count.metrics!.resumed_from as number) >= 4, JSON.stringify(by.count.metrics));
    assertEquals(record(sb, "nodefail", "count")!.attempt, 2);
    assertEquals(by.after.result, "ran");
  },
});
