/**
 * Expansion of what a pipeline file writes into concrete values: `${{ vars.x }}` / `${{ matrix.x }}`
 * interpolation, `--set` overrides from the command line, and a stage's own `matrix:` points
 * (cartesian product, `exclude:`, `include:`), plus the readable names of matrix points.
 * @module
 */

import { parse as parseYaml } from "yaml";
import { type Diagnostic, type Pos, suggestion } from "./diagnostics.ts";
import { describeNode, fromPlain, type Scalar, type YMap, type YNode } from "./yaml_source.ts";

/** A matrix point: axis name → scalar value, in axis order. */
export type Point = Record<string, Scalar>;

/** Variables and matrix values visible to interpolation. */
export interface Scope {
  vars: Map<string, YNode>;
  matrix?: Point;
  /** The stage whose values are interpolated, for messages. */
  stage?: string;
  /** The selected profile's name, for `${{ profile }}` (default `default`). */
  profile?: string;
}

const EXPR_RE = /\$\{\{\s*([^}]*?)\s*\}\}/g;

/** Formats a matrix value for names and messages (`1e-4` → `0.0001`). */
export function formatValue(v: Scalar): string {
  return v === null ? "null" : String(v);
}

/** The readable name of a matrix point: `train[model=DiT-S/2,lr=0.0001]` (only the `axes` given). */
export function pointName(base: string, point: Point, axes: string[]): string {
  if (axes.length === 0) return base;
  return `${base}[${axes.map((a) => `${a}=${formatValue(point[a])}`).join(",")}]`;
}

/** Axes whose value differs between points (in first-seen order); all axes when none differs. */
export function varyingAxes(points: Point[]): string[] {
  const axes: string[] = [];
  for (const p of points) for (const a of Object.keys(p)) if (!axes.includes(a)) axes.push(a);
  const varying = axes.filter((a) => new Set(points.map((p) => formatValue(p[a] ?? null))).size > 1);
  return varying.length > 0 || points.length > 1 ? varying : axes;
}

function lookup(expr: string, pos: Pos, scope: Scope, diags: Diagnostic[]): YNode | undefined {
  const parts = expr.split(".");
  const where = scope.stage ? ` (in stage \`${scope.stage}\`)` : "";
  if (parts[0] === "vars" && parts.length >= 2) {
    let node = scope.vars.get(parts[1]);
    if (!node) {
      diags.push({
        pos,
        message: `unknown variable \`${parts[1]}\`${where}`,
        hint: suggestion(parts[1], scope.vars.keys(), "defined variables"),
      });
      return undefined;
    }
    for (const p of parts.slice(2)) {
      const next: YNode | undefined = node.type === "map"
        ? node.entries.find((e) => e.key === p)?.value
        : node.type === "seq" && /^\d+$/.test(p)
        ? node.items[Number(p)]
        : undefined;
      if (!next) {
        diags.push({ pos, message: `\`${expr}\`: variable has no field \`${p}\`` });
        return undefined;
      }
      node = next;
    }
    return node;
  }
  if (parts[0] === "matrix" && parts.length === 2) {
    if (!scope.matrix || !(parts[1] in scope.matrix)) {
      const axes = Object.keys(scope.matrix ?? {});
      diags.push({
        pos,
        message: axes.length === 0
          ? `\`${expr}\` used in stage \`${scope.stage}\`, which has no matrix`
          : `unknown matrix axis \`${parts[1]}\`${where}`,
        hint: axes.length ? suggestion(parts[1], axes, "axes") : undefined,
      });
      return undefined;
    }
    return { type: "scalar", pos, value: scope.matrix[parts[1]] };
  }
  if (parts[0] === "profile" && parts.length === 1) {
    return { type: "scalar", pos, value: scope.profile ?? "default" };
  }
  diags.push({
    pos,
    message: `cannot interpolate \`\${{ ${expr} }}\``,
    hint: "use `${{ vars.NAME }}`, `${{ matrix.AXIS }}` or `${{ profile }}`",
  });
  return undefined;
}

/**
 * Interpolates `${{ ... }}` in every string of a node. A string that is exactly one expression takes
 * the value's type (`${{ vars.steps }}` stays a number, a list stays a list); otherwise the values are
 * spliced into the string. Positions stay at the use site.
 */
