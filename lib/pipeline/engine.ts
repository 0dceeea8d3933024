/**
 * The engine: from a plan to results. `analysePlan` says per stage what would run and why (dry run,
 * `status`); `executePlan` runs what is needed through an {@link Executor} under the scheduler, computing
 * each stage's key just before it starts (from its inputs' content digests), so a stage whose upstream
 * reran but produced identical output is still a cache hit.
 * @module
 */

import { closest, type Diagnostic, suggestion } from "./diagnostics.ts";
import { cacheKey, explainChange, type KeyComponents, type PreviousRun, type Reason } from "./cache_key.ts";
import type { Executor } from "./executor.ts";
import { type CodeFingerprint, fingerprintModule } from "./fingerprint.ts";
import { digestPath } from "./hash.ts";
import type { Plan, PlannedStage } from "./plan.ts";
import type { Reporter, SummaryRow } from "./progress.ts";
import type { ClusterJobInfo, StageJob, StageOutcome } from "./run_stage.ts";
import { type NodeState, schedule } from "./scheduler.ts";
import type { InputArtifact } from "./stage.ts";
import { type ArtifactMeta, formatProblem, type Store } from "./store.ts";
import { DITFLOW_VERSION } from "./version.ts";

/** Per-process memo of code fingerprints (by module URL) and `path` parameter digests. */
const codeMemo = new Map<string, CodeFingerprint>();
const fileMemo = new Map<string, Promise<string>>();

/** The code fingerprint of a stage's kind (memoised per process). */
export function codeOf(stage: PlannedStage): CodeFingerprint {
  const k = `${stage.kind.module}\0${(stage.kind.extraFiles ?? []).join("\0")}`;
  let fp = codeMemo.get(k);
  if (!fp) {
    fp = fingerprintModule(stage.kind.module, stage.kind.extraFiles);
    codeMemo.set(k, fp);
  }
  return fp;
}

/** Forgets memoised fingerprints (tests that edit code within one process). */
export function clearEngineMemo(): void {
  codeMemo.clear();
  fileMemo.clear();
}

async function filesOf(stage: PlannedStage): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of stage.paths) {
    let d = fileMemo.get(p);
    if (!d) {
      d = digestPath(p).then((x) => x.digest);
      fileMemo.set(p, d);
    }
    out[p] = await d;
  }
  return out;
}

/** Key components whose input digests may be unknown (`undefined`: that upstream stage must run first). */
export type PartialKeyComponents = Omit<KeyComponents, "inputs"> & {
  inputs: Record<string, (string | undefined)[]>;
};

/**
 * The key components of a stage, given its inputs' content digests (input name → the digest of each
 * bound upstream output): kind, code fingerprint, canonical parameters, `path` digests, seed, version.
 * The one place they are assembled, for the run ({@link stageJob}) and for the dry run and `status`
 * ({@link analysePlan}); there an unknown digest (`undefined`) makes them partial, good only for
 * explaining a change. Also returns the code fingerprint (its files explain a code change).
 */
export async function keyComponents<C extends PartialKeyComponents>(
  s: PlannedStage,
  inputs: C["inputs"],
): Promise<{ components: C; code: CodeFingerprint }> {
  const code = codeOf(s);
  const components = {
    kind: s.kind.name,
    code: code.hash,
    params: s.params,
    inputs,
    files: await filesOf(s),
    seed: s.seed,
    version: DITFLOW_VERSION,
  } as C;
  return { components, code };
}

/**
 * Resolves names given to `--only` / `--force`: a stage's name in the file (all its points) or an
 * expanded point name. Unknown names become diagnostics.
 */
export function resolveStageNames(
  plan: Plan,
  names: string[],
  flag: string,
  diags: Diagnostic[],
): Set<string> {
  const out = new Set<string>();
  for (const n of names) {
    if (n === "*" || n === "all") {
      for (const s of plan.stages) out.add(s.name);
    } else if (plan.groups.has(n)) { for (const s of plan.groups.get(n)!) out.add(s); }
    else if (plan.byName.has(n)) out.add(n);
    else {
      diags.push({
        pos: { file: "<command line>", line: 1, col: 1 },
        message: `${flag} ${n}: no such stage in ${plan.name}`,
        hint: suggestion(n, [...plan.groups.keys(), ...plan.byName.keys()], "stages"),
      });
    }
  }
  return out;
}

