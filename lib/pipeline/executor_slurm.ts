/**
 * The Slurm executor: the head process keeps the DAG (the engine's scheduler) and submits each ready stage
 * as its own batch job, which runs `ditflow exec-stage JOBFILE` in the same checkout against the shared
 * cache. Status comes from the exit-status file the job writes and one `squeue` per interval for all jobs
 * (see `slurm/monitor.ts`); no `sacct`.
 *
 * - Failures carry the stage, job id, Slurm state, reason and the tail of the stage's stable log
 *   (`<cache>/slurm/logs/<pipeline>/<stage>.log`, printed by `ditflow show`).
 * - NODE_FAIL, PREEMPTED, BOOT_FAIL and TIMEOUT are retried (bounded); the stage's checkpoint directory is
 *   keyed by its cache key, so a retried training job resumes where it stopped.
 * - Abort (Ctrl-C) cancels the jobs this head submitted, and nothing else.
 * - A restarted head submits nothing twice: a stage whose latest job (its record in the cache) is still
 *   queued or running is adopted and waited for; a stage whose key's lock is held by a live process (another
 *   head's job, a local run) is waited for; a finished one is picked up from the cache.
 * @module
 */

import type { ExecuteHooks, Executor } from "./executor.ts";
import { CLI_MAIN } from "./executor.ts";
import { liveHolder } from "./lock.ts";
import type { StageJob, StageOutcome } from "./run_stage.ts";
import { RETRY_STATES, sbatch, scancel, squeue, TERMINAL_STATES } from "./slurm/cli.ts";
import { SlurmLayout, type StageJobRecord } from "./slurm/layout.ts";
import { type JobEnd, JobMonitor } from "./slurm/monitor.ts";
import { batchScript, type GpuPolicy, gpuPolicyFromEnv, resourceArgs } from "./slurm/script.ts";
import type { Store } from "./store.ts";

/** Options of {@link SlurmExecutor}. */
export interface SlurmOptions {
  /** Resubmissions after NODE_FAIL, PREEMPTED, BOOT_FAIL or TIMEOUT (default `DITFLOW_SLURM_RETRIES` or 2). */
  retries?: number;
  /** First and longest squeue interval in ms (default `DITFLOW_SLURM_POLL_MS` or 5000, and 60000). */
  pollMs?: number;
  pollMaxMs?: number;
  /** How `gpu: true` stages ask for a GPU (default from `DITFLOW_SLURM_GPUS`). */
  gpu?: GpuPolicy;
  /** The Deno executable the jobs run (default `DITFLOW_SLURM_DENO` or this process's). */
  deno?: string;
  /** Working directory of the jobs (default: this process's). */
  cwd?: string;
}

function envInt(name: string, dflt: number): number {
  const v = Deno.env.get(name);
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) && n >= 0 ? n : dflt;
}

/** A short id for one head process's submissions. */
export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  return `${t}-${crypto.randomUUID().slice(0, 6)}`;
}

/** Describes how a job ended, e.g. `Slurm job 42 TIMEOUT (TimeLimit)`. */
export function describeEnd(end: JobEnd): string {
  let s = `Slurm job ${end.id} ${end.state}`;
  if (end.reason) s += ` (${end.reason})`;
  if (end.exitCode !== undefined && end.exitCode !== 0) s += `, exit code ${end.exitCode}`;
  return s;
}

/** Runs each stage as a Slurm job (see the module doc). */
export class SlurmExecutor implements Executor {
  readonly name = "slurm";
  readonly layout: SlurmLayout;
  readonly run = newRunId();
  readonly retries: number;
  readonly gpu: GpuPolicy;
  readonly monitor: JobMonitor;
  readonly #cache: string;
  readonly #deno: string;
  readonly #cwd: string;
  readonly #pollMs: number;
  /** Jobs this head submitted that have not ended (cancelled on abort). */
  readonly submitted = new Set<string>();
  /** Every sbatch this head made (stage → job ids), for reports and tests. */
  readonly submissions = new Map<string, string[]>();

