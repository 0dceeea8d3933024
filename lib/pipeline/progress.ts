/**
 * What people see while a pipeline runs: on a terminal, a live line per running stage (stage,
 * step/total, it/s, ETA, latest scalars) under the lines of finished stages; elsewhere plain lines
 * (start, end, and progress at most every `DITFLOW_PROGRESS_INTERVAL` seconds per stage, default 30).
 * At the end, a summary table (stage, result, duration, headline metrics).
 * @module
 */

import type { ProgressUpdate } from "./stage.ts";

/** One row of the run summary. */
export interface SummaryRow {
  name: string;
  result: "ran" | "cached" | "failed" | "skipped" | "aborted" | "not run";
  ms?: number;
  metrics?: Record<string, unknown>;
  headline?: readonly string[];
}

/** Receives events during a run. */
export interface Reporter {
  stageStart(name: string, info: { kind: string; gpu: boolean }): void;
  stageWaiting(name: string, holder: string): void;
  stageProgress(name: string, u: ProgressUpdate): void;
  stageLog(name: string, line: string): void;
  stageEnd(name: string, row: SummaryRow, detail?: string): void;
  /** Stops live output (before the summary is printed). */
  close(): void;
}

/** Formats seconds as `42s`, `3m05s`, `2h10m`. */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  if (sec < 10) return `${sec.toFixed(1)}s`;
  if (sec < 60) return `${Math.round(sec)}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${String(Math.round(sec % 60)).padStart(2, "0")}s`;
  return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, "0")}m`;
}

function fmtNum(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return v.toPrecision(4).replace(/\.?0+$/, "");
}

interface Live {
  start: number;
  firstT?: number;
  firstStep?: number;
  u?: ProgressUpdate;
  lastPrint: number;
  note?: string;
}

/** Renders the progress of one stage: `step 120/1000  35.2 it/s  ETA 25s  loss=0.1234`. */
export function progressText(l: Live, now: number): string {
  if (!l.u) return l.note ?? "running";
  const { step, total, ...rest } = l.u;
  let s = total ? `step ${step}/${total}` : `step ${step}`;
  if (l.firstT !== undefined && l.firstStep !== undefined && now > l.firstT && step > l.firstStep) {
    const rate = (step - l.firstStep) / ((now - l.firstT) / 1000);
    s += `  ${rate >= 10 ? rate.toFixed(0) : rate.toPrecision(3)} it/s`;
    if (total) s += `  ETA ${formatDuration((total - step) / rate)}`;
  }
  for (const [k, v] of Object.entries(rest)) if (typeof v === "number") s += `  ${k}=${fmtNum(v)}`;
  return s;
}

/** Base of both reporters: tracks running stages. */
abstract class BaseReporter implements Reporter {
  protected live = new Map<string, Live>();
  protected t0 = performance.now();
  constructor(protected out: (s: string) => void) {}
  stageStart(name: string, _info?: { kind: string; gpu: boolean }): void {
    this.live.set(name, { start: performance.now(), lastPrint: performance.now() });
  }
  stageWaiting(name: string, holder: string): void {
    const l = this.live.get(name);
    if (l) l.note = `waiting for ${holder}`;
  }
  stageProgress(name: string, u: ProgressUpdate): void {
    const l = this.live.get(name);
    if (!l) return;
    const now = performance.now();
    if (l.firstT === undefined) {
      l.firstT = now;
      l.firstStep = u.step;
    }
    l.u = u;
  }
  stageLog(_name: string, _line: string): void {}
  abstract stageEnd(name: string, row: SummaryRow, detail?: string): void;
  close(): void {}
  protected endLine(row: SummaryRow, detail?: string): string {
    const mark =
      { ran: "✓", cached: "·", failed: "✗", skipped: "-", aborted: "!", "not run": "-" }[row.result];
    const t = row.ms !== undefined && row.result !== "cached" ? ` in ${formatDuration(row.ms / 1000)}` : "";
    return `${mark} ${row.name} ${row.result}${t}${detail ? `: ${detail}` : ""}`;
  }
}

/** Plain lines, for logs and CI. */
export class PlainReporter extends BaseReporter {
  constructor(
    out: (s: string) => void,
    readonly intervalMs = 1000 * Number(Deno.env.get("DITFLOW_PROGRESS_INTERVAL") ?? 30),
  ) {
    super(out);
  }
  override stageStart(name: string, info: { kind: string; gpu: boolean }): void {
    super.stageStart(name);
    this.out(`${this.stamp()} ▶ ${name} (${info.kind}${info.gpu ? ", gpu" : ""})`);
  }
  override stageWaiting(name: string, holder: string): void {
    super.stageWaiting(name, holder);
    this.out(`${this.stamp()}   ${name}: waiting for ${holder}`);
  }
  override stageProgress(name: string, u: ProgressUpdate): void {
    super.stageProgress(name, u);
    const l = this.live.get(name);
    const now = performance.now();
    if (!l || now - l.lastPrint < this.intervalMs) return;
    l.lastPrint = now;
    this.out(`${this.stamp()}   ${name}: ${progressText(l, now)}`);
  }
  stageEnd(name: string, row: SummaryRow, detail?: string): void {
    this.live.delete(name);
    if (row.result === "cached") return;
    this.out(`${this.stamp()} ${this.endLine(row, detail)}`);
  }
  private stamp(): string {
    return `[${formatDuration((performance.now() - this.t0) / 1000).padStart(6)}]`;
  }
}

/** Live display on a terminal: finished stages scroll, running stages stay at the bottom. */
export class TtyReporter extends BaseReporter {
  #timer: ReturnType<typeof setInterval>;
  #drawn = 0;
  #cols: number;
  constructor(out: (s: string) => void) {
    super(out);
    let cols = 100;
    try {
      cols = Deno.consoleSize().columns;
    } catch { /* not a tty */ }
    this.#cols = cols;
    this.#timer = setInterval(() => this.#draw(), 150);
  }
  stageEnd(name: string, row: SummaryRow, detail?: string): void {
    this.live.delete(name);
    if (row.result === "cached") return;
    this.#clear();
    this.out(this.endLine(row, detail) + "\n");
    this.#draw();
  }
  override close(): void {
    clearInterval(this.#timer);
    this.#clear();
  }
  #clear(): void {
    if (this.#drawn > 0) this.out(`\x1b[${this.#drawn}F\x1b[J`);
    this.#drawn = 0;
  }
  #draw(): void {
    this.#clear();
    const now = performance.now();
    const lines: string[] = [];
    for (const [name, l] of this.live) {
      const el = formatDuration((now - l.start) / 1000);
      lines.push(`  ⟳ ${name} [${el}] ${progressText(l, now)}`.slice(0, this.#cols - 1));
    }
    if (lines.length > 12) lines.splice(11, lines.length - 11, `  ... and ${lines.length - 11} more running`);
    if (lines.length) this.out(lines.join("\n") + "\n");
    this.#drawn = lines.length;
  }
}

/** A reporter that prints nothing. */
export class SilentReporter extends BaseReporter {
  constructor() {
    super(() => {});
  }
  stageEnd(): void {}
}

/** Writes a string to stderr (sync). */
export function writeStderr(s: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(s));
}

