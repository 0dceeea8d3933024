/**
 * Findings: claims about a report's numbers, checked automatically and written with their evidence.
 * A finding is a one-key mapping in the pipeline (the YAML reads like a sentence):
 *
 * ```yaml
 * findings:
 *   - trend: fid falls as gflops rises, per patch      # Spearman ρ < 0 within each patch size
 *   - best: fid lowest at block=adaLN-Zero              # the lowest FID row has block = adaLN-Zero
 *   - monotone: fid falls as patch falls, per model     # within each model, FID falls step by step
 * ```
 *
 * - `trend: Y falls|rises as X rises|falls[, per AXIS]`: the Spearman rank correlation of X and Y has the
 *   stated sign (over all rows, or within each group of AXIS, reported per group).
 * - `best: Y lowest|highest at AXIS=VALUE[, per AXIS2]`: the row with the lowest (highest) Y has
 *   AXIS = VALUE (over all rows, or within each group of AXIS2); the ranking is the evidence.
 * - `monotone: Y falls|rises as X falls|rises[, per AXIS]`: ordering the rows by X in the stated direction,
 *   Y moves in its stated direction at every step (rows with the same X are averaged).
 *
 * `decreases`/`increases` may be written for `falls`/`rises`, `within` or `for each` for `per`. Names are
 * metrics of the rows or matrix axes (see `rows.ts`). Verdicts: `holds`, `holds partly (k of n groups)`,
 * `does not hold`, `not testable` (too few rows with numbers).
 * @module
 */

import { fmtValue, groupValue, known, knownNames, metricValue, num, type Row } from "./rows.ts";

const NAME = String.raw`[A-Za-z_][A-Za-z0-9_./-]*`;
const DIR = String.raw`(falls|rises|decreases|increases)`;
const GROUP = String.raw`(?:,?\s+(?:per|within|for each)\s+(${NAME}))?`;

/** The pattern of a `trend` or `monotone` finding (also the parameter's validation pattern). */
export const TREND_PATTERN: string = String.raw`^\s*(${NAME})\s+${DIR}\s+as\s+(${NAME})\s+${DIR}${GROUP}\s*$`;
/** The pattern of a `best` finding. */
export const BEST_PATTERN: string = String
  .raw`^\s*(${NAME})\s+(lowest|highest)\s+at\s+(${NAME})\s*=\s*([^,]+?)${GROUP}\s*$`;

/** The finding kinds and their grammar (for messages). */
export const FINDING_GRAMMAR: Record<FindingKind, string> = {
  trend: "trend: Y falls|rises as X rises|falls[, per AXIS]",
  best: "best: Y lowest|highest at AXIS=VALUE[, per AXIS]",
  monotone: "monotone: Y falls|rises as X falls|rises[, per AXIS]",
};

/** A finding kind. */
export type FindingKind = "trend" | "best" | "monotone";

/** A parsed `trend` or `monotone` finding: Y moves up (`yUp`) or down as X moves up (`xUp`) or down. */
export interface TrendSpec {
  kind: "trend" | "monotone";
  claim: string;
  y: string;
  yUp: boolean;
  x: string;
  xUp: boolean;
  per?: string;
}

/** A parsed `best` finding. */
export interface BestSpec {
  kind: "best";
  claim: string;
  y: string;
  lowest: boolean;
  at: string;
  value: string;
  per?: string;
}

/** A parsed finding. */
export type FindingSpec = TrendSpec | BestSpec;

/** How a finding came out. */
export type Status = "holds" | "partly" | "fails" | "untestable";

/** A checked finding. */
export interface FindingResult {
  claim: string;
  kind: FindingKind;
  status: Status;
  /** `holds`, `holds partly (k of n groups)`, `does not hold` or `not testable`. */
  verdict: string;
  /** One line of numbers (e.g. the pooled Spearman ρ). */
  summary: string;
  /** Markdown bullet lines: per group values, the ranking, ... */
  evidence: string[];
  /** Machine-readable numbers (ρ per group, ranking, ...). */
  data: Record<string, unknown>;
}

const up = (w: string) => w === "rises" || w === "increases";

/**
 * Parses one finding (a one-key mapping such as `{ trend: "fid falls as gflops rises" }`); throws with
 * the grammar on anything else. `index` is 1-based, for messages.
 */
