/**
 * Report rows: upstream artifacts joined by matrix point (train, sample/decode and fid outputs of the same
 * point make one row), value lookup by metric or axis name, number formatting, and the table as markdown
 * and CSV.
 * @module
 */

import type { InputArtifact } from "../pipeline/stage.ts";
import type { Scalar } from "../pipeline/yaml_source.ts";

/** One row of a report: one matrix point (or one stage outside a matrix). */
export interface Row {
  /** `model=S, patch=2`, or the stage name for a stage outside a matrix. */
  label: string;
  /** The matrix point (axis → value); empty outside a matrix. */
  point: Record<string, Scalar>;
  /** The union of the metrics of the row's artifacts (see {@link joinRows} for conflicts). */
  metrics: Record<string, unknown>;
  /** The expanded names of the stages that contributed, in order. */
  sources: string[];
  /** The `models` artifact's directory (loss.csv), when the row has one. */
  modelDir?: string;
  /** The directory holding the row's grid.png, when the row has one. */
  gridDir?: string;
}

/** The role of an input of the report. */
export type Role = "models" | "samples" | "metrics";

/** `model=S, patch=2` (axis order as in the point). */
export function pointLabel(point: Record<string, Scalar>): string {
  return Object.entries(point).map(([k, v]) => `${k}=${v}`).join(", ");
}

/** The base name of an expanded stage name: `train[model=S]` → `train`. */
export function stageBase(stage: string): string {
  const i = stage.indexOf("[");
  return i < 0 ? stage : stage.slice(0, i);
}

function rowKey(a: InputArtifact): string {
  const entries = Object.entries(a.point);
  if (!entries.length) return `stage:${a.stage}`;
  return `point:${JSON.stringify(entries.sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))}`;
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Joins artifacts into rows. Artifacts with the same matrix point (the same axis → value map, in any axis
 * order) make one row; an artifact outside a matrix (empty point) makes its own row, named by its stage
 * (two inputs from the same stage share it). Rows keep the order in which their first artifact comes.
 * Metrics are merged in the order given (pass models first, then metrics, then samples): the first
 * artifact that records a name keeps it; a later one recording a different value for the same name is kept
 * as `<stage>.<name>` (e.g. `decode.seconds` next to sample's `seconds`), never overwriting.
 */
export function joinRows(inputs: { role: Role; artifacts: InputArtifact[] }[]): Row[] {
  const rows = new Map<string, Row>();
  for (const { role, artifacts } of inputs) {
    for (const a of artifacts) {
      const key = rowKey(a);
      let row = rows.get(key);
      if (!row) {
        const empty = !Object.keys(a.point).length;
        row = {
          label: empty ? a.stage : pointLabel(a.point),
          point: { ...a.point },
          metrics: {},
          sources: [],
        };
        rows.set(key, row);
      }
      if (!row.sources.includes(a.stage)) row.sources.push(a.stage);
      if (role === "models") row.modelDir ??= a.dir;
      if (role === "samples") row.gridDir ??= a.dir;
      for (const [k, v] of Object.entries(a.metrics ?? {})) {
        if (!(k in row.metrics)) row.metrics[k] = v;
        else if (!sameValue(row.metrics[k], v)) {
          const alt = `${stageBase(a.stage)}.${k}`;
          if (!(alt in row.metrics)) row.metrics[alt] = v;
        }
      }
    }
  }
  return [...rows.values()];
}

/** A row's value for a column, x or y: its metric of that name, else its matrix axis of that name. */
export function metricValue(row: Row, name: string): unknown {
  if (name in row.metrics) return row.metrics[name];
  if (name in row.point) return row.point[name];
  return undefined;
}

/**
 * A row's value for a grouping (series, `per`, `at`): its matrix axis of that name, else its metric. Axes
 * come first because a sweep's axis (`model: S`) is what the reader grouped by, while a metric of the same
 * name may be finer (train's `model` is `DiT-S/2`, which includes the patch size).
 */
export function groupValue(row: Row, name: string): unknown {
  if (name.includes("+")) {
    // A combined grouping, `model+patch`: the parts' values joined (`S/4`); undefined when one is missing.
    const parts = name.split("+").map((n) => groupValue(row, n.trim()));
    return parts.some((v) => v === undefined || v === null) ? undefined : parts.join("/");
  }
  if (name in row.point) return row.point[name];
  return row.metrics[name];
}

/** True when some row has `name` as a metric or axis (each part of a combined `a+b` grouping). */
export function known(rows: Row[], name: string): boolean {
  if (name.includes("+")) return name.split("+").every((n) => known(rows, n.trim()));
  return rows.some((r) => name in r.metrics || name in r.point);
}

/** The names rows have (metrics and axes), for error messages. */
export function knownNames(rows: Row[]): string[] {
  return [...new Set(rows.flatMap((r) => [...Object.keys(r.point), ...Object.keys(r.metrics)]))];
}

/** A number, or undefined for anything else (numeric strings do not count). */
export function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function trimZeros(s: string): string {
  return s.includes(".") && !s.includes("e") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

/** `v` with at most `digits` significant digits, in plain notation where sensible. */
export function sig(v: number, digits = 4): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 10 ** digits) {
    const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(a)));
    return trimZeros(v.toFixed(decimals));
  }
  if (a >= 10 ** digits && a < 1e15) return Math.round(v).toLocaleString("en-US");
  return v.toExponential(digits - 1);
}

