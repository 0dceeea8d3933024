/**
 * The run query model behind `ditflow runs`, `ditflow diff` and `ditflow ui`: one {@link RunRow} per cached
 * stage run (an object of the store), with its matrix point, parameters and metrics flattened to dotted
 * column ids (`point.steps`, `params.opt.beta`, `metrics.fid`), its time and key; columns chosen or dropped
 * by glob; `--filter` expressions; sorting; `--only-changed`.
 * @module
 */

import type { ArtifactMeta, Store } from "../pipeline/store.ts";

/** A scalar cell value. */
export type Cell = string | number | boolean | null;

/** One cached stage run. */
export interface RunRow {
  key: string;
  name: string;
  base: string;
  pipeline: string;
  kind: string;
  /** ISO time the run started. */
  started: string;
  /** Run time in seconds. */
  seconds: number;
  /** True when the key is the one in its pipeline's ref (the stage's last successful run). */
  current: boolean;
  point: Record<string, Cell>;
  params: Record<string, Cell>;
  metrics: Record<string, Cell>;
}

/** Fixed columns, in display order (before point, params and metrics). */
export const FIXED_COLUMNS = ["name", "kind", "pipeline"] as const;
/** Trailing fixed columns. */
export const TAIL_COLUMNS = ["seconds", "started", "current", "key"] as const;

/** Flattens nested objects into dotted keys; arrays and other values become scalars (arrays as JSON). */
export function flatten(obj: Record<string, unknown>, prefix = "", out: Record<string, Cell> = {}) {
  for (const [k, v] of Object.entries(obj ?? {})) {
    const id = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      flatten(v as Record<string, unknown>, id, out);
    } else if (v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
      out[id] = v;
    } else if (v !== undefined) out[id] = JSON.stringify(v);
  }
  return out;
}

/** Turns an artifact's metadata into a row. */
export function rowOf(meta: ArtifactMeta, current = false): RunRow {
  return {
    key: meta.key,
    name: meta.name,
    base: meta.base,
    pipeline: meta.pipeline,
    kind: meta.kind,
    started: meta.timings?.started ?? "",
    seconds: Math.round((meta.timings?.ms ?? 0) / 10) / 100,
    current,
    point: flatten(meta.point ?? {}),
    params: flatten(meta.components?.params ?? {}),
    metrics: flatten(meta.metrics ?? {}),
  };
}

/** Which runs to load. */
export interface LoadOptions {
  /** Only runs of these pipelines (by name; `mini` also matches its profiles' runs, `mini@paper`). */
  pipelines?: string[];
  /** Only runs of these kinds. */
  kinds?: string[];
  /**
   * Rows already built, by key (objects are immutable, so a long-lived process such as `ditflow ui` keeps
   * one across calls and only builds rows of new objects). Filled as rows are built.
   */
  rowCache?: Map<string, RunRow>;
  /** Rows of every object, already built (e.g. by `loadRowsIndexed`); the store's objects are not read. */
  base?: RunRow[];
}

/** Keys that are some pipeline's current (ref) key of a stage. */
export function currentKeys(store: Store): Set<string> {
  const s = new Set<string>();
  for (const r of store.readRefs()) for (const k of Object.values(r.stages)) s.add(k);
  return s;
}

/** Loads one row per object in the store (sorted by start time, then name). */
export function loadRuns(store: Store, opts: LoadOptions = {}): RunRow[] {
  const current = currentKeys(store);
  const wanted = opts.pipelines;
  const ofPipeline = (p: string) => !wanted || wanted.some((w) => p === w || p.startsWith(`${w}@`));
  const rows: RunRow[] = [];
  if (opts.base) {
    for (const row of opts.base) {
      if (!ofPipeline(row.pipeline)) continue;
      if (opts.kinds && !opts.kinds.includes(row.kind)) continue;
      rows.push({ ...row, current: current.has(row.key) });
    }
  }
  for (const key of opts.base ? [] : store.listKeys()) {
    let row = opts.rowCache?.get(key);
    if (!row) {
      const meta = store.readMeta(key);
      if (!meta) continue;
      row = rowOf(meta);
      opts.rowCache?.set(key, row);
    }
    if (!ofPipeline(row.pipeline)) continue;
    if (opts.kinds && !opts.kinds.includes(row.kind)) continue;
    rows.push({ ...row, current: current.has(key) });
  }
  rows.sort((a, b) => a.started < b.started ? -1 : a.started > b.started ? 1 : a.name < b.name ? -1 : 1);
  return rows;
}

/** The value of column `id` in a row (undefined when the row has none). */
export function cell(row: RunRow, id: string): Cell | undefined {
  const dot = id.indexOf(".");
  if (dot > 0) {
    const ns = id.slice(0, dot);
    if (ns === "point" || ns === "params" || ns === "metrics") return row[ns][id.slice(dot + 1)];
  }
  switch (id) {
    case "name":
    case "base":
    case "kind":
    case "pipeline":
    case "started":
    case "key":
    case "seconds":
    case "current":
      return row[id];
  }
  return undefined;
}

/**
 * Resolves a column name given by a user: an exact column id, or a bare name found in metrics, then
 * point, then params (`fid` → `metrics.fid`, `lr` → `params.lr`).
 */
export function resolveColumn(columns: string[], name: string): string | undefined {
  if (columns.includes(name)) return name;
  for (const ns of ["metrics", "point", "params"]) {
    if (columns.includes(`${ns}.${name}`)) return `${ns}.${name}`;
  }
  return undefined;
}

