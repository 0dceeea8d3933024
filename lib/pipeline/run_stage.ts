/**
 * `runStage`: the single entry point that executes one stage from its job description (cache key,
 * kind, parameters, resolved inputs). Shared by the local executor and by `ditflow exec-stage` (what a
 * cluster executor submits). It takes the per-key lock, runs the kind in a temporary directory, computes
 * output digests, writes meta.json and promotes the directory atomically. On failure or abort the
 * temporary directory is removed (the checkpoint directory is kept for resume).
 * @module
 */

import type { KeyComponents } from "./cache_key.ts";
import { digestPath } from "./hash.ts";
import { acquireLock, type KeyLock, type LockInfo } from "./lock.ts";
import { LiveWriter } from "./live.ts";
import { getKind, loadKindModule } from "./registry.ts";
import type { Resources } from "./resources.ts";
import type { InputArtifact, PriorRun, ProgressUpdate, StageContext } from "./stage.ts";
import { type ArtifactMeta, formatProblem, sealFiles, type Store } from "./store.ts";
import { DITFLOW_VERSION } from "./version.ts";

/** Everything needed to run a stage, serialisable as JSON (a cluster executor ships this). */
export interface StageJob {
  key: string;
  name: string;
  base: string;
  pipeline: string;
  kind: string;
  /** The kind's module URL (imported when the kind is not registered in this process). */
  module: string;
  params: Record<string, unknown>;
  seed: number;
  point: Record<string, string | number | boolean | null>;
  /** Resolved inputs. */
  inputs: Record<string, { many: boolean; artifacts: InputArtifact[] }>;
  components: KeyComponents;
  codeFiles: Record<string, string>;
  /** Replace an existing artifact (`--force`). */
  force?: boolean;
  /** Cluster resources of the stage (cluster executors read them; not part of the key). */
  resources?: Resources;
  /** True when the stage's kind uses the GPU (a cluster executor asks for one). */
  gpu?: boolean;
}

/** The cluster job behind an outcome (set by cluster executors). */
export interface ClusterJobInfo {
  /** The executor, e.g. `slurm`. */
  executor: string;
  /** The scheduler's job id. */
  id: string;
  /** The scheduler's final state, e.g. `FAILED`, `TIMEOUT`, `OUT_OF_MEMORY`, `NODE_FAIL`, `CANCELLED`. */
  state: string;
  /** The scheduler's reason, when it gives one. */
  reason?: string;
  /** Submissions of this stage in this run (more than 1 after retries). */
  attempts?: number;
}

/** How a stage ended. */
export type StageOutcome =
  | { status: "ran"; meta: ArtifactMeta }
  | { status: "cached"; meta: ArtifactMeta; by: "store" | "other-process" }
  | { status: "failed"; error: string; logPath: string; logTail: string[]; job?: ClusterJobInfo }
  | { status: "aborted" };

/** Options of {@link runStage}. */
export interface RunStageOptions {
  store: Store;
  signal?: AbortSignal;
  onProgress?: (u: ProgressUpdate) => void;
  onLog?: (line: string) => void;
  /** Called when another process holds the key's lock and this one waits. */
  onWait?: (holder?: LockInfo) => void;
}

function fmtPart(p: unknown): string {
  if (typeof p === "string") return p;
  if (p instanceof Error) return p.stack ?? p.message;
  try {
    return JSON.stringify(p);
  } catch {
    return String(p);
  }
}

function isEmptyDir(dir: string): boolean {
  try {
    for (const _ of Deno.readDirSync(dir)) return false;
  } catch { /* missing: empty */ }
  return true;
}

/**
 * The cached run of `job`'s kind whose key components equal the job's except a smaller numeric value of
 * parameter `param` (the largest such value), with its outputs; undefined when there is none.
 */
