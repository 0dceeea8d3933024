/**
 * The results section of a report: the table's columns (`columns`, or the defaults some row has), the
 * markdown table, and the notes under it (how FID was measured; what the final loss is).
 * @module
 */

import { known, markdownTable, metricValue, num, type Row } from "./rows.ts";
import { requireKnown } from "./sections.ts";

/** The table's columns when `columns` is not given (those some row has). */
export const DEFAULT_COLUMNS: readonly string[] = [
  "model",
  "block",
  "patch",
  "params",
  "gflops",
  "final_loss",
  "fid",
  "precision",
  "recall",
  "train_seconds",
  "img_per_s",
];

/**
 * The table's columns: `columns` when given (each must be known), else the {@link DEFAULT_COLUMNS} some
 * row has, else the first 12 scalar metrics of the rows.
 */
export function tableColumns(rows: Row[], columns?: string[]): string[] {
  if (columns) {
    for (const c of columns) requireKnown(rows, c, "columns");
    return columns;
  }
  const found = DEFAULT_COLUMNS.filter((c) => known(rows, c));
  if (found.length) return found;
  return [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))]
    .filter((k) => rows.some((r) => ["number", "string", "boolean"].includes(typeof r.metrics[k])))
    .slice(0, 12);
}

/** The note under the table: how FID (and precision/recall) were measured, once. */
export function fidNote(rows: Row[]): string[] {
  const withFid = rows.filter((r) => num(r.metrics.fid) !== undefined);
  if (!withFid.length) return [];
  const settings = new Map<string, Row[]>();
  for (const r of withFid) {
    const m = r.metrics;
    const s = `${m.feature_extractor ?? "unknown"} features, ${m.n ?? "?"} samples vs ${m.n_ref ?? "?"} real`;
    settings.set(s, [...(settings.get(s) ?? []), r]);
  }
  const ks = [...new Set(withFid.map((r) => r.metrics.k).filter((k) => k !== undefined))];
  const pr = withFid.some((r) => r.metrics.precision !== undefined)
    ? ` Precision/recall: k-NN manifolds (k = ${ks.join(", ") || "?"}) in the same feature space.`
    : "";
  if (settings.size === 1) {
    return [
      `FID: ${[...settings.keys()][0]}; comparable only at the same N and feature extractor.${pr}`,
    ];
  }
  return [
    `FID was measured with different settings; compare only rows with the same N and feature extractor: ${
      [...settings].map(([s, rs]) => `${s} (${rs.map((r) => r.label).join("; ")})`).join(", ")
    }.${pr}`,
  ];
}

/** The `## Results` section: the rows having some column, and the notes (nothing when no row has one). */
export function tableSection(rows: Row[], columns: string[]): string[] {
  const tableRows = rows.filter((r) => columns.some((c) => metricValue(r, c) !== undefined));
  if (!tableRows.length || !columns.length) return [];
  const lines = ["## Results", "", ...markdownTable(tableRows, columns), ""];
  const notes = [...fidNote(tableRows)];
  if (columns.includes("final_loss") && tableRows.some((r) => num(r.metrics.final_loss) !== undefined)) {
    notes.push("Final loss: mean training loss over the last 10% of steps.");
  }
  for (const n of notes) lines.push(`*${n}*`, "");
  return lines;
}
