/**
 * From a checked pipeline definition to a plan: the concrete stages (matrix points expanded, joined with
 * their upstream points, parameters validated and canonicalised, seeds resolved), their dependencies, and
 * a topological order. Every problem is collected as a diagnostic; a plan with diagnostics must not run.
 *
 * Matrix semantics (see docs/pipeline-format.md):
 * - a stage's own `matrix:` gives its points;
 * - a single input `stage.out` that references a matrix stage *expands* the referencing stage along the
 *   upstream's axes (one point per upstream point); axes with the same name are joined (must agree);
 * - an input declared `many` by its kind *fans in*: it gets every upstream point compatible with the
 *   stage's own point (all of them when the stage has no matrix);
 * - `stage[axis=value,...].out` selects upstream points, and the selected axes are consumed (the referencing
 *   stage does not expand along them: `compare` can take `fid[steps=0]` and `fid[steps=600]`);
 *   `stage[*].out` makes a fan-in explicit.
 * @module
 */

import { parse as parseYaml } from "yaml";
import { type Diagnostic, type Pos, suggestion } from "./diagnostics.ts";
import {
  formatValue,
  interpolate,
  matrixPoints,
  type Override,
  type Point,
  pointName,
  type Scope,
  setPath,
  varyingAxes,
} from "./expand.ts";
import { DEFAULT_PROFILE, type PipelineDef, PROFILE_KEY, type StageDef } from "./pipeline_file.ts";
import { getKind, listKinds } from "./registry.ts";
import { checkFields, type ParamSchema } from "./schema.ts";
import type { AnyStageKind, ArtifactInfo, InputSpec, UpstreamInfo, ValidateContext } from "./stage.ts";
import { checkOutsideWrite } from "./project.ts";
import { checkResources, mergeResourceMaps, RESOURCE_KEYS, type Resources } from "./resources.ts";
import { describeNode, type Scalar, type YMap, type YNode } from "./yaml_source.ts";

/** One upstream output an input is bound to. */
export interface InputRef {
  /** Expanded name of the upstream stage. */
  stage: string;
  output: string;
}

/** An input of a planned stage. */
export interface PlannedInput {
  name: string;
  many: boolean;
  refs: InputRef[];
}

/** A concrete stage: one point of one stage definition. */
export interface PlannedStage {
  /** Expanded name, e.g. `train[model=DiT-S/2]`. */
  name: string;
  /** The stage's name in the file, e.g. `train`. */
  base: string;
  /** Matrix point (own and inherited axes). */
  point: Point;
  kind: AnyStageKind;
  /** Canonical parameters (validated, defaults filled in). */
  params: Record<string, unknown>;
  seed: number;
  inputs: PlannedInput[];
  /** Names of the upstream stages, deduplicated. */
  deps: string[];
  gpu: boolean;
  /** Where the stage is defined. */
  pos: Pos;
  /** Absolute paths of `path` parameters (their content digests enter the key). */
  paths: string[];
  /** Where each parameter's value is written (parameters left at their default are absent). */
  paramPos?: Record<string, Pos>;
  /** Where each input's first reference is written. */
  inputPos?: Record<string, Pos>;
  /** Cluster resources (`defaults.resources.<kind>` merged with the stage's `resources:`); not in the key. */
  resources: Resources;
}

/** Limits and permissions of {@link buildPlan}. */
export interface PlanOptions {
  /** At most this many points per stage (default {@link MAX_SWEEP_POINTS}; `Infinity` lifts it). */
  maxPoints?: number;
  /** Allow `writes` parameters (e.g. `publish:`) that resolve outside the project. */
  allowOutsideWrites?: boolean;
}

/** The default sweep limit: more points per stage than this needs `--allow-large-sweep`. */
export const MAX_SWEEP_POINTS = 10_000;

/** A validated, expanded pipeline. */
export interface Plan {
  name: string;
  file: string;
  baseDir: string;
  /** Stages in topological order (stable: file order where the graph allows). */
  stages: PlannedStage[];
  byName: Map<string, PlannedStage>;
  /** Stage names of the file → the names of their points. */
  groups: Map<string, string[]>;
  vars: Record<string, unknown>;
  /** The selected profile (`--set profile=NAME`, else `default` when declared); undefined when none. */
  profile?: string;
  /** The executor the selected profile names (`executor:`), when it names one. */
  executor?: string;
}