export function parseFinding(item: unknown, index: number): FindingSpec {
  const where = `findings[${index - 1}]`;
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    throw new Error(
      `report: ${where} must be a one-key mapping such as \`trend: fid falls as gflops rises\`, not ${
        JSON.stringify(item)
      }`,
    );
  }
  const entries = Object.entries(item as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (entries.length !== 1) {
    throw new Error(
      `report: ${where} must have exactly one of trend, best, monotone (got ${
        entries.map(([k]) => k).join(", ") || "none"
      }); write one finding per list item`,
    );
  }
  const [kind, text] = entries[0];
  if (!(kind in FINDING_GRAMMAR)) {
    throw new Error(`report: ${where}: unknown finding kind \`${kind}\` (trend, best or monotone)`);
  }
  const k = kind as FindingKind;
  if (typeof text !== "string") {
    throw new Error(`report: ${where}.${k} must be a string: ${FINDING_GRAMMAR[k]}`);
  }
  const claim = `${k}: ${text.trim()}`;
  if (k === "best") {
    const m = new RegExp(BEST_PATTERN).exec(text);
    if (!m) throw new Error(`report: ${where}: \`${claim}\` does not read \`${FINDING_GRAMMAR.best}\``);
    return { kind: k, claim, y: m[1], lowest: m[2] === "lowest", at: m[3], value: m[4].trim(), per: m[5] };
  }
  const m = new RegExp(TREND_PATTERN).exec(text);
  if (!m) throw new Error(`report: ${where}: \`${claim}\` does not read \`${FINDING_GRAMMAR[k]}\``);
  return { kind: k, claim, y: m[1], yUp: up(m[2]), x: m[3], xUp: up(m[4]), per: m[5] };
}

