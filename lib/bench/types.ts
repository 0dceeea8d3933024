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