interface ParsedRef {
  stage: string;
  selector: "*" | Point | null;
  output: string;
  pos: Pos;
  text: string;
}

const REF_RE = /^([A-Za-z_][A-Za-z0-9_-]*)(?:\[([^\]]*)\])?\.([A-Za-z_][A-Za-z0-9_-]*)$/;

function parseRef(text: string, pos: Pos, diags: Diagnostic[]): ParsedRef | undefined {
  const m = REF_RE.exec(text.trim());
  if (!m) {
    diags.push({
      pos,
      message: `\`${text}\` is not a reference to an upstream output`,
      hint: "write `stage.output`, `stage[axis=value].output` or `stage[*].output`",
    });
    return undefined;
  }
  let selector: ParsedRef["selector"] = null;
  if (m[2] !== undefined) {
    if (m[2].trim() === "*") selector = "*";
    else {
      selector = {};
      for (const part of m[2].split(",")) {
        const eq = part.indexOf("=");
        if (eq <= 0) {
          diags.push({
            pos,
            message: `bad selector \`[${m[2]}]\` in \`${text}\``,
            hint: "write `[axis=value,...]`",
          });
          return undefined;
        }
        let v: unknown;
        try {
          v = parseYaml(part.slice(eq + 1).trim());
        } catch {
          v = part.slice(eq + 1).trim();
        }
        selector[part.slice(0, eq).trim()] = (v !== null && typeof v === "object" ? String(v) : v) as Scalar;
      }
    }
  }
  return { stage: m[1], selector, output: m[3], pos, text };
}

function compatible(a: Point, b: Point): boolean {
  for (const k of Object.keys(a)) {
    if (k in b && formatValue(a[k]) !== formatValue(b[k])) return false;
  }
  return true;
}

/** A stage definition while it is planned: its kind, its inputs' references, then its points. */
interface DefState {
  def: StageDef;
  kind?: AnyStageKind;
  refs: Map<string, ParsedRef[]>;
  points?: DefPoint[];
}

/** One point of a stage definition: its expanded name, matrix point, and the upstream points each input binds. */
interface DefPoint {
  name: string;
  point: Point;
  binds: Map<string, string[]>;
}

/** What the phases of {@link buildPlan} share: the definition, the resolved variables, the diagnostics. */
interface PlanContext {
  def: PipelineDef;
  diags: Diagnostic[];
  /** Variables after `--set` overrides (a variable may use earlier ones). */
  vars: Map<string, YNode>;
  /** The selected profile (for `${{ profile }}`). */
  profile: string;
  /** The stage names of the file. */
  stageNames: string[];
  maxPoints: number;
}

/**
 * Expands and validates a pipeline definition into a plan; problems go to `diags`. The phases, in order:
 * variables and `--set` overrides ({@link resolveVars}, {@link splitOverrides}), kind defaults
 * ({@link kindDefaultParams}, {@link kindDefaultResources}), references ({@link resolveReferences},
 * {@link topoDefs}), matrix points ({@link expandPoints}), parameters, seeds and resources of every point
 * ({@link planPoints}), and the kinds' deep validation ({@link validateStages}).
 */
