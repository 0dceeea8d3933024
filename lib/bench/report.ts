/**
 * Writes the latest benchmark results as a markdown table to `experiments/bench/NAME.md`.
 * @module
 */

import type { BenchResult } from "./types.ts";

/** The host's load average (1, 5, 15 minutes), or "?" where unknown. */
export function loadAvg(): string {
  try {
    return Deno.loadavg().map((v) => v.toFixed(2)).join(", ");
  } catch {
    return "?";
  }
}

/**
 * The CPU's model as /proc/cpuinfo names it, with its family and model numbers (a VM may name only the
 * vendor line, "AMD EPYC", and llvmpipe's speed differs several-fold between CPU generations), or "?".
 */
export function cpuModel(cpuinfo?: string): string {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = Deno.readTextFileSync("/proc/cpuinfo");
    } catch {
      return "?";
    }
  }
  const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, "m").exec(text!)?.[1]?.trim();
  const name = field("model name");
  if (!name) return "?";
  const [family, model] = [field("cpu family"), field("model")];
  return family && model ? `${name} (family ${family}, model ${model})` : name;
}

/** The load average when this module was loaded (the start of the benchmarks). */
const loadBefore = loadAvg();

/**
 * Writes `experiments/bench/<name>.md` with a table of the results, the command that made them (`args`:
 * the CLI's arguments), the host's CPU count and model, and its load average.
 */
export async function writeBenchReport(
  name: string,
  results: BenchResult[],
  dir?: URL,
  args?: string[],
): Promise<string> {
  const base = dir ?? new URL("../../experiments/bench/", import.meta.url);
  await Deno.mkdir(base, { recursive: true });
  const adapters = [...new Set(results.map((r) => r.adapter))];
  const slug = adapters.some((a) => /llvmpipe|cpu/i.test(a)) && adapters.length === 1
    ? name
    : `${name}-${adapters[0].replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase()}`;
  const extra = [...new Set(results.flatMap((r) => Object.keys(r)))].filter(
    (k) => !["name", "adapter", "gflops", "ms", "mbps", "items_per_s", "unit"].includes(k),
  );
  const cols = ["name", "gflops", "ms", "mbps", "items_per_s", "unit", ...extra].filter((c) =>
    results.some((r) => r[c] !== undefined)
  );
  const fmt = (v: unknown) =>
    typeof v === "number"
      ? (Number.isInteger(v) ? String(v) : v.toPrecision(4))
      : v === undefined
      ? ""
      : String(v);
  const lines = [
    `# Benchmark: ${name}`,
    "",
    `Adapter: ${adapters.join(", ")}  `,
    `Date: ${new Date().toISOString()}  `,
    `Command: \`deno task bench ${args ? args.join(" ") : name}\`  `,
    `Machine: ${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs (${cpuModel()}), load average ` +
    `(1, 5, 15 min) before ${loadBefore ?? "?"}, after ${loadAvg()}`,
    "",
    `| ${cols.join(" | ")} |`,
    `| ${cols.map(() => "---").join(" | ")} |`,
    ...results.map((r) => `| ${cols.map((c) => fmt(r[c])).join(" | ")} |`),
    "",
  ];
  const url = new URL(`${slug}.md`, base);
  await Deno.writeTextFile(url, lines.join("\n"));
  return url.pathname;
}
