import { assert, assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { CLI } from "../pipeline/helpers.ts";
import { buildFixture, UI_KINDS } from "./fixture.ts";
import {
  allColumns,
  applyFilters,
  changedColumns,
  columnMatches,
  loadRuns,
  parseFilter,
  queryRuns,
  selectColumns,
} from "../../lib/runs/model.ts";
import { formatRuns } from "../../lib/runs/format.ts";
import { diffRuns, diffText, findRuns } from "../../lib/runs/diff.ts";
import { loadRowsIndexed } from "../../lib/runs/index.ts";
import { Store } from "../../lib/pipeline/store.ts";

async function ditflow(cache: string, args: string[]) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args, "--cache", cache],
    env: { DITFLOW_STAGE_MODULES: UI_KINDS, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: o.code, stdout: d.decode(o.stdout), stderr: d.decode(o.stderr) };
}

Deno.test("runs model: rows, columns, globs, filters, sort, only-changed", async () => {
  await using fx = await fixture();
  const rows = loadRuns(fx.store);
  // First run (data size 6): 13 stages; second (size 8): 13 again, except fid[lr=0.003,steps=200], whose
  // sample grid came out byte-identical (a cache hit on content): 25 objects.
  assertEquals(rows.length, fx.store.listKeys().length);
  assertEquals(rows.filter((r) => r.current).length, 13);
  const cols = allColumns(rows);
  for (
    const c of ["name", "point.lr", "params.steps", "metrics.fid", "metrics.final_loss", "seconds", "key"]
  ) {
    assert(cols.includes(c), c);
  }
  assert(columnMatches("metrics.fid", "fid") && columnMatches("params.lr", "params.*"));
  assert(!columnMatches("metrics.fid", "params.*"));
  assertEquals(selectColumns(cols, ["point.*", "fid"], []), [
    "name",
    "point.lr",
    "point.steps",
    "metrics.fid",
  ]);
  assert(!selectColumns(cols, [], ["params.*", "key"]).some((c) => c.startsWith("params.") || c === "key"));
  assertEquals(parseFilter("steps>=100"), { column: "steps", op: ">=", value: "100" });
  const train = applyFilters(rows, [parseFilter("kind=ui_train"), parseFilter("steps>=100")], cols);
  assertEquals(train.length, 4);
  assert(train.every((r) => r.kind === "ui_train" && r.point.steps === 200));
  assertEquals(
    applyFilters(rows, [parseFilter("name=fid[*")], cols).length,
    rows.filter((r) => r.kind === "ui_fid").length,
  );
  assertEquals(applyFilters(rows, [parseFilter("kind!=ui_fid"), parseFilter("current=yes")], cols).length, 0); // booleans print as true/false
  assertEquals(
    applyFilters(rows, [parseFilter("current=true"), parseFilter("kind=ui_train")], cols).length,
    4,
  );
  const t = queryRuns(rows, { filters: ["kind=ui_fid", "current=true"], sortBy: "fid", onlyChanged: true });
  assertEquals(t.rows.length, 4);
  const fids = t.rows.map((r) => r.metrics.fid as number);
  assertEquals(fids, [...fids].sort((a, b) => a - b));
  assert(t.columns.includes("metrics.fid") && t.columns.includes("point.lr"));
  assert(!t.columns.includes("kind") && !t.columns.includes("metrics.precision"), t.columns.join(","));
  const desc = queryRuns(rows, { filters: ["kind=ui_fid"], sortBy: "-fid" });
  assertEquals(desc.rows[0].metrics.fid, Math.max(...desc.rows.map((r) => r.metrics.fid as number)));
  assertEquals(changedColumns(t.rows, ["name", "kind", "key"]), ["name", "key"]);
  let threw = false;
  try {
    queryRuns(rows, { sortBy: "nope" });
  } catch {
    threw = true;
  }
  assert(threw);
});

