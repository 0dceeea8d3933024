/**
 * The machine-readable files of a report (`results.csv`, `results.json`) and its publication into a
 * directory of the project.
 * @module
 */

import type { ChartRecord } from "./charts.ts";
import type { FindingResult } from "./findings.ts";
import { resultsCsv, type Row } from "./rows.ts";

/** What results.json holds besides the rows. */
export interface ResultsInfo {
  title: string;
  /** The report stage's name and cache key. */
  stage: string;
  key: string;
  columns: string[];
  findings: FindingResult[];
  charts: ChartRecord[];
}

/** Writes `results.csv` (every scalar metric per row) and `results.json` (rows, findings, charts). */
export async function writeResults(out: string, rows: Row[], info: ResultsInfo): Promise<void> {
  await Deno.writeTextFile(`${out}/results.csv`, resultsCsv(rows));
  await Deno.writeTextFile(
    `${out}/results.json`,
    JSON.stringify(
      {
        title: info.title,
        stage: info.stage,
        key: info.key,
        columns: info.columns,
        rows: rows.map((r) => ({ label: r.label, point: r.point, metrics: r.metrics, sources: r.sources })),
        findings: info.findings.map((f) => ({
          claim: f.claim,
          verdict: f.verdict,
          status: f.status,
          summary: f.summary,
          evidence: f.evidence,
          data: f.data,
        })),
        charts: info.charts,
      },
      null,
      1,
    ) + "\n",
  );
}

/** Copies the files of the report directory `out` into `dir` (created; files there are overwritten). */
export async function publishReport(out: string, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for await (const e of Deno.readDir(out)) {
    if (e.isFile) await Deno.copyFile(`${out}/${e.name}`, `${dir}/${e.name}`);
  }
}
