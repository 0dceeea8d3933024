/**
 * The training-loss section of a report: the loss.csv of every row with a model, as `loss_curves.csv`
 * and one chart (or one per value of `loss_series`), smoothed for display.
 * @module
 */

import { groupRows } from "./charts.ts";
import { parseLossCsv } from "./loss_csv.ts";
import { writeChart } from "./plots.ts";
import { type Row, slug } from "./rows.ts";
import { requireKnown, type SectionContext, uniqueName } from "./sections.ts";

/** How the loss curves are drawn (the report's `loss_*` parameters). */
export interface LossCurveOptions {
  /** EMA weight of the displayed curves (0: raw). */
  loss_smooth: number;
  loss_log: "auto" | "log" | "linear";
  /** One chart per value of this axis. */
  loss_series?: string;
}

/** Reads `step` and `loss` from a train output's loss.csv (undefined when there is none). */
export async function readLossCsv(dir: string): Promise<[number, number][] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/loss.csv`);
  } catch {
    return undefined;
  }
  return parseLossCsv(text);
}

/**
 * Writes `loss_curves.csv` and the loss charts of the rows (pipeline order) that have a loss log, and
 * returns the `## Training loss` section (nothing when no row has one).
 */
export async function lossSection(sc: SectionContext, o: LossCurveOptions): Promise<string[]> {
  const { out, rows, used } = sc;
  const curves: { row: Row; points: [number, number][] }[] = [];
  for (const r of sc.joined) {
    if (!r.modelDir) continue;
    const pts = await readLossCsv(r.modelDir);
    if (pts?.length) curves.push({ row: r, points: pts });
  }
  if (!curves.length) return [];
  await Deno.writeTextFile(
    `${out}/loss_curves.csv`,
    "run,step,loss\n" +
      curves.flatMap((c) => c.points.map(([s, l]) => `"${c.row.label.replace(/"/g, '""')}",${s},${l}`))
        .join("\n") +
      "\n",
  );
  if (o.loss_series) requireKnown(rows, o.loss_series, "loss_series");
  const groups = o.loss_series
    ? groupRows(curves.map((c) => c.row), o.loss_series)
    : [{ value: undefined, rows: curves.map((c) => c.row) }];
  const all = curves.flatMap((c) => c.points.map((q) => q[1]));
  const lo = Math.min(...all), hi = Math.max(...all);
  const logY = o.loss_log === "log" || (o.loss_log === "auto" && lo > 0 && hi / lo > 10);
  const lines = ["## Training loss", ""];
  for (const g of groups) {
    const part = o.loss_series ? `${o.loss_series}=${g.value}` : "";
    const file = uniqueName(part ? `loss_${slug(part)}` : "loss", used);
    used.add(file.replace(/\.png$/, ".svg"));
    const title = `training loss${part ? ` (${part})` : ""}`;
    await writeChart(
      `${out}/${file}`,
      curves.filter((c) => g.rows.includes(c.row)).map((c) => ({
        label: c.row.label,
        points: c.points,
        markers: false,
      })),
      { title, xlabel: "step", ylabel: "loss", logY, smooth: o.loss_smooth },
    );
    lines.push(`![${title}](${file})`, "");
  }
  const sm = o.loss_smooth
    ? `smoothed for display with an exponential moving average (weight ${o.loss_smooth}: s ← ${o.loss_smooth}·s + ${
      Number((1 - o.loss_smooth).toFixed(6))
    }·loss)`
    : "unsmoothed";
  lines.push(
    `*Training loss per step, one curve per run, ${sm}; ${logY ? "log" : "linear"} loss axis. ` +
      "The raw values are in `loss_curves.csv`.*",
    "",
  );
  return lines;
}
