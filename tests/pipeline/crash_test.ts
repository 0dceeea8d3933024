/** Crash safety and concurrency: kill -9, Ctrl-C, two processes on one cache, stale locks. */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { cli, listTree, runIn, Sandbox, spawnCli, waitFor } from "./helpers.ts";
import { acquireLock, KeyLock, tryLock } from "../../lib/pipeline/lock.ts";

const COUNTER = `
name: crash
stages:
  first: {uses: gen, with: {value: 1}}
  count:
    uses: counter
    with: {steps: 30, step_ms: 40}
`;

function checkpointStep(cache: string): number {
  try {
    for (const e of Deno.readDirSync(`${cache}/checkpoints`)) {
      try {
        return Number(Deno.readTextFileSync(`${cache}/checkpoints/${e.name}/step.txt`));
      } catch { /* not yet */ }
    }
  } catch { /* not yet */ }
  return 0;
}

/** Every object directory in the store is complete (has meta.json). */
function assertNoPartialObjects(sb: Sandbox): void {
  for (const k of sb.store.listKeys()) {
    assert(listTree(sb.store.objectDir(k)).includes("meta.json"), `partial object ${k}`);
  }
}

Deno.test("kill -9 mid-stage, then run again: finished stages cached, no partial artifact, resume", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", COUNTER);
  const child = spawnCli(sb, ["run", f]);
  await waitFor(() => checkpointStep(sb.cache) >= 5, 20_000, "checkpoint step 5");
  assertNoPartialObjects(sb);
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  // Only `first` is in the store; the counter's temp dir is left behind by the dead process.
  assertEquals(sb.store.listKeys().length, 1);
  assertNoPartialObjects(sb);
  assert(listTree(`${sb.cache}/tmp`).length > 0, "expected a stale temp dir");
  const killedAt = checkpointStep(sb.cache);
  const r = await runIn(sb, f);
  assertEquals(r.cached, ["first"]);
  assertEquals(r.ran, ["count"]);
  const meta = sb.store.readMeta(r.report.stages[1].key!)!;
  assert((meta.metrics.resumed_from as number) >= killedAt, `resumed from ${meta.metrics.resumed_from}`);
  assert((meta.metrics.resumed_from as number) > 0);
  assertEquals(Deno.readTextFileSync(`${sb.store.outputDir(meta.key, "data")}/value.txt`), "30");
  // The stale temp dir was swept; the checkpoint is gone after success; no lock left behind.
  assertEquals(listTree(`${sb.cache}/tmp`), []);
  assertEquals(listTree(`${sb.cache}/checkpoints`), []);
  assertEquals(listTree(`${sb.cache}/locks`), []);
});

Deno.test("Ctrl-C (SIGINT): stages abort, temp dirs are cleaned, exit 130, rerun continues", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", COUNTER);
  const child = spawnCli(sb, ["run", f]);
  await waitFor(() => checkpointStep(sb.cache) >= 3, 20_000, "checkpoint step 3");
  child.kill("SIGINT");
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 130, stderr);
  assertStringIncludes(stderr, "interrupted; finished and cached: first");
  assertEquals(listTree(`${sb.cache}/tmp`), []);
  assertEquals(listTree(`${sb.cache}/locks`), []);
  assert(checkpointStep(sb.cache) >= 3, "checkpoint kept");
  const r = await runIn(sb, f);
  assertEquals(r.ran, ["count"]);
  assert((r.report.stages[1].metrics!.resumed_from as number) >= 3);
});

Deno.test("two run processes on one cache do every stage once and both succeed", async () => {
  using sb = new Sandbox();
  const trace = `${sb.dir}/trace.txt`;
  const f = sb.write(
    "p.yaml",
    `
name: concurrent
stages:
  s:
    uses: sleep
    matrix: {id: [1, 2, 3, 4, 5, 6]}
    with: {ms: 150, id: "\${{ matrix.id }}", trace: ${JSON.stringify(trace)}}
  all:
    uses: collect
    inputs: {items: s.data}
`,
  );
  const [a, b] = await Promise.all([cli(sb, ["run", f, "--jobs", "2"]), cli(sb, ["run", f, "--jobs", "2"])]);
  assertEquals(a.code, 0, a.stderr);
  assertEquals(b.code, 0, b.stderr);
  const lines = Deno.readTextFileSync(trace).trim().split("\n").map((l) => l.split(" ")[0]);
  assertEquals(lines.length, 6, lines.join(", "));
  assertEquals(new Set(lines).size, 6);
  assertEquals(sb.store.listKeys().length, 7);
  assertNoPartialObjects(sb);
  assertEquals(listTree(`${sb.cache}/locks`), []);
});

Deno.test("a lock whose owner is dead is taken over; a live one is waited for", async () => {
  using sb = new Sandbox();
  Deno.mkdirSync(`${sb.cache}/locks`, { recursive: true });
  const path = `${sb.cache}/locks/k.lock`;
  // A dead owner: a process that has exited.
  const p = new Deno.Command("true").spawn();
  await p.status;
  Deno.writeTextFileSync(
    path,
    JSON.stringify({ pid: p.pid, host: Deno.hostname(), start: 1, created: "", token: "dead" }),
  );
  const l = tryLock(path);
  assert(l instanceof KeyLock, "stale lock not taken over");
  // While we hold it, another attempt sees a live holder (us).
  const again = tryLock(path);
  assert(!(again instanceof KeyLock));
  assertEquals(again.holder?.pid, Deno.pid);
  // A waiter gets it once released.
  let waited = false;
  const waiter = acquireLock(path, { onWait: () => waited = true });
  await new Promise((r) => setTimeout(r, 60));
  l.release();
  const l2 = await waiter;
  assert(waited && l2 instanceof KeyLock);
  l2.release();
  // An empty lock file (owner died while creating it) is stale after a grace period.
  Deno.writeTextFileSync(path, "");
  const old = new Date(Date.now() - 60_000);
  Deno.utimeSync(path, old, old);
  const l3 = tryLock(path);
  assert(l3 instanceof KeyLock);
  l3.release();
  // A pid that is alive but was reused by another process (different start time) is stale.
  Deno.writeTextFileSync(
    path,
    JSON.stringify({ pid: Deno.pid, host: Deno.hostname(), start: 1, created: "", token: "reused" }),
  );
  const l4 = tryLock(path);
  assert(l4 instanceof KeyLock, "lock of a reused pid not taken over");
  l4.release();
});

Deno.test("a stage whose lock is held by a dead process runs normally", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "p.yaml",
    `
name: stale
stages:
  a: {uses: gen, with: {value: 3}}
`,
  );
  const st = await (await import("./helpers.ts")).statusOf(sb, f);
  const key = st.a.key!;
  Deno.mkdirSync(`${sb.cache}/locks`, { recursive: true });
  const p = new Deno.Command("true").spawn();
  await p.status;
  Deno.writeTextFileSync(
    `${sb.cache}/locks/${key}.lock`,
    JSON.stringify({ pid: p.pid, host: Deno.hostname(), start: null, created: "", token: "x" }),
  );
  const r = await runIn(sb, f);
  assertEquals(r.ran, ["a"]);
  assertEquals(listTree(`${sb.cache}/locks`), []);
});
