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
 * - `beats: Y lower|higher at A=V[, B=W] than at C=X[, D=Y]`: a pairwise claim, e.g. `fid lower at
 *   arch=uvit than at arch=dit, objective=ddpm`: the rows matching the first conditions (pooled over their
 *   seeds) against those matching the second.
 *
 * `decreases`/`increases` may be written for `falls`/`rises`, `within` or `for each` for `per`. Names are
 * metrics of the rows or matrix axes (see `rows.ts`). Verdicts: `holds`, `holds partly (k of n groups)`,
 * `within noise`, `does not hold`, `not testable` (too few rows with numbers).
 *
 * **Uncertainty.** A comparison counts only when it exceeds the noise. Each value Y of a row comes with an
 * interval: the row's `Y_low`/`Y_high` metrics when it has them (e.g. the FID bootstrap interval and the
 * class accuracy's Wilson interval of the `fid` stage); where several rows are replicates of one
 * configuration (points that differ only in the `seed` axis; for `monotone`, rows with the same X in a
 * group) their mean with the range [min, max] over those rows. `monotone` and `best` then
 * call a step or a win *separated* only when the two intervals do not overlap: a group holds when every
 * step is in the claimed direction and separated; when the directions are right but some step is not
 * separated the verdict is `within noise`. A `trend` may demand a strength: `…, rho <= -0.9` (or
 * `rho >= 0.8`) holds only when the pooled Spearman ρ passes it. The pooled ρ then comes with a 95%
 * interval ({@link spearmanInterval}: every row redrawn from its own interval), which says whether a miss
 * (or a pass) lies beyond the noise of the measurements or within it.
 * @module
 */

import { quantile } from "../metrics/intervals.ts";
import { Generator } from "../tensor/rng.ts";
import { fmtValue, groupValue, known, knownNames, metricValue, num, type Row } from "./rows.ts";

const NAME = String.raw`[A-Za-z_][A-Za-z0-9_./-]*`;
const DIR = String.raw`(falls|rises|decreases|increases)`;
const GROUP = String.raw`(?:,?\s+(?:per|within|for each)\s+(${NAME}(?:\+${NAME})*))?`;
const RHO = String.raw`(?:,?\s+(?:rho|ρ)\s*(<=|≤|>=|≥)\s*(-?[0-9]*\.?[0-9]+))?`;

/** The pattern of a `trend` or `monotone` finding (also the parameter's validation pattern). */
export const TREND_PATTERN: string = String
  .raw`^\s*(${NAME})\s+${DIR}\s+as\s+(${NAME})\s+${DIR}${GROUP}${RHO}\s*$`;
/** The pattern of a `best` finding. */
export const BEST_PATTERN: string = String
  .raw`^\s*(${NAME})\s+(lowest|highest)\s+at\s+(${NAME})\s*=\s*([^,]+?)${GROUP}\s*$`;

const COND = String.raw`${NAME}\s*=\s*[^,]+?`;
const CONDS = String.raw`${COND}(?:\s*,\s*${COND})*`;
/** The pattern of a `beats` finding. */
export const BEATS_PATTERN: string = String
  .raw`^\s*(${NAME})\s+(lower|higher)\s+at\s+(${CONDS})\s+than\s+at\s+(${CONDS})\s*$`;

/** The finding kinds and their grammar (for messages). */
export const FINDING_GRAMMAR: Record<FindingKind, string> = {
  trend: "trend: Y falls|rises as X rises|falls[, per AXIS][, rho <= -0.9]",
  best: "best: Y lowest|highest at AXIS=VALUE[, per AXIS]",
  monotone: "monotone: Y falls|rises as X falls|rises[, per AXIS]",
  beats: "beats: Y lower|higher at AXIS=VALUE[, AXIS=VALUE] than at AXIS=VALUE[, AXIS=VALUE]",
};

/** A finding kind. */
export type FindingKind = "trend" | "best" | "monotone" | "beats";