/** The stages in `names` and everything upstream of them, in plan order. */
export function withUpstream(plan: Plan, names: Set<string>): PlannedStage[] {
  const need = new Set<string>();
  const visit = (n: string) => {
    if (need.has(n)) return;
    need.add(n);
    for (const d of plan.byName.get(n)?.deps ?? []) visit(d);
  };
  for (const n of names) visit(n);
  return plan.stages.filter((s) => need.has(s.name));
}

/** What the analysis says about one stage. */
export interface StagePlanReport {
  name: string;
  base: string;
  kind: string;
  gpu: boolean;
  point: Record<string, unknown>;
  deps: string[];
  action: "run" | "cached";
  /** Why it runs (empty when cached). */
  reasons: string[];
  /** Structured reasons. */
  details: Reason[];
  /** The cache key, when known (null when an upstream stage must run first). */
  key: string | null;
}

function previousRun(store: Store, prevKey: string | undefined): { meta?: ArtifactMeta; prev?: PreviousRun } {
  if (!prevKey) return {};
  const meta = store.readMeta(prevKey);
  if (!meta) return {};
  return { meta, prev: { components: meta.components, codeFiles: meta.code_files } };
}

/** Options of {@link analysePlan}. */
export interface AnalyseOptions {
  force?: Set<string>;
  only?: Set<string>;
}

/** Says, per stage, whether it would run and why (field by field). Reads the store only. */
export async function analysePlan(
  plan: Plan,
  store: Store,
  opts: AnalyseOptions = {},
): Promise<StagePlanReport[]> {
  const stages = opts.only ? withUpstream(plan, opts.only) : plan.stages;
  const ref = store.readRef(plan.name);
  const keys = new Map<string, string | null>();
  const reports: StagePlanReport[] = [];
  for (const s of stages) {
    const inputs: Record<string, (string | undefined)[]> = {};
    const pending: Reason[] = [];
    for (const inp of s.inputs) {
      const waiting: string[] = [];
      inputs[inp.name] = inp.refs.map((r) => {
        const k = keys.get(r.stage);
        if (!k) {
          waiting.push(r.stage);
          return undefined;
        }
        return store.readMeta(k)?.outputs[r.output]?.digest;
      });
      if (waiting.length === 1) {
        pending.push({ field: "upstream", message: `input ${inp.name}: upstream ${waiting[0]} will run` });
      } else if (waiting.length > 1) {
        pending.push({
          field: "upstream",
          message: `input ${inp.name}: ${waiting.length} upstream stages will run`,
        });
      }
    }
    const { components: partial, code } = await keyComponents<PartialKeyComponents>(s, inputs);
    const details: Reason[] = [];
    const { prev } = previousRun(store, ref?.stages[s.name]);
    let key: string | null = null;
    let action: "run" | "cached" = "run";
    if (pending.length > 0) {
      details.push(...pending);
      if (prev) details.push(...explainChange(s.name, s.base, prev, partial, code.files));
    } else {
      key = cacheKey(partial as KeyComponents); // no input is pending
      const modified = store.has(key) ? store.quickCheck(key) : [];
      if (opts.force?.has(s.name)) details.push({ field: "forced", message: "forced (--force)" });
      else if (modified.length > 0) {
        details.push({
          field: "modified",
          message: `stored artifact was modified (${formatProblem(modified[0])}${
            modified.length > 1 ? `, +${modified.length - 1} more` : ""
          }): it will be recomputed`,
        });
      } else if (store.has(key)) action = "cached";
      else if (!prev) details.push({ field: "new", message: "no cached result" });
      else if (prev && ref?.stages[s.name] === key) {
        details.push({ field: "missing", message: "artifact missing from the cache" });
      } else {
        const why = explainChange(s.name, s.base, prev, partial, code.files);
        details.push(...(why.length ? why : [{ field: "new" as const, message: "no cached result" }]));
      }
    }
    keys.set(s.name, action === "cached" ? key : null);
    reports.push({
      name: s.name,
      base: s.base,
      kind: s.kind.name,
      gpu: s.gpu,
      point: s.point,
      deps: s.deps,
      action,
      reasons: details.map((d) => d.message),
      details,
      key,
    });
  }
  return reports;
}

