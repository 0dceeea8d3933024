/**
 * The structure of a pipeline file (top-level keys, stage keys), checked on the located YAML tree.
 * Produces a {@link PipelineDef}: raw, still uninterpolated stage definitions with positions. See
 * `docs/pipeline-format.md` for the format.
 * @module
 */

import { closest, type Diagnostic, filePos, type Pos, suggestion } from "./diagnostics.ts";
import type { Override } from "./expand.ts";
import { describeNode, type YMap, type YNode, type YScalar } from "./yaml_source.ts";

/** One reference to an upstream output as written, e.g. `train[model=DiT-S/2].checkpoint`. */
export interface RefText {
  text: string;
  pos: Pos;
}

/** An input binding as written in a stage's `inputs:`. */
export interface InputDef {
  name: string;
  namePos: Pos;
  refs: RefText[];
  /** True when written as a YAML list. */
  isList: boolean;
}

/** A stage as written in the file. */
export interface StageDef {
  name: string;
  namePos: Pos;
  node: YMap;
  uses?: string;
  usesPos?: Pos;
  with?: YMap;
  inputs: InputDef[];
  matrix?: YMap;
  seed?: YNode;
  description?: string;
  /** `resources:` (cluster executors: CPUs, memory, time, GPUs, ...), validated in the plan. */
  resources?: YMap;
  /** Stage keys that were misspelled (their absence is not reported again). */
  typos: string[];
  /** Set when an input reference was invalid (already reported). */
  broken?: boolean;
  /** Directory `path` parameters resolve against, when not the pipeline file's (an `include:`d file). */
  baseDir?: string;
  /** The `include:`d file that defines the stage (as displayed), when not the pipeline file itself. */
  includedFrom?: string;
}

/** A stage entry of a profile: a whole stage definition, or `null` (removes the stage). */
export interface ProfileStage {
  name: string;
  namePos: Pos;
  /** The replacement (or added) stage, or null when the profile removes the stage. */
  def: StageDef | null;
}

/** One entry of `profiles:`: variables merged over the top-level ones, and whole-stage replacements. */
export interface ProfileDef {
  name: string;
  namePos: Pos;
  description?: string;
  vars: { name: string; pos: Pos; value: YNode }[];
  stages: ProfileStage[];
  /** `executor:` (which executor `run` uses under this profile unless `--executor` says otherwise). */
  executor?: { name: string; pos: Pos };
}

/** A pipeline file after the structural check. */
export interface PipelineDef {
  file: string;
  /** Directory of the file (absolute): `plugins:` and `path` parameters are relative to it. */
  baseDir: string;
  name: string;
  description?: string;
  plugins: { path: string; pos: Pos }[];
  vars: { name: string; pos: Pos; value: YNode }[];
  defaultSeed?: YNode;
  /** `defaults.with.<kind>`: parameter defaults per kind. */
  defaultsWith: { kind: string; pos: Pos; map: YMap }[];
  /** `defaults.resources.<kind>`: cluster resources per kind. */
  defaultsResources: { kind: string; pos: Pos; map: YMap }[];
  stages: StageDef[];
  /** `include:`: files with shared stage definitions, relative to this file (resolved by `load.ts`). */
  includes: { path: string; pos: Pos }[];
  /** The declared `profiles:` (empty when there are none). */
  profiles: ProfileDef[];
  /** Position of the `profiles:` key, when the file has one. */
  profilesPos?: Pos;
  /** The selected profile (set by {@link applyProfile}); undefined when none applies. */
  profile?: string;
  /** Stages removed by the selected profile (name → where the removal is written). */
  removed?: Map<string, Pos>;
  /** The selected profile's `executor:`, when it sets one. */
  executor?: { name: string; pos: Pos };
}

