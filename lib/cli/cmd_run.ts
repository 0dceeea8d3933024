/**
 * `ditflow run FILE`, `ditflow status FILE` and `ditflow dag FILE`.
 * @module
 */

import type { Diagnostic } from "../pipeline/diagnostics.ts";
import { formatDiagnostics } from "../pipeline/diagnostics.ts";
import { analysePlan, executePlan, resolveStageNames, type StagePlanReport } from "../pipeline/engine.ts";
import { type Executor, LocalExecutor, SubprocessExecutor } from "../pipeline/executor.ts";
import { newRunId, SlurmExecutor } from "../pipeline/executor_slurm.ts";
import { slurmAvailable } from "../pipeline/slurm/cli.ts";
import { submitDetached } from "../pipeline/slurm/detach.ts";
import { describeStageState, type SlurmStageState, slurmStates } from "../pipeline/slurm/status.ts";
import type { Plan } from "../pipeline/plan.ts";
import { defaultReporter, PlainReporter, summaryTable, writeStderr } from "../pipeline/progress.ts";
import {
  CliExit,
  err,
  intOption,
  loadOrExit,
  many,
  openStore,
  out,
  parse,
  PLAN_FLAGS,
  PLAN_FLAGS_USAGE,
} from "./common.ts";
import { EXIT, registerCommand } from "./commands.ts";

const RUN_USAGE =
  `run FILE [--set k=v]... [--set profile=NAME] [--dry-run] [--force STAGE]... [--only STAGE]... [--jobs N] [--gpus N] [--keep-going] [--json] [--cache DIR] [--executor local|subprocess|slurm] [--detach] ${PLAN_FLAGS_USAGE}`;

function stageSets(plan: Plan, only: string[], force: string[]) {
  const diags: Diagnostic[] = [];
  const onlySet = only.length ? resolveStageNames(plan, only, "--only", diags) : undefined;
  const forceSet = resolveStageNames(plan, force, "--force", diags);
  if (diags.length) {
    err(formatDiagnostics(diags, { color: Deno.stderr.isTerminal() }));
    throw new CliExit(EXIT.invalid, "");
  }
  return { only: onlySet, force: forceSet };
}

function planJson(plan: Plan, reports: StagePlanReport[], slurm?: Map<string, SlurmStageState>) {
  return {
    pipeline: plan.name,
    file: plan.file,
    profile: plan.profile ?? null,
    stages: reports.map((r) => ({
      name: r.name,
      base: r.base,
      kind: r.kind,
      action: r.action,
      reasons: r.reasons,
      key: r.key,
      deps: r.deps,
      gpu: r.gpu,
      point: r.point,
      ...(slurm?.has(r.name) ? { slurm: slurm.get(r.name) } : {}),
    })),
  };
}

function statusText(plan: Plan, reports: StagePlanReport[], slurm?: Map<string, SlurmStageState>): string {
  const toRun = reports.filter((r) => r.action === "run").length;
  const prof = plan.profile ? `, profile ${plan.profile}` : "";
  const lines = [
    `pipeline ${plan.name} (${plan.file}${prof}): ${toRun} to run, ${reports.length - toRun} cached`,
  ];
  const w = Math.min(48, Math.max(...reports.map((r) => r.name.length)));
  for (const r of reports) {
    const sl = slurm?.get(r.name);
    if (sl) {
      lines.push(`  ${sl.status.padEnd(6)}  ${r.name.padEnd(w)}  ${describeStageState(sl)}`);
      continue;
    }
    const head = `  ${r.action === "run" ? "run   " : "cached"}  ${r.name.padEnd(w)}`;
    if (r.reasons.length === 0) lines.push(head.trimEnd());
    else {
      lines.push(`${head}  ${r.reasons[0]}`);
      for (const more of r.reasons.slice(1)) lines.push(`${" ".repeat(head.length)}  ${more}`);
    }
  }
  return lines.join("\n");
}