/** Ranks (1-based, ties get the average rank). */
export function ranks(v: number[]): number[] {
  const idx = v.map((_, i) => i).sort((a, b) => v[a] - v[b]);
  const r = new Array<number>(v.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
    for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

/** Spearman's rank correlation (Pearson on average ranks); NaN with < 2 points or a constant variable. */
export function spearman(x: number[], y: number[]): number {
  const n = x.length;
  if (n < 2 || y.length !== n) return NaN;
  const rx = ranks(x), ry = ranks(y);
  const mx = rx.reduce((a, b) => a + b, 0) / n, my = ry.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) ** 2;
    syy += (ry[i] - my) ** 2;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : NaN;
}

function rho(v: number): string {
  return Number.isFinite(v) ? (v < 0 ? `−${v.toFixed(2).slice(1)}` : `+${v.toFixed(2)}`) : "undefined";
}

function sameValue(v: unknown, want: string): boolean {
  if (v === undefined || v === null) return false;
  if (String(v) === want) return true;
  return typeof v === "number" && want.trim() !== "" && Number(want) === v;
}

/** Groups rows by `per` (one group of all rows without it), in order of first appearance. */
function groups(rows: Row[], per?: string): { name: string; rows: Row[] }[] {
  if (!per) return [{ name: "all rows", rows }];
  const out = new Map<string, Row[]>();
  for (const r of rows) {
    const v = groupValue(r, per);
    if (v === undefined || v === null) continue;
    const k = `${per}=${v}`;
    out.set(k, [...(out.get(k) ?? []), r]);
  }
  return [...out].map(([name, rows]) => ({ name, rows }));
}

function verdictOf(ok: number, testable: number, grouped: boolean): { status: Status; verdict: string } {
  if (testable === 0) return { status: "untestable", verdict: "not testable" };
  if (ok === testable) return { status: "holds", verdict: "holds" };
  if (ok === 0) return { status: "fails", verdict: "does not hold" };
  return {
    status: "partly",
    verdict: `holds partly (${ok} of ${testable} ${grouped ? "groups" : "steps"})`,
  };
}

function requireName(rows: Row[], name: string, claim: string, what: string): void {
  if (!known(rows, name)) {
    throw new Error(
      `report: finding \`${claim}\`: no row has ${what} \`${name}\` (known: ${knownNames(rows).join(", ")})`,
    );
  }
}

/** Points (x, y) of the rows that have both as numbers, sorted by x. */
function pairs(rows: Row[], x: string, y: string): { row: Row; x: number; y: number }[] {
  return rows
    .map((row) => ({ row, x: num(metricValue(row, x)), y: num(metricValue(row, y)) }))
    .filter((p): p is { row: Row; x: number; y: number } => p.x !== undefined && p.y !== undefined)
    .sort((a, b) => a.x - b.x);
}

function arrow(name: string, vs: number[]): string {
  return `${name} ${vs.map((v) => fmtValue(name, v)).join(" → ")}`;
}

function checkTrend(s: TrendSpec, rows: Row[]): FindingResult {
  const sign = s.yUp === s.xUp ? 1 : -1;
  const all = pairs(rows, s.x, s.y);
  const pooled = spearman(all.map((p) => p.x), all.map((p) => p.y));
  const evidence: string[] = [];
  const data: Record<string, unknown> = { rho: Number.isFinite(pooled) ? pooled : null, n: all.length };
  let ok = 0, testable = 0;
  if (s.per) {
    const perGroup: Record<string, unknown> = {};
    for (const g of groups(rows, s.per)) {
      const ps = pairs(g.rows, s.x, s.y);
      const r = spearman(ps.map((p) => p.x), ps.map((p) => p.y));
      perGroup[g.name] = Number.isFinite(r) ? r : null;
      const vals = `${arrow(s.x, ps.map((p) => p.x))}; ${arrow(s.y, ps.map((p) => p.y))}`;
      if (!Number.isFinite(r)) {
        evidence.push(
          `${g.name}: not testable (${ps.length} rows with numbers${ps.length ? `: ${vals}` : ""})`,
        );
        continue;
      }
      testable++;
      const good = r * sign > 0;
      if (good) ok++;
      evidence.push(`${g.name}: ρ = ${rho(r)} (n = ${ps.length}) ${good ? "✓" : "✗"}: ${vals}`);
    }
    data.groups = perGroup;
  } else if (Number.isFinite(pooled)) {
    testable = 1;
    if (pooled * sign > 0) ok = 1;
    for (const p of all) {
      evidence.push(`${p.row.label}: ${s.x} ${fmtValue(s.x, p.x)}, ${s.y} ${fmtValue(s.y, p.y)}`);
    }
  }
  const v = verdictOf(ok, testable, !!s.per);
  const expect = sign < 0 ? "ρ < 0" : "ρ > 0";
  const summary = `Spearman ρ(${s.x}, ${s.y}) = ${rho(pooled)} over all ${all.length} rows` +
    (s.per ? `; within ${s.per}: ${ok} of ${testable} groups have ${expect}` : ` (expected ${expect})`);
  return { claim: s.claim, kind: s.kind, ...v, summary, evidence, data };
}

function checkMonotone(s: TrendSpec, rows: Row[]): FindingResult {
  const evidence: string[] = [];
  const perGroup: Record<string, unknown> = {};
  let ok = 0, testable = 0;
  for (const g of groups(rows, s.per)) {
    // Average y over rows with the same x, then order by x in the claimed direction.
    const byX = new Map<number, number[]>();
    for (const p of pairs(g.rows, s.x, s.y)) byX.set(p.x, [...(byX.get(p.x) ?? []), p.y]);
    const pts = [...byX].map(([x, ys]) => ({ x, y: ys.reduce((a, b) => a + b, 0) / ys.length, n: ys.length }))
      .sort((a, b) => (s.xUp ? a.x - b.x : b.x - a.x));
    const vals = `${arrow(s.x, pts.map((p) => p.x))}: ${arrow(s.y, pts.map((p) => p.y))}` +
      (pts.some((p) => p.n > 1) ? " (means over rows with the same x)" : "");
    if (pts.length < 2) {
      evidence.push(`${g.name}: not testable (${pts.length} distinct ${s.x})`);
      perGroup[g.name] = null;
      continue;
    }
    testable++;
    const good = pts.every((p, i) => i === 0 || (s.yUp ? p.y > pts[i - 1].y : p.y < pts[i - 1].y));
    if (good) ok++;
    perGroup[g.name] = good;
    evidence.push(`${g.name}: ${good ? "yes" : "no"}: ${vals}`);
  }
  const v = verdictOf(ok, testable, true);
  const summary =
    `${s.y} ${s.yUp ? "rises" : "falls"} at every step as ${s.x} ${s.xUp ? "rises" : "falls"} in ` +
    `${ok} of ${testable} ${s.per ? `groups of ${s.per}` : "(all rows)"}`;
  return {
    claim: s.claim,
    kind: "monotone",
    ...v, // without `per` there is one group: holds, does not hold or not testable
    summary,
    evidence,
    data: { groups: perGroup },
  };
}

function checkBest(s: BestSpec, rows: Row[]): FindingResult {
  const matches = (r: Row) => sameValue(groupValue(r, s.at), s.value);
  if (!rows.some(matches)) {
    const vals = [...new Set(rows.map((r) => groupValue(r, s.at)).filter((v) => v !== undefined))];
    throw new Error(
      `report: finding \`${s.claim}\`: no row has ${s.at}=${s.value} (values: ${vals.join(", ")})`,
    );
  }
  const evidence: string[] = [];
  const perGroup: Record<string, unknown> = {};
  let ok = 0, testable = 0;
  for (const g of groups(rows, s.per)) {
    const ranked = g.rows
      .map((row) => ({ row, y: num(metricValue(row, s.y)) }))
      .filter((p): p is { row: Row; y: number } => p.y !== undefined)
      .sort((a, b) => (s.lowest ? a.y - b.y : b.y - a.y));
    const prefix = s.per ? `${g.name}: ` : "";
    if (ranked.length < 2 || !ranked.some((p) => matches(p.row))) {
      evidence.push(
        `${prefix}not testable (${ranked.length} rows with ${s.y}, ${s.at}=${s.value} among them: ` +
          `${ranked.some((p) => matches(p.row)) ? "yes" : "no"})`,
      );
      perGroup[g.name] = null;
      continue;
    }
    testable++;
    const top = ranked[0].y;
    const winners = ranked.filter((p) => p.y === top);
    const good = winners.some((p) => matches(p.row));
    if (good) ok++;
    const name = (
      r: Row,
    ) => (s.per || Object.keys(r.point).length !== 1 ? r.label : `${groupValue(r, s.at)}`);
    const ranking = ranked.map((p, i) => `${i + 1}. ${name(p.row)} ${fmtValue(s.y, p.y)}`).join(", ");
    const tie = good && winners.length > 1 ? ` (tied with ${winners.length - 1} other)` : "";
    evidence.push(
      `${prefix}${good ? "✓" : "✗"} best is ${winners.map((w) => name(w.row)).join(" = ")}${tie}: ${ranking}`,
    );
    perGroup[g.name] = ranked.map((p) => ({
      label: p.row.label,
      [s.at]: groupValue(p.row, s.at),
      [s.y]: p.y,
    }));
  }
  const v = verdictOf(ok, testable, !!s.per);
  const summary =
    `${s.at}=${s.value} has the ${s.lowest ? "lowest" : "highest"} ${s.y} in ${ok} of ${testable} ` +
    (s.per ? `groups of ${s.per}` : "rankings");
  return { claim: s.claim, kind: "best", ...v, summary, evidence, data: { ranking: perGroup } };
}

/** Checks one finding against the rows; throws when a name is in no row (a typo in the pipeline). */
export function checkFinding(s: FindingSpec, rows: Row[]): FindingResult {
  requireName(rows, s.y, s.claim, "metric");
  if (s.per) requireName(rows, s.per, s.claim, "axis");
  if (s.kind === "best") {
    requireName(rows, s.at, s.claim, "axis or metric");
    return checkBest(s, rows);
  }
  requireName(rows, s.x, s.claim, "metric or axis");
  return s.kind === "trend" ? checkTrend(s, rows) : checkMonotone(s, rows);
}

/** The markdown of the findings section (without its heading). */
export function findingsMarkdown(results: FindingResult[]): string[] {
  const lines: string[] = [];
  results.forEach((f, i) => {
    lines.push(`${i + 1}. **${f.claim}** — **${f.verdict}**. ${f.summary}.`);
    for (const e of f.evidence) lines.push(`   - ${e}`);
  });
  return lines;
}