export function findPrior(
  store: Store,
  job: Pick<StageJob, "kind" | "components">,
  param: string,
  outputs: string[],
): PriorRun | undefined {
  const want = job.components.params[param];
  if (typeof want !== "number") return undefined;
  const strip = (c: StageJob["components"]) =>
    JSON.stringify({ ...c, params: { ...c.params, [param]: null } });
  const target = strip(job.components);
  let best: PriorRun | undefined;
  for (const key of store.listKeys()) {
    const meta = store.readMeta(key);
    if (!meta || meta.kind !== job.kind) continue;
    const v = meta.components.params[param];
    if (typeof v !== "number" || v >= want || (best && v <= best.value)) continue;
    if (strip(meta.components) !== target) continue;
    if (store.quickCheck(key).length > 0) continue; // never continue from a modified artifact
    best = {
      key,
      value: v,
      outputs: Object.fromEntries(outputs.map((o) => [o, store.outputDir(key, o)])),
      metrics: meta.metrics ?? {},
    };
  }
  return best;
}

/** Runs one stage (see the module doc). Never throws for stage failures; returns the outcome. */
export async function runStage(job: StageJob, opts: RunStageOptions): Promise<StageOutcome> {
  const { store } = opts;
  store.ensureDirs();
  if (!job.force) {
    const meta = store.readMeta(job.key);
    if (meta) return { status: "cached", meta, by: "store" };
  }
  let lock: KeyLock | undefined;
  try {
    lock = await acquireLock(store.lockPath(job.key), {
      signal: opts.signal,
      onWait: opts.onWait,
      done: () => !job.force && store.has(job.key),
    });
  } catch (e) {
    if (opts.signal?.aborted) return { status: "aborted" };
    throw e;
  }
  if (!lock) return { status: "cached", meta: store.readMeta(job.key)!, by: "other-process" };
  let tmp: string | undefined;
  let logFile: Deno.FsFile | undefined;
  let live: LiveWriter | undefined;
  const logLines: string[] = [];
  const t0 = performance.now();
  const started = new Date();
  try {
    if (!job.force) {
      const meta = store.readMeta(job.key);
      if (meta) return { status: "cached", meta, by: "other-process" };
    }
    let kind = getKind(job.kind);
    if (!kind) {
      await loadKindModule(job.module);
      kind = getKind(job.kind);
      if (!kind) throw new Error(`stage kind ${job.kind} is not registered by ${job.module}`);
    }
    tmp = store.makeTmp(job.key);
    live = new LiveWriter(store.root, {
      key: job.key,
      name: job.name,
      pipeline: job.pipeline,
      kind: job.kind,
    });
    const outputs: Record<string, string> = {};
    for (const o of Object.keys(kind.outputs)) {
      outputs[o] = `${tmp}/out/${o}`;
      Deno.mkdirSync(outputs[o], { recursive: true });
    }
    const checkpointDir = store.checkpointDir(job.key);
    Deno.mkdirSync(checkpointDir, { recursive: true });
    logFile = Deno.openSync(`${tmp}/log.txt`, { write: true, create: true, append: true });
    const enc = new TextEncoder();
    const log = (...parts: unknown[]) => {
      const text = parts.map(fmtPart).join(" ");
      const stamp = ((performance.now() - t0) / 1000).toFixed(1);
      for (const l of text.split("\n")) {
        const line = `[${stamp}s] ${l}`;
        logLines.push(line);
        if (logLines.length > 200) logLines.shift();
        logFile?.writeSync(enc.encode(line + "\n"));
        opts.onLog?.(l);
      }
    };
    const metrics: Record<string, unknown> = {};
    let adapter: unknown = null;
    const inputs: Record<string, InputArtifact | InputArtifact[] | undefined> = {};
    // Each input carries its upstream stage's recorded metrics (the engine copies them from meta.json).
    for (const [name, inp] of Object.entries(job.inputs)) {
      const arts = inp.artifacts;
      inputs[name] = inp.many ? arts : arts[0];
      // Never feed a modified artifact to a stage: size and mtime of every file against the record.
      for (const a of arts) {
        const problems = store.quickCheck(a.key, [a.output]);
        if (problems.length > 0) {
          throw new Error(
            `input ${name}: the stored artifact of stage ${a.stage} was modified after it was stored ` +
              `(${problems.slice(0, 3).map(formatProblem).join("; ")}); \`ditflow verify ${a.stage}\` ` +
              `checks it, \`--force ${a.stage.replace(/\[.*$/, "")}\` recomputes it`,
          );
        }
      }
    }
    const signal = opts.signal ?? new AbortController().signal;
    const prior = kind.extends && isEmptyDir(checkpointDir)
      ? findPrior(store, job, kind.extends, Object.keys(kind.outputs))
      : undefined;
    if (prior) log(`continuing from cached run ${prior.key.slice(0, 12)} (${kind.extends} ${prior.value})`);
    const ctx: StageContext = {
      name: job.name,
      kind: job.kind,
      key: job.key,
      params: job.params as StageContext["params"],
      inputs: inputs as StageContext["inputs"],
      outputs,
      seed: job.seed,
      point: job.point,
      checkpointDir,
      signal,
      prior,
      log,
      progress: (u) => {
        live?.update(u);
        opts.onProgress?.(u);
      },
      metrics: (v) => Object.assign(metrics, v),
      setAdapter: (d) => {
        adapter = d;
      },
    };
    log(
      `stage ${job.name} (kind ${job.kind}, key ${
        job.key.slice(0, 12)
      }) on ${Deno.hostname()} pid ${Deno.pid}`,
    );
    await kind.run(ctx);
    signal.throwIfAborted();
    const outMeta: ArtifactMeta["outputs"] = {};
    for (const [o, dir] of Object.entries(outputs)) {
      const d = await digestPath(dir);
      // Read-only from here on; the mtime is recorded after the chmod (which leaves it unchanged).
      sealFiles(dir);
      const files = d.files.map((f) => ({
        ...f,
        mtime: Deno.statSync(f.path ? `${dir}/${f.path}` : dir).mtime?.getTime(),
      }));
      outMeta[o] = { digest: d.digest, bytes: d.bytes, files };
    }
    const ms = performance.now() - t0;
    log(`finished in ${(ms / 1000).toFixed(2)}s`);
    logFile.close();
    logFile = undefined;
    const meta: ArtifactMeta = {
      format: 1,
      key: job.key,
      name: job.name,
      base: job.base,
      pipeline: job.pipeline,
      kind: job.kind,
      point: job.point,
      components: job.components,
      code_files: job.codeFiles,
      inputs: Object.fromEntries(
        Object.entries(job.inputs).map(([n, i]) => [
          n,
          i.artifacts.map((a) => ({ stage: a.stage, output: a.output, key: a.key, digest: a.digest })),
        ]),
      ),
      outputs: outMeta,
      metrics,
      timings: { started: started.toISOString(), finished: new Date().toISOString(), ms: Math.round(ms) },
      adapter,
      host: Deno.hostname(),
      pid: Deno.pid,
      ditflow: DITFLOW_VERSION,
    };
    Deno.writeTextFileSync(`${tmp}/meta.json`, JSON.stringify(meta, null, 1));
    Deno.chmodSync(`${tmp}/meta.json`, 0o444);
    Deno.chmodSync(`${tmp}/log.txt`, 0o444);
    const r = store.promote(tmp, job.key, job.force);
    tmp = undefined;
    try {
      Deno.removeSync(checkpointDir, { recursive: true });
    } catch { /* none */ }
    if (r === "exists") return { status: "cached", meta: store.readMeta(job.key)!, by: "other-process" };
    store.forget(job.key);
    return { status: "ran", meta };
  } catch (e) {
    if (opts.signal?.aborted) return { status: "aborted" };
    const err = e instanceof Error ? (e.stack ?? e.message) : String(e);
    logLines.push(`FAILED: ${err}`);
    try {
      logFile?.writeSync(new TextEncoder().encode(`FAILED: ${err}\n`));
    } catch { /* ignore */ }
    const logPath = store.failedLogPath(job.key);
    try {
      Deno.writeTextFileSync(logPath, logLines.join("\n") + "\n");
    } catch { /* ignore */ }
    return {
      status: "failed",
      error: e instanceof Error ? e.message : String(e),
      logPath,
      logTail: logLines.slice(-10),
    };
  } finally {
    live?.close();
    try {
      logFile?.close();
    } catch { /* closed */ }
    if (tmp) {
      try {
        Deno.removeSync(tmp, { recursive: true });
      } catch { /* ignore */ }
    }
    lock.release();
  }
}
