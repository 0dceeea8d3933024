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
import { type Series, writeChart } from "../report/plots.ts";
import { writeMontage } from "../report/figures.ts";
import {
  BEST_PATTERN,
  checkFinding,
  type FindingResult,
  findingsMarkdown,
  type FindingSpec,
  parseFinding,
  TREND_PATTERN,
} from "../report/findings.ts";
import { fillNotes } from "../report/notes.ts";
import {
  groupValue,
  header,
  joinRows,
  known,
  knownNames,
  markdownTable,
  metricValue,
  num,
  resultsCsv,
  type Row,
  slug,
  sortRows,
} from "../report/rows.ts";

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

const NAME = String.raw`[A-Za-z_][A-Za-z0-9_./-]*`;

/** One chart of the `plots` parameter. */
export interface PlotSpec {
  x: string;
  y: string;
  series?: string;
  log?: "none" | "x" | "y" | "xy";
  title?: string;
  file?: string;
}

function fail(msg: string): never {
  throw new Error(`report: ${msg}`);
}

function requireKnown(rows: Row[], name: string, where: string): void {
  if (!known(rows, name)) fail(`${where}: no row has \`${name}\` (known: ${knownNames(rows).join(", ")})`);
}

function uniqueName(base: string, used: Set<string>, ext = ".png"): string {
  let name = `${base}${ext}`;
  for (let i = 2; used.has(name); i++) name = `${base}_${i}${ext}`;
  used.add(name);
  return name;
}

function ylabelOf(ys: string[], rows: Row[]): string {
  return ys.map((y) => header(y, rows)).join(", ");
}