/** Every column present in the rows: fixed ones, then point, params and metrics (first-seen order), then tail. */
export function allColumns(rows: RunRow[]): string[] {
  const seen = { point: new Set<string>(), params: new Set<string>(), metrics: new Set<string>() };
  for (const r of rows) {
    for (const ns of ["point", "params", "metrics"] as const) {
      for (const k in r[ns]) seen[ns].add(k);
    }
  }
  return [
    ...FIXED_COLUMNS,
    ...[...seen.point].map((k) => `point.${k}`),
    ...[...seen.params].map((k) => `params.${k}`),
    ...[...seen.metrics].map((k) => `metrics.${k}`),
    ...TAIL_COLUMNS,
  ];
}

/** A glob (`*` any run of characters, `?` one character) as an anchored regular expression. */
export function globRegExp(glob: string): RegExp {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`);
}

/** True when a column id matches a glob, either whole (`params.*`) or without its namespace (`fid`). */
export function columnMatches(id: string, glob: string): boolean {
  const re = globRegExp(glob);
  if (re.test(id)) return true;
  const dot = id.indexOf(".");
  return dot > 0 && ["point", "params", "metrics"].includes(id.slice(0, dot)) && re.test(id.slice(dot + 1));
}

/**
 * Picks columns: with `include` globs, those matching any (in the order of `columns`, `name` always
 * kept); then drops those matching an `exclude` glob.
 */
export function selectColumns(columns: string[], include: string[], exclude: string[]): string[] {
  let cols = columns;
  if (include.length) cols = cols.filter((c) => c === "name" || include.some((g) => columnMatches(c, g)));
  if (exclude.length) cols = cols.filter((c) => !exclude.some((g) => columnMatches(c, g)));
  return cols;
}

/** Columns that take more than one value across the rows (fixed name and key columns are always kept). */
export function changedColumns(rows: RunRow[], columns: string[]): string[] {
  return columns.filter((c) => {
    if (c === "name" || c === "key") return true;
    let first: string | undefined;
    for (const r of rows) {
      const v = JSON.stringify(cell(r, c) ?? null);
      if (first === undefined) first = v;
      else if (v !== first) return true;
    }
    return false;
  });
}

/** One parsed `--filter` expression. */
export interface Filter {
  column: string;
  op: "=" | "!=" | "<" | "<=" | ">" | ">=";
  value: string;
}

/** Parses `k=v`, `k!=v`, `k<v`, `k<=v`, `k>v`, `k>=v` (`=` values may be globs). */
export function parseFilter(expr: string): Filter {
  const m = /^([^=!<>]+)(!=|<=|>=|=|<|>)(.*)$/.exec(expr);
  if (!m) throw new Error(`bad filter \`${expr}\` (expected k=v, k!=v, k<v, k<=v, k>v or k>=v)`);
  return { column: m[1].trim(), op: m[2] as Filter["op"], value: m[3].trim() };
}

function text(v: Cell | undefined): string {
  return v === undefined || v === null ? "" : String(v);
}

/** Keeps the rows that satisfy every filter. Unknown columns match no row (`k=` matches rows lacking k). */
export function applyFilters(rows: RunRow[], filters: Filter[], columns: string[]): RunRow[] {
  const tests = filters.map((f) => {
    const id = resolveColumn(columns, f.column) ?? f.column;
    const num = Number(f.value);
    const re = globRegExp(f.value);
    return (r: RunRow): boolean => {
      const v = cell(r, id);
      if (f.op === "=" || f.op === "!=") {
        const eq = re.test(text(v)) || (typeof v === "number" && f.value !== "" && v === num);
        return f.op === "=" ? eq : !eq;
      }
      if (typeof v !== "number" || !Number.isFinite(num)) return false;
      return f.op === "<" ? v < num : f.op === "<=" ? v <= num : f.op === ">" ? v > num : v >= num;
    };
  });
  return rows.filter((r) => tests.every((t) => t(r)));
}

/** Sorts rows by a column (numbers numerically, then strings; missing values last either way). */
export function sortRows(rows: RunRow[], column: string, desc = false): RunRow[] {
  const withV = rows.map((r) => ({ r, v: cell(r, column) }));
  withV.sort((a, b) => {
    const am = a.v === undefined || a.v === null, bm = b.v === undefined || b.v === null;
    if (am || bm) return am === bm ? 0 : am ? 1 : -1;
    let c: number;
    if (typeof a.v === "number" && typeof b.v === "number") c = a.v - b.v;
    else c = String(a.v) < String(b.v) ? -1 : String(a.v) > String(b.v) ? 1 : 0;
    return desc ? -c : c;
  });
  return withV.map((x) => x.r);
}

/** A query over the runs, as `ditflow runs` and the web view's API take it. */
export interface RunQuery {
  filters?: string[];
  include?: string[];
  exclude?: string[];
  onlyChanged?: boolean;
  sortBy?: string;
  desc?: boolean;
}

/** The result of a query: the rows and the columns to show. */
export interface RunTable {
  columns: string[];
  rows: RunRow[];
}

/** Runs a query over loaded rows. Throws on a bad filter or an unknown sort column. */
export function queryRuns(all: RunRow[], q: RunQuery): RunTable {
  const cols0 = allColumns(all);
  let rows = applyFilters(all, (q.filters ?? []).map(parseFilter), cols0);
  if (q.sortBy) {
    const desc = q.desc || q.sortBy.startsWith("-");
    const name = q.sortBy.replace(/^-/, "");
    const id = resolveColumn(cols0, name);
    if (!id) throw new Error(`--sort-by ${name}: no such column`);
    rows = sortRows(rows, id, desc);
  }
  let columns = allColumns(rows);
  columns = selectColumns(columns, q.include ?? [], q.exclude ?? []);
  if (q.onlyChanged && rows.length > 1) columns = changedColumns(rows, columns);
  return { columns, rows };
}
