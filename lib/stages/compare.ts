/**
 * Stage kind `compare`: a check that fails the run when a candidate's metric is not far enough below (or
 * above) a baseline's, e.g. "the trained model's FID is at most half the untrained model's". Both inputs
 * are any upstream stage outputs; the metric is read from what those stages recorded (their `metrics`).
 *
 * With `direction: lower` the check passes iff `candidate ≤ max_ratio × baseline`; with `higher` iff
 * `max_ratio × candidate ≥ baseline` (the same factor the other way: `max_ratio: 0.5` means "at most half"
 * for a lower-is-better metric and "at least double" for a higher-is-better one). A failed check throws,
 * so `deno task run` exits non-zero; the message states both numbers, the ratio and the threshold.
 * @module
 */

import { defineKind, type InputArtifact } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";

/**
 * The metrics an upstream stage recorded: `InputArtifact.metrics` (filled by the engine), else the
 * store's meta.json, two levels above the output directory (`objects/<k>/<key>/out/<output>`).
 */
export async function upstreamMetrics(a: InputArtifact): Promise<Record<string, unknown>> {
  if (a.metrics) return a.metrics;
  const path = `${a.dir}/../../meta.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`cannot read the metrics of stage ${a.stage}: ${path}: ${(e as Error).message}`);
  }
  return (JSON.parse(text) as { metrics?: Record<string, unknown> }).metrics ?? {};
}

/** The value of `metric` (a key, or a dotted path into nested metrics) as a finite number. */
export function metricValue(metrics: Record<string, unknown>, metric: string, stage: string): number {
  let v: unknown = metrics[metric];
  if (v === undefined && metric.includes(".")) {
    v = metric.split(".").reduce<unknown>(
      (o, k) => (o !== null && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined),
      metrics,
    );
  }
  if (v === undefined) {
    const numeric = Object.entries(metrics).filter(([, x]) => typeof x === "number").map(([k]) => k);
    throw new Error(
      `stage ${stage} recorded no metric \`${metric}\` (its numeric metrics: ${
        numeric.length ? numeric.join(", ") : "none"
      }); set \`metric\` to one of them`,
    );
  }
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(`metric \`${metric}\` of stage ${stage} is ${JSON.stringify(v)}, not a finite number`);
  }
  return v;
}

/** The outcome of a comparison. */
export interface Comparison {
  candidate: number;
  baseline: number;
  /** candidate / baseline (null when the baseline is 0). */
  ratio: number | null;
  max_ratio: number;
  /** The bound the candidate had to meet: max_ratio × baseline (lower) or baseline / max_ratio (higher). */
  threshold: number | null;
  passed: boolean;
}

/** Compares two metric values (see the module doc for the rule). */
export function compareMetric(
  candidate: number,
  baseline: number,
  maxRatio: number,
  direction: "lower" | "higher",
): Comparison {
  const passed = direction === "lower" ? candidate <= maxRatio * baseline : maxRatio * candidate >= baseline;
  const threshold = direction === "lower" ? maxRatio * baseline : maxRatio === 0 ? null : baseline / maxRatio;
  return {
    candidate,
    baseline,
    ratio: baseline === 0 ? null : candidate / baseline,
    max_ratio: maxRatio,
    threshold,
    passed,
  };
}

function num(v: number | null): string {
  return v === null ? "undefined" : Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

/** The `compare` kind. */
export const compareKind = defineKind({
  name: "compare",
  module: import.meta.url,
  description: "fail the run unless a candidate's metric beats a baseline's by a factor (e.g. FID ≤ 0.5×)",
  gpu: false,
  params: {
    metric: { type: "string", default: "fid", doc: "the metric both stages recorded (e.g. fid, final_loss)" },
    max_ratio: {
      type: "number",
      min: 0,
      doc: "lower: pass iff candidate ≤ max_ratio × baseline; higher: iff max_ratio × candidate ≥ baseline",
    },
    direction: {
      type: "enum",
      values: ["lower", "higher"],
      default: "lower",
      doc: "whether lower or higher values of the metric are better",
    },
  },
  inputs: {
    candidate: { doc: "any stage output: the stage whose metric must be better" },
    baseline: { doc: "any stage output: the stage to beat" },
  },
  outputs: { result: { doc: "result.json (both values, ratio, threshold, passed)" } },
  headline: ["ratio", "passed"],
  async run(ctx) {
    const p = ctx.params;
    const cand = ctx.inputs.candidate;
    const base = ctx.inputs.baseline;
    const c = metricValue(await upstreamMetrics(cand), p.metric, cand.stage);
    const b = metricValue(await upstreamMetrics(base), p.metric, base.stage);
    const r = compareMetric(c, b, p.max_ratio, p.direction);
    const result = {
      metric: p.metric,
      direction: p.direction,
      candidate_stage: cand.stage,
      baseline_stage: base.stage,
      ...r,
    };
    await Deno.writeTextFile(`${ctx.outputs.result}/result.json`, JSON.stringify(result, null, 2) + "\n");
    const rule = p.direction === "lower"
      ? `${p.metric} ≤ ${num(p.max_ratio)} × baseline = ${num(r.threshold)}`
      : `${p.metric} ≥ baseline / ${num(p.max_ratio)} = ${num(r.threshold)}`;
    const line = `${p.metric}: candidate ${cand.stage} ${num(c)}, baseline ${base.stage} ${num(b)}, ratio ${
      num(r.ratio)
    } (required: ${rule})`;
    ctx.log(`${r.passed ? "passed" : "FAILED"}: ${line}`);
    ctx.metrics({ candidate: c, baseline: b, ratio: r.ratio, max_ratio: p.max_ratio, passed: r.passed });
    if (!r.passed) {
      const why = p.direction === "lower"
        ? `ratio ${num(r.ratio)} exceeds max_ratio ${num(p.max_ratio)} (needed ${p.metric} ≤ ${
          num(p.max_ratio)
        } × ${num(b)} = ${num(r.threshold)}; lower is better)`
        : `ratio ${num(r.ratio)} is below 1 / max_ratio = ${
          num(p.max_ratio === 0 ? null : 1 / p.max_ratio)
        } ` +
          `(needed ${p.metric} ≥ ${num(b)} / ${num(p.max_ratio)} = ${num(r.threshold)}; higher is better)`;
      throw new Error(
        `comparison failed: ${p.metric} of ${cand.stage} is ${num(c)}, baseline ${base.stage} is ${
          num(b)
        }: ${why}`,
      );
    }
  },
});
registerKind(compareKind);
