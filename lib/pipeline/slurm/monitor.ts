/**
 * Watches submitted jobs with one `squeue` call per interval for all of them (never one per job, never
 * `sacct`). The interval starts at `minMs` and doubles up to `maxMs` while nothing changes; a new job or a
 * state change brings it back to `minMs`. A job is finished when squeue reports a terminal state, or, once
 * squeue has forgotten it (`MinJobAge`), when its exit-status file exists. squeue errors (a busy or
 * restarting controller) are reported and retried with backoff; they never end a run.
 * @module
 */

import { type QueueEntry, squeue, TERMINAL_STATES } from "./cli.ts";

/** How a job ended. */
export interface JobEnd {
  id: string;
  /** Slurm's final state; `COMPLETED`/`FAILED` from the exit file when squeue forgot the job; `UNKNOWN`. */
  state: string;
  reason?: string;
  /** From the exit-status file, when the job wrote one. */
  exitCode?: number;
}

/** Options of {@link JobMonitor}. */
export interface MonitorOptions {
  minMs: number;
  maxMs: number;
  /** The exit code a job wrote, or undefined. */
  exitCode: (id: string) => number | undefined;
  /** Called with squeue errors (the monitor keeps going). */
  onError?: (message: string) => void;
  /** squeue (tests may replace it). */
  query?: (ids: string[]) => Promise<Map<string, QueueEntry>>;
}

interface Watched {
  resolve: (e: JobEnd) => void;
  onState?: (e: QueueEntry) => void;
  last?: string;
  /** Consecutive polls in which squeue did not know the job. */
  missing: number;
}

/** The poller shared by all jobs of one head process. */
export class JobMonitor {
  #jobs = new Map<string, Watched>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #delay: number;
  #polling = false;
  /** squeue calls made (tests check that polling stays gentle). */
  polls = 0;

  constructor(readonly opts: MonitorOptions) {
    this.#delay = opts.minMs;
  }

  /** Resolves when the job has ended. `onState` sees PENDING/RUNNING/... as they change. */
  wait(id: string, onState?: (e: QueueEntry) => void): Promise<JobEnd> {
    return new Promise((resolve) => {
      this.#jobs.set(id, { resolve, onState, missing: 0 });
      this.#delay = this.opts.minMs;
      this.#schedule(true);
    });
  }

  /** Stops watching a job (its promise never resolves). */
  forget(id: string): void {
    this.#jobs.delete(id);
  }

  #schedule(reset = false): void {
    if (this.#polling) return;
    if (this.#timer !== undefined) {
      if (!reset) return;
      clearTimeout(this.#timer);
    }
    if (this.#jobs.size === 0) {
      this.#timer = undefined;
      return;
    }
    this.#timer = setTimeout(() => this.#poll(), this.#delay);
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    this.#polling = true;
    let changed = false;
    try {
      const ids = [...this.#jobs.keys()];
      let states: Map<string, QueueEntry>;
      try {
        this.polls++;
        states = await (this.opts.query ?? squeue)(ids);
      } catch (e) {
        this.opts.onError?.((e as Error).message);
        return;
      }
      for (const id of ids) {
        const w = this.#jobs.get(id);
        if (!w) continue;
        const q = states.get(id);
        if (q) {
          w.missing = 0;
          if (q.state !== w.last) {
            changed = true;
            w.last = q.state;
            w.onState?.(q);
          }
          if (TERMINAL_STATES.has(q.state)) {
            this.#jobs.delete(id);
            w.resolve({ id, state: q.state, reason: q.reason, exitCode: this.opts.exitCode(id) });
          }
          continue;
        }
        const code = this.opts.exitCode(id);
        if (code !== undefined) {
          changed = true;
          this.#jobs.delete(id);
          w.resolve({ id, state: code === 0 ? "COMPLETED" : "FAILED", exitCode: code });
        } else if (++w.missing >= 3) {
          changed = true;
          this.#jobs.delete(id);
          w.resolve({
            id,
            state: "UNKNOWN",
            reason: "squeue no longer knows the job and it wrote no exit status",
          });
        }
      }
    } finally {
      this.#polling = false;
      this.#delay = changed ? this.opts.minMs : Math.min(this.opts.maxMs, this.#delay * 2);
      this.#schedule();
    }
  }

  /** Stops polling. */
  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#jobs.clear();
  }
}
