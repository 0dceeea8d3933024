/**
 * Where the Slurm executor keeps its files in the shared cache (`<cache>/slurm/`):
 *
 * ```
 * jobfiles/<key>.json                 the StageJob an attached job runs (exec-stage JOBFILE)
 * detached/<run>/<stage>.json         what a detached job resolves when it starts (pipeline, --set, stage)
 * scripts/<run>/<stage>.<n>.sh        the submitted batch scripts (kept: they show what was asked for)
 * exit/<jobid>                        the job's exit code, written by the script when exec-stage returns
 * exit/<jobid>.outcome.json           exec-stage's outcome: ran, or cached (made by another process)
 * logs/<pipeline>/<stage>.log         the stage's Slurm output, appended across attempts (a stable path)
 * stages/<pipeline>/<stage>.json      the stage's latest job: id, key, run, whether detached
 * ```
 * Stage and pipeline names are escaped for the file system (`train[model=DiT-S/2]` →
 * `train[model=DiT-S%2F2]`).
 * @module
 */

import type { Store } from "../store.ts";

/** Escapes a stage or pipeline name for use as a file name (reversible, no `/`). */
export function safeName(name: string): string {
  return name.replace(
    /[^A-Za-z0-9_.,=+@\[\]-]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}

/** The latest job of a stage (`stages/<pipeline>/<stage>.json`). */
export interface StageJobRecord {
  /** Slurm job id. */
  job: string;
  pipeline: string;
  stage: string;
  /** The cache key the job computes; null for a detached job until it starts. */
  key: string | null;
  /** Identifies the `run` (or `run --detach`) that submitted it. */
  run: string;
  detached: boolean;
  /** Submission attempt within that run (1 = first). */
  attempt: number;
  submitted: string;
  /** Host and pid of the head that submitted it. */
  head: { host: string; pid: number };
  /** The job's output file. */
  log: string;
  /** The batch script. */
  script: string;
}

/** Paths of the Slurm executor's files in a store. */
export class SlurmLayout {
  readonly root: string;
  constructor(readonly store: Store) {
    this.root = `${store.root}/slurm`;
  }
  /** The job file of an attached job. */
  jobFile(key: string): string {
    return `${this.root}/jobfiles/${key}.json`;
  }
  /** The descriptor of a detached job. */
  detachedFile(run: string, stage: string): string {
    return `${this.root}/detached/${run}/${safeName(stage)}.json`;
  }
  /** A batch script. */
  script(run: string, stage: string, attempt: number): string {
    return `${this.root}/scripts/${run}/${safeName(stage)}.${attempt}.sh`;
  }
  /** The directory of exit-status files. */
  exitDir(): string {
    return `${this.root}/exit`;
  }
  /** The exit-status file of a job. */
  exitFile(job: string): string {
    return `${this.root}/exit/${job}`;
  }
  /** The stable log of a stage. */
  log(pipeline: string, stage: string): string {
    return `${this.root}/logs/${safeName(pipeline)}/${safeName(stage)}.log`;
  }
  /** The record of a stage's latest job. */
  record(pipeline: string, stage: string): string {
    return `${this.root}/stages/${safeName(pipeline)}/${safeName(stage)}.json`;
  }

  /** Creates the directories a submission needs (`detached` too for a detached one). */
  ensure(run: string, pipeline: string, detached = false): void {
    if (detached) Deno.mkdirSync(`${this.root}/detached/${run}`, { recursive: true });
    for (
      const d of [
        "jobfiles",
        `scripts/${run}`,
        "exit",
        `logs/${safeName(pipeline)}`,
        `stages/${safeName(pipeline)}`,
      ]
    ) Deno.mkdirSync(`${this.root}/${d}`, { recursive: true });
  }

  /** Reads a stage's latest job record. */
  readRecord(pipeline: string, stage: string): StageJobRecord | undefined {
    try {
      return JSON.parse(Deno.readTextFileSync(this.record(pipeline, stage))) as StageJobRecord;
    } catch {
      return undefined;
    }
  }

  /** Writes a stage's job record atomically (temp file + rename). */
  writeRecord(r: StageJobRecord): void {
    const path = this.record(r.pipeline, r.stage);
    const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
    Deno.writeTextFileSync(tmp, JSON.stringify(r, null, 1));
    Deno.renameSync(tmp, path);
  }

  /** The exit code a job wrote, or undefined when it wrote none (still running, killed, timed out). */
  exitCode(job: string): number | undefined {
    try {
      const n = Number(Deno.readTextFileSync(this.exitFile(job)).trim());
      return Number.isInteger(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** What exec-stage said about a job's stage (`ran`, or `cached` by another process), if it said it. */
  outcome(job: string): { status: string; by?: string; key: string } | undefined {
    try {
      return JSON.parse(Deno.readTextFileSync(`${this.root}/exit/${job}.outcome.json`));
    } catch {
      return undefined;
    }
  }

  /** The last `n` lines of a log file (empty when it does not exist). */
  static tail(path: string, n = 15): string[] {
    try {
      const f = Deno.openSync(path);
      try {
        const size = f.statSync().size;
        const want = Math.min(size, 64 * 1024);
        f.seekSync(size - want, Deno.SeekMode.Start);
        const buf = new Uint8Array(want);
        let got = 0;
        while (got < want) {
          const r = f.readSync(buf.subarray(got));
          if (r === null) break;
          got += r;
        }
        const lines = new TextDecoder().decode(buf.subarray(0, got)).split("\n");
        if (lines.at(-1) === "") lines.pop();
        return lines.slice(-n);
      } finally {
        f.close();
      }
    } catch {
      return [];
    }
  }
}
