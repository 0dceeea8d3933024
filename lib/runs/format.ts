/**
 * Renders a {@link RunTable} as an aligned text table, CSV, JSON or markdown.
 * @module
 */

import { type Cell, cell, type RunTable } from "./model.ts";

/** Output formats of `ditflow runs`. */
export const FORMATS = ["table", "csv", "json", "md"] as const;
/** One of {@link FORMATS}. */
export type Format = typeof FORMATS[number];

/** A number in short form: integers as is, others with 4 significant digits. */
export function fmtCell(v: Cell | undefined, keyWidth = 12): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (keyWidth > 0 && /^[0-9a-f]{64}$/.test(v)) return v.slice(0, keyWidth);
  return v;
}

/** Short header of a column id (`metrics.fid` → `fid`) unless two columns would share it. */
export function headers(columns: string[]): string[] {
  const short = columns.map((c) => c.replace(/^(point|params|metrics)\./, ""));
  const count = new Map<string, number>();
  for (const s of short) count.set(s, (count.get(s) ?? 0) + 1);
  return columns.map((c, i) => count.get(short[i])! > 1 ? c : short[i]);
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Renders the table in a format. */
export function formatRuns(t: RunTable, format: Format): string {
  const { columns, rows } = t;
  if (format === "json") {
    return JSON.stringify(
      rows.map((r) => Object.fromEntries(columns.map((c) => [c, cell(r, c) ?? null]))),
      null,
      1,
    );
  }
  if (format === "csv") {
    const lines = [columns.map(csvField).join(",")];
    for (const r of rows) {
      lines.push(
        columns.map((c) => {
          const v = cell(r, c);
          return csvField(v === undefined || v === null ? "" : String(v));
        }).join(","),
      );
    }
    return lines.join("\n");
  }
  const head = headers(columns);
  const body = rows.map((r) => columns.map((c) => fmtCell(cell(r, c))));
  const numeric = columns.map((c) => rows.some((r) => typeof cell(r, c) === "number"));
  if (format === "md") {
    const esc = (s: string) => s.replace(/\|/g, "\\|");
    return [
      `| ${head.map(esc).join(" | ")} |`,
      `| ${numeric.map((n) => n ? "---:" : "---").join(" | ")} |`,
      ...body.map((b) => `| ${b.map(esc).join(" | ")} |`),
    ].join("\n");
  }
  const widths = head.map((h, i) => Math.min(40, Math.max(h.length, ...body.map((b) => b[i].length))));
  const fit = (s: string, i: number) => {
    const w = widths[i];
    const c = s.length > w ? s.slice(0, w - 1) + "…" : s;
    return numeric[i] ? c.padStart(w) : c.padEnd(w);
  };
  const lines = [head.map(fit).join("  ").trimEnd(), ...body.map((b) => b.map(fit).join("  ").trimEnd())];
  lines.push(`${rows.length} run${rows.length === 1 ? "" : "s"}`);
  return lines.join("\n");
}
