/**
 * The data behind `ditflow ui`'s JSON API: runs (with what the page needs to find each run's loss curve,
 * images and upstream metrics), pipelines with each stage's state, live progress, report folders.
 * Everything is read from the store and the report folders; nothing is written.
 * @module
 */

import { analysePlan } from "../pipeline/engine.ts";
import { type LiveProgress, liveRate, readLive } from "../pipeline/live.ts";
import type { Plan } from "../pipeline/plan.ts";
import type { ArtifactMeta, Store } from "../pipeline/store.ts";
import { type Cell, flatten, loadRuns, queryRuns, type RunQuery, type RunRow } from "../runs/model.ts";
import { parseLossCsv } from "../report/loss_csv.ts";

/** A file inside an artifact: `<output>/<path>`. */
export interface ArtifactFile {
  key: string;
  /** Path relative to the object's `out/` directory. */
  file: string;
}

/** A run as the page gets it. */
export interface ApiRun extends RunRow {
  /** PNG files of its outputs (`output/path`). */
  images: string[];
  /** The nearest loss curve: its own loss.csv, or that of its closest upstream run. */
  curve?: ArtifactFile & { name: string };
  /** The nearest sample grid (grid.png): its own, or that of its closest upstream run. */
  grid?: ArtifactFile & { name: string };
  /** Numeric metrics of its upstream runs (nearest first wins), for sweep plots (e.g. a train's gflops). */
  up: Record<string, number>;
}

function filesOf(m: ArtifactMeta, pred: (p: string) => boolean): string[] {
  const out: string[] = [];
  for (const [o, spec] of Object.entries(m.outputs ?? {})) {
    for (const f of spec.files ?? []) if (pred(f.path)) out.push(`${o}/${f.path}`);
  }
  return out;
}

/** Walks a run and its ancestors breadth first (nearest first), calling `visit` until it returns true. */
export function walkUp(
  store: Store,
  m: ArtifactMeta,
  visit: (m: ArtifactMeta, depth: number) => boolean | void,
) {
  const seen = new Set<string>([m.key]);
  let level: ArtifactMeta[] = [m];
  for (let depth = 0; level.length && depth < 64; depth++) {
    const next: ArtifactMeta[] = [];
    for (const x of level) {
      if (visit(x, depth)) return;
      for (const arts of Object.values(x.inputs ?? {})) {
        for (const a of arts) {
          if (seen.has(a.key)) continue;
          seen.add(a.key);
          const u = store.readMeta(a.key);
          if (u) next.push(u);
        }
      }
    }
    level = next;
  }
}

/** Adds the page's fields to a row. */
export function apiRun(store: Store, row: RunRow): ApiRun {
  const meta = store.readMeta(row.key)!;
  const r: ApiRun = { ...row, images: filesOf(meta, (p) => p.endsWith(".png")), up: {} };
  walkUp(store, meta, (m, depth) => {
    if (!r.curve) {
      const c = filesOf(m, (p) => p === "loss.csv" || p.endsWith("/loss.csv"))[0];
      if (c) r.curve = { key: m.key, file: c, name: m.name };
    }
    if (!r.grid) {
      const g = filesOf(m, (p) => p === "grid.png" || p.endsWith("/grid.png"))[0];
      if (g) r.grid = { key: m.key, file: g, name: m.name };
    }
    if (depth > 0) {
      for (const [k, v] of Object.entries(flatten(m.metrics ?? {}))) {
        if (typeof v === "number" && !(k in r.up)) r.up[k] = v;
      }
    }
  });
  return r;
}

/** The runs table the page shows. */
export interface ApiRunTable {
  columns: string[];
  rows: ApiRun[];
  /** Rows matching before `limit`. */
  total: number;
  /** Runs in the cache (of the served pipelines). */
  all: number;
}

/** Queries the runs (of `pipelines` when given) and decorates at most `limit` rows. */
export function apiRuns(
  store: Store,
  q: RunQuery,
  pipelines?: string[],
  limit = 1000,
  rowCache?: Map<string, RunRow>,
): ApiRunTable {
  const all = loadRuns(store, { pipelines, rowCache });
  const t = queryRuns(all, q);
  return {
    columns: t.columns,
    rows: t.rows.slice(0, limit).map((r) => apiRun(store, r)),
    total: t.rows.length,
    all: all.length,
  };
}

/** A loss curve: step and loss columns of a loss.csv. */
export interface Curve {
  key: string;
  name: string;
  steps: number[];
  loss: number[];
}

