/** Unit tests: hashing, canonical JSON, suggestions, fingerprints, scheduler, progress, executors. */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, FIXTURES, runIn, Sandbox } from "./helpers.ts";
import { canonicalJson, digestPath, sha256 } from "../../lib/pipeline/hash.ts";
import { closest, editDistance } from "../../lib/pipeline/diagnostics.ts";
import { fingerprintModule } from "../../lib/pipeline/fingerprint.ts";
import { schedule } from "../../lib/pipeline/scheduler.ts";
import { formatDuration, summaryTable } from "../../lib/pipeline/progress.ts";
import { formatReasonValue } from "../../lib/pipeline/cache_key.ts";
import { executePlan } from "../../lib/pipeline/engine.ts";
import { SubprocessExecutor } from "../../lib/pipeline/executor.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import { SilentReporter } from "../../lib/pipeline/progress.ts";

Deno.test("canonical JSON sorts keys and normalises numbers", () => {
  assertEquals(canonicalJson({ b: 1, a: [1e-4, { d: -0, c: "x" }] }), '{"a":[0.0001,{"c":"x","d":0}],"b":1}');
  assertEquals(canonicalJson({ a: undefined, b: null }), '{"b":null}');
});

Deno.test("directory digests depend on paths and contents only", async () => {
  using sb = new Sandbox();
  const mk = (d: string, files: Record<string, string>) => {
    for (const [p, c] of Object.entries(files)) {
      Deno.mkdirSync(`${sb.dir}/${d}/${p}`.replace(/\/[^/]*$/, ""), { recursive: true });
      Deno.writeTextFileSync(`${sb.dir}/${d}/${p}`, c);
    }
    return `${sb.dir}/${d}`;
  };
  const a = await digestPath(mk("a", { "x.txt": "1", "sub/y.txt": "2" }));
  const b = await digestPath(mk("b", { "sub/y.txt": "2", "x.txt": "1" }));
  const c = await digestPath(mk("c", { "x.txt": "1", "sub/z.txt": "2" }));
  assertEquals(a.digest, b.digest);
  assert(a.digest !== c.digest);
  assertEquals(a.files.map((f) => f.path), ["sub/y.txt", "x.txt"]);
  assertEquals(a.files[1].hash, sha256("1"));
});

Deno.test("suggestions by edit distance (with transpositions)", () => {
  assertEquals(editDistance("lerning_rate", "learning_rate"), 1);
  assertEquals(editDistance("modle", "model"), 1);
  assertEquals(closest("lerning_rate", ["learning_rate", "steps"]), "learning_rate");
  assertEquals(closest("zzz", ["learning_rate", "steps"]), undefined);
});

Deno.test("fingerprint walks local imports, URL assets, and records external specifiers", () => {
  const fp = fingerprintModule(new URL("./kinds.ts", import.meta.url).href);
  const files = Object.keys(fp.files);
  assert(files.includes("tests/pipeline/kinds.ts"), files.join(","));
  assert(!files.some((f) => f.startsWith("lib/pipeline/")), "engine files must not be part of fingerprints");
  const bench = fingerprintModule(new URL("../../lib/bench/pipeline.ts", import.meta.url).href);
  assert(bench.external.includes("node:crypto"));
  assertEquals(fp.hash, fingerprintModule(new URL("./kinds.ts", import.meta.url).href).hash);
});

Deno.test("scheduler: topological order, skip dependents of failures, keep-going", async () => {
  const order: string[] = [];
  const nodes = [
    { name: "a", deps: [], gpu: false },
    { name: "b", deps: ["a"], gpu: false },
    { name: "c", deps: ["b"], gpu: false },
    { name: "d", deps: [], gpu: false },
  ];
  const st = await schedule(nodes, (n) => {
    order.push(n.name);
    return Promise.resolve(n.name === "b" ? "failed" : "ok");
  }, { jobs: 1, gpus: 1, keepGoing: true });
  assertEquals(Object.fromEntries(st), { a: "ok", b: "failed", c: "skipped", d: "ok" });
  assertEquals(order.indexOf("a") < order.indexOf("b"), true);
});

Deno.test("progress formatting and the summary table", () => {
  assertEquals(formatDuration(3.25), "3.3s");
  assertEquals(formatDuration(125), "2m05s");
  assertEquals(formatReasonValue(1e-4), "1e-4");
  assertEquals(formatReasonValue(0.5), "0.5");
  assertEquals(formatReasonValue(1000), "1000");
  const t = summaryTable([
    { name: "train[model=DiT-S/2]", result: "ran", ms: 1500, metrics: { loss: 0.123456, note: "x" } },
    { name: "fid", result: "cached", ms: 10, metrics: { fid: 12.5 }, headline: ["fid"] },
  ]);
  assertStringIncludes(t, "train[model=DiT-S/2]  ran     1.5s  loss=0.1235");
  assertStringIncludes(t, "fid                   cached  -     fid=12.5");
});

Deno.test("subprocess executor (exec-stage, the cluster path) runs stages and shares the cache", async () => {
  using sb = new Sandbox();
  Deno.env.set("DITFLOW_STAGE_MODULES", new URL("./kinds.ts", import.meta.url).pathname);
  try {
    const p = (await loadPipeline(`${FIXTURES}/demo.yaml`)).plan!;
    const report = await executePlan(p, {
      store: sb.store,
      executor: new SubprocessExecutor(sb.store),
      reporter: new SilentReporter(),
      jobs: 2,
      gpus: 1,
      keepGoing: false,
      signal: new AbortController().signal,
    });
    assertEquals(report.exitCode, 0, JSON.stringify(report.stages));
    assertEquals(report.stages.filter((s) => s.result === "ran").length, 5);
  } finally {
    Deno.env.delete("DITFLOW_STAGE_MODULES");
  }
  const again = await runIn(sb, `${FIXTURES}/demo.yaml`);
  assertEquals(again.ran, []);
  const r = await cli(sb, ["run", `${FIXTURES}/demo.yaml`, "--executor", "subprocess", "--force", "report"]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "1 ran, 4 cached");
});
