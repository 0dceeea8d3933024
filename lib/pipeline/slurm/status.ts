/**
 * What Slurm says about a pipeline's stages, for `ditflow status FILE` and `ditflow cancel FILE`: each
 * stage's latest job (from its record in the cache) with one `squeue` call for all of them, and the
 * exit-status files for jobs squeue has forgotten.
 * @module
 */

import type { StagePlanReport } from "../engine.ts";
import type { Store } from "../store.ts";
import { scancel, squeue, TERMINAL_STATES } from "./cli.ts";
import { SlurmLayout, type StageJobRecord } from "./layout.ts";

/** A stage's Slurm job as `status` shows it. */
export interface SlurmStageState {
  job: string;
  /** queued, running, failed or cancelled. */
  status: "queued" | "running" | "failed" | "cancelled";
  /** Slurm's state (PENDING, RUNNING, FAILED, TIMEOUT, ...), or `EXITED` when only the exit file is left. */
  state: string;
  reason?: string;
  detached: boolean;
  log: string;
}

/** One line for a stage, e.g. `running (job 12)` or `failed (job 13, TIMEOUT: TimeLimit)`. */
export function describeStageState(s: SlurmStageState): string {
  if (s.status === "queued") return `queued (job ${s.job}${s.reason ? `, ${s.reason}` : ""})`;
  if (s.status === "running") return `running (job ${s.job})`;
  if (s.status === "cancelled") {
    return s.reason === "DependencyNeverSatisfied"
      ? `cancelled (job ${s.job}: an upstream job failed)`
      : `cancelled (job ${s.job}${s.reason ? `: ${s.reason}` : ""})`;
  }
  return `failed (job ${s.job}, ${s.state}${s.reason ? `: ${s.reason}` : ""}); log ${s.log}`;
}

function records(store: Store, pipeline: string, reports: StagePlanReport[]): Map<string, StageJobRecord> {
  const layout = new SlurmLayout(store);
  const out = new Map<string, StageJobRecord>();
  for (const r of reports) {
    if (r.action !== "run") continue;
    const rec = layout.readRecord(pipeline, r.name);
    // A record for another key is history (the stage changed since), not this stage's job.
    if (!rec || (rec.key !== null && r.key !== null && rec.key !== r.key)) continue;
    out.set(r.name, rec);
  }
  return out;
}

/**
 * The Slurm state of every stage that is not cached and has a job record. Throws when squeue fails (the
 * caller says so and shows the plain status).
 */
export async function slurmStates(
  store: Store,
  pipeline: string,
  reports: StagePlanReport[],
): Promise<Map<string, SlurmStageState>> {
  const layout = new SlurmLayout(store);
  const recs = records(store, pipeline, reports);
  const out = new Map<string, SlurmStageState>();
  if (recs.size === 0) return out;
  const q = await squeue([...new Set([...recs.values()].map((r) => r.job))]);
  for (const [name, rec] of recs) {
    const e = q.get(rec.job);
    const base = { job: rec.job, detached: rec.detached, log: rec.log };
    if (e) {
      if (e.state === "PENDING") {
        out.set(name, { ...base, status: "queued", state: e.state, reason: e.reason });
      } else if (!TERMINAL_STATES.has(e.state)) out.set(name, { ...base, status: "running", state: e.state });
      else if (e.state === "CANCELLED") {
        out.set(name, { ...base, status: "cancelled", state: e.state, reason: e.reason });
      } else if (e.state !== "COMPLETED") {
        out.set(name, { ...base, status: "failed", state: e.state, reason: e.reason });
      }
      continue;
    }
    const code = layout.exitCode(rec.job);
    if (code === undefined) {
      out.set(name, {
        ...base,
        status: "failed",
        state: "ENDED",
        reason: "no exit status: killed, timed out or cancelled",
      });
    } else if (code !== 0) {
      out.set(name, { ...base, status: "failed", state: "FAILED", reason: `exit code ${code}` });
    }
  }
  return out;
}

/** Cancels the queued and running jobs of a pipeline's stages; returns what was cancelled. */
export async function cancelPipeline(
  store: Store,
  pipeline: string,
  stages: string[],
): Promise<{ stage: string; job: string; state: string }[]> {
  const layout = new SlurmLayout(store);
  const recs = new Map<string, StageJobRecord>();
  for (const s of stages) {
    const r = layout.readRecord(pipeline, s);
    if (r) recs.set(s, r);
  }
  if (recs.size === 0) return [];
  const q = await squeue([...new Set([...recs.values()].map((r) => r.job))]);
  const live: { stage: string; job: string; state: string }[] = [];
  for (const [stage, r] of recs) {
    const e = q.get(r.job);
    if (e && !TERMINAL_STATES.has(e.state)) live.push({ stage, job: r.job, state: e.state });
  }
  const err = await scancel([...new Set(live.map((l) => l.job))]);
  if (err) throw new Error(err);
  return live;
}
