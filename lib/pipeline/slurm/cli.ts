/**
 * The Slurm commands ditflow uses: `sbatch --parsable`, `squeue` (one call for any number of jobs),
 * `scancel`. Never `sacct`: clusters without accounting are common, and slurmdbd trouble must not break a
 * long run. Every call has a timeout and its errors are returned, not thrown, where the caller can go on.
 * @module
 */

/** A job's state as `squeue` reports it. */
export interface QueueEntry {
  id: string;
  /** e.g. PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL. */
  state: string;
  /** squeue's `%r`: why it is pending, or why it ended (`None` becomes undefined). */
  reason?: string;
}

/** States in which a job will not run any more. */
export const TERMINAL_STATES: ReadonlySet<string> = new Set([
  "COMPLETED",
  "FAILED",
  "TIMEOUT",
  "CANCELLED",
  "OUT_OF_MEMORY",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
  "SPECIAL_EXIT",
  "REVOKED",
]);

/** States after which a job is worth submitting again (the stage resumes from its checkpoint). */
export const RETRY_STATES: ReadonlySet<string> = new Set(["NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "TIMEOUT"]);

/** True when `sinfo` runs (a Slurm client is installed and a controller answers). */
export async function slurmAvailable(): Promise<boolean> {
  try {
    const r = await run("sinfo", ["-h", "-o", "%P"], 10_000);
    return r.code === 0;
  } catch {
    return false;
  }
}

async function run(cmd: string, args: string[], timeoutMs = 60_000) {
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr).trim() };
  } finally {
    clearTimeout(timer);
  }
}

/** Submits a batch script; resolves to the job id. Throws with sbatch's message when it refuses. */
export async function sbatch(script: string, args: string[] = []): Promise<string> {
  const r = await run("sbatch", ["--parsable", ...args, script]);
  if (r.code !== 0) throw new Error(`sbatch failed: ${r.stderr || `exit code ${r.code}`}`);
  // `--parsable` prints `jobid` or `jobid;cluster`.
  const id = r.stdout.trim().split(";")[0];
  if (!/^[0-9_]+$/.test(id)) throw new Error(`sbatch printed no job id: ${r.stdout.trim()}`);
  return id;
}

/**
 * The states of the given jobs, in one `squeue` call (`-t all`, so recently finished jobs are included
 * for `MinJobAge`). Jobs squeue no longer knows are absent from the map. Throws when squeue fails for
 * another reason (the controller does not answer): callers back off and try again.
 */
export async function squeue(ids: string[]): Promise<Map<string, QueueEntry>> {
  const out = new Map<string, QueueEntry>();
  if (ids.length === 0) return out;
  const r = await run("squeue", ["-h", "-t", "all", "-j", ids.join(","), "-o", "%i|%T|%r"]);
  if (r.code !== 0) {
    // A list of only unknown ids is an error to squeue; that just means none is known any more.
    if (/Invalid job id/i.test(r.stderr)) return out;
    throw new Error(`squeue failed: ${r.stderr || `exit code ${r.code}`}`);
  }
  for (const line of r.stdout.split("\n")) {
    const [id, state, reason] = line.trim().split("|");
    if (!id || !state) continue;
    out.set(id, {
      id,
      state: state.replace(/\+$/, ""),
      reason: reason && reason !== "None" ? reason : undefined,
    });
  }
  return out;
}

/** Cancels the given jobs (and only those). Resolves to scancel's error text, or undefined on success. */
export async function scancel(ids: string[]): Promise<string | undefined> {
  if (ids.length === 0) return undefined;
  const r = await run("scancel", ids);
  return r.code === 0 ? undefined : r.stderr || `scancel exit code ${r.code}`;
}
