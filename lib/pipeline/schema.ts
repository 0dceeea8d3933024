/**
 * Parameter schemas of stage kinds: the types a parameter may have (`int`, `number`, `string`, `bool`,
 * `enum`, `list`, `object`, `path`), their defaults, and the validation of located YAML values against them.
 * Validation produces the canonical parameter values that enter the cache key (defaults filled in,
 * unknown keys rejected, numbers as numbers: `1e-4` and `0.0001` are the same parameter).
 * @module
 */

import { type Diagnostic, suggestion } from "./diagnostics.ts";
import { describeNode, type YMap, type YNode } from "./yaml_source.ts";
import { COMMAND_LINE } from "./expand.ts";

interface SpecBase<T> {
  /** One line of documentation, shown by `ditflow info` and in error messages. */
  doc?: string;
  /** The value used when the pipeline does not set the parameter. A parameter without one is required. */
  default?: T;
  /** When true and no default is given, the parameter may be left out (it is then absent from params). */
  optional?: boolean;
}

/** An integer parameter. */
export interface IntSpec extends SpecBase<number> {
  type: "int";
  min?: number;
  max?: number;
}
/** A (finite) floating point parameter. */
export interface NumberSpec extends SpecBase<number> {
  type: "number";
  min?: number;
  max?: number;
}
/** A string parameter. */
export interface StringSpec extends SpecBase<string> {
  type: "string";
  /** A regular expression the value must match. */
  pattern?: string;
  /**
   * The value is a path the stage writes to outside the cache (e.g. `publish:`). It must resolve inside
   * the project (the pipeline file's git repository, or its directory outside git) unless the user
   * passes `--allow-outside-writes`. An empty value means "do not write".
   */
  writes?: boolean;
}
/** A boolean parameter. */
export interface BoolSpec extends SpecBase<boolean> {
  type: "bool";
}
/** One of a fixed set of strings. */
export interface EnumSpec<V extends string = string> extends SpecBase<V> {
  type: "enum";
  values: readonly V[];
}
/** A list whose items all follow `items`. */
export interface ListSpec extends SpecBase<unknown[]> {
  type: "list";
  items: ParamSpec;
  minItems?: number;
  maxItems?: number;
}
/** A mapping with known `fields`, or any JSON mapping when `fields` is left out. */
export interface ObjectSpec extends SpecBase<Record<string, unknown>> {
  type: "object";
  fields?: ParamSchema;
}
/**
 * A file or directory outside the cache (e.g. a dataset), relative to the pipeline file. It must exist,
 * and its content digest enters the cache key, so editing the file reruns the stage. The stage receives
 * the absolute path.
 */
export interface PathSpec extends SpecBase<string> {
  type: "path";
  /** What the path must be: a file, or a non-empty folder. Default: either, empty or not. */
  expect?: "file" | "dir";
  /** A noun for messages, e.g. `image folder` (`image folder /x does not exist; ...`). */
  what?: string;
  /**
   * What the path should hold, completing "set <the variable or parameter> to ...", e.g. `a folder of
   * .jpg/.png images`. When the value came from `${{ vars.NAME }}` the message names `vars.NAME`.
   */
  help?: string;
}

/** The type of one parameter. */
export type ParamSpec =
  | IntSpec
  | NumberSpec
  | StringSpec
  | BoolSpec
  | EnumSpec
  | ListSpec
  | ObjectSpec
  | PathSpec;

/** The parameters of a stage kind, by name. */
export type ParamSchema = Readonly<Record<string, ParamSpec>>;

/** The TypeScript type of a parameter's value, inferred from its spec. */
export type ParamValue<S> = S extends { type: "int" | "number" } ? number
  : S extends { type: "string" | "path" } ? string
  : S extends { type: "bool" } ? boolean
  : S extends { type: "enum"; values: readonly (infer V)[] } ? V
  : S extends { type: "list"; items: infer I } ? ParamValue<I>[]
  : S extends { type: "object"; fields: infer F extends ParamSchema } ? ParamValues<F>
  : S extends { type: "object" } ? Record<string, unknown>
  : unknown;

/** The TypeScript type of a kind's `ctx.params`, inferred from its schema. */
export type ParamValues<P extends ParamSchema> =
  & { -readonly [K in keyof P as P[K] extends { optional: true } ? never : K]: ParamValue<P[K]> }
  & { -readonly [K in keyof P as P[K] extends { optional: true } ? K : never]?: ParamValue<P[K]> };

/** The defaults of a schema's parameters that have one, typed as {@link ParamValues}. */
export type ParamDefaults<P extends ParamSchema> = {
  -readonly [K in keyof P as P[K] extends { default: unknown } ? K : never]: ParamValue<P[K]>;
};

/** The defaults of a schema (parameters without a default are left out). */
export function paramDefaults<const P extends ParamSchema>(schema: P): ParamDefaults<P> {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(schema)) if (spec.default !== undefined) out[k] = spec.default;
  return out as ParamDefaults<P>;
}