export function buildPlan(
  def: PipelineDef,
  overrides: Override[],
  diags: Diagnostic[],
  opts: PlanOptions = {},
): Plan {
  const profile = def.profile ?? DEFAULT_PROFILE;
  const pc: PlanContext = {
    def,
    diags,
    vars: resolveVars(def, profile, diags),
    profile,
    stageNames: def.stages.map((s) => s.name),
    maxPoints: opts.maxPoints ?? MAX_SWEEP_POINTS,
  };
  const stageOverrides = splitOverrides(pc, overrides);
  const defaults: KindDefaults = {
    params: kindDefaultParams(def, diags),
    resources: kindDefaultResources(def, diags),
    seed: def.defaultSeed ? interpolate(def.defaultSeed, { vars: pc.vars, profile }, diags) : undefined,
  };
  const states = resolveReferences(pc);
  const order = topoDefs(def, states, diags);
  for (const name of order) expandPoints(pc, states, states.get(name)!);
  const stages: PlannedStage[] = [];
  const schemaFailed = new Set<string>();
  const groups = new Map<string, string[]>();
  for (const name of order) {
    const st = states.get(name)!;
    if (!st.points || !st.kind) continue;
    const planned = planPoints(pc, st, defaults, stageOverrides.get(name) ?? [], opts, schemaFailed);
    stages.push(...planned);
    groups.set(name, planned.map((s) => s.name));
  }
  // Deep validation only sees parameters that passed the schema (no cascade of follow-up errors).
  validateStages(stages.filter((s) => !schemaFailed.has(s.name)), diags);
  const plainVars: Record<string, unknown> = {};
  for (const [k, v] of pc.vars) plainVars[k] = v.type === "scalar" ? v.value : describeNode(v);
  return {
    // A non-default profile keeps its own refs (status, gc roots), so runs of two profiles never evict
    // each other's artifacts; cache keys do not depend on the profile at all.
    name: def.profile && def.profile !== DEFAULT_PROFILE ? `${def.name}@${def.profile}` : def.name,
    profile: def.profile,
    executor: def.executor?.name,
    file: def.file,
    baseDir: def.baseDir,
    stages,
    byName: new Map(stages.map((s) => [s.name, s])),
    groups,
    vars: plainVars,
  };
}

/** Phase 1: the pipeline's variables, in order (a variable may use earlier ones). */
function resolveVars(def: PipelineDef, profile: string, diags: Diagnostic[]): Map<string, YNode> {
  const vars = new Map<string, YNode>();
  for (const v of def.vars) vars.set(v.name, interpolate(v.value, { vars, profile }, diags));
  return vars;
}

/**
 * Phase 1: the `--set` overrides. Those of variables are applied to `pc.vars` now; those of stages
 * (`stage.param`, `stage.seed`) are returned by stage name, relative to the stage, for {@link planPoints}.
 */
function splitOverrides(pc: PlanContext, overrides: Override[]): Map<string, Override[]> {
  const { def, diags, vars, stageNames } = pc;
  const stageOverrides = new Map<string, Override[]>();
  for (const o of overrides) {
    const [head, ...rest] = o.path;
    if (head === "vars" && rest.length > 0) {
      applyVar(vars, rest, o, diags, def);
    } else if (stageNames.includes(head) && rest.length > 0) {
      const list = stageOverrides.get(head) ?? [];
      list.push({ ...o, path: rest });
      stageOverrides.set(head, list);
    } else if (vars.has(head)) {
      applyVar(vars, o.path, o, diags, def);
    } else {
      const cands = [...vars.keys(), ...stageNames.map((s) => `${s}.${rest.join(".") || "PARAM"}`)];
      if (def.profilesPos) cands.push(PROFILE_KEY);
      diags.push({
        pos: o.pos,
        message: `\`--set ${o.text}\`: \`${o.path.join(".")}\` is neither a variable nor \`stage.parameter\``,
        hint: def.removed?.has(head)
          ? `profile \`${def.profile}\` removes stage \`${head}\``
          : suggestion(o.path.join("."), cands, "variables and stages") ??
            suggestion(head, [...vars.keys(), ...stageNames], "variables and stages"),
      });
    }
  }
  return stageOverrides;
}

/** The pipeline-wide defaults: `defaults.with.<kind>`, `defaults.resources.<kind>`, `defaults.seed`. */
interface KindDefaults {
  params: Map<string, YMap>;
  resources: Map<string, YMap>;
  seed?: YNode;
}

/** Reports a `defaults.<section>` entry that names no registered kind. */
function unknownDefaultsKind(section: string, d: { kind: string; pos: Pos }, diags: Diagnostic[]): void {
  diags.push({
    pos: { ...d.pos, len: d.kind.length },
    message: `\`defaults.${section}\` names unknown stage kind \`${d.kind}\``,
    hint: suggestion(d.kind, listKinds().map((k) => k.name), "known kinds"),
  });
}

