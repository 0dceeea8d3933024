/**
 * The structure of a pipeline file (top-level keys, stage keys), checked on the located YAML tree.
 * Produces a {@link PipelineDef}: raw, still uninterpolated stage definitions with positions. See
 * `docs/pipeline-format.md` for the format.
 * @module
 */

import { closest, type Diagnostic, filePos, type Pos, suggestion } from "./diagnostics.ts";
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
  /** Stage keys that were misspelled (their absence is not reported again). */
  typos: string[];
  /** Set when an input reference was invalid (already reported). */
  broken?: boolean;
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
  stages: StageDef[];
}

const TOP_KEYS = ["name", "description", "plugins", "vars", "defaults", "stages"];
const STAGE_KEYS = ["uses", "with", "inputs", "matrix", "seed", "description"];
const DEFAULT_KEYS = ["seed", "with"];
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

/** Checks the structure of a parsed pipeline file. */
export function readPipelineDef(root: YNode | undefined, file: string, baseDir: string, diags: Diagnostic[]) {
  const def: PipelineDef = { file, baseDir, name: "", plugins: [], vars: [], defaultsWith: [], stages: [] };
  if (!root) {
    diags.push({ pos: filePos(file), message: "the pipeline file is empty" });
    return def;
  }
  const top = expectMap(root, "a pipeline file", diags);
  if (!top) return def;
  let sawStages = false;
  let sawName = false;
  for (const e of top.entries) {
    switch (e.key) {
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
      case "vars": {
        const m = expectMap(e.value, "`vars`", diags);
        for (const v of m?.entries ?? []) {
          if (!NAME_RE.test(v.key)) {
            diags.push({ pos: v.keyPos, message: `invalid variable name \`${v.key}\`` });
          } else def.vars.push({ name: v.key, pos: v.keyPos, value: v.value });
        }
        break;
      }
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
  if (!sawName) diags.push({ pos: top.pos, message: "missing `name:` (the pipeline's name)" });
  if (!sawStages) diags.push({ pos: top.pos, message: "missing `stages:`" });
  return def;
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
