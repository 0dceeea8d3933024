import { assert, assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { CLI, waitFor } from "../pipeline/helpers.ts";
import { buildFixture, UI_KINDS } from "./fixture.ts";
import { createHandler } from "../../lib/ui/server.ts";
import { apiLive, apiPipelines } from "../../lib/ui/api.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import { loadRuns } from "../../lib/runs/model.ts";
import type { Plan } from "../../lib/pipeline/plan.ts";

async function planOf(file: string): Promise<Plan> {
  const l = await loadPipeline(file, {});
  if (!l.plan) throw new Error(JSON.stringify(l.diagnostics));
  return l.plan;
}

Deno.test("ui server: pages, API, artifact files; everything else (.., encoded, symlinks out) is 404", async () => {
  using fx = await buildFixture();
  const h = createHandler({ store: fx.store, plans: [await planOf(fx.pipeline)], reports: fx.reports });
  const get = (p: string) => h(new Request(`http://127.0.0.1${p}`));
  for (const p of ["/", "/app.js", "/app.css"]) assertEquals((await get(p)).status, 200, p);
  const runs = await (await get("/api/runs?filter=kind=ui_train&filter=current=true&sort=final_loss")).json();
  assertEquals(runs.rows.length, 4);
  assertEquals(runs.all, fx.store.listKeys().length);
  const train = runs.rows[0];
  assertEquals(train.curve.key, train.key);
  const curve = await (await get(`/api/curve/${train.key}`)).json();
  const csvRows =
    Deno.readTextFileSync(`${fx.store.outputDir(train.key, "model")}/loss.csv`).trim().split("\n").length - 1;
  assertEquals(curve.steps.length, csvRows);
  assertEquals(curve.loss.length, csvRows);
  // A fid run finds its curve and its grid upstream, and its train's metrics (gflops) for sweeps.
  const fid = loadRuns(fx.store).find((r) => r.kind === "ui_fid" && r.current)!;
  const fr = (await (await get(`/api/run/${fid.key}`)).json()).row;
  assertEquals(fx.store.readMeta(fr.curve.key)!.kind, "ui_train");
  assertEquals(fx.store.readMeta(fr.grid.key)!.kind, "ui_sample");
  assertEquals(typeof fr.up.gflops, "number");
  const png = await get(`/files/${fr.grid.key}/${fr.grid.file}`);
  assertEquals(png.status, 200);
  assertEquals(png.headers.get("content-type"), "image/png");
  assertEquals([...new Uint8Array(await png.arrayBuffer()).slice(1, 4)], [80, 78, 71]);
  const rep = await get("/reports/uitest/README.md");
  assertEquals(rep.status, 200);
  assertStringIncludes(await rep.text(), "# uitest");
  const pipes = await (await get("/api/pipelines")).json();
  assertEquals(pipes[0].stages.length, 13);
  assert(pipes[0].stages.every((s: { state: string }) => s.state === "cached"));
  const diff = await (await get(`/api/diff?a=${runs.rows[0].key}&b=${runs.rows[1].key}`)).json();
  assertStringIncludes(diff.text, "params");

  // Outside the cache and the report folders: 404, however spelled.
  Deno.symlinkSync(`${fx.dir}/secret.txt`, `${fx.reports}/uitest/link.txt`);
  Deno.mkdirSync(`${fx.dir}/experiments/norep`);
  Deno.writeTextFileSync(`${fx.dir}/experiments/norep/x.txt`, "no README here");
  const k = fr.grid.key;
  const bad = [
    "/secret.txt",
    "/etc/passwd",
    "/lib/ui/server.ts",
    "/static/app.js",
    "/node_modules/yaml/package.json",
    "/api/nope",
    "/api/run/1234",
    `/files/${k}/../../secret.txt`,
    `/files/${k}/samples/%2e%2e/%2e%2e/meta.json`,
    `/files/${k}/samples/..%2f..%2fmeta.json`,
    `/files/${k}/..%2F..%2F..%2F..%2F..%2Fsecret.txt`,
    `/files/${k}/samples/%2E%2E%5C%2E%2E%5Cmeta.json`,
    `/files/${k}/meta.json`,
    `/files/${k}/log.txt`,
    `/files/${k}/samples`,
    `/files/${k}/samples/grid.png%00.txt`,
    `/files/${k.slice(0, 12)}/samples/grid.png`,
    `/files/%2e%2e/objects/${k.slice(0, 2)}/${k}/meta.json`,
    "/reports/uitest/..%2f..%2fsecret.txt",
    "/reports/uitest/%2e%2e/%2e%2e/secret.txt",
    "/reports/../secret.txt",
    "/reports/%2e%2e/secret.txt",
    "/reports/uitest/link.txt",
    "/reports/norep/x.txt",
    "/reports/uitest",
    "/reports/uitest/%252e%252e/README.md",
  ];
  for (const p of bad) {
    const r = await get(p);
    assertEquals(r.status, 404, p);
    await r.body?.cancel();
  }
  assertEquals((await h(new Request("http://127.0.0.1/", { method: "POST" }))).status, 404);
  // Another host name (DNS rebinding): refused.
  assertEquals((await h(new Request("http://evil.example:8765/api/runs"))).status, 403);
  assertEquals((await h(new Request("http://localhost:8765/api/runs"))).status, 200);
});

/** Sends a raw request line (no URL normalisation by a client) and returns the status code. */
async function rawStatus(port: number, path: string, host = "127.0.0.1"): Promise<number> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  await c.write(
    new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`),
  );
  const buf = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const n = await c.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
    if (text.includes("\r\n")) break;
  }
  c.close();
  return Number(text.split(" ")[1]);
}

Deno.test("ditflow ui: binds 127.0.0.1, serves the page, raw `..` request lines get 404", async () => {
  using fx = await buildFixture();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "ui", fx.pipeline, "--port", "0", "--cache", fx.cache, "--reports", fx.reports],
    env: { DITFLOW_STAGE_MODULES: UI_KINDS },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
    assert(m, out);
    const port = Number(m[1]);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assertStringIncludes(await page.text(), "<title>ditflow</title>");
    const key = loadRuns(fx.store).find((r) => r.kind === "ui_sample")!.key;
    assertEquals(await rawStatus(port, `/files/${key}/samples/grid.png`), 200);
    assertEquals(await rawStatus(port, `/files/${key}/samples/grid.png`, "rebound.example"), 403);
    for (
      const p of [
        "/../secret.txt",
        "/reports/../../secret.txt",
        `/files/${key}/samples/../../meta.json`,
        `/files/${key}/../../../../secret.txt`,
        "/reports/uitest/..\\..\\secret.txt",
        "/%2e%2e/%2e%2e/secret.txt",
      ]
    ) {
      assertEquals(await rawStatus(port, p), 404, p);
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
});

Deno.test("live progress: a running stage's progress file (step, loss, ETA), its DAG state, removed at the end", async () => {
  using fx = await buildFixture();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "run", fx.slowPipeline, "--cache", fx.cache],
    env: { DITFLOW_STAGE_MODULES: UI_KINDS, DITFLOW_PLAIN: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitFor(
      () => apiLive(fx.store).some((p) => (p.update?.step ?? 0) > 5 && p.etaSec !== undefined),
      30_000,
      "progress",
    );
    const [p] = apiLive(fx.store);
    assertEquals(p.name, "slow");
    assertEquals(p.pipeline, "uislow");
    assertEquals(p.update!.total, 400);
    assert(typeof p.update!.loss === "number");
    assert(p.rate! > 0 && p.etaSec! > 0);
    const [pipe] = await apiPipelines(fx.store, [await planOf(fx.slowPipeline)]);
    assertEquals(pipe.stages.find((s) => s.name === "slow")!.state, "running");
    assertEquals(pipe.stages.find((s) => s.name === "data")!.state, "cached");
  } finally {
    child.kill("SIGINT");
    await child.status;
  }
  assertEquals(apiLive(fx.store), []);
  assertEquals([...Deno.readDirSync(`${fx.cache}/progress`)].length, 0);
  // A file left by a killed process (pid gone) is ignored, and removed by the reader on the same host.
  const dead = new Deno.Command("true").spawn();
  await dead.status;
  const stale = `${fx.cache}/progress/${"0".repeat(64)}.json`;
  Deno.writeTextFileSync(
    stale,
    JSON.stringify({
      key: "0".repeat(64),
      name: "x",
      pipeline: "p",
      kind: "k",
      host: Deno.hostname(),
      pid: dead.pid,
      start: null,
      startedMs: Date.now(),
      updatedMs: Date.now(),
      update: { step: 1, total: 2 },
    }),
  );
  assertEquals(apiLive(fx.store), []);
  assert(!listNames(`${fx.cache}/progress`).includes(`${"0".repeat(64)}.json`));
});

function listNames(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name);
}
