/**
 * Loading a pipeline: read the file, parse YAML with positions, check the structure, import the
 * `plugins:` modules, apply the selected profile (`--set profile=NAME`) and the other `--set` overrides,
 * expand and validate into a {@link Plan}. Nothing touches
 * the cache here; every problem is returned as a diagnostic.
 * @module
 */

import { type Diagnostic, filePos } from "./diagnostics.ts";
import { COMMAND_LINE, parseOverrides } from "./expand.ts";
import { applyProfile, readPipelineDef } from "./pipeline_file.ts";
import { buildPlan, MAX_SWEEP_POINTS, type Plan } from "./plan.ts";
import { loadKindModule } from "./registry.ts";
import { parseYamlSource } from "./yaml_source.ts";

/** Options of {@link loadPipeline}. */
export interface LoadOptions {
  /** `--set key=value` overrides. */
  sets?: string[];
  /** Plan sweeps larger than {@link MAX_SWEEP_POINTS} points per stage (`--allow-large-sweep`). */
  allowLargeSweep?: boolean;
  /** Allow output paths (`publish:`) outside the project (`--allow-outside-writes`). */
  allowOutsideWrites?: boolean;
}

/** The result of loading: a plan when there were no diagnostics. */
export interface Loaded {
  plan?: Plan;
  diagnostics: Diagnostic[];
  /** Source texts by file name (for printing diagnostics). */
  sources: Map<string, string>;
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** Loads and validates a pipeline file. */
export async function loadPipeline(file: string, opts: LoadOptions = {}): Promise<Loaded> {
  const sources = new Map<string, string>();
  const diagnostics: Diagnostic[] = [];
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    const what = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.IsADirectory
      ? "is a directory, not a pipeline file"
      : (e as Error).message;
    diagnostics.push({ pos: filePos(file), message: `cannot read pipeline: ${what}` });
    return { diagnostics, sources };
  }
  sources.set(file, text);
  const src = parseYamlSource(text, file);
  if (src.diagnostics.length > 0) return { diagnostics: src.diagnostics, sources };
  const baseDir = dirname(absolute(file));
  const def = readPipelineDef(src.root, file, baseDir, diagnostics);
  for (const p of def.plugins) {
    const abs = p.path.startsWith("/") || /^[a-z]+:/.test(p.path) ? p.path : `${baseDir}/${p.path}`;
    if (!/^[a-z]+:/.test(abs)) {
      try {
        Deno.statSync(abs);
      } catch {
        diagnostics.push({
          pos: { ...p.pos, len: p.path.length },
          message: `plugin module not found: ${p.path}`,
        });
        continue;
      }
    }
    try {
      await loadKindModule(abs);
    } catch (e) {
      diagnostics.push({
        pos: { ...p.pos, len: p.path.length },
        message: `plugin module ${p.path} failed to load: ${(e as Error).message.split("\n")[0]}`,
      });
    }
  }
  const parsed = parseOverrides(opts.sets ?? [], diagnostics);
  if (parsed.source) sources.set(COMMAND_LINE, parsed.source);
  // `--set profile=NAME` (or the `default` profile) rewrites vars and stages before anything expands.
  const { def: effective, overrides, ok } = applyProfile(def, parsed.overrides, diagnostics);
  if (!ok) return { diagnostics, sources };
  const plan = buildPlan(effective, overrides, diagnostics, {
    maxPoints: opts.allowLargeSweep ? Infinity : MAX_SWEEP_POINTS,
    allowOutsideWrites: opts.allowOutsideWrites,
  });
  return { plan: diagnostics.length === 0 ? plan : undefined, diagnostics, sources };
}
