/**
 * Types shared by the benchmarks.
 * @module
 */

/** One benchmark measurement, printed as one JSON object a line with `--json`. */
export interface BenchResult {
  /** What was measured, e.g. `matmul 1024x1024x1024`. */
  name: string;
  /** Throughput in GFLOP/s (2 flops per multiply-add), where it applies. */
  gflops?: number;
  /** Time per iteration in milliseconds. */
  ms?: number;
  /** Throughput in MB/s, where it applies. */
  mbps?: number;
  /** Items (images, stages, ...) per second, with `unit` naming them. */
  items_per_s?: number;
  unit?: string;
  /** The adapter's description (or `cpu`). */
  adapter: string;
  [k: string]: unknown;
}

/** Options every benchmark takes. */
export interface BenchOptions {
  /** Fewer sizes and iterations (for smoke tests). */
  quick: boolean;
  /** Progress output (stderr). */
  log: (msg: string) => void;
  /** Also run each config's PyTorch twin where the benchmark has one (`--vs-torch`). */
  vsTorch?: boolean;
  /** Print per-op GPU profiles where the benchmark supports it (`--profile`). */
  profile?: boolean;
  /** Only the cases whose name matches this regular expression (`--filter`). */
  filter?: string;
}

/**
 * The `--filter` of `opts` as a test of a case's name (every name passes without one). The GPU benchmarks
 * (attention, encode, inception, matmul, ops, train) test a case's name before they measure it, so a filter
 * skips the work; the CPU-side `pipeline` and `runs` measure their cases together and `lib/bench/main.ts`
 * drops the rows the filter excludes.
 */
export function caseFilter(opts: Partial<BenchOptions>): (name: string) => boolean {
  const re = opts.filter ? new RegExp(opts.filter) : null;
  return (name) => !re || re.test(name);
}