const TOP_KEYS = ["name", "description", "include", "plugins", "vars", "defaults", "profiles", "stages"];
/** The keys of an `include:`d file: shared stage definitions only. */
const INCLUDED_KEYS = ["description", "include", "stages"];
const PROFILE_KEYS = ["description", "vars", "stages", "executor"];
/** The executors a profile's `executor:` may name. */
export const EXECUTOR_NAMES = ["local", "subprocess", "slurm"];
/** The `--set` key that selects a profile, and the name of the profile that applies without one. */
export const PROFILE_KEY = "profile";
/** The profile that applies when none is selected (when the pipeline declares it). */
export const DEFAULT_PROFILE = "default";
const STAGE_KEYS = ["uses", "with", "inputs", "matrix", "seed", "description", "resources"];
const DEFAULT_KEYS = ["seed", "with", "resources"];
/** Stage and variable names: letters, digits, `_` and `-`, starting with a letter or `_`. */
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function expectMap(node: YNode, what: string, diags: Diagnostic[]): YMap | undefined {
  if (node.type === "map") return node;
  diags.push({ pos: node.pos, message: `${what} must be a mapping, not ${describeNode(node)}` });
  return undefined;
}

function expectString(node: YNode, what: string, diags: Diagnostic[]): string | undefined {
  if (node.type === "scalar" && typeof node.value === "string" && node.value !== "") return node.value;
  diags.push({ pos: node.pos, message: `${what} must be a non-empty string, not ${describeNode(node)}` });
  return undefined;
}

function unknownKey(
  key: string,
  pos: Pos,
  allowed: string[],
  where: string,
  diags: Diagnostic[],
): string | undefined {
  diags.push({
    pos: { ...pos, len: key.length },
    message: `unknown key \`${key}\` in ${where}`,
    hint: suggestion(key, allowed, "allowed keys"),
  });
  return closest(key, allowed);
}

/**
 * Checks the structure of a parsed pipeline file. With `included`, the file is one named in another
 * pipeline's `include:`: it may hold only `description`, `include` and `stages` (no name).
 */
export function readPipelineDef(
  root: YNode | undefined,
  file: string,
  baseDir: string,
  diags: Diagnostic[],
  opts: { included?: boolean } = {},
): PipelineDef {
  const def: PipelineDef = {
    file,
    baseDir,
    name: "",
    includes: [],
    plugins: [],
    vars: [],
    defaultsWith: [],
    defaultsResources: [],
    stages: [],
    profiles: [],
  };
  if (!root) {
    diags.push({
      pos: filePos(file),
      message: `the ${opts.included ? "included" : "pipeline"} file is empty`,
    });
    return def;
  }
  const top = expectMap(root, opts.included ? "an included file" : "a pipeline file", diags);
  if (!top) return def;
  let sawStages = false;
  let sawName = false;
  for (const e of top.entries) {
    if (opts.included && !INCLUDED_KEYS.includes(e.key)) {
      diags.push({
        pos: { ...e.keyPos, len: e.key.length },
        message: `\`${e.key}\` is not allowed in an included file (it holds shared stage definitions)`,
        hint: `allowed keys: ${
          INCLUDED_KEYS.map((k) => `\`${k}\``).join(", ")
        }; \`${e.key}\` belongs in the pipeline file`,
      });
      if (e.key === "stages") sawStages = true;
      continue;
    }
    switch (e.key) {
      case "include": {
        const items = e.value.type === "seq" ? e.value.items : [e.value];
        for (const it of items) {
          const p = expectString(it, "an `include` entry (a file with shared stage definitions)", diags);
          if (p !== undefined) def.includes.push({ path: p, pos: { ...it.pos, len: p.length } });
        }
        break;
      }
      case "name": {
        const n = expectString(e.value, "`name`", diags);
        if (n !== undefined) {
          sawName = true;
          if (!/^[A-Za-z0-9_.-]+$/.test(n)) {
            diags.push({
              pos: e.value.pos,
              message: `pipeline name "${n}" may only use letters, digits, _ . -`,
            });
          } else def.name = n;
        }
        break;
      }
      case "description":
        def.description = expectString(e.value, "`description`", diags);
        break;
      case "plugins": {
        const items = e.value.type === "seq" ? e.value.items : [e.value];
        for (const it of items) {
          const p = expectString(it, "a plugin", diags);
          if (p !== undefined) def.plugins.push({ path: p, pos: it.pos });
        }
        break;
      }
      case "vars":
        def.vars.push(...readVars(e.value, "`vars`", diags));
        break;
      case "profiles":
        def.profilesPos = { ...e.keyPos, len: e.key.length };
        def.profiles = readProfiles(e.value, diags);
        break;
      case "defaults": {
        const m = expectMap(e.value, "`defaults`", diags);
        for (const d of m?.entries ?? []) {
          if (d.key === "seed") def.defaultSeed = d.value;
          else if (d.key === "with") {
            const w = expectMap(d.value, "`defaults.with`", diags);
            for (const k of w?.entries ?? []) {
              const km = expectMap(k.value, `\`defaults.with.${k.key}\``, diags);
              if (km) def.defaultsWith.push({ kind: k.key, pos: k.keyPos, map: km });
            }
          } else if (d.key === "resources") {
            const r = expectMap(d.value, "`defaults.resources`", diags);
            for (const k of r?.entries ?? []) {
              const km = expectMap(k.value, `\`defaults.resources.${k.key}\``, diags);
              if (km) def.defaultsResources.push({ kind: k.key, pos: k.keyPos, map: km });
            }
          } else unknownKey(d.key, d.keyPos, DEFAULT_KEYS, "`defaults`", diags);
        }
        break;
      }
      case "stages": {
        sawStages = true;
        const m = expectMap(e.value, "`stages`", diags);
        if (m && m.entries.length === 0) diags.push({ pos: e.value.pos, message: "`stages` is empty" });
        for (const s of m?.entries ?? []) {
          const st = readStage(s.key, s.keyPos, s.value, diags);
          if (st) def.stages.push(st);
        }
        break;
      }
      default:
        if (unknownKey(e.key, e.keyPos, TOP_KEYS, "the pipeline", diags) === "stages") sawStages = true;
        else if (closest(e.key, TOP_KEYS) === "name") sawName = true;
    }
  }
  if (!sawName && !opts.included) {
    diags.push({ pos: top.pos, message: "missing `name:` (the pipeline's name)" });
  }
  if (!sawStages) diags.push({ pos: top.pos, message: "missing `stages:`" });
  return def;
}

