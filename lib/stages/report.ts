/**
 * Stage kind `report`: the report of an experiment (a scaling study, an ablation, a guidance sweep).
 * It joins its inputs by matrix point into rows (train, sample/decode and fid outputs of the same point make
 * one row; see `lib/report/rows.ts`) and writes, into its output and optionally `publish: DIR`:
 *
 * - `README.md`: the title and notes, the results table (`columns`, `sort`) with a note on how FID was
 *   measured, the findings (claims checked against the numbers, with the evidence; `lib/report/findings.ts`),
 *   the charts (`plots`), the training-loss curves and the sample grids;
 * - `results.json` (rows with label, point, metrics and sources, the findings) and `results.csv` (one line
 *   per row, every scalar metric), `loss_curves.csv` (run, step, loss);
 * - the PNG (and SVG) charts and the sample grids.
 *
 * ```yaml
 * report:
 *   uses: report
 *   inputs: { models: train.model, samples: sample.samples, metrics: fid.fid }
 *   with:
 *     title: DiT scaling on MNIST
 *     sort: gflops
 *     plots:
 *       - { x: gflops, y: fid, series: patch, log: xy }
 *       - { x: gflops, y: fid, series: model, log: xy, file: fid_vs_gflops_by_model }
 *     findings:
 *       - trend: fid falls as gflops rises, per patch
 *       - monotone: fid falls as patch falls, per model
 *     publish: experiments/scaling
 * ```
 * @module
 */

import { defineKind, type InputArtifact } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import {
  BEATS_PATTERN,
  BEST_PATTERN,
  checkFinding,
  findingsMetrics,
  findingsSection,
  parseFinding,
  TREND_PATTERN,
} from "../report/findings.ts";
import { joinRows, sortRows } from "../report/rows.ts";
import { FIXED_FILES, headerSection, requireKnown, type SectionContext } from "../report/sections.ts";
import { DEFAULT_COLUMNS, tableColumns, tableSection } from "../report/table.ts";
import { chartsSection, defaultPlots, type PlotSpec } from "../report/charts.ts";
import { lossSection } from "../report/loss_curves.ts";
import { samplesSection } from "../report/samples.ts";
import { publishReport, writeResults } from "../report/results.ts";

const NAME = String.raw`[A-Za-z_][A-Za-z0-9_./-]*`;

