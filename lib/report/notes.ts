/**
 * Report notes that carry the run's numbers instead of hard-coding them: a note may write
 * `{{ ROW.METRIC }}`, filled from the report's rows when the report is written. ROW names a row by its
 * label (`model=B/2`, or the stage name of a stage outside a matrix, e.g. `real_fid`) or by the base name
 * of a stage that contributed to it (`fid` for `fid[model=B/2]`); METRIC is any metric of that row,
 * formatted as the table formats it. An unknown row or metric is an error that names the known ones, so a
 * typo cannot print a stale or empty number.
 * @module
 */

import { fmtValue, metricValue, type Row, stageBase } from "./rows.ts";

const PLACEHOLDER = /\{\{\s*([^{}]+?)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** The row a note names (see the module documentation), or undefined. */
export function findRow(rows: Row[], name: string): Row | undefined {
  return rows.find((r) => r.label === name) ??
    rows.find((r) => r.sources.some((s) => s === name || stageBase(s) === name));
}

/** Replaces every `{{ ROW.METRIC }}` of `text` with the formatted value. */
export function fillNotes(text: string, rows: Row[]): string {
  return text.replace(PLACEHOLDER, (_all, rowName: string, metric: string) => {
    const row = findRow(rows, rowName.trim());
    if (!row) {
      throw new Error(
        `report: notes name the row \`${rowName.trim()}\`, which is not among ${
          rows.map((r) => r.label).join(", ")
        }`,
      );
    }
    const v = metricValue(row, metric);
    if (v === undefined || v === null) {
      throw new Error(
        `report: notes ask for \`${metric}\` of ${row.label}, which it lacks (it has ${
          Object.keys(row.metrics).join(", ")
        })`,
      );
    }
    return fmtValue(metric, v);
  });
}