/** Phase 2: parameter defaults per kind (`defaults.with.<kind>`); unknown kinds and parameters reported. */
function kindDefaultParams(def: PipelineDef, diags: Diagnostic[]): Map<string, YMap> {
  const out = new Map<string, YMap>();
  for (const d of def.defaultsWith) {
    const kind = getKind(d.kind);
    if (!kind) {
      unknownDefaultsKind("with", d, diags);
      continue;
    }
    for (const e of d.map.entries) {
      if (!(e.key in kind.params)) {
        diags.push({
          pos: { ...e.keyPos, len: e.key.length },
          message: `unknown parameter \`${e.key}\` of kind \`${d.kind}\``,
          hint: suggestion(e.key, Object.keys(kind.params), "known parameters"),
        });
      }
    }
    out.set(d.kind, d.map);
  }
  return out;
}

/** Phase 2: resource defaults per kind (`defaults.resources.<kind>`), unknown keys reported and dropped. */
function kindDefaultResources(def: PipelineDef, diags: Diagnostic[]): Map<string, YMap> {
  const out = new Map<string, YMap>();
  for (const d of def.defaultsResources) {
    if (!getKind(d.kind)) {
      unknownDefaultsKind("resources", d, diags);
      continue;
    }
    for (const e of d.map.entries) {
      if (!RESOURCE_KEYS.includes(e.key)) {
        diags.push({
          pos: { ...e.keyPos, len: e.key.length },
          message: `unknown key \`${e.key}\` in \`defaults.resources.${d.kind}\``,
          hint: suggestion(e.key, RESOURCE_KEYS, "resource keys"),
        });
      }
    }
    out.set(d.kind, { ...d.map, entries: d.map.entries.filter((e) => RESOURCE_KEYS.includes(e.key)) });
  }
  return out;
}

/**
 * Phase 3: the kind of every stage definition and its inputs' references, parsed and checked against the
 * upstream kinds' outputs; missing required inputs reported. A definition with a bad reference is marked
 * `broken` (it gets no points).
 */
function resolveReferences(pc: PlanContext): Map<string, DefState> {
  const { def, diags } = pc;
  const states = new Map<string, DefState>();
  for (const s of def.stages) {
    const st: DefState = { def: s, refs: new Map() };
    states.set(s.name, st);
    if (s.uses !== undefined) {
      st.kind = getKind(s.uses);
      if (!st.kind) {
        diags.push({
          pos: s.usesPos!,
          message: `unknown stage kind \`${s.uses}\``,
          hint: suggestion(s.uses, listKinds().map((k) => k.name), "known kinds"),
        });
      }
    }
  }
  for (const st of states.values()) {
    const s = st.def;
    for (const inp of s.inputs) {
      const spec = st.kind?.inputs[inp.name];
      if (st.kind && !spec) {
        diags.push({
          pos: { ...inp.namePos, len: inp.name.length },
          message: `unknown input \`${inp.name}\` of stage \`${s.name}\` (kind \`${st.kind.name}\`)`,
          hint: suggestion(inp.name, Object.keys(st.kind.inputs), "inputs of this kind"),
        });
        continue;
      }
      if (spec && !spec.many && (inp.isList || inp.refs.length !== 1)) {
        diags.push({
          pos: inp.namePos,
          message: `input \`${inp.name}\` of kind \`${st.kind!.name}\` takes one artifact, not a list`,
        });
        continue;
      }
      const refs: ParsedRef[] = [];
      for (const r of inp.refs) {
        const pr = checkedRef(pc, states, st, inp.name, spec, r);
        if (pr) refs.push(pr);
        else s.broken = true;
      }
      st.refs.set(inp.name, refs);
    }
    if (st.kind && !s.typos.includes("inputs")) {
      for (const [name, spec] of Object.entries(st.kind.inputs as Record<string, InputSpec>)) {
        if (!spec.optional && !s.inputs.some((i) => i.name === name)) {
          diags.push({
            pos: s.namePos,
            message: `stage \`${s.name}\` is missing input \`${name}\` (kind \`${st.kind.name}\` needs ${
              Object.keys(st.kind.inputs).map((n) => `\`${n}\``).join(", ")
            })`,
          });
        }
      }
    }
  }
  return states;
}

/**
 * One reference of input `input` of `st`, interpolated, parsed and checked: the upstream stage exists and
 * has the output, and `[*]` only on a fan-in input. Undefined (reported) when it is not usable.
 */
function checkedRef(
  pc: PlanContext,
  states: Map<string, DefState>,
  st: DefState,
  input: string,
  spec: InputSpec | undefined,
  r: { pos: Pos; text: string },
): ParsedRef | undefined {
  const { def, diags } = pc;
  const s = st.def;
  const text = interpolate(
    { type: "scalar", pos: r.pos, value: r.text },
    { vars: pc.vars, stage: s.name, profile: pc.profile },
    diags,
  );
  const pr = parseRef(String((text as { value: unknown }).value), r.pos, diags);
  if (!pr) return undefined;
  const up = states.get(pr.stage) ?? (def.stages.some((x) => x.name === pr.stage) ? undefined : null);
  if (up === null) {
    const gone = def.removed?.get(pr.stage);
    diags.push({
      pos: { ...r.pos, len: pr.stage.length },
      message: `input \`${input}\` of stage \`${s.name}\` references unknown stage \`${pr.stage}\``,
      hint: gone
        ? `profile \`${def.profile}\` removes stage \`${pr.stage}\` (${gone.file}:${gone.line}:${gone.col}); ` +
          `replace or remove \`${s.name}\` in that profile too`
        : suggestion(pr.stage, pc.stageNames, "stages"),
    });
    return undefined;
  }
  const upDef = def.stages.find((x) => x.name === pr.stage)!;
  const upKind = upDef.uses ? getKind(upDef.uses) : undefined;
  if (upKind && !(pr.output in upKind.outputs)) {
    const outs = Object.keys(upKind.outputs);
    diags.push({
      pos: r.pos,
      message: `stage \`${pr.stage}\` (kind \`${upKind.name}\`) has no output \`${pr.output}\``,
      hint: suggestion(pr.output, outs, "its outputs"),
    });
    return undefined;
  }
  if (pr.selector === "*" && spec && !spec.many) {
    diags.push({
      pos: r.pos,
      message: `\`${pr.text}\` collects all points, but input \`${input}\` takes one artifact`,
      hint: "drop `[*]` to expand this stage along the upstream matrix",
    });
    return undefined;
  }
  return pr;
}