export function interpolate(node: YNode, scope: Scope, diags: Diagnostic[]): YNode {
  if (node.type === "map") {
    return {
      ...node,
      entries: node.entries.map((e) => ({ ...e, value: interpolate(e.value, scope, diags) })),
    };
  }
  if (node.type === "seq") return { ...node, items: node.items.map((i) => interpolate(i, scope, diags)) };
  const v = node.value;
  if (typeof v !== "string" || !v.includes("${{")) return node;
  const whole = /^\$\{\{\s*([^}]*?)\s*\}\}$/.exec(v);
  if (whole) {
    const found = lookup(whole[1], node.pos, scope, diags);
    if (!found) return { ...node, poisoned: true };
    return found.type === "scalar"
      ? { type: "scalar", pos: node.pos, value: found.value, template: v, origin: found.pos }
      : { ...found, pos: node.pos };
  }
  let bad = false;
  const out = v.replace(EXPR_RE, (_m, expr: string) => {
    const found = lookup(expr, node.pos, scope, diags);
    if (!found) {
      bad = true;
      return "";
    }
    if (found.type !== "scalar") {
      diags.push({
        pos: node.pos,
        message: `\`${expr}\` is ${describeNode(found)} and cannot be part of a string`,
      });
      bad = true;
      return "";
    }
    return formatValue(found.value);
  });
  return bad ? { ...node, poisoned: true } : { type: "scalar", pos: node.pos, value: out, template: v };
}

/** One `--set key=value` from the command line. */
export interface Override {
  /** The key's dotted path, e.g. `["train", "lr"]`. */
  path: string[];
  value: YNode;
  pos: Pos;
  text: string;
}

/** The pseudo file name overrides are reported under. */
export const COMMAND_LINE = "<command line>";

/**
 * Parses `--set` arguments (`key=value`, the value read as a YAML scalar or flow collection) and returns
 * them with their positions in the synthetic source text `--set a=1 --set b=2` registered under
 * {@link COMMAND_LINE} (so errors can show a caret).
 */
export function parseOverrides(
  sets: string[],
  diags: Diagnostic[],
): { overrides: Override[]; source: string } {
  const overrides: Override[] = [];
  let source = "";
  for (const s of sets) {
    if (source) source += " ";
    source += "--set ";
    const col = source.length + 1;
    source += s;
    const eq = s.indexOf("=");
    const pos: Pos = { file: COMMAND_LINE, line: 1, col, len: eq > 0 ? eq : s.length };
    if (eq <= 0) {
      diags.push({ pos, message: `\`--set ${s}\`: expected KEY=VALUE`, hint: "e.g. --set train.lr=2e-4" });
      continue;
    }
    const key = s.slice(0, eq);
    const raw = s.slice(eq + 1);
    const path = key.split(".");
    if (path.some((p) => p === "")) {
      diags.push({ pos, message: `\`--set ${s}\`: bad key \`${key}\`` });
      continue;
    }
    let value: unknown;
    try {
      value = raw === "" ? "" : parseYaml(raw);
    } catch (e) {
      diags.push({
        pos: { ...pos, col: col + eq + 1, len: raw.length },
        message: `\`--set ${s}\`: value is not valid YAML (${(e as Error).message.split("\n")[0]})`,
      });
      continue;
    }
    overrides.push({
      path,
      value: fromPlain(value, { ...pos, col: col + eq + 1, len: raw.length }),
      pos,
      text: s,
    });
  }
  return { overrides, source };
}

/** Sets `path` inside a located map (creating intermediate maps), returning a new map. */
export function setPath(map: YMap | undefined, path: string[], value: YNode, pos: Pos): YMap {
  const base: YMap = map ? { ...map, entries: [...map.entries] } : { type: "map", pos, entries: [] };
  const [head, ...rest] = path;
  const i = base.entries.findIndex((e) => e.key === head);
  let v: YNode = value;
  if (rest.length > 0) {
    const cur = i >= 0 ? base.entries[i].value : undefined;
    v = setPath(cur?.type === "map" ? cur : undefined, rest, value, pos);
  }
  if (i >= 0) {
    base.entries[i] = { ...base.entries[i], value: v, keyPos: rest.length ? base.entries[i].keyPos : pos };
  } else base.entries.push({ key: head, keyPos: pos, value: v });
  return base;
}

/**
 * The points of a stage's own `matrix:`: the cartesian product of its axes, minus points matching an
 * `exclude` entry (all keys of the entry equal), plus `include` entries (each a complete point). Axis
 * values must be scalars; the matrix may use `${{ vars.x }}` (e.g. an axis whose list is a variable).
 */
