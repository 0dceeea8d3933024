/**
 * Commands on the store: `ditflow show STAGE`, `ditflow verify [STAGE|--all]`, `ditflow gc`,
 * `ditflow exec-stage JOBFILE`.
 * @module
 */

import { closest } from "../pipeline/diagnostics.ts";
import type { Plan } from "../pipeline/plan.ts";
import { runStage, type StageJob } from "../pipeline/run_stage.ts";
import { type ArtifactMeta, type ArtifactProblem, formatProblem, type Store } from "../pipeline/store.ts";
import { type DetachedDescriptor, recordInRef, resolveDetached } from "../pipeline/slurm/detach.ts";
import { SlurmLayout } from "../pipeline/slurm/layout.ts";
import { CliExit, err, loadExtraKindModules, openStore, out, parse } from "./common.ts";
import { EXIT, registerCommand } from "./commands.ts";

const SHOW_USAGE = "show STAGE|KEY [--pipeline NAME] [--json] [--cache DIR]";

function findMeta(store: Store, what: string, pipeline?: string): ArtifactMeta[] {
  const refs = store.readRefs().filter((r) => !pipeline || r.pipeline === pipeline || r.file === pipeline);
  const found: ArtifactMeta[] = [];
  for (const r of refs) {
    for (const [name, key] of Object.entries(r.stages)) {
      if (name === what || name.replace(/\[.*$/, "") === what) {
        const m = store.readMeta(key);
        if (m) found.push(m);
      }
    }
  }
  if (found.length === 0 && /^[0-9a-f]{4,64}$/.test(what)) {
    for (const k of store.findKeys(what)) {
      const m = store.readMeta(k);
      if (m) found.push(m);
    }
  }
  return found;
}

/** `show`'s lines about a stage's latest Slurm job: id, exit code, and the stable log path. */
function slurmLines(store: Store, pipeline: string, stage: string): string[] {
  const layout = new SlurmLayout(store);
  const rec = layout.readRecord(pipeline, stage);
  if (!rec) return [];
  const code = layout.exitCode(rec.job);
  return [
    `  slurm     job ${rec.job}${rec.detached ? " (detached)" : ""}, submitted ${rec.submitted}${
      code === undefined ? "" : `, exit code ${code}`
    }`,
    `  slurm log ${rec.log}`,
  ];
}

/** Slurm job records of stages called `what` (expanded or file name), for stages without an artifact. */
function slurmRecordsNamed(store: Store, what: string, pipeline?: string) {
  const layout = new SlurmLayout(store);
  const found = [];
  try {
    for (const p of Deno.readDirSync(`${layout.root}/stages`)) {
      for (const f of Deno.readDirSync(`${layout.root}/stages/${p.name}`)) {
        if (!f.name.endsWith(".json")) continue;
        try {
          const rec = JSON.parse(Deno.readTextFileSync(`${layout.root}/stages/${p.name}/${f.name}`));
          if (pipeline && rec.pipeline !== pipeline) continue;
          if (rec.stage === what || rec.stage.replace(/\[.*$/, "") === what) found.push(rec);
        } catch { /* being written */ }
      }
    }
  } catch { /* no Slurm jobs */ }
  return found as { stage: string; pipeline: string }[];
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

registerCommand({
  name: "show",
  summary: "show a stage's artifact: paths, params, inputs, outputs, metrics, log",
  usage: SHOW_USAGE,
  // deno-lint-ignore require-await
  async run(args) {
    const { values, positionals } = parse(args, {
      pipeline: { type: "string", short: "p" },
      json: { type: "boolean" },
      cache: { type: "string" },
    }, SHOW_USAGE);
    const what = positionals[0];
    if (!what) throw new CliExit(EXIT.invalid, `missing STAGE\nusage: ditflow ${SHOW_USAGE}`);
    const store = openStore(values.cache);
    const metas = findMeta(store, what, values.pipeline);
    if (metas.length === 0) {
      const jobs = slurmRecordsNamed(store, what, values.pipeline);
      if (jobs.length) {
        for (const j of jobs) {
          out(
            [
              `${j.stage}  (pipeline ${j.pipeline}): no artifact yet`,
              ...slurmLines(store, j.pipeline, j.stage),
            ].join("\n"),
          );
        }
        return EXIT.ok;
      }
      const names = store.readRefs().flatMap((r) => Object.keys(r.stages));
      const c = closest(what, names);
      throw new CliExit(
        EXIT.stageFailed,
        `no artifact for ${what} in ${store.root}${
          c ? `; did you mean \`${c}\`?` : " (run the pipeline first)"
        }`,
      );
    }
    if (values.json) {
      out(JSON.stringify(metas.map((m) => ({ ...m, path: store.objectDir(m.key) })), null, 2));
      return EXIT.ok;
    }
    for (const m of metas) {
      const dir = store.objectDir(m.key);
      const lines = [
        `${m.name}  (kind ${m.kind}, pipeline ${m.pipeline})`,
        `  key       ${m.key}`,
        `  path      ${dir}`,
        `  log       ${dir}/log.txt`,
        ...slurmLines(store, m.pipeline, m.name),
        `  ran       ${m.timings.started} on ${m.host}, ${(m.timings.ms / 1000).toFixed(2)}s`,
        `  seed      ${m.components.seed}`,
        `  params    ${JSON.stringify(m.components.params)}`,
      ];
      for (const [n, arts] of Object.entries(m.inputs)) {
        lines.push(
          `  input     ${n} ← ${
            arts.map((a) => `${a.stage}.${a.output} (${a.key.slice(0, 12)})`).join(", ")
          }`,
        );
      }
      for (const [n, o] of Object.entries(m.outputs)) {
        lines.push(`  output    ${n}: ${dir}/out/${n}  ${o.files.length} files, ${fmtBytes(o.bytes)}`);
        for (const f of o.files.slice(0, 8)) lines.push(`              ${f.path}  ${fmtBytes(f.size)}`);
        if (o.files.length > 8) lines.push(`              ... ${o.files.length - 8} more`);
      }
      if (Object.keys(m.metrics).length) lines.push(`  metrics   ${JSON.stringify(m.metrics)}`);
      if (m.adapter) lines.push(`  adapter   ${JSON.stringify(m.adapter).slice(0, 200)}`);
      out(lines.join("\n"));
    }
    return EXIT.ok;
  },
});

const VERIFY_USAGE = "verify STAGE|KEY|--all [--pipeline NAME] [--json] [--cache DIR]";

registerCommand({
  name: "verify",
  summary: "re-hash stored artifacts against their recorded digests (exit 1 on a mismatch)",
  usage: VERIFY_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      all: { type: "boolean" },
      pipeline: { type: "string", short: "p" },
      json: { type: "boolean" },
      cache: { type: "string" },
    }, VERIFY_USAGE);
    const what = positionals[0];
    if (!what && !values.all) {
      throw new CliExit(EXIT.invalid, `name a STAGE (or KEY), or pass --all\nusage: ditflow ${VERIFY_USAGE}`);
    }
    const store = openStore(values.cache);
    let metas: ArtifactMeta[];
    if (values.all) {
      metas = store.listKeys().map((k) => store.readMeta(k)).filter((m): m is ArtifactMeta => !!m);
    } else {
      metas = findMeta(store, what!, values.pipeline);
      if (metas.length === 0) {
        const names = store.readRefs().flatMap((r) => Object.keys(r.stages));
        const c = closest(what!, names);
        throw new CliExit(
          EXIT.stageFailed,
          `no artifact for ${what} in ${store.root}${
            c ? `; did you mean \`${c}\`?` : " (run the pipeline first)"
          }`,
        );
      }
    }
    const results: { name: string; key: string; problems: ArtifactProblem[] }[] = [];
    for (const m of metas) results.push({ name: m.name, key: m.key, problems: await store.verify(m.key) });
    const bad = results.filter((r) => r.problems.length > 0);
    if (values.json) out(JSON.stringify({ checked: results.length, results }, null, 2));
    else {
      for (const r of results) {
        if (r.problems.length === 0) out(`ok        ${r.name}  (${r.key.slice(0, 12)})`);
        else {
          out(`MODIFIED  ${r.name}  (${r.key.slice(0, 12)})`);
          for (const p of r.problems) out(`  ${formatProblem(p)}`);
        }
      }
      out(`${results.length} artifact(s) checked, ${bad.length} modified`);
    }
    if (bad.length > 0) {
      err(
        `stored artifacts were modified: ${bad.map((b) => b.name).join(", ")}; ` +
          "`run` recomputes a modified artifact when its stage is reached (or rerun with --force STAGE)",
      );
      return EXIT.stageFailed;
    }
    return EXIT.ok;
  },
});

const GC_USAGE = "gc [--apply] [--json] [--cache DIR]";

function dirSize(path: string): number {
  let total = 0;
  try {
    for (const e of Deno.readDirSync(path)) {
      const p = `${path}/${e.name}`;
      if (e.isDirectory) total += dirSize(p);
      else if (e.isFile) total += Deno.statSync(p).size;
    }
  } catch { /* gone */ }
  return total;
}

/** What `gc` keeps and removes. */
export interface GcPlan {
  keep: string[];
  remove: { key: string; name: string; bytes: number }[];
  checkpoints: string[];
  bytes: number;
}

/**
 * Computes what gc would remove: every object not reachable from a pipeline ref (the last successful
 * run of each stage of each pipeline) through input links, and checkpoints of finished keys.
 */
export function planGc(store: Store): GcPlan {
  const keep = new Set<string>();
  const visit = (k: string) => {
    if (keep.has(k)) return;
    keep.add(k);
    const m = store.readMeta(k);
    for (const arts of Object.values(m?.inputs ?? {})) for (const a of arts) visit(a.key);
  };
  for (const r of store.readRefs()) for (const k of Object.values(r.stages)) visit(k);
  const remove: GcPlan["remove"] = [];
  let bytes = 0;
  for (const k of store.listKeys()) {
    if (keep.has(k)) continue;
    const b = dirSize(store.objectDir(k));
    remove.push({ key: k, name: store.readMeta(k)?.name ?? "?", bytes: b });
    bytes += b;
  }
  const checkpoints: string[] = [];
  try {
    for (const e of Deno.readDirSync(`${store.root}/checkpoints`)) {
      if (store.has(e.name)) checkpoints.push(e.name);
    }
  } catch { /* none */ }
  return { keep: [...keep].filter((k) => store.has(k)), remove, checkpoints, bytes };
}

registerCommand({
  name: "gc",
  summary: "remove artifacts no pipeline references (dry run unless --apply)",
  usage: GC_USAGE,
  // deno-lint-ignore require-await
  async run(args) {
    const { values } = parse(args, {
      apply: { type: "boolean" },
      json: { type: "boolean" },
      cache: { type: "string" },
    }, GC_USAGE);
    const store = openStore(values.cache);
    const plan = planGc(store);
    if (values.apply) {
      store.ensureDirs();
      for (const r of plan.remove) {
        // Move aside atomically first, so that readers never see a partial object.
        const trash = store.makeTmp(`gc-${r.key}`);
        try {
          Deno.renameSync(store.objectDir(r.key), `${trash}/obj`);
        } catch { /* gone */ }
        Deno.removeSync(trash, { recursive: true });
      }
      for (const k of plan.checkpoints) Deno.removeSync(store.checkpointDir(k), { recursive: true });
      const swept = store.sweepStaleTmp();
      if (values.json) out(JSON.stringify({ applied: true, ...plan, swept_tmp: swept }, null, 2));
      else out(`removed ${plan.remove.length} artifacts (${fmtBytes(plan.bytes)}), kept ${plan.keep.length}`);
      return EXIT.ok;
    }
    if (values.json) out(JSON.stringify({ applied: false, ...plan }, null, 2));
    else {
      for (const r of plan.remove) out(`would remove ${r.key.slice(0, 12)}  ${r.name}  ${fmtBytes(r.bytes)}`);
      out(
        `${plan.remove.length} artifacts (${
          fmtBytes(plan.bytes)
        }) would be removed, ${plan.keep.length} kept ` +
          `(referenced by pipeline refs). Run \`ditflow gc --apply\` to remove them.`,
      );
    }
    return EXIT.ok;
  },
});

const EXEC_USAGE =
  "exec-stage JOBFILE [--cache DIR] [--jsonl] [--outcome-dir DIR] | exec-stage --detached DESCRIPTOR [--cache DIR] [--outcome-dir DIR]";

function readJobFile(store: Store, given: string | undefined): StageJob {
  let file = given;
  if (!file) throw new CliExit(EXIT.invalid, `missing JOBFILE\nusage: ditflow ${EXEC_USAGE}`);
  if (/^[0-9a-f]{64}$/.test(file)) {
    // A key: the job file the engine (or a cluster executor) wrote for it.
    const key = file;
    const found = [...(function* () {
      try {
        yield* Deno.readDirSync(`${store.root}/jobs`);
      } catch { /* none */ }
    })()].map((e) => e.name).find((n) => n.startsWith(key) && n.endsWith(".json"));
    if (!found) throw new CliExit(EXIT.invalid, `no job file for key ${key} in ${store.root}/jobs`);
    file = `${store.root}/jobs/${found}`;
  }
  return JSON.parse(Deno.readTextFileSync(file)) as StageJob;
}

registerCommand({
  name: "exec-stage",
  summary: "run one stage from a job file (what cluster executors submit)",
  usage: EXEC_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      cache: { type: "string" },
      jsonl: { type: "boolean" },
      detached: { type: "string" },
      "outcome-dir": { type: "string" },
    }, EXEC_USAGE);
    const store = openStore(values.cache);
    await loadExtraKindModules();
    let detachedPlan: Plan | undefined;
    let job: StageJob;
    if (values.detached) {
      // A detached Slurm job: resolve inputs and key now that the upstream jobs have finished.
      const desc = JSON.parse(Deno.readTextFileSync(values.detached)) as DetachedDescriptor;
      try {
        const r = await resolveDetached(store, desc);
        job = r.job;
        detachedPlan = r.plan;
      } catch (e) {
        err(`${desc.stage}: failed: ${(e as Error).message}`);
        return EXIT.stageFailed;
      }
      err(`${job.name}: key ${job.key}`);
    } else job = readJobFile(store, positionals[0]);
    const ac = new AbortController();

    const onSignal = () => ac.abort();
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
    const emit = (o: unknown) => values.jsonl && out(JSON.stringify(o));
    const outcome = await runStage(job, {
      store,
      signal: ac.signal,
      onProgress: (u) => emit({ progress: u }),
      onLog: (l) => values.jsonl ? emit({ log: l }) : err(l),
      onWait: (h) => emit({ wait: h ?? {} }),
    });
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    if (values.jsonl) emit({ outcome });
    else {
      out(`${job.name}: ${outcome.status}`);
      if (outcome.status === "failed") {
        err(`${job.name}: failed: ${outcome.error.split("\n")[0]}`);
        err(`${job.name}: log of the failed attempt: ${outcome.logPath}`);
      }
    }
    if (detachedPlan && (outcome.status === "ran" || outcome.status === "cached")) {
      await recordInRef(store, detachedPlan, job.name, job.key);
    }
    // In a Slurm job: say whether this job produced the artifact or found it made by another process.
    const slurmJob = Deno.env.get("SLURM_JOB_ID");
    if (values["outcome-dir"] && slurmJob) {
      const path = `${values["outcome-dir"]}/${slurmJob}.outcome.json`;
      const by = outcome.status === "cached" ? outcome.by : undefined;
      try {
        Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify({ status: outcome.status, by, key: job.key }));
        Deno.renameSync(`${path}.tmp`, path);
      } catch { /* the exit status still says enough */ }
    }
    return outcome.status === "ran" || outcome.status === "cached"
      ? EXIT.ok
      : outcome.status === "aborted"
      ? EXIT.interrupted
      : EXIT.stageFailed;
  },
});