/**
 * Phase 4: the points of one stage definition (its upstream definitions' points already known): its own
 * matrix, expanded along each single input's upstream points (axes fixed by a selector consumed), then
 * each fan-in input bound to the compatible upstream points. Sets `st.points` unless something failed.
 */
function expandPoints(pc: PlanContext, states: Map<string, DefState>, st: DefState): void {
  const { diags, maxPoints } = pc;
  const s = st.def;
  if (s.broken) return;
  let ok = true;
  let own: Point[] = [{}];
  if (s.matrix) {
    const pts = matrixPoints(
      s.matrix,
      { vars: pc.vars, stage: s.name, profile: pc.profile },
      s.name,
      diags,
      maxPoints,
    );
    if (!pts) ok = false;
    else own = pts;
  }
  let pts = own.map((point) => ({ point, binds: new Map<string, string[]>() }));
  const many: [string, ParsedRef[]][] = [];
  for (const [inputName, refs] of st.refs) {
    const spec = st.kind?.inputs[inputName];
    if (spec?.many || refs.length !== 1) {
      many.push([inputName, refs]);
      continue;
    }
    const ref = refs[0];
    const ups = selectPoints(states, ref, diags);
    if (!ups) {
      ok = false;
      continue;
    }
    // Axes fixed by a selector (`fid[steps=0].fid`) are consumed: the referencing stage does not
    // expand along them, so one stage can take two points of the same matrix as two inputs.
    const fixed = ref.selector !== null && ref.selector !== "*" ? Object.keys(ref.selector) : [];
    const next: typeof pts = [];
    for (const pt of pts) {
      for (const u of ups) {
        const inherited = Object.fromEntries(Object.entries(u.point).filter(([a]) => !fixed.includes(a)));
        if (!compatible(pt.point, inherited)) continue;
        const binds = new Map(pt.binds);
        binds.set(inputName, [u.name]);
        next.push({ point: { ...inherited, ...pt.point }, binds });
      }
    }
    if (next.length > maxPoints) {
      diags.push({
        pos: ref.pos,
        message:
          `stage \`${s.name}\` expands to ${next.length.toLocaleString("en-US")} points, more than the ` +
          `limit of ${maxPoints.toLocaleString("en-US")}`,
        hint: "a sweep this large is usually a mistake; pass `--allow-large-sweep` to plan it anyway",
      });
      ok = false;
      break;
    }
    if (next.length === 0 && pts.length > 0) {
      diags.push({
        pos: ref.pos,
        message: `no point of \`${ref.stage}\` matches the matrix of \`${s.name}\` (shared axes disagree)`,
      });
      ok = false;
    }
    pts = next;
  }
  for (const [inputName, refs] of many) {
    const spec = st.kind?.inputs[inputName];
    const selected = refs.map((r) => ({ r, ups: selectPoints(states, r, diags) }));
    if (selected.some((x) => !x.ups)) {
      ok = false;
      continue;
    }
    for (const pt of pts) {
      const names: string[] = [];
      for (const { ups } of selected) {
        for (const u of ups!) {
          if (compatible(pt.point, u.point) && !names.includes(u.name)) names.push(u.name);
        }
      }
      if (names.length === 0 && !spec?.optional) {
        diags.push({
          pos: refs[0]?.pos ?? s.namePos,
          message: `input \`${inputName}\` of \`${s.name}\` matches no upstream point`,
        });
        ok = false;
      }
      pt.binds.set(inputName, names);
    }
  }
  if (!ok) return;
  const axes = varyingAxes(pts.map((pt) => pt.point));
  st.points = pts.map((pt) => ({
    ...pt,
    name: pointName(s.name, pt.point, s.matrix || pts.length > 1 ? axes : []),
  }));
}

