/**
 * The `compare` kind: passes or fails a run on the ratio of a candidate's recorded metric to a baseline's,
 * through the engine (metrics of the `gen` test kind) and the CLI (exit code 1 on failure).
 */
import { assert, assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { runIn, Sandbox } from "../pipeline/helpers.ts";
import "../../lib/stages/mod.ts";
import { compareMetric, metricValue, upstreamMetrics } from "../../lib/stages/compare.ts";
import { main } from "../../lib/cli/main.ts";

function pipeline(cand: number, base: number, compare: string): string {
  return `name: cmp
stages:
  good: { uses: gen, with: { value: ${cand} } }
  bad: { uses: gen, with: { value: ${base} } }
  check:
    uses: compare
    inputs: { candidate: good.data, baseline: bad.data }
    with: { ${compare} }
`;
}

Deno.test("compare: passes when candidate ≤ max_ratio × baseline and records the numbers", async () => {
  using sb = new Sandbox();
  const r = await runIn(sb, sb.write("p.yaml", pipeline(10, 30, "metric: value, max_ratio: 0.5")));
  assertEquals(r.failed, [], JSON.stringify(r.report.stages));
  const row = r.report.stages.find((s) => s.name === "check")!;
  assertEquals(row.metrics, { candidate: 10, baseline: 30, ratio: 10 / 30, max_ratio: 0.5, passed: true });
  const result = JSON.parse(await Deno.readTextFile(`${sb.store.outputDir(row.key!, "result")}/result.json`));
  assertEquals(result.passed, true);
  assertEquals(result.threshold, 15);
  assertEquals(result.candidate_stage, "good");
  assertEquals(result.baseline_stage, "bad");
});

Deno.test("compare: fails the run with both numbers, the ratio and the threshold", async () => {
  using sb = new Sandbox();
  const r = await runIn(sb, sb.write("p.yaml", pipeline(10, 30, "metric: value, max_ratio: 0.3")));
  assertEquals(r.failed, ["check"]);
  assertEquals(r.report.exitCode, 1);
  const err = r.report.stages.find((s) => s.name === "check")!.error ?? "";
  assertStringIncludes(err, "value of good is 10, baseline bad is 30");
  assertStringIncludes(
    err,
    "comparison failed: value of good is 10, baseline bad is 30: ratio 0.3333 exceeds max_ratio 0.3 " +
      "(needed value ≤ 0.3 × 30 = 9; lower is better)",
  );
});

Deno.test("compare: direction higher (max_ratio 0.5 = at least double), missing metrics", async () => {
  using sb = new Sandbox();
  const ok = await runIn(
    sb,
    sb.write("p.yaml", pipeline(60, 30, "metric: value, max_ratio: 0.5, direction: higher")),
  );
  assertEquals(ok.failed, []);
  const no = await runIn(
    sb,
    sb.write("q.yaml", pipeline(50, 30, "metric: value, max_ratio: 0.5, direction: higher")),
  );
  assertEquals(no.failed, ["check"]);
  assertStringIncludes(
    no.report.stages.find((s) => s.name === "check")!.error ?? "",
    "ratio 1.667 is below 1 / max_ratio = 2 (needed value ≥ 30 / 0.5 = 60; higher is better)",
  );
  // The default metric is fid; `gen` records none.
  const miss = await runIn(sb, sb.write("r.yaml", pipeline(1, 2, "max_ratio: 0.5")));
  assertEquals(miss.failed, ["check"]);
  assertStringIncludes(
    miss.report.stages.find((s) => s.name === "check")!.error ?? "",
    "stage good recorded no metric `fid` (its numeric metrics: value); set `metric` to one of them",
  );
});

Deno.test("compare: the rule, nested metric paths, and reading meta.json when metrics are not given", async () => {
  assertEquals(compareMetric(5, 10, 0.5, "lower").passed, true);
  assertEquals(compareMetric(5.01, 10, 0.5, "lower").passed, false);
  assertEquals(compareMetric(20, 10, 0.5, "higher").passed, true);
  assertEquals(compareMetric(19, 10, 0.5, "higher").threshold, 20);
  assertEquals(compareMetric(1, 0, 1, "lower").ratio, null);
  assertEquals(metricValue({ fid: { clean: 3 } }, "fid.clean", "s"), 3);
  let threw = "";
  try {
    metricValue({ fid: null }, "fid", "s");
  } catch (e) {
    threw = (e as Error).message;
  }
  assertEquals(threw, "metric `fid` of stage s is null, not a finite number");
  // Without `metrics` on the artifact, the store's meta.json is read.
  using sb = new Sandbox();
  const r = await runIn(sb, sb.write("p.yaml", pipeline(7, 8, "metric: value, max_ratio: 1")));
  const key = r.report.stages.find((s) => s.name === "good")!.key!;
  const m = await upstreamMetrics({
    dir: sb.store.outputDir(key, "data"),
    stage: "good",
    output: "data",
    key,
    digest: "",
    point: {},
  });
  assertEquals(m.value, 7);
});

Deno.test("compare: a failed comparison makes `run` exit non-zero", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", pipeline(10, 30, "metric: value, max_ratio: 0.3"));
  let stderr = "";
  const dec = new TextDecoder();
  const o = Deno.stdout.writeSync;
  const e = Deno.stderr.writeSync;
  Deno.stdout.writeSync = (p: Uint8Array) => p.length;
  Deno.stderr.writeSync = (p: Uint8Array) => (stderr += dec.decode(p), p.length);
  let code: number;
  try {
    code = await main(["run", f, "--cache", sb.cache]);
  } finally {
    Deno.stdout.writeSync = o;
    Deno.stderr.writeSync = e;
  }
  assertEquals(code, 1);
  assert(stderr.includes("stage check failed: comparison failed: value of good is 10"), stderr);
});