/** Formats a value for the table, by metric name (params as 1.23M, FID to 2 decimals, ...). */
export function fmtValue(name: string, v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    const base = name.slice(name.lastIndexOf(".") + 1);
    if (base === "params") {
      if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
      if (Math.abs(v) >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
      return String(v);
    }
    if (base === "fid") return v.toFixed(2);
    if (base === "precision" || base === "recall") return v.toFixed(3);
    if (/seconds$/.test(base)) return v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(1);
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return sig(v, 4);
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** Short headers for the metrics of ditflow's stages (others are shown by name). */
const HEADERS: Record<string, string> = {
  params: "params",
  gflops: "GFLOPs",
  final_loss: "final loss",
  train_seconds: "train s",
  img_per_s: "img/s",
  samples_per_s: "samples/s",
  precision: "precision",
  recall: "recall",
};

/** The header of a column; FID columns name their feature extractor when the rows agree on one. */
export function header(name: string, rows: Row[]): string {
  if (name === "fid") {
    const ex = [...new Set(rows.map((r) => r.metrics.feature_extractor).filter((e) => e !== undefined))];
    return ex.length === 1 ? `FID (${ex[0]})` : "FID";
  }
  return HEADERS[name] ?? name;
}

function mdCell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** A markdown table: a `run` column with the row labels, then `columns`. */
export function markdownTable(rows: Row[], columns: string[]): string[] {
  const lines = [
    `| run | ${columns.map((c) => mdCell(header(c, rows))).join(" | ")} |`,
    `| --- | ${columns.map(() => "---:").join(" | ")} |`,
  ];
  for (const r of rows) {
    lines.push(
      `| ${mdCell(r.label)} | ${columns.map((c) => mdCell(fmtValue(c, metricValue(r, c)))).join(" | ")} |`,
    );
  }
  return lines;
}

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return "";
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * All the numbers as CSV: `run`, the matrix axes, then every scalar metric (numbers unformatted). Metrics
 * that are mappings or lists are left out.
 */
export function resultsCsv(rows: Row[]): string {
  const axes = [...new Set(rows.flatMap((r) => Object.keys(r.point)))];
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].filter((k) =>
    rows.some((r) => {
      const v = r.metrics[k];
      return v === null || ["number", "string", "boolean"].includes(typeof v);
    })
  );
  const names = [...axes.map((a) => (metrics.includes(a) ? `axis.${a}` : a)), ...metrics];
  const lines = [["run", ...names].map(csvCell).join(",")];
  for (const r of rows) {
    const vals = [r.label, ...axes.map((a) => r.point[a]), ...metrics.map((m) => r.metrics[m])];
    lines.push(vals.map((v) => (v !== null && typeof v === "object" ? "" : csvCell(v))).join(","));
  }
  return lines.join("\n") + "\n";
}

/** Sorts rows by a column (`-name` for descending); rows without a value keep their order, last. */
export function sortRows(rows: Row[], spec: string): Row[] {
  const desc = spec.startsWith("-");
  const name = desc ? spec.slice(1) : spec;
  const withV = rows.map((r, i) => ({ r, i, v: metricValue(r, name) }));
  const cmp = (a: unknown, b: unknown): number => {
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), "en", { numeric: true });
  };
  withV.sort((a, b) => {
    const ua = a.v === undefined || a.v === null;
    const ub = b.v === undefined || b.v === null;
    if (ua || ub) return ua && ub ? a.i - b.i : ua ? 1 : -1;
    return (desc ? -cmp(a.v, b.v) : cmp(a.v, b.v)) || a.i - b.i;
  });
  return withV.map((w) => w.r);
}

/** Lowercase `[a-z0-9_]` form of a label for file names. */
export function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "").toLowerCase() || "x";
}
