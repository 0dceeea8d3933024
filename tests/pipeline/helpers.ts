/**
 * Test helpers: temporary caches and pipelines, in-process runs, and CLI subprocesses.
 * @module
 */

import "./kinds.ts";
import { analysePlan, clearEngineMemo, executePlan, type RunReport } from "../../lib/pipeline/engine.ts";
import { LocalExecutor } from "../../lib/pipeline/executor.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import type { Plan } from "../../lib/pipeline/plan.ts";
import { SilentReporter } from "../../lib/pipeline/progress.ts";
import { Store } from "../../lib/pipeline/store.ts";

/** Absolute path of the test kinds module. */
export const KINDS_MODULE: string = new URL("./kinds.ts", import.meta.url).pathname;
/** Absolute path of the CLI. */
export const CLI: string = new URL("../../lib/cli/main.ts", import.meta.url).pathname;
/** The fixtures directory. */
export const FIXTURES: string = new URL("../fixtures/pipelines", import.meta.url).pathname;

/** A temporary directory holding a cache and pipeline files. */
export class Sandbox {
  readonly dir = Deno.makeTempDirSync({ prefix: "ditflow-test-" });
  readonly cache = `${this.dir}/cache`;
  readonly store = new Store(this.cache);
  /** Writes a pipeline file and returns its path. */
  write(name: string, yaml: string): string {
    const p = `${this.dir}/${name}`;
    Deno.writeTextFileSync(p, yaml);
    return p;
  }
  [Symbol.dispose](): void {
    try {
      Deno.removeSync(this.dir, { recursive: true });
    } catch { /* ignore */ }
  }
}

/** Loads a pipeline, failing the test on diagnostics. */
export async function plan(file: string, sets: string[] = []): Promise<Plan> {
  const l = await loadPipeline(file, { sets });
  if (!l.plan) {
    throw new Error(
      `invalid: ${l.diagnostics.map((d) => `${d.pos.line}:${d.pos.col} ${d.message}`).join("; ")}`,
    );
  }
  return l.plan;
}

/** Options of {@link runIn}. */
export interface RunInOptions {
  sets?: string[];
  jobs?: number;
  gpus?: number;
  keepGoing?: boolean;
  force?: string[];
  only?: string[];
  signal?: AbortSignal;
}

/** Runs a pipeline in-process; returns the report and, for convenience, names by result. */
export async function runIn(sb: Sandbox, file: string, opts: RunInOptions = {}) {
  clearEngineMemo();
  const p = await plan(file, opts.sets);
  const sel = (names?: string[]) => {
    if (!names) return undefined;
    const out = new Set<string>();
    for (const n of names) for (const s of p.groups.get(n) ?? [n]) out.add(s);
    return out;
  };
  const report: RunReport = await executePlan(p, {
    store: sb.store,
    executor: new LocalExecutor(sb.store),
    reporter: new SilentReporter(),
    jobs: opts.jobs ?? 4,
    gpus: opts.gpus ?? 1,
    keepGoing: opts.keepGoing ?? false,
    force: sel(opts.force),
    only: sel(opts.only),
    signal: opts.signal ?? new AbortController().signal,
  });
  const by = (r: string) => report.stages.filter((s) => s.result === r).map((s) => s.name);
  return {
    report,
    plan: p,
    ran: by("ran"),
    cached: by("cached"),
    failed: by("failed"),
    skipped: by("skipped"),
  };
}

/** The status analysis of a pipeline. */
export async function statusOf(sb: Sandbox, file: string, sets: string[] = []) {
  clearEngineMemo();
  const p = await plan(file, sets);
  const reports = await analysePlan(p, sb.store);
  return Object.fromEntries(reports.map((r) => [r.name, r]));
}

/** Result of a CLI subprocess. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Environment for CLI subprocesses: the test kinds, a cache, plain output. */
export function cliEnv(sb: Sandbox, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DITFLOW_STAGE_MODULES: KINDS_MODULE,
    DITFLOW_CACHE: sb.cache,
    DITFLOW_PLAIN: "1",
    NO_COLOR: "1",
    ...extra,
  };
}

/** Runs the CLI to completion. */
export async function cli(sb: Sandbox, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: cliEnv(sb, env),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Spawns the CLI (for kill tests). */
export function spawnCli(sb: Sandbox, args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: cliEnv(sb, env),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Waits until `cond` holds (polling), failing after `ms`. */
export async function waitFor(cond: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every file path under a directory (relative), or [] when it does not exist. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(rel ? `${dir}/${rel}` : dir)];
    } catch {
      return;
    }
    for (const e of entries) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(p);
      if (e.isDirectory) walk(p);
    }
  };
  walk("");
  return out.sort();
}