/**
 * Phase 5: the planned stages of one definition's points (parameters, seed, resources, inputs). The names
 * of points whose parameters failed the schema are added to `schemaFailed`.
 */
function planPoints(
  pc: PlanContext,
  st: DefState,
  defaults: KindDefaults,
  overrides: Override[],
  opts: PlanOptions,
  schemaFailed: Set<string>,
): PlannedStage[] {
  const { def, diags } = pc;
  const s = st.def;
  const kind = st.kind!;
  return st.points!.map((pt): PlannedStage => {
    const scope: Scope = { vars: pc.vars, matrix: pt.point, stage: s.name, profile: pc.profile };
    let withMap = interpolate(mergedWith(st, defaults.params.get(kind.name)), scope, diags) as YMap;
    let seedNode: YNode | undefined = s.seed ? interpolate(s.seed, scope, diags) : defaults.seed;
    for (const o of overrides) {
      if (o.path.length === 1 && o.path[0] === "seed") seedNode = o.value;
      else withMap = setPath(withMap, o.path, o.value, o.pos);
    }
    const paths: string[] = [];
    const diagsBefore = diags.length;
    const params = checkFields(kind.params, withMap, s.name, {
      diags,
      baseDir: s.baseDir ?? def.baseDir,
      onPath: (abs) => paths.push(abs),
    }, { type: "map", pos: s.namePos, entries: [] });
    if (diags.length > diagsBefore) schemaFailed.add(pt.name);
    const paramPos: Record<string, Pos> = {};
    for (const e of withMap.entries) paramPos[e.key] = e.value.pos;
    checkWrites(pc, st, params, paramPos, opts);
    const seed = checkSeed(seedNode, diags);
    let resources: Resources = {};
    const kr = defaults.resources.get(kind.name);
    if (kr || s.resources) {
      const merged = interpolate(
        mergeResourceMaps(s.resources?.pos ?? s.namePos, kr, s.resources),
        scope,
        diags,
      );
      resources = checkResources(merged as YMap, `${s.name}.resources`, def.baseDir, diags);
    }
    const { inputs, deps } = boundInputs(st, pt);
    return {
      name: pt.name,
      base: s.name,
      point: pt.point,
      kind,
      params,
      seed,
      inputs,
      deps,
      gpu: kind.gpu,
      pos: s.namePos,
      paths,
      paramPos,
      inputPos: Object.fromEntries(
        [...st.refs].filter(([, r]) => r.length > 0).map(([n, r]) => [n, r[0].pos]),
      ),
      resources,
    };
  });
}

/** A stage's `with:` over its kind's `defaults.with` (entries of unknown parameters left out). */
function mergedWith(st: DefState, kindDefaults: YMap | undefined): YMap {
  const s = st.def;
  const kind = st.kind!;
  const withMap: YMap = { type: "map", pos: s.with?.pos ?? s.namePos, entries: [] };
  if (kindDefaults) withMap.entries.push(...kindDefaults.entries.filter((e) => e.key in kind.params));
  for (const e of s.with?.entries ?? []) {
    const i = withMap.entries.findIndex((x) => x.key === e.key);
    if (i >= 0) withMap.entries[i] = e;
    else withMap.entries.push(e);
  }
  return withMap;
}