  constructor(readonly store: Store, opts: SlurmOptions = {}) {
    this.layout = new SlurmLayout(store);
    this.#cache = store.root.startsWith("/") ? store.root : `${Deno.cwd()}/${store.root}`;
    this.retries = opts.retries ?? envInt("DITFLOW_SLURM_RETRIES", 2);
    this.gpu = opts.gpu ?? gpuPolicyFromEnv();
    this.#deno = opts.deno ?? Deno.env.get("DITFLOW_SLURM_DENO") ?? Deno.execPath();
    this.#cwd = opts.cwd ?? Deno.cwd();
    this.#pollMs = opts.pollMs ?? envInt("DITFLOW_SLURM_POLL_MS", 5000);
    this.monitor = new JobMonitor({
      minMs: this.#pollMs,
      maxMs: Math.max(this.#pollMs, opts.pollMaxMs ?? envInt("DITFLOW_SLURM_POLL_MAX_MS", 60_000)),
      exitCode: (id) => this.layout.exitCode(id),
    });
  }

  /** Writes the job file and batch script of one attempt and submits it; returns the job id. */
  async submit(job: StageJob, attempt: number): Promise<StageJobRecord> {
    this.layout.ensure(this.run, job.pipeline);
    const jobFile = this.layout.jobFile(job.key);
    const tmp = `${jobFile}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify(job));
    Deno.renameSync(tmp, jobFile);
    const log = this.layout.log(job.pipeline, job.name);
    const script = this.layout.script(this.run, job.name, attempt);
    Deno.writeTextFileSync(
      script,
      batchScript({
        jobName: `ditflow:${job.pipeline}:${job.name}`,
        log,
        resourceArgs: resourceArgs(job.resources, job.gpu ?? false, this.gpu),
        cwd: this.#cwd,
        cache: this.#cache,
        deno: this.#deno,
        main: CLI_MAIN,
        execArgs: [jobFile],
        exitDir: this.layout.exitDir(),
        comment:
          `ditflow stage ${job.name} of ${job.pipeline} (key ${job.key}), run ${this.run}, attempt ${attempt}`,
      }),
    );
    const id = await sbatch(script);
    const rec: StageJobRecord = {
      job: id,
      pipeline: job.pipeline,
      stage: job.name,
      key: job.key,
      run: this.run,
      detached: false,
      attempt,
      submitted: new Date().toISOString(),
      head: { host: Deno.hostname(), pid: Deno.pid },
      log,
      script,
    };
    this.layout.writeRecord(rec);
    this.submitted.add(id);
    const list = this.submissions.get(job.name) ?? [];
    list.push(id);
    this.submissions.set(job.name, list);
    return rec;
  }

  /** The stage's latest job when it is still queued or running and computes this key (restart). */
  async #adoptable(job: StageJob): Promise<StageJobRecord | undefined> {
    const rec = this.layout.readRecord(job.pipeline, job.name);
    if (!rec || (rec.key !== null && rec.key !== job.key) || job.force) return undefined;
    try {
      const q = (await squeue([rec.job])).get(rec.job);
      if (q && !TERMINAL_STATES.has(q.state)) return rec;
    } catch { /* the controller does not answer: submit (the job itself waits on the key's lock) */ }
    return undefined;
  }

  async execute(job: StageJob, hooks: ExecuteHooks): Promise<StageOutcome> {
    const { store } = this;
    store.ensureDirs();
    const t0 = new Date();
    // The reporters show a waiting stage's note (plain output prints each one): queue state, retries.
    const note = (text: string) => hooks.onWait({ pid: 0, host: text, start: null, created: "", token: "" });
    if (!job.force) {
      const meta = store.readMeta(job.key);
      if (meta) return { status: "cached", meta, by: "store" };
    }
    // A restarted head: adopt the stage's job if it is still queued or running.
    let rec = await this.#adoptable(job);
    if (rec) note(`Slurm job ${rec.job} (adopted: submitted by run ${rec.run}, still in the queue)`);
    // Another process (a local run, another head's job) holds the key: wait for it instead of submitting.
    if (!rec && !job.force) {
      let holder = liveHolder(store.lockPath(job.key));
      if (holder) {
        hooks.onWait(holder);
        while (holder && !store.has(job.key)) {
          if (hooks.signal.aborted) return { status: "aborted" };
          await new Promise((r) => setTimeout(r, Math.min(this.#pollMs, 1000)));
          holder = liveHolder(store.lockPath(job.key));
        }
        const meta = store.readMeta(job.key);
        if (meta) return { status: "cached", meta, by: "other-process" };
      }
    }
    let attempt = rec?.attempt ?? 0;
    const retriedAfter: string[] = [];
    while (true) {
      if (!rec) {
        attempt++;
        try {
          rec = await this.submit(job, attempt);
        } catch (e) {
          return { status: "failed", error: (e as Error).message, logPath: "", logTail: [] };
        }
        note(
          `Slurm job ${rec.job} (submitted${
            retriedAfter.length ? `; retry ${retriedAfter.length} after ${retriedAfter.at(-1)}` : ""
          })`,
        );
      }
      const id = rec.job;
      const ours = this.submitted.has(id);
      let cancelled: Promise<string | undefined> | undefined;
      const onAbort = () => {
        if (ours) cancelled = scancel([id]);
      };
      hooks.signal.addEventListener("abort", onAbort, { once: true });
      const end = await Promise.race([
        this.monitor.wait(id, (q) => {
          if (q.state === "PENDING") note(`Slurm job ${id} (queued${q.reason ? `: ${q.reason}` : ""})`);
          else if (q.state === "RUNNING") note(`Slurm job ${id} (running)`);
        }),
        new Promise<"aborted">((res) => {
          if (hooks.signal.aborted) res("aborted");
          hooks.signal.addEventListener("abort", () => res("aborted"), { once: true });
        }),
      ]);
      hooks.signal.removeEventListener("abort", onAbort);
      if (end === "aborted") {
        this.monitor.forget(id);
        if (ours) {
          const e = await (cancelled ?? scancel([id]));
          if (e) hooks.onLog(`scancel ${id}: ${e}`);
        }
        this.submitted.delete(id);
        return { status: "aborted" };
      }
      this.submitted.delete(id);
      let meta = store.readMeta(job.key);
      // A job that exited 0 has promoted its artifact; a shared filesystem's attribute cache (NFS) may show
      // it to this node a little later.
      for (let i = 0; !meta && end.state === "COMPLETED" && end.exitCode === 0 && i < 20; i++) {
        await new Promise((r) => setTimeout(r, 500));
        meta = store.readMeta(job.key);
      }
      if (meta && (end.state === "COMPLETED" || !job.force)) {
        store.forget(job.key);
        const fresh = store.readMeta(job.key) ?? meta;
        const said = this.layout.outcome(id);
        if (said?.status === "cached" || (!said && new Date(fresh.timings.started) < t0)) {
          return { status: "cached", meta: fresh, by: "other-process" };
        }
        return { status: "ran", meta: fresh };
      }
      const what = describeEnd(end);
      if (RETRY_STATES.has(end.state) && retriedAfter.length < this.retries) {
        retriedAfter.push(`${id} ${end.state}`);
        hooks.onLog(`${what}; resubmitting (retry ${retriedAfter.length} of ${this.retries})`);
        note(`${what}; resubmitting (retry ${retriedAfter.length} of ${this.retries})`);
        rec = undefined;
        continue;
      }
      const tail = SlurmLayout.tail(rec.log, 15);
      let error = what;
      if (end.state === "COMPLETED") error += " but the artifact is not in the cache";
      if (retriedAfter.length) {
        error += ` (after ${retriedAfter.length} retr${retriedAfter.length === 1 ? "y" : "ies"}: ${
          retriedAfter.join(", ")
        })`;
      }
      const failed = tail.findLast((l) => /failed: /.test(l));
      if (failed) error += `: ${failed.replace(/^.*?failed: /, "")}`;
      return {
        status: "failed",
        error,
        logPath: rec.log,
        logTail: tail,
        job: { executor: "slurm", id, state: end.state, reason: end.reason, attempts: attempt },
      };
    }
  }

  /**
   * Cancels every job this head submitted that has not ended, synchronously (for a second Ctrl-C, when the
   * process exits at once). Returns their ids.
   */
  cancelSubmittedSync(): string[] {
    const ids = [...this.submitted];
    if (ids.length) {
      try {
        new Deno.Command("scancel", { args: ids, stdout: "null", stderr: "null" }).outputSync();
      } catch { /* no scancel: nothing to cancel with */ }
    }
    return ids;
  }

  // deno-lint-ignore require-await
  async close(): Promise<void> {
    this.monitor.close();
  }
}
