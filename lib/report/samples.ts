/**
 * The samples section of a report: the grid.png of every row that has one, copied, and (with more than
 * one) combined into one labelled montage laid out by the matrix's last axis.
 * @module
 */

import { writeMontage } from "./figures.ts";
import { type Row, slug } from "./rows.ts";
import { isFile, type SectionContext, uniqueName } from "./sections.ts";

/**
 * Copies the rows' sample grids (pipeline order), writes the montage, and returns the `## Samples`
 * section (nothing when no row has a grid). `cols`: grids per row of the montage (default: the number of
 * values of the last axis when 2 to 6, else up to 4).
 */
export async function samplesSection(sc: SectionContext, cols?: number): Promise<string[]> {
  const { out, used } = sc;
  const grids: { row: Row; file: string; src: string }[] = [];
  for (const r of sc.joined) {
    if (!r.gridDir || !(await isFile(`${r.gridDir}/grid.png`))) continue;
    grids.push({ row: r, src: `${r.gridDir}/grid.png`, file: uniqueName(`samples_${slug(r.label)}`, used) });
  }
  if (!grids.length) return [];
  const lines = ["## Samples", ""];
  if (grids.length > 1) {
    const axes = Object.keys(grids[0].row.point);
    const last = axes[axes.length - 1];
    const nLast = last ? new Set(grids.map((g) => JSON.stringify(g.row.point[last]))).size : 0;
    const file = uniqueName("samples", used);
    await writeMontage(`${out}/${file}`, grids.map((g) => ({ label: g.row.label, file: g.src })), {
      cols: cols ?? (nLast > 1 && nLast <= 6 ? nLast : Math.min(4, grids.length)),
    });
    lines.push(`![all sample grids](${file})`, "");
  }
  for (const g of grids) {
    await Deno.copyFile(g.src, `${out}/${g.file}`);
    lines.push(`### ${g.row.label}`, "", `![samples of ${g.row.label}](${g.file})`, "");
  }
  return lines;
}