registerCommand({
  name: "run",
  summary: "run a pipeline (only what is not cached)",
  usage: RUN_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      set: { type: "string", multiple: true },
      "dry-run": { type: "boolean", short: "n" },
      force: { type: "string", multiple: true },
      only: { type: "string", multiple: true },
      jobs: { type: "string", short: "j" },
      gpus: { type: "string" },
      "keep-going": { type: "boolean", short: "k" },
      json: { type: "boolean" },
      cache: { type: "string" },
      executor: { type: "string" },
      ...PLAN_FLAGS,
      detach: { type: "boolean" },
    }, RUN_USAGE);
    if (positionals.length > 1) {
      throw new CliExit(EXIT.invalid, `run takes one FILE\nusage: ditflow ${RUN_USAGE}`);
    }
    const { plan } = await loadOrExit(positionals[0], values.set ?? [], RUN_USAGE, values);
    // `--executor` beats the profile's `executor:`.
    const executorName = values.executor ?? plan!.executor ?? "local";
    const onSlurm = executorName === "slurm";
    // On Slurm the cluster queues the work: jobs and GPUs are limited by the scheduler, not the head.
    const jobs = intOption(values.jobs, "jobs", onSlurm ? 10_000 : navigator.hardwareConcurrency || 1);
    const gpus = intOption(values.gpus, "gpus", onSlurm ? 10_000 : 1);
    const { only, force } = stageSets(plan!, many(values.only), many(values.force));
    const store = openStore(values.cache);
    if (values["dry-run"]) {
      const reports = await analysePlan(plan!, store, { only, force });
      if (values.json) out(JSON.stringify(planJson(plan!, reports), null, 2));
      else out(statusText(plan!, reports));
      return EXIT.ok;
    }
    if (values.detach && !onSlurm) throw new CliExit(EXIT.invalid, "--detach needs --executor slurm");
    if (onSlurm && !(await slurmAvailable())) {
      throw new CliExit(
        EXIT.invalid,
        "--executor slurm: `sinfo` does not answer (no Slurm client on this machine, or no controller); " +
          "run on a login node of the cluster (see docs/slurm.md)",
      );
    }
    if (values.detach) {
      const run = newRunId();
      let submitted;
      try {
        submitted = await submitDetached(plan!, store, {
          file: positionals[0],
          sets: values.set ?? [],
          only,
          force,
          run,
        });
      } catch (e) {
        throw new CliExit(EXIT.stageFailed, `--detach: ${(e as Error).message}`);
      }
      if (values.json) out(JSON.stringify({ pipeline: plan!.name, run, stages: submitted }, null, 2));
      else {
        for (const s of submitted) {
          out(
            `${s.adopted ? "already queued" : "submitted"}  job ${s.job}  ${s.stage}${
              s.after.length ? `  (after ${s.after.join(", ")})` : ""
            }`,
          );
        }
        out(
          submitted.length
            ? `${submitted.length} stage(s) on Slurm (run ${run}); follow with \`ditflow status ${
              positionals[0]
            }\`, stop with \`ditflow cancel ${positionals[0]}\``
            : "nothing to run: every stage is cached",
        );
      }
      return EXIT.ok;
    }
    let executor: Executor;
    if (executorName === "local") executor = new LocalExecutor(store);
    else if (executorName === "subprocess") executor = new SubprocessExecutor(store);
    else if (executorName === "slurm") executor = new SlurmExecutor(store);
    else throw new CliExit(EXIT.invalid, `unknown --executor ${executorName} (local, subprocess, slurm)`);
    const ac = new AbortController();
    let interrupts = 0;
    const onSignal = () => {
      interrupts++;
      if (interrupts > 1) {
        if (executor instanceof SlurmExecutor) {
          const ids = executor.cancelSubmittedSync();
          if (ids.length) writeStderr(`\ncancelled Slurm job(s) ${ids.join(", ")}\n`);
        }
        Deno.exit(EXIT.interrupted);
      }
      writeStderr("\ninterrupted: stopping running stages (press Ctrl-C again to exit at once)\n");
      ac.abort();
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
    const reporter = values.json ? new PlainReporter((s) => writeStderr(s + "\n")) : defaultReporter();
    let report;
    try {
      report = await executePlan(plan!, {
        store,
        executor,
        reporter,
        jobs,
        gpus,
        keepGoing: !!values["keep-going"],
        only,
        force,
        signal: ac.signal,
      });
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
      await executor.close?.();
    }
    const headline = new Map(plan!.stages.map((s) => [s.name, s.kind.headline]));
    if (values.json) out(JSON.stringify(report, null, 2));
    else {
      out(summaryTable(report.stages.map((s) => ({ ...s, headline: headline.get(s.name) }))));
      const ran = report.stages.filter((s) => s.result === "ran").length;
      const cached = report.stages.filter((s) => s.result === "cached").length;
      out(
        `${ran} ran, ${cached} cached, ${report.stages.length - ran - cached} other, in ${
          (report.ms / 1000).toFixed(2)
        }s`,
      );
    }
    for (const s of report.stages.filter((s) => s.result === "failed")) {
      err(`\nstage ${s.name} failed: ${s.error}`);
      if (s.job) {
        err(`  ${s.job.executor} job ${s.job.id}: ${s.job.state}${s.job.reason ? ` (${s.job.reason})` : ""}`);
      }
      for (const l of s.logTail ?? []) err(`  | ${l}`);
      if (s.logPath) err(`  log: ${s.logPath}`);
    }
    if (report.exitCode === EXIT.interrupted) {
      const fin = report.stages.filter((s) => s.result === "ran" || s.result === "cached").map((s) => s.name);
      err(
        `interrupted; finished and cached: ${
          fin.length ? fin.join(", ") : "nothing"
        }. Run again to continue.`,
      );
    }
    return report.exitCode;
  },
});