Deno.test("runs formats: table, csv, json, md", async () => {
  await using fx = await fixture();
  const t = queryRuns(loadRuns(fx.store), {
    filters: ["kind=ui_train", "current=true"],
    include: ["point.*", "final_loss"],
    sortBy: "name",
  });
  const csv = formatRuns(t, "csv").split("\n");
  assertEquals(csv[0], "name,point.lr,point.steps,metrics.final_loss");
  assertEquals(csv.length, 5);
  assert(csv[1].startsWith('"train[lr=0.001,steps=200]",0.001,200,'), csv[1]);
  const json = JSON.parse(formatRuns(t, "json"));
  assertEquals(json.length, 4);
  assertEquals(Object.keys(json[0]), ["name", "point.lr", "point.steps", "metrics.final_loss"]);
  const md = formatRuns(t, "md").split("\n");
  assertEquals(md[0], "| name | lr | steps | final_loss |");
  assertEquals(md[1], "| --- | ---: | ---: | ---: |");
  const table = formatRuns(t, "table");
  assertStringIncludes(table, "4 runs");
  assert(/^train\[lr=0\.003,steps=60\]\s+0\.003\s+60\s+0\.\d+$/m.test(table), table);
});

Deno.test("diff: params, point, inputs followed upstream to the first differing ancestor, metric moves", async () => {
  await using fx = await fixture();
  const [a] = findRuns(fx.store, "fid[lr=0.001,steps=60]");
  const [b] = findRuns(fx.store, "fid[lr=0.003,steps=60]");
  const d = diffRuns(fx.store, a, b);
  assertEquals(d.params, []);
  assertEquals(d.point, [{ field: "lr", a: 0.001, b: 0.003 }]);
  assertEquals(d.inputs.length, 1);
  const sample = d.inputs[0].upstream!;
  assertEquals(sample.a.name, "sample[lr=0.001,steps=60]");
  const train = sample.inputs[0].upstream!;
  assertEquals(train.params, [{ field: "lr", a: 0.001, b: 0.003 }]);
  assertEquals(train.inputs, []); // the first ancestor that differs by itself: both read the same data
  assert(
    d.metrics.some((m) =>
      m.field === "fid" && m.delta === (b.metrics.fid as number) - (a.metrics.fid as number)
    ),
  );
  const text = diffText(d);
  assertStringIncludes(text, "samples: sample[lr=0.001,steps=60].samples");
  assertStringIncludes(text, "model: train[lr=0.001,steps=60].model");
  assert(/^ {8}params\n {10}lr\s+0\.001 → 0\.003$/m.test(text), text);
  // The same stage, an older run: only the data upstream differs (size 6 vs 8).
  const all = loadRuns(fx.store).filter((r) => r.name === "train[lr=0.001,steps=60]");
  assertEquals(all.length, 2);
  const old = fx.store.readMeta(all.find((r) => !r.current)!.key)!;
  const cur = fx.store.readMeta(all.find((r) => r.current)!.key)!;
  const d2 = diffRuns(fx.store, old, cur);
  assertEquals(d2.params, []);
  assertEquals(d2.inputs[0].upstream!.params, [{ field: "size", a: 6, b: 8 }]);
  assert(d2.metrics.some((m) => m.field === "final_loss"));
});