/** Context for validation: where relative paths are resolved, and a collector for path digests. */
export interface CheckContext {
  diags: Diagnostic[];
  /** Directory relative `path` parameters are resolved against (the pipeline file's directory). */
  baseDir: string;
  /** Called for every `path` parameter with its absolute path (to add the content digest to the key). */
  onPath?: (abs: string) => void;
}

/** Describes a spec for messages, e.g. `an integer >= 1` or `one of "ddpm", "ddim"`. */
export function describeSpec(spec: ParamSpec): string {
  switch (spec.type) {
    case "int":
      return "an integer" + range(spec.min, spec.max);
    case "number":
      return "a number" + range(spec.min, spec.max);
    case "string":
      return "a string";
    case "bool":
      return "a boolean (true or false)";
    case "enum":
      return `one of ${spec.values.map((v) => `"${v}"`).join(", ")}`;
    case "list":
      return `a list of ${describeSpec(spec.items).replace(/^an? /, "")}s`.replace(/ss$/, "s");
    case "object":
      return "a mapping";
    case "path":
      return spec.expect === "dir"
        ? "a path to an existing folder"
        : spec.expect === "file"
        ? "a path to an existing file"
        : "a path to an existing file or directory";
  }
}

function range(min?: number, max?: number): string {
  if (min !== undefined && max !== undefined) return ` in [${min}, ${max}]`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return "";
}

function fail(ctx: CheckContext, node: YNode, path: string, spec: ParamSpec): undefined {
  ctx.diags.push({
    pos: node.pos,
    message: `parameter \`${path}\` must be ${describeSpec(spec)}, not ${describeNode(node)}`,
  });
  return undefined;
}

/** Validates one located value against a spec; returns the canonical value (undefined on error). */
export function checkValue(spec: ParamSpec, node: YNode, path: string, ctx: CheckContext): unknown {
  if (node.type === "scalar" && node.poisoned) return undefined;
  switch (spec.type) {
    case "int":
    case "number": {
      if (node.type !== "scalar" || typeof node.value !== "number" || !Number.isFinite(node.value)) {
        return fail(ctx, node, path, spec);
      }
      const v = node.value;
      if (spec.type === "int" && !Number.isInteger(v)) return fail(ctx, node, path, spec);
      if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) {
        ctx.diags.push({
          pos: node.pos,
          message: `parameter \`${path}\` is ${v}, must be ${describeSpec(spec)}`,
        });
        return undefined;
      }
      return v;
    }
    case "string": {
      if (node.type !== "scalar" || typeof node.value !== "string") return fail(ctx, node, path, spec);
      if (spec.pattern && !new RegExp(spec.pattern).test(node.value)) {
        ctx.diags.push({
          pos: node.pos,
          message: `parameter \`${path}\` is "${node.value}", which does not match /${spec.pattern}/`,
        });
        return undefined;
      }
      return node.value;
    }
    case "bool":
      if (node.type !== "scalar" || typeof node.value !== "boolean") return fail(ctx, node, path, spec);
      return node.value;
    case "enum": {
      if (node.type !== "scalar" || typeof node.value !== "string") return fail(ctx, node, path, spec);
      if (!spec.values.includes(node.value)) {
        ctx.diags.push({
          pos: node.pos,
          message: `parameter \`${path}\` is "${node.value}", must be ${describeSpec(spec)}`,
          hint: suggestion(node.value, spec.values, "allowed values"),
        });
        return undefined;
      }
      return node.value;
    }
    case "list": {
      if (node.type !== "seq") return fail(ctx, node, path, spec);
      if (spec.minItems !== undefined && node.items.length < spec.minItems) {
        ctx.diags.push({
          pos: node.pos,
          message: `parameter \`${path}\` needs at least ${spec.minItems} items`,
        });
      }
      if (spec.maxItems !== undefined && node.items.length > spec.maxItems) {
        ctx.diags.push({
          pos: node.pos,
          message: `parameter \`${path}\` takes at most ${spec.maxItems} items`,
        });
      }
      return node.items.map((it, i) => checkValue(spec.items, it, `${path}[${i}]`, ctx));
    }
    case "object": {
      if (node.type !== "map") return fail(ctx, node, path, spec);
      if (!spec.fields) return plainJson(node, path, ctx);
      return checkFields(spec.fields, node, path, ctx, node);
    }
    case "path": {
      if (node.type !== "scalar" || typeof node.value !== "string") return fail(ctx, node, path, spec);
      // A path typed on the command line (`--set vars.image_dir=data/x`, directly or through a variable)
      // is relative to the working directory, like any shell argument; one written in the file is
      // relative to the pipeline file's folder.
      const typed = node.pos.file === COMMAND_LINE || node.origin?.file === COMMAND_LINE;
      const baseDir = typed ? Deno.cwd() : ctx.baseDir;
      const problem = checkPath(spec, node.value, baseDir);
      if (problem) {
        const advice = spec.help ? `; set ${settingOf(node, path)} to ${spec.help}` : "";
        const what = spec.what ?? `parameter \`${path}\`:`;
        const abs = problem.abs;
        const message = problem.issue === "unset"
          ? `${spec.what ?? "path"} not set (parameter \`${path}\` is empty)${advice}`
          : problem.issue === "missing"
          ? spec.what ? `${what} ${abs} does not exist${advice}` : `${what} file not found: ${node.value}`
          : problem.issue === "not-dir"
          ? `${what} ${abs} is a file, not a folder${advice}`
          : problem.issue === "not-file"
          ? `${what} ${abs} is a folder, not a file${advice}`
          : `${what} ${abs} is empty${advice}`;
        ctx.diags.push({ pos: node.pos, message });
        return undefined;
      }
      const abs = resolvePath(node.value, baseDir);
      ctx.onPath?.(abs);
      return abs;
    }
  }
}