const STATUS_USAGE =
  `status FILE [--set k=v]... [--set profile=NAME] [--only STAGE]... [--force STAGE]... [--json] [--cache DIR] ${PLAN_FLAGS_USAGE}`;

registerCommand({
  name: "status",
  summary: "say per stage what would run and why, field by field",
  usage: STATUS_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      set: { type: "string", multiple: true },
      only: { type: "string", multiple: true },
      force: { type: "string", multiple: true },
      json: { type: "boolean" },
      cache: { type: "string" },
      ...PLAN_FLAGS,
    }, STATUS_USAGE);
    const { plan } = await loadOrExit(positionals[0], values.set ?? [], STATUS_USAGE, values);
    const { only, force } = stageSets(plan!, many(values.only), many(values.force));
    const store = openStore(values.cache);
    const reports = await analysePlan(plan!, store, { only, force });
    let slurm: Map<string, SlurmStageState> | undefined;
    try {
      slurm = await slurmStates(store, plan!.name, reports);
    } catch (e) {
      err(`(Slurm jobs unknown: ${(e as Error).message})`);
    }
    if (values.json) out(JSON.stringify(planJson(plan!, reports, slurm), null, 2));
    else out(statusText(plan!, reports, slurm));
    return EXIT.ok;
  },
});

const DAG_USAGE = `dag FILE [--set k=v]... [--set profile=NAME] [--format ascii|mermaid] ${PLAN_FLAGS_USAGE}`;

/** Renders the plan as mermaid `flowchart TD`. */
export function dagMermaid(plan: Plan): string {
  const id = new Map(plan.stages.map((s, i) => [s.name, `s${i}`]));
  const esc = (s: string) => s.replace(/"/g, "#quot;");
  const lines = ["flowchart TD"];
  for (const s of plan.stages) lines.push(`  ${id.get(s.name)}["${esc(s.name)}<br/><i>${s.kind.name}</i>"]`);
  for (const s of plan.stages) {
    for (const inp of s.inputs) {
      for (const r of inp.refs) lines.push(`  ${id.get(r.stage)} -->|${inp.name}| ${id.get(s.name)}`);
    }
  }
  return lines.join("\n");
}

/** Lists stage names, collapsing to `N × base[…]` per base name when the list is long. */
function stageList(names: string[]): string {
  const plain = names.join(", ");
  if (names.length <= 3 && plain.length <= 50) return plain;
  const byBase = new Map<string, number>();
  for (const n of names) byBase.set(n.replace(/\[.*/, ""), (byBase.get(n.replace(/\[.*/, "")) ?? 0) + 1);
  return [...byBase].map(([b, c]) => (c > 1 ? `${c} × ${b}[…]` : b)).join(", ");
}

/**
 * Renders the plan as ASCII, one stage per line in run order, with its edges spelled out: the stages that
 * use its outputs (USED BY) and, for each input, the upstream outputs it reads (INPUTS). No indentation:
 * a stage's position says nothing about what it depends on; only its edges do.
 */
export function dagAscii(plan: Plan): string {
  const usedBy = new Map<string, string[]>(plan.stages.map((s) => [s.name, []]));
  for (const s of plan.stages) {
    for (const d of new Set(s.inputs.flatMap((i) => i.refs.map((r) => r.stage)))) usedBy.get(d)?.push(s.name);
  }
  const rows = plan.stages.map((s) => {
    const ins = s.inputs.map((i) =>
      `${i.name} ← ${
        i.refs.length > 3 || (i.refs.length > 1 && i.refs.map((r) => r.stage).join(", ").length > 50)
          ? `${i.refs.length} × ${i.refs[0].stage.replace(/\[.*/, "")}[…].${i.refs[0].output}`
          : i.refs.map((r) => `${r.stage}.${r.output}`).join(", ")
      }`
    );
    return [
      s.name,
      s.kind.name + (s.gpu ? " (gpu)" : ""),
      usedBy.get(s.name)!.length ? stageList(usedBy.get(s.name)!) : "-",
      ins.length ? ins.join("; ") : "- (source)",
    ];
  });
  const table = [["STAGE", "KIND", "USED BY", "INPUTS (input ← upstream.output)"], ...rows];
  const w = [0, 1, 2].map((i) => Math.max(...table.map((r) => r[i].length)));
  return table.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]) : c)).join("  ").trimEnd()).join("\n");
}

registerCommand({
  name: "dag",
  summary: "print the expanded stage graph (ascii or mermaid)",
  usage: DAG_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      set: { type: "string", multiple: true },
      format: { type: "string", default: "ascii" },
      ...PLAN_FLAGS,
    }, DAG_USAGE);
    const { plan } = await loadOrExit(positionals[0], values.set ?? [], DAG_USAGE, values);
    if (values.format === "mermaid") out(dagMermaid(plan!));
    else if (values.format === "ascii") out(dagAscii(plan!));
    else throw new CliExit(EXIT.invalid, `unknown --format ${values.format} (ascii, mermaid)`);
    return EXIT.ok;
  },
});
