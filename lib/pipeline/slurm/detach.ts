/**
 * `run --executor slurm --detach`: submits every stage that must run at once, each depending on its
 * upstream jobs (`--dependency=afterok:...`, `--kill-on-invalid-dep=yes`, so a failure cancels what
 * depends on it), and returns; no process stays on the login node. A stage's key depends on its inputs'
 * digests, unknown at submission, so a detached job runs `exec-stage --detached DESCRIPTOR`: it loads the
 * pipeline, resolves its inputs and key when it starts (finding the result cached if another run got there
 * first), runs, and records its key in the pipeline's ref.
 * @module
 */

import { analysePlan, stageJob } from "../engine.ts";
import { CLI_MAIN } from "../executor.ts";
import { loadPipeline } from "../load.ts";
import { acquireLock } from "../lock.ts";
import type { Plan } from "../plan.ts";
import type { StageJob } from "../run_stage.ts";
import type { Store } from "../store.ts";
import { sbatch, scancel, squeue, TERMINAL_STATES } from "./cli.ts";
import { safeName, SlurmLayout, type StageJobRecord } from "./layout.ts";
import { batchScript, type GpuPolicy, gpuPolicyFromEnv, resourceArgs } from "./script.ts";

/** What a detached job resolves when it starts. */
export interface DetachedDescriptor {
  /** The pipeline file (absolute). */
  file: string;
  /** The `--set` overrides of the run (profile included). */
  sets: string[];
  /** The stage (expanded name). */
  stage: string;
  force: boolean;
  run: string;
}

/** Options of {@link submitDetached}. */
export interface DetachOptions {
  file: string;
  sets: string[];
  only?: Set<string>;
  force?: Set<string>;
  run: string;
  gpu?: GpuPolicy;
  deno?: string;
  cwd?: string;
}

/** One stage of a detached submission. */
export interface DetachedStage {
  stage: string;
  job: string;
  /** Job ids it waits for. */
  after: string[];
  /** True when a still queued or running job of an earlier run was reused instead of submitting. */
  adopted: boolean;
}

/** Submits the remaining DAG (see the module doc). Cancels what it submitted if a submission fails. */
export async function submitDetached(
  plan: Plan,
  store: Store,
  opts: DetachOptions,
): Promise<DetachedStage[]> {
  store.ensureDirs();
  const layout = new SlurmLayout(store);
  layout.ensure(opts.run, plan.name, true);
  const cache = store.root.startsWith("/") ? store.root : `${Deno.cwd()}/${store.root}`;
  const file = opts.file.startsWith("/") ? opts.file : `${Deno.cwd()}/${opts.file}`;
  const gpu = opts.gpu ?? gpuPolicyFromEnv();
  const reports = await analysePlan(plan, store, { only: opts.only, force: opts.force });
  const toRun = reports.filter((r) => r.action === "run");
  // Jobs of earlier runs that are still queued or running: reused, never submitted twice.
  const earlier = new Map<string, StageJobRecord>();
  for (const r of toRun) {
    const rec = layout.readRecord(plan.name, r.name);
    if (rec && !opts.force?.has(r.name) && (rec.key === null || r.key === null || rec.key === r.key)) {
      earlier.set(r.name, rec);
    }
  }
  const live = earlier.size ? await squeue([...earlier.values()].map((r) => r.job)) : new Map();
  const jobOf = new Map<string, string>();
  const out: DetachedStage[] = [];
  const mine: string[] = [];
  try {
    for (const r of toRun) {
      const prev = earlier.get(r.name);
      const q = prev ? live.get(prev.job) : undefined;
      const after = r.deps.map((d) => jobOf.get(d)).filter((x): x is string => !!x);
      if (prev && q && !TERMINAL_STATES.has(q.state)) {
        jobOf.set(r.name, prev.job);
        out.push({ stage: r.name, job: prev.job, after: [], adopted: true });
        continue;
      }
      const s = plan.byName.get(r.name)!;
      const desc: DetachedDescriptor = {
        file,
        sets: opts.sets,
        stage: r.name,
        force: opts.force?.has(r.name) ?? false,
        run: opts.run,
      };
      const descFile = layout.detachedFile(opts.run, r.name);
      Deno.writeTextFileSync(descFile, JSON.stringify(desc, null, 1));
      const log = layout.log(plan.name, r.name);
      const script = layout.script(opts.run, r.name, 1);
      Deno.writeTextFileSync(
        script,
        batchScript({
          jobName: `ditflow:${plan.name}:${r.name}`,
          log,
          resourceArgs: resourceArgs(s.resources, s.gpu, gpu),
          cwd: opts.cwd ?? Deno.cwd(),
          cache,
          deno: opts.deno ?? Deno.env.get("DITFLOW_SLURM_DENO") ?? Deno.execPath(),
          main: CLI_MAIN,
          execArgs: ["--detached", descFile],
          exitDir: layout.exitDir(),
          comment: `ditflow stage ${r.name} of ${plan.name}, detached run ${opts.run}`,
        }),
      );
      const depArgs = after.length
        ? [`--dependency=afterok:${after.join(":")}`, "--kill-on-invalid-dep=yes"]
        : [];
      const id = await sbatch(script, depArgs);
      mine.push(id);
      jobOf.set(r.name, id);
      layout.writeRecord({
        job: id,
        pipeline: plan.name,
        stage: r.name,
        key: null,
        run: opts.run,
        detached: true,
        attempt: 1,
        submitted: new Date().toISOString(),
        head: { host: Deno.hostname(), pid: Deno.pid },
        log,
        script,
      });
      out.push({ stage: r.name, job: id, after, adopted: false });
    }
  } catch (e) {
    await scancel(mine);
    throw new Error(`${(e as Error).message} (cancelled the ${mine.length} job(s) this run had submitted)`);
  }
  return out;
}