/** Options of {@link executePlan}. */
export interface ExecuteOptions {
  store: Store;
  executor: Executor;
  reporter: Reporter;
  jobs: number;
  gpus: number;
  keepGoing: boolean;
  force?: Set<string>;
  only?: Set<string>;
  signal: AbortSignal;
}

/** The result of one stage in a run. */
export interface StageRunReport {
  name: string;
  base: string;
  kind: string;
  result: SummaryRow["result"];
  key: string | null;
  ms?: number;
  metrics?: Record<string, unknown>;
  error?: string;
  logPath?: string;
  logTail?: string[];
  /** True when another process produced the artifact while this one waited. */
  byOtherProcess?: boolean;
  /** The cluster job of a failed stage (Slurm: job id, state, reason), when a cluster executor ran it. */
  job?: ClusterJobInfo;
}

/** The result of a run. */
export interface RunReport {
  pipeline: string;
  stages: StageRunReport[];
  /** 0 success, 1 a stage failed, 130 interrupted. */
  exitCode: number;
  ms: number;
}

/**
 * The job of one stage: its resolved inputs (from the keys of its upstream stages, which must be in the
 * store), its key components and its cache key. Used by the engine just before a stage starts, and by a
 * detached Slurm job, which resolves its inputs when it starts.
 */
export async function stageJob(
  plan: Plan,
  s: PlannedStage,
  keys: Map<string, string>,
  store: Store,
  force = false,
): Promise<StageJob> {
  const inputs: StageJob["inputs"] = {};
  const digests: Record<string, string[]> = {};
  for (const inp of s.inputs) {
    const arts: InputArtifact[] = [];
    for (const r of inp.refs) {
      const k = keys.get(r.stage);
      const meta = k ? store.readMeta(k) : undefined;
      if (!k || !meta) {
        throw new Error(`input ${inp.name} of ${s.name}: upstream ${r.stage} is not in the cache`);
      }
      const digest = meta.outputs[r.output]?.digest ?? "";
      arts.push({
        dir: store.outputDir(k, r.output),
        stage: r.stage,
        output: r.output,
        key: k,
        digest,
        point: plan.byName.get(r.stage)?.point ?? {},
        metrics: meta.metrics ?? {},
      });
    }
    inputs[inp.name] = { many: inp.many, artifacts: arts };
    digests[inp.name] = arts.map((a) => a.digest);
  }
  const { components, code } = await keyComponents<KeyComponents>(s, digests);
  return {
    key: cacheKey(components),
    name: s.name,
    base: s.base,
    pipeline: plan.name,
    kind: s.kind.name,
    module: s.kind.module,
    params: s.params,
    seed: s.seed,
    point: s.point,
    inputs,
    components,
    codeFiles: code.files,
    force,
    resources: s.resources,
    gpu: s.gpu,
  };
}