/** Reports `writes` parameters (e.g. `publish:`) that resolve outside the project, unless allowed. */
function checkWrites(
  pc: PlanContext,
  st: DefState,
  params: Record<string, unknown>,
  paramPos: Record<string, Pos>,
  opts: PlanOptions,
): void {
  const s = st.def;
  for (const [pname, spec] of Object.entries(st.kind!.params as ParamSchema)) {
    const v = params[pname];
    if (spec.type !== "string" || !spec.writes || typeof v !== "string" || v === "") continue;
    const problem = opts.allowOutsideWrites ? undefined : checkOutsideWrite(v, pc.def.file);
    if (problem) {
      pc.diags.push({
        pos: paramPos[pname] ?? s.namePos,
        message: `\`${s.name}.${pname}\` writes to ${problem.abs}, outside the project (${problem.root})`,
        hint: "use a path inside the project, or pass `--allow-outside-writes` if you mean it",
      });
    }
  }
}

/** The seed of a point: a non-negative integer (0 when none is given). */
function checkSeed(seedNode: YNode | undefined, diags: Diagnostic[]): number {
  if (!seedNode) return 0;
  if (seedNode.type === "scalar" && Number.isInteger(seedNode.value) && (seedNode.value as number) >= 0) {
    return seedNode.value as number;
  }
  diags.push({
    pos: seedNode.pos,
    message: `\`seed\` must be a non-negative integer, not ${describeNode(seedNode)}`,
  });
  return 0;
}

/** The inputs of one point (each bound to upstream point names and outputs) and its deduplicated deps. */
function boundInputs(st: DefState, pt: DefPoint): { inputs: PlannedInput[]; deps: string[] } {
  const inputs: PlannedInput[] = [];
  const deps: string[] = [];
  for (const [inputName, refs] of st.refs) {
    const bound = pt.binds.get(inputName) ?? [];
    const output = refs[0]?.output ?? "";
    const spec = st.kind!.inputs[inputName];
    const outputs = new Map(refs.map((r) => [r.stage, r.output]));
    inputs.push({
      name: inputName,
      many: !!spec?.many,
      refs: bound.map((b) => ({ stage: b, output: outputs.get(b.replace(/\[.*$/, "")) ?? output })),
    });
    for (const b of bound) if (!deps.includes(b)) deps.push(b);
  }
  return { inputs, deps };
}

/**
 * The kinds' deep validation ({@link AnyStageKind.validate}), in dependency order, with what the
 * upstream kinds declare about their outputs ({@link AnyStageKind.describe}). A hook that throws is
 * reported as a diagnostic at the stage (a bug in the kind, but it must not crash planning).
 */
function validateStages(stages: PlannedStage[], diags: Diagnostic[]): void {
  const infos = new Map<string, Record<string, ArtifactInfo>>();
  const byName = new Map(stages.map((s) => [s.name, s]));
  for (const st of stages) {
    const ctx: ValidateContext = {
      stage: st.name,
      at: (param) => st.paramPos?.[param] ?? st.pos,
      inputAt: (input) => st.inputPos?.[input] ?? st.pos,
      input: (name) => {
        const inp = st.inputs.find((i) => i.name === name);
        return (inp?.refs ?? []).map((r): UpstreamInfo => ({
          ...(infos.get(r.stage)?.[r.output] ?? {}),
          stage: r.stage,
          kind: byName.get(r.stage)?.kind.name ?? "",
          output: r.output,
        }));
      },
    };
    let found: Diagnostic[] = [];
    try {
      found = st.kind.validate?.(st.params, ctx) ?? [];
    } catch (e) {
      found = [{
        pos: st.pos,
        message: `kind \`${st.kind.name}\` failed to validate stage \`${st.name}\`: ${(e as Error).message}`,
      }];
    }
    diags.push(...found);
    if (found.length > 0 || !st.kind.describe) continue;
    try {
      infos.set(st.name, st.kind.describe(st.params, ctx) as Record<string, ArtifactInfo>);
    } catch {
      // Nothing is known about its outputs: downstream checks skip what they cannot know.
    }
  }
}

function applyVar(
  vars: Map<string, YNode>,
  path: string[],
  o: Override,
  diags: Diagnostic[],
  def: PipelineDef,
): void {
  const [name, ...rest] = path;
  const cur = vars.get(name);
  if (!cur) {
    const inProfiles = def.profiles.filter((p) => p.vars.some((v) => v.name === name)).map((p) => p.name);
    diags.push({
      pos: o.pos,
      message: `\`--set ${o.text}\`: unknown variable \`${name}\``,
      hint: inProfiles.length
        ? `\`${name}\` is defined by profile ${
          inProfiles.map((p) => `\`${p}\``).join(", ")
        }; select it with \`--set profile=${inProfiles[0]}\``
        : suggestion(name, vars.keys(), "defined variables"),
    });
    return;
  }
  if (rest.length === 0) vars.set(name, o.value);
  else if (cur.type === "map") vars.set(name, setPath(cur, rest, o.value, o.pos));
  else diags.push({ pos: o.pos, message: `\`--set ${o.text}\`: variable \`${name}\` is not a mapping` });
}