function readVars(node: YNode, what: string, diags: Diagnostic[]): PipelineDef["vars"] {
  const out: PipelineDef["vars"] = [];
  if (node.type === "scalar" && node.value === null) return out;
  const m = expectMap(node, what, diags);
  for (const v of m?.entries ?? []) {
    if (!NAME_RE.test(v.key)) {
      diags.push({ pos: v.keyPos, message: `invalid variable name \`${v.key}\`` });
    } else out.push({ name: v.key, pos: v.keyPos, value: v.value });
  }
  return out;
}

function readProfiles(node: YNode, diags: Diagnostic[]): ProfileDef[] {
  const out: ProfileDef[] = [];
  if (node.type === "scalar" && node.value === null) return out;
  const m = expectMap(node, "`profiles`", diags);
  for (const p of m?.entries ?? []) {
    const namePos = { ...p.keyPos, len: p.key.length };
    if (!NAME_RE.test(p.key)) {
      diags.push({
        pos: namePos,
        message: `invalid profile name \`${p.key}\`: use letters, digits, \`_\` and \`-\``,
      });
      continue;
    }
    const prof: ProfileDef = { name: p.key, namePos, vars: [], stages: [] };
    out.push(prof);
    if (p.value.type === "scalar" && p.value.value === null) continue; // `default:` alone: no changes
    if (p.value.type !== "map") {
      diags.push({
        pos: p.value.pos,
        message: `profile \`${p.key}\` must be a mapping (with \`vars:\` and/or \`stages:\`), not ${
          describeNode(p.value)
        }`,
        hint: `e.g. \`${p.key}: { vars: { steps: 1000 } }\``,
      });
      continue;
    }
    for (const e of p.value.entries) {
      switch (e.key) {
        case "description":
          prof.description = expectString(e.value, "`description`", diags);
          break;
        case "vars":
          prof.vars = readVars(e.value, `\`profiles.${p.key}.vars\``, diags);
          break;
        case "executor": {
          const x = expectString(e.value, "`executor`", diags);
          if (x === undefined) break;
          if (!EXECUTOR_NAMES.includes(x)) {
            diags.push({
              pos: { ...e.value.pos, len: x.length },
              message: `unknown executor \`${x}\` in profile \`${p.key}\``,
              hint: suggestion(x, EXECUTOR_NAMES, "executors"),
            });
          } else prof.executor = { name: x, pos: { ...e.value.pos, len: x.length } };
          break;
        }
        case "stages": {
          if (e.value.type === "scalar" && e.value.value === null) break;
          const sm = expectMap(e.value, `\`profiles.${p.key}.stages\``, diags);
          for (const s of sm?.entries ?? []) {
            const sPos = { ...s.keyPos, len: s.key.length };
            if (s.value.type === "scalar" && s.value.value === null) {
              if (!NAME_RE.test(s.key)) {
                diags.push({ pos: sPos, message: `invalid stage name \`${s.key}\`` });
              } else prof.stages.push({ name: s.key, namePos: sPos, def: null });
              continue;
            }
            if (s.value.type !== "map") {
              diags.push({
                pos: s.value.pos,
                message:
                  `stage \`${s.key}\` of profile \`${p.key}\` must be a whole stage definition (a mapping ` +
                  `with \`uses:\`) or null to remove the stage, not ${describeNode(s.value)}`,
              });
              continue;
            }
            const st = readStage(s.key, s.keyPos, s.value, diags);
            if (st) prof.stages.push({ name: s.key, namePos: sPos, def: st });
          }
          break;
        }
        default:
          unknownKey(e.key, e.keyPos, PROFILE_KEYS, `profile \`${p.key}\``, diags);
      }
    }
  }
  return out;
}

