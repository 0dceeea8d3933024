/**
 * The batch script of a stage job: `#SBATCH` lines from the stage's `resources:` (and a GPU for `gpu: true`
 * kinds), then `ditflow exec-stage` in the same checkout against the shared cache, then the exit-status file
 * (written with a rename, so the head never reads half of it). `--no-requeue`: ditflow decides about
 * retries itself (bounded, resuming from the stage's checkpoint).
 * @module
 */

import type { Resources } from "../resources.ts";

/** How a `gpu: true` stage without `resources.gpus` asks for a GPU. */
export interface GpuPolicy {
  /** The `--gpus` value for `gpu: true` kinds (e.g. `1`, `a100:1`); null asks for none. */
  request: string | null;
}

/**
 * The GPU policy from `DITFLOW_SLURM_GPUS`: unset → `--gpus=1`; `0` or `none` → no GPU request (clusters or
 * test nodes without GPUs); an option (starting with `-`, e.g. `--gres=gpu:1` for clusters that only know
 * gres) is used as it is; anything else is passed to `--gpus` (e.g. `a100:1`).
 */
export function gpuPolicyFromEnv(value = Deno.env.get("DITFLOW_SLURM_GPUS")): GpuPolicy {
  if (value === undefined || value.trim() === "") return { request: "1" };
  const v = value.trim();
  if (v === "0" || v.toLowerCase() === "none") return { request: null };
  return { request: v };
}

/** The sbatch options for a stage's resources (without job name, output or dependencies). */
export function resourceArgs(resources: Resources | undefined, gpu: boolean, policy: GpuPolicy): string[] {
  const r = resources ?? {};
  const args: string[] = [];
  if (r.cpus !== undefined) args.push(`--cpus-per-task=${r.cpus}`);
  if (r.mem !== undefined) args.push(`--mem=${r.mem}`);
  if (r.time !== undefined) args.push(`--time=${r.time}`);
  if (r.gpus !== undefined) {
    if (r.gpus > 0) args.push(`--gpus=${r.gpus}`);
  } else if (gpu && policy.request !== null) {
    args.push(policy.request.startsWith("-") ? policy.request : `--gpus=${policy.request}`);
  }
  if (r.partition !== undefined) args.push(`--partition=${r.partition}`);
  if (r.account !== undefined) args.push(`--account=${r.account}`);
  if (r.qos !== undefined) args.push(`--qos=${r.qos}`);
  if (r.constraint !== undefined) args.push(`--constraint=${r.constraint}`);
  args.push(...(r.sbatch_args ?? []));
  return args;
}

/** Quotes a string for bash (single quotes). */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** What goes into a stage's batch script. */
export interface ScriptSpec {
  /** Slurm job name. */
  jobName: string;
  /** The stable log (`--output`, appended across attempts). */
  log: string;
  /** sbatch options from the resources (see {@link resourceArgs}). */
  resourceArgs: string[];
  /** Working directory of the job (the checkout, visible on the compute nodes). */
  cwd: string;
  /** The shared cache. */
  cache: string;
  /** The Deno executable (visible on the compute nodes). */
  deno: string;
  /** `lib/cli/main.ts` of the checkout. */
  main: string;
  /** Arguments after `exec-stage`. */
  execArgs: string[];
  /** The directory where the job writes `<jobid>` with its exit code. */
  exitDir: string;
  /** A comment line (what the job is). */
  comment: string;
}

/** The text of a batch script. */
export function batchScript(s: ScriptSpec): string {
  const directive = (a: string) => {
    if (/[\n\r]/.test(a)) throw new Error(`sbatch argument with a line break: ${JSON.stringify(a)}`);
    return `#SBATCH ${a}`;
  };
  const lines = [
    "#!/bin/bash",
    directive(`--job-name=${s.jobName.replace(/\s+/g, "_")}`),
    directive(`--output=${s.log}`),
    directive("--open-mode=append"),
    directive("--no-requeue"),
    directive("--export=ALL"),
    ...s.resourceArgs.map(directive),
    `# ${s.comment.replace(/[\n\r]/g, " ")}`,
    `cd ${shQuote(s.cwd)} || exit 1`,
    `export DITFLOW_CACHE=${shQuote(s.cache)}`,
    `echo "[ditflow] job $SLURM_JOB_ID on $(hostname) started $(date -u +%Y-%m-%dT%H:%M:%SZ)"`,
    [
      shQuote(s.deno),
      "run",
      "-A",
      shQuote(s.main),
      "exec-stage",
      "--cache",
      shQuote(s.cache),
      "--outcome-dir",
      shQuote(s.exitDir),
      ...s.execArgs.map(shQuote),
    ]
      .join(" "),
    "rc=$?",
    `exit_dir=${shQuote(s.exitDir)}`,
    `printf '%s\\n' "$rc" > "$exit_dir/$SLURM_JOB_ID.tmp" && mv -f "$exit_dir/$SLURM_JOB_ID.tmp" "$exit_dir/$SLURM_JOB_ID"`,
    `echo "[ditflow] job $SLURM_JOB_ID exited with $rc at $(date -u +%Y-%m-%dT%H:%M:%SZ)"`,
    `exit "$rc"`,
    "",
  ];
  return lines.join("\n");
}
