/**
 * Reads a YAML file into a small tree of located nodes ({@link YNode}): every map, sequence, scalar and
 * map key carries its file:line:col, so that later stages of validation can point at the exact token.
 * YAML errors (syntax, tabs used as indentation, duplicate keys, ...) become diagnostics.
 * @module
 */

import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
} from "yaml";
import type { Diagnostic, Pos } from "./diagnostics.ts";

/** A scalar as YAML resolves it (core schema): string, number, boolean or null. */
export type Scalar = string | number | boolean | null;

/** A located YAML scalar. */
export interface YScalar {
  type: "scalar";
  pos: Pos;
  value: Scalar;
  /** The source text of the scalar (e.g. `1e-4`), when it came from a file. */
  source?: string;
  /** Set when interpolation failed (already reported): later checks skip the value silently. */
  poisoned?: boolean;
  /** The text as written before interpolation (e.g. `${{ vars.image_dir }}`), when it was interpolated. */
  template?: string;
  /** Where an interpolated value was written (a file, or the command line for `--set vars.x=...`). */
  origin?: Pos;
}

/** A located YAML sequence. */
export interface YSeq {
  type: "seq";
  pos: Pos;
  items: YNode[];
}

/** One `key: value` entry of a located map. */
export interface YEntry {
  key: string;
  keyPos: Pos;
  value: YNode;
}

/** A located YAML mapping; entries keep their source order. */
export interface YMap {
  type: "map";
  pos: Pos;
  entries: YEntry[];
}

/** Any located YAML node. */
export type YNode = YScalar | YSeq | YMap;

/** The result of {@link parseYamlSource}. */
export interface YamlSource {
  file: string;
  text: string;
  /** The document root, or undefined when the file could not be parsed at all. */
  root?: YNode;
  diagnostics: Diagnostic[];
}

const YAML_MESSAGES: Record<string, string> = {
  DUPLICATE_KEY: "duplicate key",
  TAB_AS_INDENT: "tab used for indentation (YAML allows only spaces)",
  MULTIPLE_DOCS: "the file contains more than one YAML document",
  BAD_INDENT: "bad indentation",
  MISSING_CHAR: "missing character",
  BLOCK_AS_IMPLICIT_KEY: "a block value cannot be used as an implicit key (missing `:` or bad indentation?)",
  MULTILINE_IMPLICIT_KEY: "implicit keys must be on a single line (missing `:`?)",
  UNEXPECTED_TOKEN: "unexpected token",
};