/** Runs a plan. */
export async function executePlan(plan: Plan, opts: ExecuteOptions): Promise<RunReport> {
  const t0 = performance.now();
  const { store } = opts;
  store.ensureDirs();
  store.sweepStaleTmp();
  const stages = opts.only ? withUpstream(plan, opts.only) : plan.stages;
  // Fingerprint every stage's code now, when the run starts, right after the kinds' modules were loaded:
  // a source file edited while earlier stages run must not be credited to the code this process runs.
  for (const s of stages) codeOf(s);
  const keys = new Map<string, string>();
  const reports = new Map<string, StageRunReport>();
  const runOne = async (s: PlannedStage): Promise<"ok" | "failed" | "aborted"> => {
    let force = opts.force?.has(s.name) ?? false;
    const job = await stageJob(plan, s, keys, store, force);
    const key = job.key;
    const base = { name: s.name, base: s.base, kind: s.kind.name, key };
    if (!force) {
      const meta = store.readMeta(key);
      // A cached artifact whose files were modified (size or mtime differ from the record) is recomputed
      // by its producer, replacing it, so that no stage is ever fed a modified artifact.
      const modified = meta ? store.quickCheck(key) : [];
      if (modified.length > 0) {
        force = job.force = true;
        opts.reporter.stageLog(
          s.name,
          `stored artifact was modified (${
            modified.map(formatProblem).slice(0, 3).join("; ")
          }): recomputing it`,
        );
      } else if (meta) {
        keys.set(s.name, key);
        const row: StageRunReport = { ...base, result: "cached", ms: meta.timings.ms, metrics: meta.metrics };
        reports.set(s.name, row);
        opts.reporter.stageEnd(s.name, { ...row, headline: s.kind.headline });
        return "ok";
      }
    }
    opts.reporter.stageStart(s.name, { kind: s.kind.name, gpu: s.gpu });
    let outcome: StageOutcome;
    try {
      outcome = await opts.executor.execute(job, {
        signal: opts.signal,
        onProgress: (u) => opts.reporter.stageProgress(s.name, u),
        onLog: (l) => opts.reporter.stageLog(s.name, l),
        onWait: (h) =>
          opts.reporter.stageWaiting(
            s.name,
            h ? (h.pid ? `pid ${h.pid} on ${h.host}` : h.host) : "another process",
          ),
      });
    } catch (e) {
      outcome = { status: "failed", error: (e as Error).message, logPath: "", logTail: [] };
    }
    let row: StageRunReport;
    let detail: string | undefined;
    let result: "ok" | "failed" | "aborted" = "ok";
    if (outcome.status === "ran" || outcome.status === "cached") {
      keys.set(s.name, key);
      row = {
        ...base,
        result: outcome.status,
        ms: outcome.meta.timings.ms,
        metrics: outcome.meta.metrics,
        byOtherProcess: outcome.status === "cached" && outcome.by === "other-process",
      };
      if (row.byOtherProcess) detail = "produced by another process";
    } else if (outcome.status === "failed") {
      row = {
        ...base,
        result: "failed",
        error: outcome.error,
        logPath: outcome.logPath,
        logTail: outcome.logTail,
      };
      if (outcome.job) row.job = outcome.job;
      detail = outcome.error.split("\n")[0];
      result = "failed";
    } else {
      row = { ...base, result: "aborted" };
      result = "aborted";
    }
    reports.set(s.name, row);
    opts.reporter.stageEnd(s.name, { ...row, headline: s.kind.headline }, detail);
    return result;
  };
  const states: Map<string, NodeState> = await schedule(
    stages.map((s) => ({ name: s.name, deps: s.deps, gpu: s.gpu })),
    (n) => runOne(plan.byName.get(n.name)!),
    { jobs: opts.jobs, gpus: opts.gpus, keepGoing: opts.keepGoing, signal: opts.signal },
  );
  opts.reporter.close();
  const out: StageRunReport[] = [];
  for (const s of stages) {
    const r = reports.get(s.name);
    if (r) out.push(r);
    else {
      const st = states.get(s.name);
      out.push({
        name: s.name,
        base: s.base,
        kind: s.kind.name,
        key: null,
        result: st === "skipped" ? "skipped" : st === "aborted" ? "aborted" : "not run",
      });
    }
  }
  const done: Record<string, string> = {};
  for (const r of out) if ((r.result === "ran" || r.result === "cached") && r.key) done[r.name] = r.key;
  if (Object.keys(done).length > 0) {
    store.updateRef(plan.name, plan.file, done, new Set(plan.stages.map((s) => s.name)));
  }
  const failed = out.some((r) => r.result === "failed");
  const aborted = opts.signal.aborted || out.some((r) => r.result === "aborted");
  return {
    pipeline: plan.name,
    stages: out,
    exitCode: aborted ? 130 : failed ? 1 : 0,
    ms: performance.now() - t0,
  };
}

/** Suggests a stage name (for `show`). */
export function closestStage(plan: Plan, name: string): string | undefined {
  return closest(name, [...plan.groups.keys(), ...plan.byName.keys()]);
}