/**
 * Applies the profile selected with `--set profile=NAME` (else the one named `default`, when declared):
 * its `vars` replace or add top-level variables (in place, so later variables see them), its `stages`
 * replace, add, or (`null`) remove whole stage definitions. Returns the effective definition and the
 * overrides left for the plan (the `profile` selection removed), and `ok: false` when the selection
 * itself is invalid (then nothing else should be checked: the errors would only cascade). Problems go to
 * `diags`.
 */
export function applyProfile(
  def: PipelineDef,
  overrides: Override[],
  diags: Diagnostic[],
): { def: PipelineDef; overrides: Override[]; ok: boolean } {
  const isSel = (o: Override) => o.path.length === 1 && o.path[0] === PROFILE_KEY;
  const sels = overrides.filter(isSel);
  const rest = overrides.filter((o) => !isSel(o));
  const declared = def.profiles.map((p) => p.name);
  let name: string | undefined;
  const sel = sels.at(-1);
  if (sel) {
    const v = sel.value;
    const where = v.pos;
    if (v.type !== "scalar" || v.value === null || v.value === "" || typeof v.value === "boolean") {
      diags.push({
        pos: where,
        message: `\`--set ${sel.text}\`: a profile is selected by name, not ${describeNode(v)}`,
        hint: declared.length
          ? `declared profiles: ${declared.map((n) => `\`${n}\``).join(", ")}`
          : undefined,
      });
      return { def, overrides: rest, ok: false };
    }
    name = String(v.value);
    if (!def.profilesPos) {
      diags.push({
        pos: where,
        message: `\`--set ${sel.text}\`: pipeline \`${
          def.name || def.file
        }\` (${def.file}) declares no \`profiles:\``,
        hint: "profiles are declared in the pipeline file under a top-level `profiles:` key " +
          "(`profiles: { NAME: { vars: {...}, stages: {...} } }`); or drop `--set profile=...`",
      });
      return { def, overrides: rest, ok: false };
    }
    if (!declared.includes(name) && name !== DEFAULT_PROFILE) {
      const at = `${def.profilesPos.file}:${def.profilesPos.line}:${def.profilesPos.col}`;
      const close = closest(name, declared);
      diags.push({
        pos: where,
        message: `unknown profile \`${name}\` (\`profiles:\` at ${at} declares ${
          declared.length ? declared.map((n) => `\`${n}\``).join(", ") : "none"
        })`,
        hint: close ? `did you mean \`${close}\`?` : suggestion(name, declared, "declared profiles"),
      });
      return { def, overrides: rest, ok: false };
    }
  } else if (declared.includes(DEFAULT_PROFILE)) name = DEFAULT_PROFILE;
  const prof = def.profiles.find((p) => p.name === name);
  const out: PipelineDef = { ...def, profile: name, vars: [...def.vars], stages: [...def.stages] };
  if (!prof) return { def: out, overrides: rest, ok: true };
  out.executor = prof.executor;
  for (const v of prof.vars) {
    const i = out.vars.findIndex((x) => x.name === v.name);
    if (i >= 0) out.vars[i] = v;
    else out.vars.push(v);
  }
  const removed = new Map<string, Pos>();
  for (const s of prof.stages) {
    const i = out.stages.findIndex((x) => x.name === s.name);
    if (s.def === null) {
      if (i < 0) {
        diags.push({
          pos: s.namePos,
          message: `profile \`${prof.name}\` removes stage \`${s.name}\`, which the pipeline does not define`,
          hint: suggestion(s.name, def.stages.map((x) => x.name), "stages"),
        });
        continue;
      }
      out.stages.splice(i, 1);
      removed.set(s.name, s.namePos);
    } else if (i >= 0) out.stages[i] = s.def;
    else out.stages.push(s.def);
  }
  out.removed = removed;
  if (out.stages.length === 0 && def.stages.length > 0) {
    diags.push({ pos: prof.namePos, message: `profile \`${prof.name}\` removes every stage` });
  }
  return { def: out, overrides: rest, ok: true };
}