/** The reporter for this terminal: live on a TTY stderr, plain lines otherwise. */
export function defaultReporter(): Reporter {
  if (Deno.stderr.isTerminal() && !Deno.env.get("DITFLOW_PLAIN")) return new TtyReporter(writeStderr);
  return new PlainReporter((s) => writeStderr(s + "\n"));
}

/** Renders the summary table. */
export function summaryTable(rows: SummaryRow[]): string {
  const metricText = (r: SummaryRow) => {
    if (!r.metrics) return "";
    const names = r.headline?.length
      ? r.headline.filter((h) => h in r.metrics!)
      : Object.keys(r.metrics).filter((k) => typeof r.metrics![k] === "number").slice(0, 3);
    return names.map((n) => {
      const v = r.metrics![n];
      return `${n}=${typeof v === "number" ? fmtNum(v) : String(v)}`;
    }).join(" ");
  };
  const table = [
    ["STAGE", "RESULT", "TIME", "METRICS"],
    ...rows.map((r) => [
      r.name,
      r.result,
      r.ms !== undefined && r.result !== "cached" ? formatDuration(r.ms / 1000) : "-",
      metricText(r),
    ]),
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...table.map((row) => row[i].length)));
  return table.map((row) => row.map((c, i) => i < 3 ? c.padEnd(widths[i]) : c).join("  ").trimEnd()).join(
    "\n",
  );
}