function selectPoints(states: Map<string, DefState>, ref: ParsedRef, diags: Diagnostic[]) {
  const up = states.get(ref.stage);
  if (!up?.points) return undefined; // its own errors were reported
  if (ref.selector === null || ref.selector === "*") return up.points;
  const sel = ref.selector;
  const axes = [...new Set(up.points.flatMap((p) => Object.keys(p.point)))];
  for (const k of Object.keys(sel)) {
    if (!axes.includes(k)) {
      diags.push({
        pos: ref.pos,
        message: `\`${ref.text}\`: stage \`${ref.stage}\` has no matrix axis \`${k}\``,
        hint: axes.length ? suggestion(k, axes, "its axes") : `\`${ref.stage}\` has no matrix`,
      });
      return undefined;
    }
  }
  const found = up.points.filter((p) => compatible(sel, p.point));
  if (found.length === 0) {
    diags.push({
      pos: ref.pos,
      message: `\`${ref.text}\` matches no point of \`${ref.stage}\``,
      hint: `its points: ${up.points.slice(0, 6).map((p) => p.name).join(", ")}${
        up.points.length > 6 ? ", ..." : ""
      }`,
    });
    return undefined;
  }
  return found;
}

/** Orders stage definitions so that every stage comes after what it references; reports cycles. */
function topoDefs(def: PipelineDef, states: Map<string, DefState>, diags: Diagnostic[]): string[] {
  const names = def.stages.map((s) => s.name);
  const deps = new Map<string, Set<string>>();
  for (const n of names) {
    const set = new Set<string>();
    for (const refs of states.get(n)!.refs.values()) for (const r of refs) set.add(r.stage);
    deps.set(n, set);
  }
  const done = new Set<string>();
  const order: string[] = [];
  let progress = true;
  while (progress) {
    progress = false;
    for (const n of names) {
      if (done.has(n)) continue;
      if ([...deps.get(n)!].every((d) => done.has(d))) {
        done.add(n);
        order.push(n);
        progress = true;
        break; // restart from the top: file order wherever the graph allows
      }
    }
  }
  const reported = new Set<string>();
  for (const n of names) {
    if (done.has(n) || reported.has(n)) continue;
    // Follow undone dependencies until a stage repeats.
    const path: string[] = [n];
    let cur = n;
    while (true) {
      const next = [...deps.get(cur)!].find((d) => !done.has(d))!;
      const i = path.indexOf(next);
      if (i >= 0) {
        const cycle = path.slice(i);
        if (!cycle.some((c) => reported.has(c))) {
          const first = cycle[0];
          const second = cycle[1] ?? first;
          const ref = [...states.get(first)!.refs.values()].flat().find((r) => r.stage === second);
          diags.push({
            pos: ref?.pos ?? states.get(first)!.def.namePos,
            message: `dependency cycle: ${[...cycle, first].join(" → ")}`,
            hint: "a stage cannot (even indirectly) use its own output",
          });
        }
        for (const c of cycle) reported.add(c);
        break;
      }
      path.push(next);
      cur = next;
    }
    reported.add(n);
  }
  return order;
}