function readStage(name: string, namePos: Pos, node: YNode, diags: Diagnostic[]): StageDef | undefined {
  if (!NAME_RE.test(name)) {
    diags.push({
      pos: { ...namePos, len: name.length },
      message: `invalid stage name \`${name}\`: use letters, digits, \`_\` and \`-\``,
    });
    return undefined;
  }
  const m = expectMap(node, `stage \`${name}\``, diags);
  if (!m) return undefined;
  const st: StageDef = { name, namePos: { ...namePos, len: name.length }, node: m, inputs: [], typos: [] };
  for (const e of m.entries) {
    switch (e.key) {
      case "uses": {
        const u = expectString(e.value, "`uses`", diags);
        if (u !== undefined) {
          st.uses = u;
          st.usesPos = { ...e.value.pos, len: u.length };
        }
        break;
      }
      case "with":
        if (e.value.type === "scalar" && e.value.value === null) break;
        st.with = expectMap(e.value, `\`${name}.with\``, diags);
        break;
      case "inputs": {
        if (e.value.type === "scalar" && e.value.value === null) break;
        const im = expectMap(e.value, `\`${name}.inputs\``, diags);
        for (const i of im?.entries ?? []) {
          const refs: RefText[] = [];
          const isList = i.value.type === "seq";
          const items = i.value.type === "seq" ? i.value.items : [i.value];
          for (const it of items) {
            if (it.type === "scalar" && typeof it.value === "string") {
              refs.push({ text: it.value, pos: { ...it.pos, len: it.value.length } });
            } else {
              diags.push({
                pos: it.pos,
                message: `input \`${i.key}\` must reference an upstream output as \`stage.output\`, not ${
                  describeNode(it)
                }`,
              });
            }
          }
          st.inputs.push({ name: i.key, namePos: i.keyPos, refs, isList });
        }
        break;
      }
      case "matrix":
        st.matrix = expectMap(e.value, `\`${name}.matrix\``, diags);
        break;
      case "seed":
        st.seed = e.value;
        break;
      case "description":
        st.description = expectString(e.value, "`description`", diags);
        break;
      case "resources":
        if (e.value.type === "scalar" && e.value.value === null) break;
        st.resources = expectMap(e.value, `\`${name}.resources\``, diags);
        break;
      default: {
        const typo = unknownKey(e.key, e.keyPos, STAGE_KEYS, `stage \`${name}\``, diags);
        if (typo) st.typos.push(typo);
      }
    }
  }
  if (st.uses === undefined && !m.entries.some((e) => e.key === "uses") && !st.typos.includes("uses")) {
    diags.push({ pos: st.namePos, message: `stage \`${name}\` has no \`uses:\` (which stage kind to run)` });
  }
  return st;
}

/** A scalar's value, for convenience. */
export function scalarValue(node: YNode): YScalar["value"] | undefined {
  return node.type === "scalar" ? node.value : undefined;
}