Deno.test("CLI: ditflow runs and ditflow diff", async () => {
  await using fx = await fixture();
  const r = await ditflow(fx.cache, [
    "runs",
    fx.pipeline,
    "--kind",
    "ui_fid",
    "--current",
    "--sort-by",
    "fid",
    "--desc",
    "--only-changed",
    "--format",
    "csv",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assertEquals(lines.length, 5);
  const head = lines[0].split(",");
  assert(head.includes("metrics.fid") && !head.includes("kind"), lines[0]);
  const fi = head.indexOf("metrics.fid");
  const f = lines.slice(1).map((l) => Number(l.split(",").at(fi - head.length)));
  assertEquals(f, [...f].sort((a, b) => b - a));
  const bad = await ditflow(fx.cache, ["runs", "--format", "xml"]);
  assertEquals(bad.code, 2);
  const badf = await ditflow(fx.cache, ["runs", "--filter", "steps"]);
  assertEquals(badf.code, 2);
  assertStringIncludes(badf.stderr, "bad filter");
  const d = await ditflow(fx.cache, ["diff", "train[lr=0.001,steps=60]", "train[lr=0.001,steps=200]"]);
  assertEquals(d.code, 0, d.stderr);
  assertStringIncludes(d.stdout, "steps  60 → 200");
  assertStringIncludes(d.stdout, "final_loss");
  const amb = await ditflow(fx.cache, ["diff", "train", "fid"]);
  assertEquals(amb.code, 2);
  assertStringIncludes(amb.stderr, "matches 4 runs");
  const key = loadRuns(fx.store).find((x) => x.name === "data" && !x.current)!.key;
  const byKey = await ditflow(fx.cache, ["diff", key.slice(0, 10), "data", "--json"]);
  assertEquals(byKey.code, 0, byKey.stderr);
  assertEquals(JSON.parse(byKey.stdout).params, [{ field: "size", a: 6, b: 8 }]);
});

async function fixture() {
  const fx = await buildFixture();
  return { ...fx, [Symbol.asyncDispose]: () => Promise.resolve(fx[Symbol.dispose]()) };
}

Deno.test("runs index: shards unchanged since indexing come from the index; added, removed, replaced objects are seen", async () => {
  await using fx = await fixture();
  const shardsDir = `${fx.cache}/objects`;
  const past = new Date(Date.now() - 60_000);
  const age = () => {
    for (const e of Deno.readDirSync(shardsDir)) Deno.utimeSync(`${shardsDir}/${e.name}`, past, past);
  };
  age();
  const keys = (rows: { key: string }[]) => rows.map((r) => r.key).sort();
  const first = loadRowsIndexed(new Store(fx.cache));
  const nShards = [...Deno.readDirSync(shardsDir)].length;
  assertEquals(first.shardsRead, nShards);
  assertEquals(first.shardsIndexed, nShards);
  assertEquals(keys(first.rows), fx.store.listKeys());
  const again = loadRowsIndexed(new Store(fx.cache));
  assertEquals(again.shardsRead, 0);
  assertEquals(keys(again.rows), fx.store.listKeys());
  // Remove one object: its shard is read again.
  const gone = fx.store.listKeys()[0];
  Deno.removeSync(fx.store.objectDir(gone), { recursive: true });
  const afterRm = loadRowsIndexed(new Store(fx.cache));
  assertEquals(afterRm.shardsRead, 1);
  assert(!keys(afterRm.rows).includes(gone));
  // Replace one (as --force does: rename out, rename a new one in) with different metrics.
  age();
  loadRowsIndexed(new Store(fx.cache));
  const k = fx.store.listKeys().find((x) => fx.store.readMeta(x)!.kind === "ui_fid")!;
  const dir = fx.store.objectDir(k);
  const meta = JSON.parse(Deno.readTextFileSync(`${dir}/meta.json`));
  meta.metrics.fid = 1234.5;
  Deno.renameSync(dir, `${fx.dir}/moved`);
  Deno.writeTextFileSync(`${fx.dir}/moved/meta.json`, JSON.stringify(meta));
  Deno.renameSync(`${fx.dir}/moved`, dir);
  const afterReplace = loadRowsIndexed(new Store(fx.cache));
  assertEquals(afterReplace.rows.find((r) => r.key === k)!.metrics.fid, 1234.5);
  // The CLI uses the index and agrees with --no-index.
  const a = await ditflow(fx.cache, ["runs", "--format", "json"]);
  const b = await ditflow(fx.cache, ["runs", "--format", "json", "--no-index"]);
  assertEquals(a.code, 0, a.stderr);
  assertEquals(a.stdout, b.stdout);
});
