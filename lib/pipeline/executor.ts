/**
 * Executors run stage jobs. The engine only talks to the {@link Executor} interface, so a cluster
 * executor (Slurm: write the job JSON to the shared cache, `sbatch` a script that calls
 * `ditflow exec-stage JOBFILE`, wait for the job, read the outcome) can be added without touching the
 * engine. Two are provided: {@link LocalExecutor} (in this process) and {@link SubprocessExecutor}
 * (one `ditflow exec-stage` process per stage; the same path a cluster executor takes).
 * @module
 */

import type { LockInfo } from "./lock.ts";
import { runStage, type StageJob, type StageOutcome } from "./run_stage.ts";
import type { ProgressUpdate } from "./stage.ts";
import type { Store } from "./store.ts";

/** Callbacks and the abort signal an executor gets for one job. */
export interface ExecuteHooks {
  signal: AbortSignal;
  onProgress: (u: ProgressUpdate) => void;
  onLog: (line: string) => void;
  onWait: (holder?: LockInfo) => void;
}

/** Runs stage jobs somewhere. Implementations must honour the per-key lock (use `runStage`). */
export interface Executor {
  /** Short name shown in logs (`local`, `subprocess`, `slurm`). */
  readonly name: string;
  /** Runs one job to completion (or abort) and reports its outcome. Must not throw for stage failures. */
  execute(job: StageJob, hooks: ExecuteHooks): Promise<StageOutcome>;
  /** Releases resources at the end of a run. */
  close?(): Promise<void>;
}

/** Runs stages inside the current process (stages are async; GPU work and I/O overlap). */
export class LocalExecutor implements Executor {
  readonly name = "local";
  constructor(readonly store: Store) {}
  execute(job: StageJob, hooks: ExecuteHooks): Promise<StageOutcome> {
    return runStage(job, { store: this.store, ...hooks });
  }
}

/** Path of the CLI entry point. */
export const CLI_MAIN: string = new URL("../cli/main.ts", import.meta.url).pathname;

/**
 * Runs each stage in its own `deno run -A lib/cli/main.ts exec-stage` process (true CPU parallelism,
 * crash isolation). The child prints JSON lines (`{"progress":...}`, `{"log":...}`, `{"outcome":...}`).
 */
export class SubprocessExecutor implements Executor {
  readonly name = "subprocess";
  constructor(readonly store: Store) {}
  async execute(job: StageJob, hooks: ExecuteHooks): Promise<StageOutcome> {
    this.store.ensureDirs();
    Deno.mkdirSync(`${this.store.root}/jobs`, { recursive: true });
    const jobFile = `${this.store.root}/jobs/${job.key}.${Deno.pid}.json`;
    Deno.writeTextFileSync(jobFile, JSON.stringify(job));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI_MAIN, "exec-stage", "--cache", this.store.root, "--jsonl", jobFile],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    const onAbort = () => {
      try {
        child.kill("SIGINT");
      } catch { /* exited */ }
    };
    hooks.signal.addEventListener("abort", onAbort);
    let outcome: StageOutcome | undefined;
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const m = JSON.parse(line);
          if (m.progress) hooks.onProgress(m.progress);
          else if (m.log !== undefined) hooks.onLog(m.log);
          else if (m.wait) hooks.onWait(m.wait);
          else if (m.outcome) outcome = m.outcome;
        } catch { /* not ours */ }
      }
    }
    const status = await child.status;
    hooks.signal.removeEventListener("abort", onAbort);
    try {
      Deno.removeSync(jobFile);
    } catch { /* ignore */ }
    if (outcome) return outcome;
    if (hooks.signal.aborted) return { status: "aborted" };
    return {
      status: "failed",
      error: `exec-stage exited with code ${status.code}${status.signal ? ` (${status.signal})` : ""}`,
      logPath: this.store.failedLogPath(job.key),
      logTail: [],
    };
  }
}