/** Groups rows by the value of `by` (all rows in one unnamed group without it), in order of appearance. */
function groupRows(rows: Row[], by?: string): { value: unknown; rows: Row[] }[] {
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

/** The series of one chart: one line per (y metric, series value), points sorted by x. */
export function plotSeries(spec: PlotSpec, rows: Row[], where: string): Series[] {
  const ys = spec.y.split(",").map((s) => s.trim()).filter(Boolean);
  if (!ys.length) fail(`${where}: \`y\` names no metric`);
  requireKnown(rows, spec.x, `${where} (x)`);
  for (const y of ys) requireKnown(rows, y, `${where} (y)`);
  if (spec.series) requireKnown(rows, spec.series, `${where} (series)`);
  for (const r of rows) {
    const x = metricValue(r, spec.x);
    if (
      x !== undefined && x !== null && num(x) === undefined &&
      ys.some((y) => num(metricValue(r, y)) !== undefined)
    ) {
      fail(`${where}: x \`${spec.x}\` must be numeric, but row ${r.label} has ${JSON.stringify(x)}`);
    }
  }
  const series: Series[] = [];
  for (const y of ys) {
    for (const g of groupRows(rows, spec.series)) {
      const points = g.rows
        .map((r) => [num(metricValue(r, spec.x)), num(metricValue(r, y))])
        .filter((p): p is [number, number] => p[0] !== undefined && p[1] !== undefined)
        .sort((a, b) => a[0] - b[0]);
      if (!points.length) continue;
      const part = spec.series ? `${spec.series}=${g.value}` : "";
      const label = ys.length > 1 ? (part ? `${y}, ${part}` : y) : (part || y);
      // Rows sharing an x (no series axis to tell them apart) are a scatter, not a line.
      const line = new Set(points.map((q) => q[0])).size === points.length;
      series.push({ label, points, markers: true, line });
    }
  }
  if (!series.length) fail(`${where}: no row has both \`${spec.x}\` and \`${spec.y}\` as numbers`);
  return series;
}

/** Reads `step` and `loss` from a train output's loss.csv (undefined when there is none). */
async function readLossCsv(dir: string): Promise<[number, number][] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/loss.csv`);
  } catch {
    return undefined;
  }
  const [head, ...lines] = text.trim().split("\n");
  const cols = head.split(",").map((c) => c.trim());
  const si = cols.indexOf("step"), li = cols.indexOf("loss");
  if (si < 0 || li < 0) return undefined;
  return lines
    .map((l) => l.split(","))
    .map((f) => [Number(f[si]), Number(f[li])] as [number, number])
    .filter(([s, l]) => Number.isFinite(s) && Number.isFinite(l));
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The note under the table: how FID (and precision/recall) were measured, once. */
function fidNote(rows: Row[]): string[] {
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
          series: { type: "string", optional: true, pattern: `^${NAME}$`, doc: "one line per value of this" },
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
        "`- best: fid lowest at block=adaLN-Zero`, `- monotone: fid falls as patch falls, per model`",
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
    const specs: FindingSpec[] = p.findings.map((f, i) => parseFinding(f, i + 1));
    const models = (ctx.inputs.models ?? []) as InputArtifact[];
    const samples = (ctx.inputs.samples ?? []) as InputArtifact[];
    const extra = (ctx.inputs.metrics ?? []) as InputArtifact[];
    // Merge order: the model's metrics first, then fid & co., then the samplers' (see joinRows).
    const joined = joinRows([
      { role: "models", artifacts: models },
      { role: "metrics", artifacts: extra },
      { role: "samples", artifacts: samples },
    ]);
    // `sort` orders the table, the findings' evidence and results.*; loss curves and sample grids keep
    // the pipeline's order (the matrix's), which lays the combined samples figure out as a grid.
    let rows = joined;
    if (p.sort) {
      requireKnown(rows, p.sort.replace(/^-/, ""), "sort");
      rows = sortRows(rows, p.sort);
    }
    const used = new Set<string>(["README.md", "results.json", "results.csv", "loss_curves.csv"]);
    const lines: string[] = [`# ${p.title}`, ""];
    const runs = `${rows.length} run${rows.length === 1 ? "" : "s"}`;
    const stage = `\`${ctx.name}\` (cache key \`${ctx.key.slice(0, 12)}\`)`;
    lines.push(
      `Generated by the ditflow pipeline stage ${stage} from ${runs}; the numbers are in \`results.csv\` ` +
        "and `results.json`.",
      "",
    );
    if (p.notes) lines.push(fillNotes(p.notes.trim(), joined), "");

    // The table.
    let columns: string[];
    if (p.columns) {
      for (const c of p.columns) requireKnown(rows, c, "columns");
      columns = p.columns;
    } else {
      columns = DEFAULT_COLUMNS.filter((c) => known(rows, c));
      if (!columns.length) {
        columns = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))]
          .filter((k) => rows.some((r) => ["number", "string", "boolean"].includes(typeof r.metrics[k])))
          .slice(0, 12);
      }
    }
    const tableRows = rows.filter((r) => columns.some((c) => metricValue(r, c) !== undefined));
    if (tableRows.length && columns.length) {
      lines.push("## Results", "", ...markdownTable(tableRows, columns), "");
      const notes = [...fidNote(tableRows)];
      if (columns.includes("final_loss") && tableRows.some((r) => num(r.metrics.final_loss) !== undefined)) {
        notes.push("Final loss: mean training loss over the last 10% of steps.");
      }
      for (const n of notes) lines.push(`*${n}*`, "");
    }

    // Findings.
    const results: FindingResult[] = specs.map((s) => checkFinding(s, rows));
    if (results.length) lines.push("## Findings", "", ...findingsMarkdown(results), "");

    // Charts.
    let plots: PlotSpec[] | undefined = p.plots as PlotSpec[] | undefined;
    if (!plots) {
      const both = rows.filter((r) => num(metricValue(r, "fid")) !== undefined);
      const gf = new Set(both.map((r) => num(metricValue(r, "gflops"))).filter((g) => g !== undefined));
      plots = gf.size >= 2 ? [{ x: "gflops", y: "fid", log: "xy" }] : [];
    }
    const charts: Record<string, unknown>[] = [];
    if (plots.length) lines.push("## Charts", "");
    for (const [i, spec] of plots.entries()) {
      const where = `plots[${i}] (${spec.y} vs ${spec.x})`;
      const series = plotSeries(spec, rows, where);
      const ys = spec.y.split(",").map((s) => s.trim()).filter(Boolean);
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
      const what = spec.series
        ? `one series per ${spec.series}`
        : ys.length > 1
        ? "one series per metric"
        : "";
      lines.push(`![${title}](${file})`, "", `*${title}: ${[what, axes].filter(Boolean).join("; ")}.*`, "");
      charts.push({ file, title, x: spec.x, y: ys, series: spec.series ?? null, log });
    }

    // Loss curves, one per row with a loss log.
    const curves: { row: Row; points: [number, number][] }[] = [];
    for (const r of joined) {
      if (!r.modelDir) continue;
      const pts = await readLossCsv(r.modelDir);
      if (pts?.length) curves.push({ row: r, points: pts });
    }
    if (curves.length) {
      await Deno.writeTextFile(
        `${out}/loss_curves.csv`,
        "run,step,loss\n" +
          curves.flatMap((c) => c.points.map(([s, l]) => `"${c.row.label.replace(/"/g, '""')}",${s},${l}`))
            .join("\n") +
          "\n",
      );
      if (p.loss_series) requireKnown(rows, p.loss_series, "loss_series");
      const groups = p.loss_series
        ? groupRows(curves.map((c) => c.row), p.loss_series)
        : [{ value: undefined, rows: curves.map((c) => c.row) }];
      const all = curves.flatMap((c) => c.points.map((q) => q[1]));
      const lo = Math.min(...all), hi = Math.max(...all);
      const logY = p.loss_log === "log" || (p.loss_log === "auto" && lo > 0 && hi / lo > 10);
      lines.push("## Training loss", "");
      for (const g of groups) {
        const part = p.loss_series ? `${p.loss_series}=${g.value}` : "";
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
          { title, xlabel: "step", ylabel: "loss", logY, smooth: p.loss_smooth },
        );
        lines.push(`![${title}](${file})`, "");
      }
      const sm = p.loss_smooth
        ? `smoothed for display with an exponential moving average (weight ${p.loss_smooth}: s ← ${p.loss_smooth}·s + ${
          Number((1 - p.loss_smooth).toFixed(6))
        }·loss)`
        : "unsmoothed";
      lines.push(
        `*Training loss per step, one curve per run, ${sm}; ${logY ? "log" : "linear"} loss axis. ` +
          "The raw values are in `loss_curves.csv`.*",
        "",
      );
    }

    // Sample grids.
    const grids: { row: Row; file: string; src: string }[] = [];
    for (const r of joined) {
      if (!r.gridDir || !(await exists(`${r.gridDir}/grid.png`))) continue;
      grids.push({
        row: r,
        src: `${r.gridDir}/grid.png`,
        file: uniqueName(`samples_${slug(r.label)}`, used),
      });
    }
    if (grids.length) {
      lines.push("## Samples", "");
      if (grids.length > 1) {
        const axes = Object.keys(grids[0].row.point);
        const last = axes[axes.length - 1];
        const nLast = last ? new Set(grids.map((g) => JSON.stringify(g.row.point[last]))).size : 0;
        const cols = p.sample_cols ?? (nLast > 1 && nLast <= 6 ? nLast : Math.min(4, grids.length));
        const file = uniqueName("samples", used);
        await writeMontage(`${out}/${file}`, grids.map((g) => ({ label: g.row.label, file: g.src })), {
          cols,
        });
        lines.push(`![all sample grids](${file})`, "");
      }
      for (const g of grids) {
        await Deno.copyFile(g.src, `${out}/${g.file}`);
        lines.push(`### ${g.row.label}`, "", `![samples of ${g.row.label}](${g.file})`, "");
      }
    }

    await Deno.writeTextFile(`${out}/README.md`, lines.join("\n"));
    await Deno.writeTextFile(`${out}/results.csv`, resultsCsv(rows));
    await Deno.writeTextFile(
      `${out}/results.json`,
      JSON.stringify(
        {
          title: p.title,
          stage: ctx.name,
          key: ctx.key,
          columns,
          rows: rows.map((r) => ({ label: r.label, point: r.point, metrics: r.metrics, sources: r.sources })),
          findings: results.map((f) => ({
            claim: f.claim,
            verdict: f.verdict,
            status: f.status,
            summary: f.summary,
            evidence: f.evidence,
            data: f.data,
          })),
          charts,
        },
        null,
        1,
      ) + "\n",
    );
    if (p.publish) {
      await Deno.mkdir(p.publish, { recursive: true });
      for await (const e of Deno.readDir(out)) {
        if (e.isFile) await Deno.copyFile(`${out}/${e.name}`, `${p.publish}/${e.name}`);
      }
      ctx.log(`published the report to ${p.publish}`);
    }
    const m: Record<string, unknown> = {
      rows: rows.length,
      models: models.length,
      samples: samples.length,
      findings: results.length,
      findings_hold: results.filter((f) => f.status === "holds").length,
    };
    results.forEach((f, i) => {
      m[`finding_${i + 1}`] = f.verdict;
      m[`finding_${i + 1}_claim`] = f.claim;
      if (f.kind === "trend" && typeof f.data.rho === "number") m[`finding_${i + 1}_rho`] = f.data.rho;
    });
    for (const f of results) ctx.log(`finding: ${f.claim}: ${f.verdict} (${f.summary})`);
    ctx.metrics(m);
  },
});
registerKind(reportKind);