/** A `path` value made absolute against the pipeline file's folder. */
export function resolvePath(value: string, baseDir: string): string {
  return value.startsWith("/") ? value : `${baseDir}/${value}`;
}

/** What is wrong with a `path` value, if anything (used at plan time and by stages at run time). */
export function checkPath(
  spec: PathSpec,
  value: string,
  baseDir: string,
): { issue: "unset" | "missing" | "not-dir" | "not-file" | "empty"; abs: string } | undefined {
  if (value === "") return { issue: "unset", abs: baseDir };
  const abs = resolvePath(value, baseDir);
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(abs);
  } catch {
    return { issue: "missing", abs };
  }
  if (spec.expect === "dir") {
    if (!st.isDirectory) return { issue: "not-dir", abs };
    try {
      for (const e of Deno.readDirSync(abs)) if (!e.name.startsWith(".")) return undefined;
    } catch {
      return undefined; // unreadable: the stage says why
    }
    return { issue: "empty", abs };
  }
  if (spec.expect === "file" && !st.isFile) return { issue: "not-file", abs };
  return undefined;
}

/** Names what the user should set: `vars.NAME` when the value came from `${{ vars.NAME }}`. */
function settingOf(node: YNode, path: string): string {
  const t = node.type === "scalar" ? node.template : undefined;
  const m = t ? /\$\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_-]*)/.exec(t) : null;
  return m ? `vars.${m[1]}` : `\`${path}\``;
}

function plainJson(node: YNode, path: string, ctx: CheckContext): unknown {
  if (node.type === "scalar") {
    if (typeof node.value === "number" && !Number.isFinite(node.value)) {
      ctx.diags.push({ pos: node.pos, message: `parameter \`${path}\` must be a finite number` });
    }
    return node.value;
  }
  if (node.type === "seq") return node.items.map((it, i) => plainJson(it, `${path}[${i}]`, ctx));
  const o: Record<string, unknown> = {};
  for (const e of node.entries) o[e.key] = plainJson(e.value, `${path}.${e.key}`, ctx);
  return o;
}

/**
 * Validates a mapping of parameters against a schema: unknown keys are errors (with a suggestion), missing
 * required parameters are errors (reported at `where`), defaults are filled in.
 * @param prefix shown before parameter names in messages, e.g. `train` for `train.lr`.
 */
export function checkFields(
  schema: ParamSchema,
  map: YMap | undefined,
  prefix: string,
  ctx: CheckContext,
  where: YNode,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const e of map?.entries ?? []) {
    const spec = schema[e.key];
    const path = prefix ? `${prefix}.${e.key}` : e.key;
    if (!spec) {
      ctx.diags.push({
        pos: e.keyPos,
        message: `unknown parameter \`${e.key}\`${prefix ? ` in \`${prefix}\`` : ""}`,
        hint: suggestion(e.key, Object.keys(schema), "known parameters"),
      });
      continue;
    }
    seen.add(e.key);
    if (e.value.type === "scalar" && e.value.value === null && spec.optional) continue;
    // An optional path set to "" (e.g. from a variable left empty) is not set.
    if (spec.type === "path" && spec.optional && e.value.type === "scalar" && e.value.value === "") continue;
    const v = checkValue(spec, e.value, path, ctx);
    if (v !== undefined) out[e.key] = v;
  }
  for (const [k, spec] of Object.entries(schema)) {
    if (seen.has(k)) continue;
    if (spec.default !== undefined) out[k] = structuredClone(spec.default);
    else if (!spec.optional) {
      ctx.diags.push({
        pos: where.pos,
        message: `missing required parameter \`${prefix ? `${prefix}.` : ""}${k}\` (${describeSpec(spec)})`,
      });
    }
  }
  return out;
}
