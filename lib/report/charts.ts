/**
 * The charts section of a report: the `plots` parameter's charts (default: FID vs GFLOPs, log-log, when
 * the rows have both), their series drawn from the rows, written as PNG and SVG.
 * @module
 */

import { type Series, writeChart } from "./plots.ts";
import { groupValue, header, metricValue, num, type Row, slug } from "./rows.ts";
import { reportError, requireKnown, type SectionContext, uniqueName } from "./sections.ts";

/** One chart of the `plots` parameter. */
export interface PlotSpec {
  x: string;
  y: string;
  series?: string;
  log?: "none" | "x" | "y" | "xy";
  title?: string;
  file?: string;
}

/** What results.json records of a chart. */
export type ChartRecord = Record<string, unknown>;

/** Groups rows by the value of `by` (all rows in one unnamed group without it), in order of appearance. */
export function groupRows(rows: Row[], by?: string): { value: unknown; rows: Row[] }[] {
  if (!by) return [{ value: undefined, rows }];
  const out = new Map<string, { value: unknown; rows: Row[] }>();
  for (const r of rows) {
    const v = groupValue(r, by);
    if (v === undefined) continue;
    const k = JSON.stringify(v);
    if (!out.has(k)) out.set(k, { value: v, rows: [] });
    out.get(k)!.rows.push(r);
  }
  return [...out.values()];
}

/** The metrics on a chart's y axis (`fid` or `precision,recall`). */
function yMetrics(spec: PlotSpec): string[] {
  return spec.y.split(",").map((s) => s.trim()).filter(Boolean);
}

function ylabelOf(ys: string[], rows: Row[]): string {
  return ys.map((y) => header(y, rows)).join(", ");
}

/** The series of one chart: one line per (y metric, series value), points sorted by x. */
export function plotSeries(spec: PlotSpec, rows: Row[], where: string): Series[] {
  const ys = yMetrics(spec);
  if (!ys.length) reportError(`${where}: \`y\` names no metric`);
  requireKnown(rows, spec.x, `${where} (x)`);
  for (const y of ys) requireKnown(rows, y, `${where} (y)`);
  if (spec.series) requireKnown(rows, spec.series, `${where} (series)`);
  for (const r of rows) {
    const x = metricValue(r, spec.x);
    if (
      x !== undefined && x !== null && num(x) === undefined &&
      ys.some((y) => num(metricValue(r, y)) !== undefined)
    ) {
      reportError(`${where}: x \`${spec.x}\` must be numeric, but row ${r.label} has ${JSON.stringify(x)}`);
    }
  }
  const series: Series[] = [];
  for (const y of ys) {
    for (const g of groupRows(rows, spec.series)) {
      const points = g.rows
        .map((r) => [num(metricValue(r, spec.x)), num(metricValue(r, y))])
        .filter((xy): xy is [number, number] => xy[0] !== undefined && xy[1] !== undefined)
        .sort((a, b) => a[0] - b[0]);
      if (!points.length) continue;
      // A combined series (`model+patch`) is named by its values alone (`S/4`): the caption names the axes,
      // and the legend stays narrow enough to read.
      const part = !spec.series ? "" : spec.series.includes("+") ? `${g.value}` : `${spec.series}=${g.value}`;
      const label = ys.length > 1 ? (part ? `${y}, ${part}` : y) : (part || y);
      // Rows sharing an x (no series axis to tell them apart) are a scatter, not a line.
      const line = new Set(points.map((q) => q[0])).size === points.length;
      series.push({ label, points, markers: true, line });
    }
  }
  if (!series.length) reportError(`${where}: no row has both \`${spec.x}\` and \`${spec.y}\` as numbers`);
  return series;
}

/** The charts when `plots` is not given: FID vs GFLOPs (log-log) when two or more GFLOPs have a FID. */
export function defaultPlots(rows: Row[]): PlotSpec[] {
  const both = rows.filter((r) => num(metricValue(r, "fid")) !== undefined);
  const gf = new Set(both.map((r) => num(metricValue(r, "gflops"))).filter((g) => g !== undefined));
  return gf.size >= 2 ? [{ x: "gflops", y: "fid", log: "xy" }] : [];
}

/** Writes the charts and returns the `## Charts` section and what results.json records of them. */
export async function chartsSection(
  sc: SectionContext,
  plots: PlotSpec[],
): Promise<{ lines: string[]; charts: ChartRecord[] }> {
  const { out, rows, used } = sc;
  const lines: string[] = [];
  const charts: ChartRecord[] = [];
  if (plots.length) lines.push("## Charts", "");
  for (const [i, spec] of plots.entries()) {
    const where = `plots[${i}] (${spec.y} vs ${spec.x})`;
    const series = plotSeries(spec, rows, where);
    const ys = yMetrics(spec);
    const log = spec.log ?? "none";
    const file = spec.file
      ? uniqueName(spec.file.replace(/\.png$/, ""), used)
      : uniqueName(slug(`${ys.join("_")}_vs_${spec.x}${spec.series ? `_by_${spec.series}` : ""}`), used);
    const title = spec.title ??
      `${ylabelOf(ys, rows)} vs ${header(spec.x, rows)}${spec.series ? ` by ${spec.series}` : ""}`;
    used.add(file.replace(/\.png$/, ".svg"));
    await writeChart(`${out}/${file}`, series, {
      title,
      xlabel: header(spec.x, rows),
      ylabel: ylabelOf(ys, rows),
      logX: log.includes("x"),
      logY: log.includes("y"),
    });
    const axes = log === "none" ? "linear axes" : log === "xy" ? "log-log axes" : `log ${log} axis`;
    const what = spec.series ? `one series per ${spec.series}` : ys.length > 1 ? "one series per metric" : "";
    lines.push(`![${title}](${file})`, "", `*${title}: ${[what, axes].filter(Boolean).join("; ")}.*`, "");
    charts.push({ file, title, x: spec.x, y: ys, series: spec.series ?? null, log });
  }
  return { lines, charts };
}
