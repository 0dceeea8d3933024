/**
 * Pipeline engine benchmarks:
 * - a fully cached 200-stage pipeline re-run end to end through the CLI (`deno run ... run FILE`, target
 *   < 1 s) and in-process (load + plan + cache lookups + refs update);
 * - hashing throughput of a large file (target ≥ 500 MB/s) for the chosen hash (SHA-256 via node:crypto,
 *   streamed in 8 MiB chunks) and the alternatives considered.
 *
 * Importing this module also registers the tiny `bench_gen` / `bench_add` kinds the benchmark pipeline
 * uses (the CLI subprocess loads them through DITFLOW_STAGE_MODULES). Run alone with
 * `deno run -A lib/bench/pipeline.ts`.
 * @module
 */

import { createHash } from "node:crypto";
import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { hashFile } from "../pipeline/hash.ts";
import { loadPipeline } from "../pipeline/load.ts";
import { clearEngineMemo, executePlan } from "../pipeline/engine.ts";
import { LocalExecutor } from "../pipeline/executor.ts";
import { SilentReporter } from "../pipeline/progress.ts";
import { Store } from "../pipeline/store.ts";
import type { BenchOptions, BenchResult } from "./types.ts";

export type { BenchResult };

/** Options of {@link benchPipeline} (the harness's {@link BenchOptions}, plus pipeline-specific knobs). */
export interface BenchPipelineOptions extends Partial<BenchOptions> {
  /** Stages in the cached pipeline (default 200, even). */
  stages?: number;
  /** Re-runs to time (default 5, quick 3; the median is reported). */
  repeats?: number;
  /** Size of the hashed file in MiB (default 512, quick 64). */
  hashMiB?: number;
  /** Skip the hashing benchmark. */
  skipHash?: boolean;
}

registerKind(
  defineKind({
    name: "bench_gen",
    module: import.meta.url,
    gpu: false,
    params: { v: { type: "int" } },
    inputs: {},
    outputs: { data: {} },
    async run(ctx) {
      await Deno.writeTextFile(`${ctx.outputs.data}/v.txt`, String(ctx.params.v));
    },
  }),
  { replace: true },
);

registerKind(
  defineKind({
    name: "bench_add",
    module: import.meta.url,
    gpu: false,
    params: { offset: { type: "int", default: 1 } },
    inputs: { a: {} },
    outputs: { data: {} },
    async run(ctx) {
      const v = Number(await Deno.readTextFile(`${ctx.inputs.a.dir}/v.txt`));
      await Deno.writeTextFile(`${ctx.outputs.data}/v.txt`, String(v + ctx.params.offset));
    },
  }),
  { replace: true },
);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function pipelineYaml(stages: number): string {
  const n = Math.max(1, Math.floor(stages / 2));
  return [
    "name: bench200",
    "stages:",
    "  src:",
    "    uses: bench_gen",
    `    matrix: {v: [${Array.from({ length: n }, (_, i) => i).join(", ")}]}`,
    '    with: {v: "${{ matrix.v }}"}',
    "  plus:",
    "    uses: bench_add",
    "    inputs: {a: src.data}",
    "",
  ].join("\n");
}

const MODULE = new URL(import.meta.url).pathname;
const CLI = new URL("../cli/main.ts", import.meta.url).pathname;

async function runCli(file: string, cache: string): Promise<{ code: number; ms: number; stderr: string }> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "run", file, "--json"],
    env: { DITFLOW_STAGE_MODULES: MODULE, DITFLOW_CACHE: cache, DITFLOW_PLAIN: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, ms: performance.now() - t0, stderr: new TextDecoder().decode(out.stderr) };
}