/**
 * In a detached job: loads the pipeline and builds the stage's job from the keys of its upstream stages,
 * which must be in the cache (their jobs succeeded: `afterok`). Records the key in the stage's job record.
 */
export async function resolveDetached(
  store: Store,
  desc: DetachedDescriptor,
): Promise<{ job: StageJob; plan: Plan }> {
  const loaded = await loadPipeline(desc.file, { sets: desc.sets });
  if (!loaded.plan) {
    const d = loaded.diagnostics[0];
    throw new Error(
      `pipeline ${desc.file} is invalid now: ${
        d ? `${d.pos.file}:${d.pos.line}:${d.pos.col}: ${d.message}` : "?"
      }`,
    );
  }
  const plan = loaded.plan;
  const s = plan.byName.get(desc.stage);
  if (!s) throw new Error(`pipeline ${desc.file} has no stage ${desc.stage} any more`);
  const reports = await analysePlan(plan, store, { only: new Set([desc.stage]) });
  const keys = new Map<string, string>();
  for (const r of reports) {
    if (r.name === desc.stage) continue;
    if (!r.key || r.action !== "cached") {
      throw new Error(
        `upstream stage ${r.name} is not in the cache (${r.reasons[0] ?? "its job did not succeed"})`,
      );
    }
    keys.set(r.name, r.key);
  }
  const job = await stageJob(plan, s, keys, store, desc.force);
  const layout = new SlurmLayout(store);
  const rec = layout.readRecord(plan.name, desc.stage);
  const me = Deno.env.get("SLURM_JOB_ID");
  if (rec && rec.job === me && rec.key === null) layout.writeRecord({ ...rec, key: job.key });
  return { job, plan };
}

/** Adds a stage's key to its pipeline's ref, serialised with the other jobs by a lock. */
export async function recordInRef(store: Store, plan: Plan, stage: string, key: string): Promise<void> {
  const lock = await acquireLock(`${store.root}/locks/ref.${safeName(plan.name)}.lock`);
  try {
    store.updateRef(plan.name, plan.file, { [stage]: key }, new Set(plan.stages.map((s) => s.name)));
  } finally {
    lock?.release();
  }
}
