/**
 * `ditflow runs` / `ditflow ui` on a large cache: 5,000 synthetic store entries (1,250 sweep points ×
 * train → sample → decode → fid, each meta.json shaped and sized like a real one: ~45 code files, output
 * file lists, params, metrics, input links), timed:
 * - loading every row from a cold store (read + parse 5,000 meta.json);
 * - a query in memory (filter, sort by a metric, only-changed columns) and formatting (table, csv);
 * - the same load through the row index (`lib/runs/index.ts`, written by the first `runs`);
 * - the CLI end to end (`deno run ... runs`, deno startup included), for one kind sorted and for the full
 *   table, with the index and without it (`--no-index`: every meta.json read and parsed);
 * - the web view's `/api/runs` (rows decorated with curve, grid and upstream metrics), warm.
 * @module
 */

import { Store } from "../pipeline/store.ts";
import type { ArtifactMeta } from "../pipeline/store.ts";
import { loadRuns, queryRuns } from "../runs/model.ts";
import { loadRowsIndexed } from "../runs/index.ts";
import { formatRuns } from "../runs/format.ts";
import { createHandler } from "../ui/server.ts";
import type { BenchOptions, BenchResult } from "./types.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;

function hex(n: number, seed: string): string {
  // Deterministic 64-hex strings (not real hashes; only their shape matters here).
  let h = 2166136261;
  for (const c of `${seed}:${n}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  let s = "";
  for (let i = 0; s.length < 64; i++) {
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
    s += h.toString(16).padStart(8, "0");
  }
  return s.slice(0, 64);
}

const CODE_FILES = Object.fromEntries(
  Array.from(
    { length: 45 },
    (_, i) => [`lib/module_${String(i).padStart(2, "0")}/file_${i}.ts`, hex(i, "code")],
  ),
);

function meta(
  key: string,
  name: string,
  base: string,
  kind: string,
  point: Record<string, number | string>,
  params: Record<string, unknown>,
  metrics: Record<string, unknown>,
  inputs: ArtifactMeta["inputs"],
  out: string,
  files: string[],
  t: number,
): ArtifactMeta {
  return {
    format: 1,
    key,
    name,
    base,
    pipeline: "bench",
    kind,
    point,
    components: {
      kind,
      code: hex(kind.length, kind),
      params,
      inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.map((a) => a.digest)])),
      files: {},
      seed: 0,
      version: "0.1.0",
    },
    code_files: CODE_FILES,
    inputs,
    outputs: {
      [out]: {
        digest: hex(t, key),
        bytes: 123456,
        files: files.map((p, i) => ({ path: p, size: 1000 + i, digest: hex(i, key + p) })),
      },
    },
    metrics,
    timings: {
      started: new Date(Date.UTC(2026, 0, 1) + t * 1000).toISOString(),
      finished: new Date(Date.UTC(2026, 0, 1) + t * 1000 + 5000).toISOString(),
      ms: 5000,
    },
    adapter: { vendor: "bench", architecture: "none", description: "synthetic" },
    host: "bench",
    pid: 1,
    ditflow: "0.1.0",
  } as unknown as ArtifactMeta;
}

/** Writes `points` × 4 synthetic entries (train, sample, decode, fid) into a store; returns their keys. */
export function writeSyntheticCache(root: string, points: number): string[] {
  const store = new Store(root);
  store.ensureDirs();
  const keys: string[] = [];
  const put = (m: ArtifactMeta) => {
    const dir = store.objectDir(m.key);
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(`${dir}/meta.json`, JSON.stringify(m, null, 1));
    keys.push(m.key);
  };
  const link = (
    m: ArtifactMeta,
    out: string,
  ) => [{ stage: m.name, output: out, key: m.key, digest: m.outputs[out].digest }];
  const stages: Record<string, string> = {};
  for (let i = 0; i < points; i++) {
    const lr = [1e-4, 2e-4, 5e-4, 1e-3][i % 4];
    const steps = [200, 400, 800, 1600, 3200][Math.floor(i / 4) % 5];
    const model = ["DiT-S/2", "DiT-B/2"][Math.floor(i / 20) % 2];
    const seed = Math.floor(i / 40);
    const point = { model, lr, steps, seed };
    const sfx = `[model=${model},lr=${lr},steps=${steps},seed=${seed}]`;
    const loss = 0.1 + 1 / Math.sqrt(steps * lr * 1e4) + (i % 7) * 1e-3;
    const train = meta(
      hex(i, "train"),
      `train${sfx}`,
      "train",
      "train",
      point,
      {
        model,
        family: "mini",
        lr,
        steps,
        batch_size: 64,
        ema_decay: 0.995,
        weight_decay: 0,
        ckpt_every: 400,
        log_every: 100,
        objective: "eps",
        flip: false,
        opt: { beta1: 0.9, beta2: 0.999 },
      },
      {
        final_loss: loss,
        img_per_s: 200 + i % 13,
        train_seconds: steps * 0.3,
        params: model === "DiT-S/2" ? 394592 : 1578000,
        gflops: model === "DiT-S/2" ? 0.0039 : 0.0155,
        model,
        block: "adaLN-Zero",
        resumed_from: 0,
      },
      {},
      "model",
      ["loss.csv", "model.safetensors", "model_raw.safetensors"],
      4 * i,
    );
    const sample = meta(
      hex(i, "sample"),
      `sample${sfx}`,
      "sample",
      "sample",
      point,
      { num_samples: 200, batch_size: 200, sampler: "ddim", steps: 25, cfg_scale: 3, cfg_mode: "all" },
      { samples: 200, seconds: 3.1, samples_per_s: 64.5, nfe: 50 },
      { model: link(train, "model") },
      "samples",
      ["data.safetensors", "grid.png"],
      4 * i + 1,
    );
    const decode = meta(
      hex(i, "decode"),
      `decode${sfx}`,
      "decode",
      "decode",
      point,
      { batch_size: 200 },
      { images: 200, seconds: 3.7, images_per_s: 54, scale_factor: 0.596 },
      { samples: link(sample, "samples") },
      "images",
      ["data.safetensors", "grid.png"],
      4 * i + 2,
    );
    const fid = meta(
      hex(i, "fid"),
      `fid${sfx}`,
      "fid",
      "fid",
      point,
      { feature_extractor: "lenet-mnist", eps: 1e-6 },
      {
        fid: 100 + 200 * loss + (i % 11),
        precision: 0.7 + (i % 5) * 0.01,
        recall: 0.2 + (i % 3) * 0.02,
        n: 200,
        n_ref: 1000,
        k: 3,
        feature_dim: 84,
        feature_extractor: "lenet-mnist",
      },
      { samples: link(decode, "images") },
      "fid",
      ["fid.json"],
      4 * i + 3,
    );
    for (const m of [train, sample, decode, fid]) {
      put(m);
      stages[m.name] = m.key;
    }
  }
  store.updateRef("bench", "bench.yaml", stages);
  return keys;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(
  repeats: number,
  f: () => unknown | Promise<unknown>,
): Promise<{ ms: number; all: number[] }> {
  const all: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await f();
    all.push(performance.now() - t0);
  }
  return { ms: median(all), all };
}

async function cli(args: string[], cache: string): Promise<number> {
  const t0 = performance.now();
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "runs", ...args, "--cache", cache],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (o.code !== 0) throw new Error(new TextDecoder().decode(o.stderr));
  return performance.now() - t0;
}

/** Options of {@link benchRuns}. */
export interface BenchRunsOptions extends Partial<BenchOptions> {
  /** Entries in the synthetic cache (default 5,000; quick 1,000). */
  entries?: number;
  /** Repeats per measurement (median reported; default 5, quick 2). */
  repeats?: number;
}

/** Runs the benchmark. */
export async function benchRuns(opts: BenchRunsOptions = {}): Promise<BenchResult[]> {
  const entries = opts.entries ?? (opts.quick ? 1000 : 5000);
  const repeats = opts.repeats ?? (opts.quick ? 2 : 5);
  const log = opts.log ?? (() => {});
  const dir = await Deno.makeTempDir({ prefix: "ditflow-bench-runs-" });
  const adapter = "cpu";
  try {
    const cache = `${dir}/cache`;
    const t0 = performance.now();
    const keys = writeSyntheticCache(cache, Math.ceil(entries / 4));
    const n = keys.length;
    log(`runs bench: wrote ${n} entries in ${(performance.now() - t0).toFixed(0)} ms`);
    // The entries of a real cache were written over days: date the shard directories a minute back, so
    // that the index (which leaves shards changed in the last seconds out) covers them all.
    const past = new Date(Date.now() - 60_000);
    for (const e of Deno.readDirSync(`${cache}/objects`)) {
      Deno.utimeSync(`${cache}/objects/${e.name}`, past, past);
    }
    const per = (ms: number) => ({ items_per_s: n / (ms / 1000), unit: "entries" });
    const results: BenchResult[] = [];
    const load = await time(repeats, () => loadRuns(new Store(cache)));
    results.push({
      name: `runs: load ${n} entries (cold store: read + parse meta.json)`,
      ms: load.ms,
      ...per(load.ms),
      adapter,
      entries: n,
      runs_ms: load.all.map((x) => x.toFixed(0)).join(","),
    });
    const built = loadRowsIndexed(new Store(cache));
    if (built.shardsIndexed === 0) throw new Error("runs bench: the index was not written");
    const viaIndex = await time(repeats, () => {
      const s = new Store(cache);
      const r = loadRowsIndexed(s, { write: false });
      if (r.shardsRead) throw new Error("runs bench: index miss");
      return loadRuns(s, { base: r.rows });
    });
    results.push({
      name: `runs: load ${n} entries through the row index`,
      ms: viaIndex.ms,
      ...per(viaIndex.ms),
      adapter,
      entries: n,
      runs_ms: viaIndex.all.map((x) => x.toFixed(0)).join(","),
    });
    const rows = loadRuns(new Store(cache));
    const q = await time(
      repeats,
      () => queryRuns(rows, { filters: ["kind=fid", "steps>=800"], sortBy: "fid", onlyChanged: true }),
    );
    results.push({
      name: `runs: query ${n} rows in memory (2 filters, sort by fid, only-changed)`,
      ms: q.ms,
      ...per(q.ms),
      adapter,
      entries: n,
    });
    const all = queryRuns(rows, {});
    const ft = await time(repeats, () => formatRuns(all, "table"));
    results.push({
      name: `runs: format ${n} rows × ${all.columns.length} columns as a table`,
      ms: ft.ms,
      ...per(ft.ms),
      adapter,
      entries: n,
    });
    const fc = await time(repeats, () => formatRuns(all, "csv"));
    results.push({ name: `runs: format ${n} rows as csv`, ms: fc.ms, ...per(fc.ms), adapter, entries: n });
    Deno.mkdirSync(`${dir}/empty`);
    const c0 = await time(repeats, () => cli([], `${dir}/empty`));
    results.push({
      name: "runs: CLI end to end on an empty cache (deno startup and module loading alone)",
      ms: c0.ms,
      adapter,
      entries: 0,
      runs_ms: c0.all.map((x) => x.toFixed(0)).join(","),
    });
    for (const index of [true, false]) {
      const flag = index ? [] : ["--no-index"];
      const how = index ? "with the index" : "--no-index";
      const c1 = await time(
        repeats,
        () => cli(["--kind", "fid", "--sort-by", "fid", "--only-changed", "--format", "csv", ...flag], cache),
      );
      results.push({
        name: `runs: CLI end to end, --kind fid --sort-by fid --only-changed, ${how} (deno startup included)`,
        ms: c1.ms,
        ...per(c1.ms),
        adapter,
        entries: n,
        runs_ms: c1.all.map((x) => x.toFixed(0)).join(","),
        target_ms: 1000,
        pass: c1.ms < 1000,
      });
      const c2 = await time(repeats, () => cli(flag, cache));
      results.push({
        name: `runs: CLI end to end, full table of all ${n} runs, ${how}`,
        ms: c2.ms,
        ...per(c2.ms),
        adapter,
        entries: n,
        runs_ms: c2.all.map((x) => x.toFixed(0)).join(","),
        target_ms: 1000,
        pass: c2.ms < 1000,
      });
    }
    const store = new Store(cache);
    const h = createHandler({ store, plans: [], reports: `${dir}/none` });
    const api = async (limit: number) => {
      const r = await h(new Request(`http://127.0.0.1/api/runs?filter=kind=fid&sort=fid&limit=${limit}`));
      await r.arrayBuffer();
    };
    await api(1000);
    const a1 = await time(repeats, () => api(1000));
    results.push({
      name: `ui: /api/runs over ${n} entries, fid rows sorted, 1000 decorated (warm)`,
      ms: a1.ms,
      ...per(a1.ms),
      adapter,
      entries: n,
    });
    const a0 = await time(
      repeats,
      () => h(new Request("http://127.0.0.1/api/stamp")).then((r) => r.arrayBuffer()),
    );
    results.push({
      name: `ui: /api/stamp (the page's 1 s poll) over ${n} entries`,
      ms: a0.ms,
      adapter,
      entries: n,
    });
    // The machine's 1-minute load average when done (shared CPUs inflate every time above).
    const load1 = Number(Deno.loadavg()[0].toFixed(2));
    return results.map((r) => ({ ...r, load1 }));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  for (const r of await benchRuns({ log: (m) => console.error(m) })) console.log(JSON.stringify(r));
}