export function matrixPoints(
  matrix: YMap,
  scope: Scope,
  stage: string,
  diags: Diagnostic[],
  maxPoints = Infinity,
): Point[] | undefined {
  const m = interpolate(matrix, scope, diags) as YMap;
  const axes: { name: string; values: Scalar[] }[] = [];
  let include: YNode | undefined;
  let exclude: YNode | undefined;
  let ok = true;
  for (const e of m.entries) {
    if (e.key === "include") include = e.value;
    else if (e.key === "exclude") exclude = e.value;
    else {
      if (e.value.type !== "seq" || e.value.items.length === 0) {
        diags.push({
          pos: e.value.pos,
          message: `matrix axis \`${e.key}\` of stage \`${stage}\` must be a non-empty list, not ${
            e.value.type === "seq" ? "an empty list" : describeNode(e.value)
          }`,
        });
        ok = false;
        continue;
      }
      const values: Scalar[] = [];
      for (const it of e.value.items) {
        if (it.type !== "scalar") {
          diags.push({ pos: it.pos, message: `matrix values must be scalars, not ${describeNode(it)}` });
          ok = false;
        } else if (values.some((v) => formatValue(v) === formatValue(it.value))) {
          diags.push({
            pos: it.pos,
            message: `duplicate value ${formatValue(it.value)} in matrix axis \`${e.key}\``,
          });
          ok = false;
        } else values.push(it.value);
      }
      axes.push({ name: e.key, values });
    }
  }
  const axisNames = axes.map((a) => a.name);
  const readEntries = (node: YNode | undefined, what: string, complete: boolean): Point[] => {
    if (!node) return [];
    if (node.type !== "seq") {
      diags.push({ pos: node.pos, message: `matrix \`${what}\` must be a list of mappings` });
      ok = false;
      return [];
    }
    const out: Point[] = [];
    for (const it of node.items) {
      if (it.type !== "map" || it.entries.length === 0) {
        diags.push({
          pos: it.pos,
          message: `each \`${what}\` entry must be a non-empty mapping axis: value`,
        });
        ok = false;
        continue;
      }
      const p: Point = {};
      for (const e of it.entries) {
        if (axisNames.length > 0 && !axisNames.includes(e.key)) {
          diags.push({
            pos: e.keyPos,
            message: `\`${what}\` names \`${e.key}\`, which is not an axis of the matrix of \`${stage}\``,
            hint: suggestion(e.key, axisNames, "axes"),
          });
          ok = false;
          continue;
        }
        if (e.value.type !== "scalar") {
          diags.push({
            pos: e.value.pos,
            message: `matrix values must be scalars, not ${describeNode(e.value)}`,
          });
          ok = false;
          continue;
        }
        p[e.key] = e.value.value;
      }
      if (complete && axisNames.length > 0) {
        const missing = axisNames.filter((a) => !(a in p));
        if (missing.length > 0) {
          diags.push({
            pos: it.pos,
            message: `\`include\` entry must give every axis; missing ${
              missing.map((a) => `\`${a}\``).join(", ")
            }`,
          });
          ok = false;
          continue;
        }
      }
      out.push(p);
    }
    return out;
  };
  const inc = readEntries(include, "include", true);
  const exc = readEntries(exclude, "exclude", false);
  if (!ok) return undefined;
  if (axes.length === 0 && inc.length === 0) {
    diags.push({ pos: matrix.pos, message: `matrix of stage \`${stage}\` has no axes` });
    return undefined;
  }
  if (axes.length === 0) {
    const keys = Object.keys(inc[0]).sort().join(",");
    for (const p of inc) {
      if (Object.keys(p).sort().join(",") !== keys) {
        diags.push({
          pos: include!.pos,
          message: "all `include` entries of an axis-less matrix must use the same keys",
        });
        return undefined;
      }
    }
  }
  if (!ok) return undefined;
  const product = axes.reduce((n, a) => n * a.values.length, axes.length ? 1 : 0) + inc.length;
  if (product > maxPoints) {
    diags.push({
      pos: { ...matrix.pos, len: 1 },
      message: `matrix of stage \`${stage}\` has ${product.toLocaleString("en-US")} points, more than the ` +
        `limit of ${maxPoints.toLocaleString("en-US")}`,
      hint: "a sweep this large is usually a mistake; pass `--allow-large-sweep` to plan it anyway",
    });
    return undefined;
  }
  let points: Point[] = [{}];
  for (const a of axes) points = points.flatMap((p) => a.values.map((v) => ({ ...p, [a.name]: v })));
  if (axes.length === 0) points = [];
  const same = (a: Scalar | undefined, b: Scalar | undefined) =>
    a !== undefined && b !== undefined && formatValue(a) === formatValue(b);
  points = points.filter((p) => !exc.some((x) => Object.entries(x).every(([k, v]) => same(p[k], v))));
  for (const p of inc) {
    const ordered: Point = {};
    for (const a of axisNames.length ? axisNames : Object.keys(p)) ordered[a] = p[a];
    const key = JSON.stringify(ordered);
    if (!points.some((q) => JSON.stringify(q) === key)) points.push(ordered);
  }
  if (points.length === 0) {
    diags.push({
      pos: (exclude ?? matrix).pos,
      message: `matrix of stage \`${stage}\` has no points left after \`exclude\``,
    });
    return undefined;
  }
  return points;
}
