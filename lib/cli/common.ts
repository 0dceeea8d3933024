/**
 * Helpers shared by the CLI commands: option parsing errors, loading a pipeline and printing its
 * diagnostics, the cache location, output.
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { formatDiagnostics } from "../pipeline/diagnostics.ts";
import { type Loaded, loadPipeline } from "../pipeline/load.ts";
import { loadKindModule } from "../pipeline/registry.ts";
import { defaultCacheRoot, Store } from "../pipeline/store.ts";
import { EXIT } from "./commands.ts";

/** Thrown by commands to exit with a message and code. */
export class CliExit extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Writes to stdout. */
export function out(s: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(s.endsWith("\n") ? s : s + "\n"));
}

/** Writes to stderr. */
export function err(s: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(s.endsWith("\n") ? s : s + "\n"));
}

/** node:util parseArgs, turning its errors into exit code 2 with the usage. */
export function parse<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new CliExit(EXIT.invalid, `${(e as Error).message}\nusage: ditflow ${usage}`);
  }
}

/** The store at `--cache` or the default location. */
export function openStore(cache?: string): Store {
  return new Store(cache ?? defaultCacheRoot());
}

let extraLoaded = false;

/** Imports the modules named in `DITFLOW_STAGE_MODULES` (comma separated paths or URLs). */
export async function loadExtraKindModules(): Promise<void> {
  if (extraLoaded) return;
  extraLoaded = true;
  const list = Deno.env.get("DITFLOW_STAGE_MODULES");
  if (!list) return;
  for (const m of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    try {
      await loadKindModule(m);
    } catch (e) {
      throw new CliExit(EXIT.invalid, `DITFLOW_STAGE_MODULES: cannot load ${m}: ${(e as Error).message}`);
    }
  }
}

/** Loads a pipeline; on diagnostics prints them (one screen) and throws exit code 2. */
export async function loadOrExit(
  file: string | undefined,
  sets: string[],
  usage: string,
  flags: { "allow-large-sweep"?: boolean; "allow-outside-writes"?: boolean } = {},
): Promise<Loaded> {
  if (!file) throw new CliExit(EXIT.invalid, `missing pipeline FILE\nusage: ditflow ${usage}`);
  await loadExtraKindModules();
  const loaded = await loadPipeline(file, {
    sets,
    allowLargeSweep: !!flags["allow-large-sweep"],
    allowOutsideWrites: !!flags["allow-outside-writes"],
  });
  if (loaded.diagnostics.length > 0) {
    err(formatDiagnostics(loaded.diagnostics, { sources: loaded.sources, color: Deno.stderr.isTerminal() }));
    throw new CliExit(EXIT.invalid, "");
  }
  return loaded;
}

/** The planning flags every command that loads a pipeline accepts (see {@link loadOrExit}). */
export const PLAN_FLAGS = {
  "allow-large-sweep": { type: "boolean" },
  "allow-outside-writes": { type: "boolean" },
} as const;

/** Usage text of {@link PLAN_FLAGS}. */
export const PLAN_FLAGS_USAGE = "[--allow-large-sweep] [--allow-outside-writes]";

/** Parses a positive integer option. */
export function intOption(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new CliExit(EXIT.invalid, `--${name} must be a positive integer, not ${v}`);
  }
  return n;
}

/** A flag that may be given several times, as an array. */
export function many(v: string | boolean | (string | boolean)[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String).flatMap((s) => s.split(",")).filter(Boolean);
}