async function benchCached(opts: BenchPipelineOptions): Promise<BenchResult[]> {
  const stages = opts.stages ?? 200;
  const repeats = opts.repeats ?? (opts.quick ? 3 : 5);
  const dir = await Deno.makeTempDir({ prefix: "ditflow-bench-" });
  try {
    const file = `${dir}/bench.yaml`;
    const cache = `${dir}/cache`;
    await Deno.writeTextFile(file, pipelineYaml(stages));
    const first = await runCli(file, cache);
    if (first.code !== 0) throw new Error(`bench pipeline failed: ${first.stderr}`);
    const cliTimes: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const r = await runCli(file, cache);
      if (r.code !== 0) throw new Error(r.stderr);
      cliTimes.push(r.ms);
    }
    const inTimes: number[] = [];
    const store = new Store(cache);
    for (let i = 0; i < repeats; i++) {
      clearEngineMemo();
      const t0 = performance.now();
      const loaded = await loadPipeline(file);
      const report = await executePlan(loaded.plan!, {
        store: new Store(cache),
        executor: new LocalExecutor(store),
        reporter: new SilentReporter(),
        jobs: 2,
        gpus: 1,
        keepGoing: false,
        signal: new AbortController().signal,
      });
      inTimes.push(performance.now() - t0);
      if (report.stages.some((s) => s.result !== "cached")) {
        throw new Error("bench re-run was not fully cached");
      }
    }
    return [
      {
        name: `pipeline: fully cached ${stages}-stage re-run, CLI end to end (deno startup included)`,
        ms: median(cliTimes),
        items_per_s: stages / (median(cliTimes) / 1000),
        unit: "stages",
        adapter: "cpu",
        stages,
        first_run_ms: first.ms,
        runs_ms: cliTimes.map((t) => Math.round(t)),
        target_ms: 1000,
        pass: median(cliTimes) < 1000,
      },
      {
        name: `pipeline: fully cached ${stages}-stage re-run, in-process (load, plan, lookups, refs)`,
        ms: median(inTimes),
        adapter: "cpu",
        stages,
        runs_ms: inTimes.map((t) => Math.round(t * 10) / 10),
      },
    ];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function benchHash(opts: BenchPipelineOptions): Promise<BenchResult[]> {
  const mib = opts.hashMiB ?? (opts.quick ? 64 : 512);
  const dir = await Deno.makeTempDir({ prefix: "ditflow-hash-" });
  const file = `${dir}/big.bin`;
  try {
    const chunk = new Uint8Array(8 << 20);
    for (let i = 0; i < chunk.length; i += 65536) crypto.getRandomValues(chunk.subarray(i, i + 65536));
    const f = await Deno.open(file, { write: true, create: true });
    for (let i = 0; i < mib / 8; i++) {
      chunk[0] = i;
      await f.write(chunk);
    }
    f.close();
    const bytes = mib * 1048576;
    const mbps = (ms: number) => bytes / 1e6 / (ms / 1000);
    const results: BenchResult[] = [];
    await hashFile(file); // warm the page cache
    const t0 = performance.now();
    await hashFile(file);
    const ms = performance.now() - t0;
    results.push({
      name: `hash: sha256 (node:crypto) streamed from a ${mib} MiB file [chosen]`,
      ms,
      mbps: mbps(ms),
      adapter: "cpu",
      target_mbps: 500,
      pass: mbps(ms) >= 500,
    });
    const inMemory = 256 << 20;
    const buf = new Uint8Array(inMemory);
    for (let i = 0; i < buf.length; i += chunk.length) {
      buf.set(chunk.subarray(0, Math.min(chunk.length, buf.length - i)), i);
    }
    for (const alg of ["sha256", "sha1", "md5", "blake2b512", "sha512"]) {
      const t = performance.now();
      const h = createHash(alg);
      for (let i = 0; i < buf.length; i += chunk.length) h.update(buf.subarray(i, i + chunk.length));
      h.digest("hex");
      const m = performance.now() - t;
      results.push({
        name: `hash: ${alg} (node:crypto) in memory, 256 MiB`,
        ms: m,
        mbps: inMemory / 1e6 / (m / 1000),
        adapter: "cpu",
      });
    }
    const t = performance.now();
    await crypto.subtle.digest("SHA-256", buf);
    const m = performance.now() - t;
    results.push({
      name: "hash: SHA-256 (WebCrypto, whole buffer, not streamable) in memory, 256 MiB",
      ms: m,
      mbps: inMemory / 1e6 / (m / 1000),
      adapter: "cpu",
    });
    return results;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs the pipeline benchmarks. */
export async function benchPipeline(opts: BenchPipelineOptions = {}): Promise<BenchResult[]> {
  opts.log?.("pipeline: fully cached re-runs of a 200-stage pipeline");
  const results = await benchCached(opts);
  if (!opts.skipHash) {
    opts.log?.("pipeline: hashing throughput");
    results.push(...await benchHash(opts));
  }
  return results;
}

if (import.meta.main) {
  for (const r of await benchPipeline()) {
    const v = r.mbps !== undefined ? `${r.mbps.toFixed(0)} MB/s` : `${r.ms!.toFixed(1)} ms`;
    console.log(
      `${v.padStart(12)}  ${r.name}${
        r.pass === undefined ? "" : r.pass ? "  (target met)" : "  (TARGET MISSED)"
      }`,
    );
  }
}