/** Parses YAML text, mapping every YAML error to a diagnostic with file:line:col. */
export function parseYamlSource(text: string, file: string): YamlSource {
  const lc = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true });
  const posAt = (offset: number, len = 1): Pos => {
    const p = lc.linePos(offset);
    return { file, line: p.line, col: p.col, len };
  };
  for (const e of doc.errors) {
    const [start, end] = e.pos;
    const first = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    const known = YAML_MESSAGES[e.code];
    const message = known ?? `YAML: ${first}`;
    let hint: string | undefined;
    if (e.code === "DUPLICATE_KEY") {
      const keyText = (/^[^:\n]*/.exec(text.slice(start))?.[0] ?? "").trim();
      hint = `the key ${
        keyText ? `\`${keyText}\` ` : ""
      }appears earlier in the same mapping; remove one of them`;
    } else if (e.code === "TAB_AS_INDENT") hint = "replace the tab with spaces";
    else if (known) hint = first;
    diagnostics.push({ pos: posAt(start, Math.max(1, end - start)), message, hint });
  }
  if (diagnostics.length > 0) return { file, text, diagnostics };
  // Bound alias expansion before converting (a "billion laughs" file is a few lines that expand to
  // billions of nodes): the yaml library's own alias-count check, then a node budget in `convert`
  // that also says where the expansion is.
  const budget = { nodes: 0, exceeded: false };
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    if (e instanceof ReferenceError || /alias/i.test((e as Error).message)) {
      const alias = firstHeavyAlias(doc);
      diagnostics.push({
        pos: alias ? posAt(alias[0], alias[1]) : { file, line: 1, col: 1 },
        message: `YAML aliases expand too much (more than ${MAX_ALIAS_COUNT} aliased nodes): ` +
          'a resource exhaustion ("billion laughs") file?',
        hint: "write the repeated values out, or use fewer nested aliases",
      });
      return { file, text, diagnostics };
    }
  }
  const root = doc.contents ? convert(doc, doc.contents as Node, posAt, diagnostics, 0, budget) : undefined;
  return { file, text, root, diagnostics };
}

/** The yaml library's `maxAliasCount`: how many nodes aliases may expand to, in its own counting. */
export const MAX_ALIAS_COUNT = 1000;
/** At most this many located nodes are built from one file (aliases expanded). */
export const MAX_NODES = 200_000;

/** The [offset, length] of the alias whose expansion is largest (the place to point at). */
function firstHeavyAlias(doc: Document): [number, number] | undefined {
  let found: [number, number] | undefined;
  let best = -1;
  const sizes = new Map<unknown, number>();
  const size = (n: unknown, depth: number): number => {
    if (depth > 64 || n === null || n === undefined) return 1;
    const cached = sizes.get(n);
    if (cached !== undefined) return cached;
    let s = 1;
    if (isAlias(n)) s = size(n.resolve(doc), depth + 1);
    else if (isMap(n)) { for (const it of n.items) s += size(it.key, depth + 1) + size(it.value, depth + 1); }
    else if (isSeq(n)) { for (const it of n.items) s += size(it, depth + 1); }
    s = Math.min(s, Number.MAX_SAFE_INTEGER);
    sizes.set(n, s);
    return s;
  };
  const visit = (n: unknown, depth: number) => {
    if (depth > 64 || n === null || n === undefined) return;
    if (isAlias(n)) {
      const s = size(n, depth);
      if (s > best && n.range) {
        best = s;
        found = [n.range[0], Math.max(1, n.range[1] - n.range[0])];
      }
    } else if (isMap(n)) { for (const it of n.items) visit(it.value, depth + 1); }
    else if (isSeq(n)) { for (const it of n.items) visit(it, depth + 1); }
  };
  visit(doc.contents, 0);
  return found;
}

function convert(
  doc: Document,
  node: Node,
  posAt: (offset: number, len?: number) => Pos,
  diags: Diagnostic[],
  depth = 0,
  budget = { nodes: 0, exceeded: false },
): YNode {
  const range = node.range ?? [0, 0, 0];
  const pos = posAt(range[0], Math.max(1, range[1] - range[0]));
  if (++budget.nodes > MAX_NODES) {
    if (!budget.exceeded) {
      budget.exceeded = true;
      diags.push({ pos, message: `the file expands to more than ${MAX_NODES} YAML nodes (alias bomb?)` });
    }
    return { type: "scalar", pos, value: null };
  }
  if (depth > 64) {
    diags.push({ pos, message: "nesting too deep (recursive alias?)" });
    return { type: "scalar", pos, value: null };
  }
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (!target) {
      diags.push({ pos, message: `unknown alias *${node.source}` });
      return { type: "scalar", pos, value: null };
    }
    const resolved = convert(doc, target as Node, posAt, diags, depth + 1, budget);
    return { ...resolved, pos };
  }
  if (isMap(node)) {
    const entries: YEntry[] = [];
    for (const item of node.items) {
      if (!isPair(item)) continue;
      const k = item.key as Node | null;
      let key: string;
      let keyPos: Pos;
      if (k && isScalar(k)) {
        key = String(k.value);
        const r = k.range ?? [0, 0, 0];
        keyPos = posAt(r[0], Math.max(1, r[1] - r[0]));
      } else if (k) {
        const r = k.range ?? [0, 0, 0];
        keyPos = posAt(r[0]);
        diags.push({ pos: keyPos, message: "map keys must be plain scalars" });
        continue;
      } else {
        continue;
      }
      const v = item.value as Node | null;
      const value: YNode = v
        ? convert(doc, v, posAt, diags, depth + 1, budget)
        : { type: "scalar", pos: { ...keyPos, col: keyPos.col + key.length + 1, len: 1 }, value: null };
      entries.push({ key, keyPos, value });
    }
    return { type: "map", pos, entries };
  }
  if (isSeq(node)) {
    const items: YNode[] = [];
    for (const it of node.items) {
      if (it === null || it === undefined) continue;
      items.push(convert(doc, it as Node, posAt, diags, depth + 1, budget));
    }
    return { type: "seq", pos, items };
  }
  if (isScalar(node)) {
    let value = node.value as unknown;
    if (typeof value === "bigint") value = Number(value);
    if (value instanceof Date) value = value.toISOString();
    if (value !== null && typeof value === "object") value = String(value);
    return { type: "scalar", pos, value: value as Scalar, source: node.source as string | undefined };
  }
  diags.push({ pos, message: "unsupported YAML node" });
  return { type: "scalar", pos, value: null };
}

/** Converts a located node to plain JavaScript values. */
export function toPlain(node: YNode): unknown {
  switch (node.type) {
    case "scalar":
      return node.value;
    case "seq":
      return node.items.map(toPlain);
    case "map": {
      const o: Record<string, unknown> = {};
      for (const e of node.entries) o[e.key] = toPlain(e.value);
      return o;
    }
  }
}

/** Builds a located node from a plain value, every part placed at `pos` (used for defaults and overrides). */
export function fromPlain(value: unknown, pos: Pos): YNode {
  if (Array.isArray(value)) return { type: "seq", pos, items: value.map((v) => fromPlain(v, pos)) };
  if (value !== null && typeof value === "object") {
    return {
      type: "map",
      pos,
      entries: Object.entries(value as Record<string, unknown>).map(([key, v]) => ({
        key,
        keyPos: pos,
        value: fromPlain(v, pos),
      })),
    };
  }
  return { type: "scalar", pos, value: value as Scalar };
}

/** The entry of a map with the given key, if any. */
export function entry(map: YMap, key: string): YEntry | undefined {
  return map.entries.find((e) => e.key === key);
}

/** A short name for the type of a node, for messages (`a mapping`, `a list`, `the string "x"`, ...). */
export function describeNode(node: YNode): string {
  if (node.type === "map") return "a mapping";
  if (node.type === "seq") return "a list";
  const v = node.value;
  if (v === null) return "nothing (null)";
  if (typeof v === "string") return `the string "${v.length > 40 ? v.slice(0, 40) + "…" : v}"`;
  if (typeof v === "number") return `the number ${v}`;
  return `the boolean ${v}`;
}