/** Reads `step` and `loss` of a loss.csv inside an artifact (undefined when absent or malformed). */
export function readCurve(store: Store, f: ArtifactFile, name: string): Curve | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${store.objectDir(f.key)}/out/${f.file}`);
  } catch {
    return undefined;
  }
  const points = parseLossCsv(text);
  if (!points) return undefined;
  const steps = points.map((q) => q[0]), loss = points.map((q) => q[1]);
  return { key: f.key, name, steps, loss };
}

/** A stage of a pipeline as the DAG view draws it. */
export interface DagNode {
  name: string;
  base: string;
  kind: string;
  gpu: boolean;
  deps: string[];
  /** Input edges: input name and upstream stage. */
  edges: { input: string; from: string; output: string }[];
  state: "cached" | "running" | "failed" | "to run";
  key: string | null;
  reasons: string[];
  live?: ApiLive;
}

/** A served pipeline. */
export interface ApiPipeline {
  name: string;
  file: string;
  stages: DagNode[];
}

/** Each plan's stages with their state (cached, running, failed, to run). */
export async function apiPipelines(store: Store, plans: Plan[]): Promise<ApiPipeline[]> {
  const live = apiLive(store);
  const out: ApiPipeline[] = [];
  for (const plan of plans) {
    const reports = await analysePlan(plan, store);
    const by = new Map(reports.map((r) => [r.name, r]));
    out.push({
      name: plan.name,
      file: plan.file,
      stages: plan.stages.map((s) => {
        const r = by.get(s.name)!;
        const l = live.find((x) => x.pipeline === plan.name && x.name === s.name);
        let state: DagNode["state"] = r.action === "cached" ? "cached" : "to run";
        if (l) state = "running";
        else if (state === "to run" && r.key) {
          try {
            Deno.statSync(store.failedLogPath(r.key));
            state = "failed";
          } catch { /* not failed */ }
        }
        return {
          name: s.name,
          base: s.base,
          kind: s.kind.name,
          gpu: s.gpu,
          deps: s.deps,
          edges: s.inputs.flatMap((i) =>
            i.refs.map((x) => ({ input: i.name, from: x.stage, output: x.output }))
          ),
          state,
          key: r.key,
          reasons: r.reasons,
          ...(l ? { live: l } : {}),
        };
      }),
    });
  }
  return out;
}

/** A running stage with its rate and ETA. */
export interface ApiLive extends LiveProgress {
  rate?: number;
  etaSec?: number;
}

/** The stages running now (from the progress files the engine writes). */
export function apiLive(store: Store): ApiLive[] {
  return readLive(store.root).map((p) => ({ ...p, ...liveRate(p) }));
}

/** Report folders: sub-folders of `dir` holding a README.md. */
export function apiReports(dir: string): { name: string; files: string[] }[] {
  const out: { name: string; files: string[] }[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (!e.isDirectory) continue;
      try {
        const files = [...Deno.readDirSync(`${dir}/${e.name}`)].filter((f) => f.isFile).map((f) => f.name)
          .sort();
        if (files.includes("README.md")) out.push({ name: e.name, files });
      } catch { /* unreadable */ }
    }
  } catch { /* none */ }
  return out.sort((a, b) => a.name < b.name ? -1 : 1);
}

/** A compact fingerprint of the cache's state (object count and ref times), for the page's polling. */
export function cacheStamp(store: Store): string {
  const refs = store.readRefs().map((r) => `${r.pipeline}@${r.updated}`).sort().join(",");
  let n = 0;
  try {
    for (const p of Deno.readDirSync(`${store.root}/objects`)) {
      for (const _ of Deno.readDirSync(`${store.root}/objects/${p.name}`)) n++;
    }
  } catch { /* empty */ }
  return `${n};${refs}`;
}

/** Parses the runs query of an API URL. */
export function queryOf(params: URLSearchParams): RunQuery & { limit: number } {
  const list = (k: string) =>
    params.getAll(k).flatMap((v) => v.split(",")).map((s) => s.trim()).filter(Boolean);
  return {
    filters: params.getAll("filter").flatMap((v) => v.split(/\s+/)).filter(Boolean),
    include: list("columns"),
    exclude: list("drop"),
    onlyChanged: params.get("only_changed") === "1",
    sortBy: params.get("sort") || undefined,
    desc: params.get("desc") === "1",
    limit: Math.max(1, Math.min(100_000, Number(params.get("limit") ?? 1000) || 1000)),
  };
}

export type { Cell };