/** A parsed `trend` or `monotone` finding: Y moves up (`yUp`) or down as X moves up (`xUp`) or down. */
export interface TrendSpec {
  kind: "trend" | "monotone";
  claim: string;
  y: string;
  yUp: boolean;
  x: string;
  xUp: boolean;
  per?: string;
  /** `trend` only: the pooled ρ must be ≤ (`le`) or ≥ this value. */
  rho?: { le: boolean; value: number };
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

/** A parsed `beats` finding: the rows matching `a` have a lower (higher) Y than those matching `b`. */
export interface BeatsSpec {
  kind: "beats";
  claim: string;
  y: string;
  lowest: boolean;
  a: [string, string][];
  b: [string, string][];
}

/** A parsed finding. */
export type FindingSpec = TrendSpec | BestSpec | BeatsSpec;

/** How a finding came out. */
export type Status = "holds" | "partly" | "noise" | "fails" | "untestable";

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
      `report: ${where} must have exactly one of trend, best, monotone, beats (got ${
        entries.map(([k]) => k).join(", ") || "none"
      }); write one finding per list item`,
    );
  }
  const [kind, text] = entries[0];
  if (!(kind in FINDING_GRAMMAR)) {
    throw new Error(`report: ${where}: unknown finding kind \`${kind}\` (trend, best, monotone or beats)`);
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
  if (k === "beats") {
    const m = new RegExp(BEATS_PATTERN).exec(text);
    if (!m) throw new Error(`report: ${where}: \`${claim}\` does not read \`${FINDING_GRAMMAR.beats}\``);
    const conds = (t: string) =>
      t.split(",").map((c) => c.split("=").map((x) => x.trim()) as [string, string]);
    return { kind: k, claim, y: m[1], lowest: m[2] === "lower", a: conds(m[3]), b: conds(m[4]) };
  }
  const m = new RegExp(TREND_PATTERN).exec(text);
  if (!m) throw new Error(`report: ${where}: \`${claim}\` does not read \`${FINDING_GRAMMAR[k]}\``);
  if (m[6] && k !== "trend") {
    throw new Error(`report: ${where}: a ρ threshold belongs to a trend finding, not ${k}`);
  }
  const rho = m[6] ? { le: m[6] === "<=" || m[6] === "≤", value: Number(m[7]) } : undefined;
  return { kind: k, claim, y: m[1], yUp: up(m[2]), x: m[3], xUp: up(m[4]), per: m[5], rho };
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

/**
 * A 95% interval of Spearman's ρ between `x` and values known only up to their own 95% intervals: each
 * of `reps` replicates redraws every value from a split normal with the value as its median and the
 * interval's ends as its 2.5/97.5 percentiles (σ = (y − low) / 1.96 below, (high − y) / 1.96 above), and
 * the interval is the 2.5/97.5 percentiles of the replicates' ρ. It covers the noise of each measurement
 * (e.g. the FID bootstrap over samples), not what another training seed would change. Seeded, so the same
 * rows give the same interval.
 */
export function spearmanInterval(
  x: number[],
  ys: Spread[],
  o: { reps?: number; seed?: number } = {},
): { low: number; high: number } {
  const reps = o.reps ?? 2000;
  const gen = new Generator(BigInt(o.seed ?? 0) * 2n + 13n);
  const z = gen.normalCpu(reps * ys.length);
  const out: number[] = [];
  for (let r = 0; r < reps; r++) {
    const y = ys.map((s, i) => {
      const v = z[r * ys.length + i];
      return s.y + v * (v < 0 ? s.y - s.low : s.high - s.y) / 1.959963984540054;
    });
    const rho = spearman(x, y);
    if (Number.isFinite(rho)) out.push(rho);
  }
  out.sort((a, b) => a - b);
  return out.length ? { low: quantile(out, 0.025), high: quantile(out, 0.975) } : { low: NaN, high: NaN };
}

function rho(v: number): string {
  return Number.isFinite(v) ? (v < 0 ? `−${v.toFixed(2).slice(1)}` : `+${v.toFixed(2)}`) : "undefined";
}

function sameValue(v: unknown, want: string): boolean {
  if (v === undefined || v === null) return false;
  if (String(v) === want) return true;
  return typeof v === "number" && want.trim() !== "" && Number(want) === v;
}

/**
 * Groups rows by `per` (one group of all rows without it). Groups are ordered part by part of a combined
 * `a+b` grouping, each in order of first appearance (the pipeline's S, B, L, XL, or patches 4, 2, 1), except
 * that numbers which first appear out of order are sorted ascending (steps 1,200, 300, 600 of a report whose
 * final rows come first: 300, 600, 1,200).
 */
function groups(rows: Row[], per?: string): { name: string; rows: Row[] }[] {
  if (!per) return [{ name: "all rows", rows }];
  const parts = per.split("+").map((n) => n.trim());
  const out = new Map<string, { rows: Row[]; key: unknown[] }>();
  for (const r of rows) {
    const v = groupValue(r, per);
    if (v === undefined || v === null) continue;
    const k = `${per}=${v}`;
    const g = out.get(k) ?? { rows: [], key: parts.map((n) => groupValue(r, n)) };
    g.rows.push(r);
    out.set(k, g);
  }
  const gs = [...out].map(([name, g]) => ({ name, ...g }));
  const rank = parts.map((_, i) => {
    const vs = [...new Set(gs.map((g) => g.key[i]))];
    const ns = vs.map(num);
    const monotone = ns.every((v, j) => j === 0 || v! > ns[j - 1]!) ||
      ns.every((v, j) => j === 0 || v! < ns[j - 1]!);
    if (ns.every((v) => v !== undefined) && !monotone) (vs as number[]).sort((a, b) => a - b);
    return new Map(vs.map((v, j) => [v, j]));
  });
  gs.sort((a, b) => {
    for (let i = 0; i < parts.length; i++) {
      const d = rank[i].get(a.key[i])! - rank[i].get(b.key[i])!;
      if (d) return d;
    }
    return 0;
  });
  return gs.map(({ name, rows }) => ({ name, rows }));
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

/** The matrix axis whose points are replicates of one configuration (pooled as mean and spread). */
export const REPLICATE_AXIS = "seed";

/** A value with the interval a comparison must exceed (see the module documentation). */
export interface Spread {
  y: number;
  low: number;
  high: number;
  /** Rows pooled into this value. */
  n: number;
}

/** The interval of one row's `y`: its `y_low`/`y_high` metrics, or the bare value. */
function rowSpread(row: Row, y: string, value: number): Spread {
  const lo = num(metricValue(row, `${y}_low`));
  const hi = num(metricValue(row, `${y}_high`));
  return { y: value, low: lo ?? value, high: hi ?? value, n: 1 };
}

/**
 * Pools the values of several rows at one position: one row keeps its own interval; several give their
 * mean with the range [min, max] (the spread over seeds), widened to the rows' own intervals' midpoints'
 * range: [min, max] of the values.
 */
export function pool(spreads: Spread[]): Spread {
  if (spreads.length === 1) return spreads[0];
  const ys = spreads.map((s) => s.y);
  return {
    y: ys.reduce((a, b) => a + b, 0) / ys.length,
    low: Math.min(...ys),
    high: Math.max(...ys),
    n: spreads.length,
  };
}

/** True when two intervals do not overlap. */
export function separated(a: Spread, b: Spread): boolean {
  return a.high < b.low || b.high < a.low;
}

function fmtSpread(name: string, s: Spread): string {
  const v = fmtValue(name, s.y);
  if (s.low === s.high) return v;
  return `${v} [${fmtValue(name, s.low)}, ${fmtValue(name, s.high)}]${s.n > 1 ? ` (${s.n} rows)` : ""}`;
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
  let v = verdictOf(ok, testable, !!s.per);
  const expect = sign < 0 ? "ρ < 0" : "ρ > 0";
  let summary = `Spearman ρ(${s.x}, ${s.y}) = ${rho(pooled)} over all ${all.length} rows` +
    (s.per ? `; within ${s.per}: ${ok} of ${testable} groups have ${expect}` : ` (expected ${expect})`);
  if (s.rho) {
    const req = s.rho;
    const passes = (r: number) => Number.isFinite(r) && (req.le ? r <= req.value : r >= req.value);
    const pass = passes(pooled);
    const spreads = all.map((p) => rowSpread(p.row, s.y, p.y));
    const ci = spearmanInterval(all.map((p) => p.x), spreads);
    const [weak, strong] = req.le ? [ci.high, ci.low] : [ci.low, ci.high];
    // Beyond the noise: the whole interval is on the same side of the threshold as the point.
    const beyond = pass ? passes(weak) : !passes(strong);
    const noise = spreads.some((r) => r.low < r.high) && Number.isFinite(ci.low)
      ? ` (95% interval over the rows' own intervals [${rho(ci.low)}, ${rho(ci.high)}]: ${
        beyond ? "beyond" : "within"
      } the noise)`
      : "";
    summary += `; required pooled ρ ${req.le ? "≤" : "≥"} ${req.value}: ${pass ? "met" : "not met"}${noise}`;
    data.required = req;
    data.rho_low = Number.isFinite(ci.low) ? ci.low : null;
    data.rho_high = Number.isFinite(ci.high) ? ci.high : null;
    if (!Number.isFinite(pooled)) v = { status: "untestable", verdict: "not testable" };
    else if (!pass) {
      v = v.status === "holds" || v.status === "partly"
        ? {
          status: "partly",
          verdict: `holds partly (ρ = ${rho(pooled)} misses ${req.value}${
            noise ? (beyond ? ", beyond the noise" : ", within the noise") : ""
          })`,
        }
        : v;
    }
  }
  return { claim: s.claim, kind: s.kind, ...v, summary, evidence, data };
}

function checkMonotone(s: TrendSpec, rows: Row[]): FindingResult {
  const evidence: string[] = [];
  const perGroup: Record<string, unknown> = {};
  let ok = 0, noisy = 0, testable = 0;
  for (const g of groups(rows, s.per)) {
    // Pool y over rows with the same x (seeds), then order by x in the claimed direction.
    const byX = new Map<number, Spread[]>();
    for (const p of pairs(g.rows, s.x, s.y)) {
      byX.set(p.x, [...(byX.get(p.x) ?? []), rowSpread(p.row, s.y, p.y)]);
    }
    const pts = [...byX].map(([x, sp]) => ({ x, ...pool(sp) }))
      .sort((a, b) => (s.xUp ? a.x - b.x : b.x - a.x));
    if (pts.length < 2) {
      evidence.push(`${g.name}: not testable (${pts.length} distinct ${s.x})`);
      perGroup[g.name] = null;
      continue;
    }
    testable++;
    const steps = pts.slice(1).map((p, i) => {
      const prev = pts[i];
      const right = s.yUp ? p.y > prev.y : p.y < prev.y;
      return { right, sep: separated(p, prev) };
    });
    const allRight = steps.every((t) => t.right);
    const allSep = steps.every((t) => t.sep);
    const mark = allRight ? (allSep ? "yes" : "within noise") : "no";
    if (allRight && allSep) ok++;
    else if (allRight) noisy++;
    perGroup[g.name] = {
      holds: allRight && allSep,
      direction: allRight,
      steps: pts.map((p) => ({ [s.x]: p.x, [s.y]: p.y, low: p.low, high: p.high, n: p.n })),
    };
    const vals = pts.map((p, i) =>
      `${fmtValue(s.x, p.x)}: ${fmtSpread(s.y, p)}` +
      (i ? ` ${steps[i - 1].right ? (steps[i - 1].sep ? "✓" : "~") : "✗"}` : "")
    ).join(" → ");
    evidence.push(`${g.name}: ${mark}: ${s.x} ${vals}`);
  }
  let v = verdictOf(ok, testable, true);
  if (v.status !== "holds" && ok + noisy === testable && noisy > 0) {
    v = {
      status: "noise",
      verdict: ok ? `within noise (${ok} of ${testable} groups separated)` : "within noise",
    };
  }
  const summary =
    `${s.y} ${s.yUp ? "rises" : "falls"} at every step as ${s.x} ${s.xUp ? "rises" : "falls"} in ` +
    `${ok + noisy} of ${testable} ${
      s.per ? `groups of ${s.per}` : "(all rows)"
    }, beyond the intervals in ${ok}` +
    ` (✓ separated, ~ right direction within the intervals, ✗ wrong direction)`;
  return {
    claim: s.claim,
    kind: "monotone",
    ...v,
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
  let ok = 0, noisy = 0, testable = 0;
  for (const g of groups(rows, s.per)) {
    // Pool the replicates of one candidate: rows whose points differ only in the `seed` axis.
    const cands = new Map<string, { label: string; isClaim: boolean; spreads: Spread[] }>();
    for (const row of g.rows) {
      const y = num(metricValue(row, s.y));
      if (y === undefined) continue;
      const rest = Object.entries(row.point).filter(([k]) => k !== REPLICATE_AXIS);
      const key = rest.length === Object.keys(row.point).length ? row.label : JSON.stringify(rest);
      const label = s.per || rest.length !== 1
        ? (rest.length ? rest.map(([k, v]) => `${k}=${v}`).join(", ") : row.label)
        : `${groupValue(row, s.at)}`;
      const c = cands.get(key) ?? { label, isClaim: matches(row), spreads: [] };
      c.spreads.push(rowSpread(row, s.y, y));
      cands.set(key, c);
    }
    const ranked = [...cands.values()].map((c) => ({ ...c, ...pool(c.spreads) }))
      .sort((a, b) => (s.lowest ? a.y - b.y : b.y - a.y));
    const prefix = s.per ? `${g.name}: ` : "";
    if (ranked.length < 2 || !ranked.some((c) => c.isClaim)) {
      evidence.push(
        `${prefix}not testable (${ranked.length} candidates with ${s.y}, ${s.at}=${s.value} among them: ` +
          `${ranked.some((c) => c.isClaim) ? "yes" : "no"})`,
      );
      perGroup[g.name] = null;
      continue;
    }
    testable++;
    const claim = ranked.find((c) => c.isClaim)!;
    const others = ranked.filter((c) => !c.isClaim);
    const isTop = ranked[0].isClaim || ranked[0].y === claim.y;
    const beatsAll = isTop && others.every((o) => separated(claim, o));
    const beatenClearly = others.some((o) =>
      (s.lowest ? o.y < claim.y : o.y > claim.y) && separated(o, claim)
    );
    let mark: string;
    if (beatsAll) {
      ok++;
      mark = "✓";
    } else if (!beatenClearly) {
      noisy++;
      mark = "~";
    } else mark = "✗";
    const ranking = ranked.map((c, i) => `${i + 1}. ${c.label} ${fmtSpread(s.y, c)}`).join(", ");
    const what = beatsAll
      ? `best is ${claim.label}, beyond every other's interval`
      : !beatenClearly
      ? `${claim.label} is ${isTop ? "best, but" : "not best, but"} within the intervals of ${
        others.filter((o) => !separated(o, claim)).map((o) => o.label).join(", ")
      }`
      : `${claim.label} is beaten beyond the intervals`;
    evidence.push(`${prefix}${mark} ${what}: ${ranking}`);
    perGroup[g.name] = ranked.map((c) => ({ label: c.label, [s.y]: c.y, low: c.low, high: c.high, n: c.n }));
  }
  let v = verdictOf(ok, testable, !!s.per);
  if (v.status !== "holds" && ok + noisy === testable && noisy > 0) {
    v = {
      status: "noise",
      verdict: ok ? `within noise (${ok} of ${testable} groups separated)` : "within noise",
    };
  }
  const summary =
    `${s.at}=${s.value} has the ${s.lowest ? "lowest" : "highest"} ${s.y} beyond the intervals in ${ok} of ` +
    `${testable} ${s.per ? `groups of ${s.per}` : "rankings"}` +
    (noisy ? `; within noise in ${noisy}` : "");
  return { claim: s.claim, kind: "best", ...v, summary, evidence, data: { ranking: perGroup } };
}

function checkBeats(s: BeatsSpec, rows: Row[]): FindingResult {
  const label = (cs: [string, string][]) => cs.map(([k, v]) => `${k}=${v}`).join(", ");
  const side = (cs: [string, string][]) => {
    const matched = rows.filter((r) => cs.every(([k, v]) => sameValue(groupValue(r, k), v)));
    const spreads = matched.flatMap((r) => {
      const y = num(metricValue(r, s.y));
      return y === undefined ? [] : [rowSpread(r, s.y, y)];
    });
    return spreads.length ? pool(spreads) : undefined;
  };
  const [a, b] = [side(s.a), side(s.b)];
  const [la, lb] = [label(s.a), label(s.b)];
  if (!a || !b) {
    const missing = [!a ? la : "", !b ? lb : ""].filter(Boolean).join(" and ");
    return {
      claim: s.claim,
      kind: "beats",
      status: "untestable",
      verdict: "not testable",
      summary: `no row with ${s.y} at ${missing}`,
      evidence: [],
      data: {},
    };
  }
  const better = s.lowest ? a.y < b.y : a.y > b.y;
  const sep = separated(a, b);
  const [status, verdict, mark]: [Status, string, string] = sep && better
    ? ["holds", "holds", "✓"]
    : sep
    ? ["fails", "does not hold", "✗"]
    : ["noise", "within noise", "~"];
  const summary = `${s.y} at ${la}: ${fmtSpread(s.y, a)}; at ${lb}: ${fmtSpread(s.y, b)}`;
  const what = sep
    ? (better ? "beyond the intervals" : "the other way, beyond the intervals")
    : "the intervals overlap";
  return {
    claim: s.claim,
    kind: "beats",
    status,
    verdict,
    summary,
    evidence: [`${mark} ${what}`],
    data: {
      a: { [s.y]: a.y, low: a.low, high: a.high, n: a.n },
      b: { [s.y]: b.y, low: b.low, high: b.high, n: b.n },
    },
  };
}

/** Checks one finding against the rows; throws when a name is in no row (a typo in the pipeline). */
export function checkFinding(s: FindingSpec, rows: Row[]): FindingResult {
  requireName(rows, s.y, s.claim, "metric");
  if (s.kind === "beats") {
    for (const [k] of [...s.a, ...s.b]) requireName(rows, k, s.claim, "axis or metric");
    return checkBeats(s, rows);
  }
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

/** The `## Findings` section (nothing without findings). */
export function findingsSection(results: FindingResult[]): string[] {
  return results.length ? ["## Findings", "", ...findingsMarkdown(results), ""] : [];
}

/** The findings as stage metrics: counts, and each one's verdict, claim (and a trend's ρ). */
export function findingsMetrics(results: FindingResult[]): Record<string, unknown> {
  const m: Record<string, unknown> = {
    findings: results.length,
    findings_hold: results.filter((f) => f.status === "holds").length,
  };
  results.forEach((f, i) => {
    m[`finding_${i + 1}`] = f.verdict;
    m[`finding_${i + 1}_claim`] = f.claim;
    if (f.kind === "trend" && typeof f.data.rho === "number") m[`finding_${i + 1}_rho`] = f.data.rho;
    for (const end of ["rho_low", "rho_high"]) {
      if (typeof f.data[end] === "number") m[`finding_${i + 1}_${end}`] = f.data[end];
    }
  });
  return m;
}
