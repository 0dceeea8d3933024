/**
 * Helpers of the Slurm tests: whether a cluster answers (the tests that need one are skipped with a
 * message otherwise), the CLI with fast polling, and waiting for jobs.
 * @module
 */

import { slurmAvailable, squeue } from "../../lib/pipeline/slurm/cli.ts";
import { SlurmLayout, type StageJobRecord } from "../../lib/pipeline/slurm/layout.ts";
import { cli, type CliResult, type Sandbox, spawnCli } from "../pipeline/helpers.ts";

/** True when `sinfo` answers (bring a cluster up with `bash tools/slurm/local-cluster.sh up`). */
export const SLURM: boolean = await slurmAvailable();

if (!SLURM) {
  console.warn(
    "tests/slurm: skipping the tests that need a Slurm cluster: `sinfo` is not available or no controller " +
      "answers (start the one-node test cluster with `bash tools/slurm/local-cluster.sh up`)",
  );
}

/** Environment of the Slurm CLI runs: quick polling (300 ms, backing off to 1.5 s), no GPU request. */
export const SLURM_ENV: Record<string, string> = {
  DITFLOW_SLURM_POLL_MS: "300",
  DITFLOW_SLURM_POLL_MAX_MS: "1500",
  DITFLOW_SLURM_GPUS: "0",
};

/** Runs the CLI with {@link SLURM_ENV}. */
export function slurmCli(sb: Sandbox, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return cli(sb, args, { ...SLURM_ENV, ...env });
}

/** Spawns the CLI with {@link SLURM_ENV}. */
export function spawnSlurmCli(
  sb: Sandbox,
  args: string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return spawnCli(sb, args, { ...SLURM_ENV, ...env });
}

/** Waits until `cond` resolves true, polling every 200 ms; fails after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The latest job record of a stage, if any. */
export function record(sb: Sandbox, pipeline: string, stage: string): StageJobRecord | undefined {
  return new SlurmLayout(sb.store).readRecord(pipeline, stage);
}

/** Slurm's state of a job (`undefined` when squeue does not know it). */
export async function jobState(id: string): Promise<string | undefined> {
  return (await squeue([id])).get(id)?.state;
}

/** Waits until the stage's latest job is RUNNING; returns its id. */
export async function runningJob(sb: Sandbox, pipeline: string, stage: string, ms = 60_000): Promise<string> {
  let id = "";
  await until(
    async () => {
      const r = record(sb, pipeline, stage);
      if (!r) return false;
      id = r.job;
      return (await jobState(r.job)) === "RUNNING";
    },
    ms,
    `a running job for ${stage}`,
  );
  return id;
}

/** Every file under `dir` with its bytes (relative path → content). */
export function readTree(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(rel ? `${dir}/${rel}` : dir)) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(p);
      else out.set(p, Deno.readFileSync(`${dir}/${p}`));
    }
  };
  walk("");
  return out;
}
