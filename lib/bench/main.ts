/**
 * `deno task bench [NAME...] [--json] [--quick] [--filter RE]`: runs the benchmarks, prints a table (or one
 * JSON object a line with --json), and writes the markdown table of the results to
 * `experiments/bench/NAME.md` (not with --filter: a partial table would replace the whole one).
 * @module
 */

import { parseArgs } from "node:util";
import { type BenchOptions, type BenchResult, caseFilter } from "./types.ts";
import { writeBenchReport } from "./report.ts";

/** The benchmarks by name. Each module exports one async function that returns results. */
const BENCHES: Record<string, () => Promise<(opts: BenchOptions) => Promise<BenchResult[]>>> = {
  // Each entry: name → lazy import of its module's bench function.
  attention: async () => (await import("./attention.ts")).benchAttention,
  encode: async () => (await import("./encode.ts")).benchEncode,
  inception: async () => (await import("./inception.ts")).benchInception,
  matmul: async () => (await import("./matmul.ts")).benchMatmul,
  ops: async () => (await import("./ops.ts")).benchOps,
  pipeline: async () => (await import("./pipeline.ts")).benchPipeline,
  runs: async () => (await import("./runs.ts")).benchRuns,
  train: async () => (await import("./train.ts")).benchTrain,
};

/** Runs the CLI. */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      "no-report": { type: "boolean", default: false },
      "vs-torch": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      filter: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const names = positionals.length ? positionals : Object.keys(BENCHES);
  if (values.help) {
    console.log(
      `usage: deno task bench [${
        Object.keys(BENCHES).join("|")
      }]... [--json] [--quick] [--vs-torch] [--profile] [--filter RE]`,
    );
    return 0;
  }
  for (const n of names) {
    if (!BENCHES[n]) {
      console.error(`unknown benchmark "${n}"; known: ${Object.keys(BENCHES).join(", ")}`);
      return 2;
    }
  }
  const opts: BenchOptions = {
    quick: values.quick,
    log: values.json && !values.profile ? () => {} : (m) => console.error(m),
    vsTorch: values["vs-torch"],
    profile: values.profile,
    filter: values.filter,
  };
  for (const n of names) {
    const fn = await BENCHES[n]();
    // Each benchmark skips the cases `--filter` excludes; rows measured together (attention's forward,
    // backward and both) are filtered here too.
    const results = (await fn(opts)).filter((r) => caseFilter(opts)(r.name));
    for (const r of results) {
      if (values.json) console.log(JSON.stringify(r));
      else console.log(formatLine(r));
    }
    if (!values["no-report"] && !values.filter) await writeBenchReport(n, results, undefined, args);
  }
  return 0;
}

function formatLine(r: BenchResult): string {
  const parts = [r.name.padEnd(44)];
  if (r.gflops !== undefined) parts.push(`${r.gflops.toFixed(2).padStart(9)} GFLOP/s`);
  if (r.ms !== undefined) parts.push(`${r.ms.toFixed(3).padStart(10)} ms`);
  if (r.mbps !== undefined) parts.push(`${r.mbps.toFixed(0).padStart(7)} MB/s`);
  if (r.items_per_s !== undefined) {
    parts.push(`${r.items_per_s.toFixed(1).padStart(8)} ${r.unit ?? "items"}/s`);
  }
  parts.push(`  [${r.adapter}]`);
  return parts.join(" ");
}

if (import.meta.main) Deno.exit(await main(Deno.args));