/** The `report` kind. */
export const reportKind = defineKind({
  name: "report",
  module: import.meta.url,
  description: "an experiment report: rows joined by matrix point, table, checked findings, charts, samples",
  gpu: false,
  params: {
    title: { type: "string", default: "ditflow report" },
    notes: {
      type: "string",
      default: "",
      doc:
        "a paragraph printed under the title; `{{ ROW.METRIC }}` is filled from the rows (lib/report/notes.ts)",
    },
    publish: {
      type: "string",
      default: "",
      writes: true,
      doc: "also copy the report into this directory (e.g. experiments/scaling; files are overwritten)",
    },
    columns: {
      type: "list",
      items: { type: "string", pattern: `^${NAME}$` },
      optional: true,
      doc: `metrics or axes of the table, in order (default: those of ${DEFAULT_COLUMNS.join(", ")} present)`,
    },
    sort: {
      type: "string",
      optional: true,
      pattern: `^-?${NAME}$`,
      doc: "sort the rows by this column (`-fid`: descending); default: input order",
    },
    plots: {
      type: "list",
      optional: true,
      doc: "charts; default: FID vs GFLOPs (log-log) when the rows have both",
      items: {
        type: "object",
        fields: {
          x: { type: "string", pattern: `^${NAME}$`, doc: "metric or axis on the x axis" },
          y: {
            type: "string",
            pattern: String.raw`^\s*${NAME}(\s*,\s*${NAME})*\s*$`,
            doc: "metric(s) on the y axis: `fid` or `precision,recall`",
          },
          series: {
            type: "string",
            optional: true,
            pattern: `^${NAME}(\\+${NAME})*$`,
            doc: "one line per value of this (or of several axes: `model+patch`)",
          },
          log: { type: "enum", values: ["none", "x", "y", "xy"], default: "none" },
          title: { type: "string", optional: true },
          file: {
            type: "string",
            optional: true,
            pattern: String.raw`^[A-Za-z0-9_-]+(\.png)?$`,
            doc: "file name (default from x, y, series)",
          },
        },
      },
    },
    findings: {
      type: "list",
      default: [],
      doc: "claims checked against the numbers: `- trend: fid falls as gflops rises, per patch`, " +
        "`- best: fid lowest at block=adaLN-Zero`, `- monotone: fid falls as patch falls, per model`, " +
        "`- beats: fid lower at arch=uvit than at arch=dit, objective=ddpm`",
      items: {
        type: "object",
        fields: {
          trend: {
            type: "string",
            optional: true,
            pattern: TREND_PATTERN,
            doc: "Y falls|rises as X rises|falls[, per AXIS]",
          },
          best: {
            type: "string",
            optional: true,
            pattern: BEST_PATTERN,
            doc: "Y lowest|highest at AXIS=VALUE[, per AXIS]",
          },
          monotone: {
            type: "string",
            optional: true,
            pattern: TREND_PATTERN,
            doc: "Y falls|rises as X falls|rises[, per AXIS]",
          },
          beats: {
            type: "string",
            optional: true,
            pattern: BEATS_PATTERN,
            doc: "Y lower|higher at AXIS=VALUE[, AXIS=VALUE] than at AXIS=VALUE[, AXIS=VALUE]",
          },
        },
      },
    },
    loss_smooth: {
      type: "number",
      default: 0.9,
      min: 0,
      max: 0.999,
      doc: "EMA weight of the displayed loss curves (0: raw)",
    },
    loss_log: { type: "enum", values: ["auto", "log", "linear"], default: "auto", doc: "loss axis scale" },
    loss_series: {
      type: "string",
      optional: true,
      pattern: `^${NAME}$`,
      doc: "one loss chart per value of this axis (e.g. model), each with one curve per row",
    },
    sample_cols: {
      type: "int",
      optional: true,
      min: 1,
      doc: "grids per row of the combined samples figure (default: the values of the last axis)",
    },
  },
  inputs: {
    models: { many: true, optional: true, doc: "train outputs (metrics, loss.csv)" },
    samples: { many: true, optional: true, doc: "outputs with a grid.png (sample, decode)" },
    metrics: { many: true, optional: true, doc: "any outputs whose metrics join the rows (fid, ...)" },
  },
  outputs: {
    report: { doc: "README.md, results.json, results.csv, charts (PNG, SVG), loss curves, sample grids" },
  },
  headline: ["rows", "findings", "findings_hold"],
  async run(ctx) {
    const p = ctx.params;
    const out = ctx.outputs.report;
    // Parse the findings first: a malformed claim fails before anything is written.
    const specs = p.findings.map((f, i) => parseFinding(f, i + 1));
    const models = (ctx.inputs.models ?? []) as InputArtifact[];
    const samples = (ctx.inputs.samples ?? []) as InputArtifact[];
    // Merge order: the model's metrics first, then fid & co., then the samplers' (see joinRows).
    const joined = joinRows([
      { role: "models", artifacts: models },
      { role: "metrics", artifacts: (ctx.inputs.metrics ?? []) as InputArtifact[] },
      { role: "samples", artifacts: samples },
    ]);
    // `sort` orders the table, the findings' evidence and results.*; loss curves and sample grids keep
    // the pipeline's order (the matrix's), which lays the combined samples figure out as a grid.
    if (p.sort) requireKnown(joined, p.sort.replace(/^-/, ""), "sort");
    const rows = p.sort ? sortRows(joined, p.sort) : joined;
    const sc: SectionContext = { out, rows, joined, used: new Set(FIXED_FILES) };
    const lines = headerSection(p.title, ctx, sc, p.notes);
    const columns = tableColumns(rows, p.columns);
    lines.push(...tableSection(rows, columns));
    const findings = specs.map((s) => checkFinding(s, rows));
    lines.push(...findingsSection(findings));
    const charts = await chartsSection(sc, (p.plots as PlotSpec[] | undefined) ?? defaultPlots(rows));
    lines.push(...charts.lines);
    lines.push(...await lossSection(sc, p));
    lines.push(...await samplesSection(sc, p.sample_cols));
    await Deno.writeTextFile(`${out}/README.md`, lines.join("\n"));
    await writeResults(out, rows, {
      title: p.title,
      stage: ctx.name,
      key: ctx.key,
      columns,
      findings,
      charts: charts.charts,
    });
    if (p.publish) {
      await publishReport(out, p.publish);
      ctx.log(`published the report to ${p.publish}`);
    }
    for (const f of findings) ctx.log(`finding: ${f.claim}: ${f.verdict} (${f.summary})`);
    ctx.metrics({
      rows: rows.length,
      models: models.length,
      samples: samples.length,
      ...findingsMetrics(findings),
    });
  },
});
registerKind(reportKind);
