/**
 * Loading a pipeline: read the file, parse YAML with positions, check the structure, import the
 * `plugins:` modules, apply the selected profile (`--set profile=NAME`) and the other `--set` overrides,
 * expand and validate into a {@link Plan}. Nothing touches
 * the cache here; every problem is returned as a diagnostic.
 * @module
 */

import { type Diagnostic, filePos } from "./diagnostics.ts";
import { COMMAND_LINE, parseOverrides } from "./expand.ts";
import { applyProfile, type PipelineDef, readPipelineDef, type StageDef } from "./pipeline_file.ts";
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

/** Joins a path relative to a directory and normalises `.` and `..` (keeps a relative result relative). */
function joinPath(dir: string, rel: string): string {
  if (rel.startsWith("/")) return rel;
  const parts: string[] = [];
  for (const p of `${dir}/${rel}`.split("/")) {
    if (p === "." || (p === "" && parts.length > 0)) continue;
    if (p === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
    else parts.push(p);
  }
  return parts.join("/") || ".";
}

/**
 * Reads the `include:`d files of `def` (recursively), returning their stages in order, each marked with
 * its file and its file's directory (`path` parameters resolve there). Errors point into the included
 * file (or at the `include:` entry that names a missing file or a cycle).
 */
async function loadIncludes(
  def: PipelineDef,
  diagnostics: Diagnostic[],
  sources: Map<string, string>,
  chain: string[],
): Promise<StageDef[]> {
  const out: StageDef[] = [];
  const shownDir = def.file.includes("/") ? def.file.slice(0, def.file.lastIndexOf("/")) : ".";
  for (const inc of def.includes) {
    const shown = joinPath(shownDir, inc.path);
    const abs = joinPath(def.baseDir, inc.path);
    if (chain.includes(abs)) {
      diagnostics.push({
        pos: inc.pos,
        message: `include cycle: ${[...chain, abs].map((f) => f.replace(/^.*\//, "")).join(" → ")}`,
      });
      continue;
    }
    let text: string;
    try {
      text = await Deno.readTextFile(abs);
    } catch (e) {
      diagnostics.push({
        pos: inc.pos,
        message: `cannot read included file ${shown}: ${
          e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
        }`,
      });
      continue;
    }
    sources.set(shown, text);
    const src = parseYamlSource(text, shown);
    if (src.diagnostics.length > 0) {
      diagnostics.push(...src.diagnostics);
      continue;
    }
    const incDef = readPipelineDef(src.root, shown, dirname(abs), diagnostics, { included: true });
    out.push(...await loadIncludes(incDef, diagnostics, sources, [...chain, abs]));
    for (const s of incDef.stages) out.push({ ...s, baseDir: incDef.baseDir, includedFrom: shown });
  }
  return out;
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
  // `include:`: shared stage definitions, placed before the file's own stages. A stage name may be
  // defined once (a profile can still replace or remove an included stage).
  const included = await loadIncludes(def, diagnostics, sources, [absolute(file)]);
  if (included.length > 0) {
    const where = new Map<string, StageDef>();
    for (const s of [...included, ...def.stages]) {
      const prev = where.get(s.name);
      if (prev) {
        const p = prev.namePos;
        diagnostics.push({
          pos: s.namePos,
          message: `stage \`${s.name}\` is defined twice: here and at ${p.file}:${p.line}:${p.col}${
            prev.includedFrom ? " (included)" : ""
          }`,
          hint: "rename one of them, or replace the included stage with a profile",
        });
      } else where.set(s.name, s);
    }
    def.stages = [...where.values()];
  }
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
