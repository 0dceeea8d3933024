/**
 * Code fingerprints, computed automatically: starting at a kind's module (`import.meta.url`), follow
 * what its run can execute: static *value* imports, `export ... from` re-exports and literal dynamic
 * imports of local files, and every file referenced as `new URL("...", import.meta.url)` (the WGSL kernels
 * a stage loads). Type-only imports (`import type`, `import { type A, type B }`, `export type { ... } from`)
 * are not followed: they are erased before anything runs.
 *
 * Files are hashed by their token stream, not their bytes, so comments and formatting do not count:
 * TypeScript through the TypeScript compiler's own scanner (`npm:typescript`, with the rescans its parser
 * does for template literals and regular expressions), WGSL with its variant blocks expanded
 * (`lib/gpu/wgsl_variants.ts`), its comments stripped and its tokens joined. Other assets are hashed as
 * bytes. Imports are read from the same token stream, so an `import` inside a comment or a string (the
 * runtime's doc example `kernels/x.wgsl`) is not a dependency.
 *
 * The fingerprint is the hash of the sorted (path relative to the project root, token hash) pairs plus
 * the external specifiers (`npm:yaml@2.9.1`, `node:fs`, ...), which contribute their text only.
 *
 * The engine itself (`lib/pipeline/`) is not walked: it is covered by the ditflow version in every key,
 * so editing the scheduler does not invalidate every artifact.
 * @module
 */

import ts from "typescript";
import { sha256 } from "./hash.ts";
import { expandVariants } from "../gpu/wgsl_variants.ts";

/** The code fingerprint of one kind. */
export interface CodeFingerprint {
  /** Hash over {@link files} and {@link external}. */
  hash: string;
  /** Path relative to the project root → hash of its tokens (`missing` when absent). */
  files: Record<string, string>;
  /** External specifiers (npm:, jsr:, node:, https:) the graph imports. */
  external: string[];
  /** Path relative to the project root → the file that first brought it in (absent for the root). */
  via: Record<string, string>;
}

const ENGINE_DIR = new URL(".", import.meta.url).pathname;
/** The project root (the directory holding deno.json). */
export const PROJECT_ROOT: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

interface FileInfo {
  hash: string;
  /** Local modules and assets it references (absolute paths). */
  locals: string[];
  external: string[];
}

const fileCache = new Map<string, FileInfo>();
let importMap: Record<string, string> | undefined;

function loadImportMap(): Record<string, string> {
  if (importMap) return importMap;
  try {
    const cfg = JSON.parse(Deno.readTextFileSync(`${PROJECT_ROOT}/deno.json`));
    importMap = (cfg.imports ?? {}) as Record<string, string>;
  } catch {
    importMap = {};
  }
  return importMap;
}

function relPath(abs: string): string {
  const root = PROJECT_ROOT.split("/");
  const parts = abs.split("/");
  let i = 0;
  while (i < root.length && i < parts.length && root[i] === parts[i]) i++;
  return [...Array(root.length - i).fill(".."), ...parts.slice(i)].join("/");
}

function resolve(spec: string, fromFile: string): { local?: string; external?: string } {
  if (spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("/")) {
    return { local: new URL(spec, `file://${fromFile}`).pathname };
  }
  if (spec.startsWith("file:")) return { local: new URL(spec).pathname };
  const map = loadImportMap();
  if (map[spec]) return resolve(map[spec], `${PROJECT_ROOT}/deno.json`);
  for (const [k, v] of Object.entries(map)) {
    if (k.endsWith("/") && spec.startsWith(k)) {
      return resolve(v + spec.slice(k.length), `${PROJECT_ROOT}/deno.json`);
    }
  }
  return { external: spec };
}

function isEngine(path: string): boolean {
  return path.startsWith(ENGINE_DIR);
}

/** One token of a TypeScript file: its kind and its normalised text. */
export interface TsToken {
  kind: ts.SyntaxKind;
  text: string;
  /** The value of a string literal (quotes and escapes resolved). */
  value?: string;
}

const K = ts.SyntaxKind;
/** After these keywords a `/` starts a regular expression; after other keywords it divides. */
const REGEX_AFTER_KEYWORD = new Set<ts.SyntaxKind>([
  K.ReturnKeyword,
  K.TypeOfKeyword,
  K.InstanceOfKeyword,
  K.InKeyword,
  K.OfKeyword,
  K.NewKeyword,
  K.DeleteKeyword,
  K.VoidKeyword,
  K.ThrowKeyword,
  K.CaseKeyword,
  K.DoKeyword,
  K.ElseKeyword,
  K.YieldKeyword,
  K.AwaitKeyword,
]);
/** After these tokens a `/` divides (they end an operand). */
const OPERAND_END = new Set<ts.SyntaxKind>([
  K.Identifier,
  K.PrivateIdentifier,
  K.NumericLiteral,
  K.BigIntLiteral,
  K.StringLiteral,
  K.NoSubstitutionTemplateLiteral,
  K.TemplateTail,
  K.RegularExpressionLiteral,
  K.CloseParenToken,
  K.CloseBracketToken,
  K.CloseBraceToken,
  K.PlusPlusToken,
  K.MinusMinusToken,
  K.ExclamationToken, // non-null assertion `x! / 2` (a prefix `!` before a regex is rare)
]);
/** Restricted productions: a line break after these ends the statement (ASI), so it is kept. */
const LINE_BREAK_MATTERS = new Set<ts.SyntaxKind>([
  K.ReturnKeyword,
  K.ThrowKeyword,
  K.BreakKeyword,
  K.ContinueKeyword,
  K.YieldKeyword,
]);

function regexAllowed(prev: ts.SyntaxKind | undefined): boolean {
  if (prev === undefined) return true;
  if (OPERAND_END.has(prev)) return false;
  if (prev >= K.FirstKeyword && prev <= K.LastKeyword) return REGEX_AFTER_KEYWORD.has(prev);
  return true;
}

/**
 * Tokenizes TypeScript (or JavaScript) with the TypeScript scanner, comments and whitespace dropped.
 * Template literals and regular expressions are rescanned as the TypeScript parser would (by context).
 * A line break is kept (as a `\n` token) only where it changes the meaning (after `return`, `throw`, ...).
 */
export function tokenizeTs(text: string, jsx = false): TsToken[] {
  const sc = ts.createScanner(
    ts.ScriptTarget.Latest,
    true,
    jsx ? ts.LanguageVariant.JSX : ts.LanguageVariant.Standard,
    text,
  );
  const out: TsToken[] = [];
  const templates: number[] = []; // open-brace depth inside each `${ ... }` being scanned
  let prev: ts.SyntaxKind | undefined;
  for (let kind = sc.scan(); kind !== K.EndOfFileToken; kind = sc.scan()) {
    if (kind === K.OpenBraceToken && templates.length) templates[templates.length - 1]++;
    else if (kind === K.CloseBraceToken && templates.length) {
      if (templates[templates.length - 1] === 0) {
        kind = sc.reScanTemplateToken(false);
        if (kind === K.TemplateTail) templates.pop();
      } else templates[templates.length - 1]--;
    } else if ((kind === K.SlashToken || kind === K.SlashEqualsToken) && regexAllowed(prev)) {
      kind = sc.reScanSlashToken();
    }
    if (kind === K.TemplateHead) templates.push(0);
    if (prev !== undefined && LINE_BREAK_MATTERS.has(prev) && sc.hasPrecedingLineBreak()) {
      out.push({ kind: K.NewLineTrivia, text: "\n" });
    }
    if (kind === K.StringLiteral) {
      const value = sc.getTokenValue();
      out.push({ kind, text: JSON.stringify(value), value });
    } else if (kind === K.NoSubstitutionTemplateLiteral) {
      out.push({ kind, text: sc.getTokenText(), value: sc.getTokenValue() });
    } else out.push({ kind, text: sc.getTokenText() });
    prev = kind;
  }
  return out;
}

/** Strips WGSL comments (`//` and nestable block comments) and splits it into tokens. */
export function tokenizeWgsl(text: string): string[] {
  let code = "";
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("//", i)) {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
      code += " ";
    } else if (text.startsWith("/*", i)) {
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text.startsWith("/*", i)) {
          depth++;
          i += 2;
        } else if (text.startsWith("*/", i)) {
          depth--;
          i += 2;
        } else i++;
      }
      code += " ";
    } else code += text[i++];
  }
  const re =
    /[A-Za-z_][A-Za-z0-9_]*|0[xX][0-9a-fA-F.]+(?:[pP][+-]?\d+)?[a-z]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-z]?|>>=|<<=|&&|\|\||==|!=|<=|>=|<<|>>|\+\+|--|->|[+\-*/%&|^]=|::|\S/g;
  return code.match(re) ?? [];
}

/**
 * The WGSL a kernel file runs: its variant blocks expanded (`lib/gpu/wgsl_variants.ts`), so that the
 * directive lines, which are comments, count too. A file whose blocks do not expand is hashed as written
 * (loading it fails anyway).
 */
function expandedWgsl(text: string, path: string): string {
  try {
    return expandVariants(text, path);
  } catch {
    return text;
  }
}

/** A value import found in a token stream: the specifier and whether it is an asset (`new URL`). */
interface Ref {
  spec: string;
  asset: boolean;
}

function isStr(t: TsToken | undefined): boolean {
  return t !== undefined && (t.kind === K.StringLiteral || t.kind === K.NoSubstitutionTemplateLiteral);
}

/** True when every specifier of `{ ... }` starting at `open` is written `type X` (and there is one). */
function allTypeSpecifiers(toks: TsToken[], open: number): { close: number; allType: boolean } {
  let depth = 0;
  let j = open;
  const specs: TsToken[][] = [[]];
  for (; j < toks.length; j++) {
    const t = toks[j];
    if (t.kind === K.OpenBraceToken) {
      depth++;
      if (depth === 1) continue;
    } else if (t.kind === K.CloseBraceToken) {
      depth--;
      if (depth === 0) break;
    }
    if (depth === 1 && t.kind === K.CommaToken) specs.push([]);
    else specs[specs.length - 1].push(t);
  }
  const named = specs.filter((s) => s.length > 0);
  const allType = named.length > 0 && named.every((s) => s[0].text === "type" && s.length > 1);
  return { close: j, allType };
}

/**
 * The local and external modules a TypeScript token stream can execute: static value imports, value
 * re-exports, literal dynamic imports, and `new URL("...", import.meta.url)` assets.
 */
export function valueImports(toks: TsToken[]): Ref[] {
  const refs: Ref[] = [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    const prev = toks[i - 1];
    if (prev && (prev.kind === K.DotToken || prev.kind === K.QuestionDotToken)) continue; // x.import
    if (t.kind === K.ImportKeyword) {
      const n = toks[i + 1];
      if (!n || n.kind === K.DotToken) continue; // import.meta
      if (n.kind === K.OpenParenToken) {
        const s = toks[i + 2];
        const after = toks[i + 3];
        if (isStr(s) && after && (after.kind === K.CloseParenToken || after.kind === K.CommaToken)) {
          refs.push({ spec: s.value!, asset: false });
        }
        continue;
      }
      if (isStr(n)) {
        refs.push({ spec: n.value!, asset: false }); // import "x": side effects
        continue;
      }
      // import [type] clause from "x"
      let typeOnly = n.text === "type" && toks[i + 2] !== undefined &&
        (toks[i + 2].kind === K.OpenBraceToken || toks[i + 2].kind === K.AsteriskToken ||
          (toks[i + 2].kind === K.Identifier && toks[i + 2].text !== "from") ||
          (toks[i + 2].text === "from" && toks[i + 3]?.text === "from"));
      let j = i + 1;
      if (n.kind === K.OpenBraceToken) {
        const r = allTypeSpecifiers(toks, i + 1);
        if (r.allType) typeOnly = true;
        j = r.close;
      }
      for (; j < toks.length && j < i + 400; j++) {
        if (toks[j].kind === K.OpenBraceToken) j = allTypeSpecifiers(toks, j).close;
        if (toks[j].kind === K.SemicolonToken) break;
        if (toks[j].text === "from" && isStr(toks[j + 1])) {
          if (!typeOnly) refs.push({ spec: toks[j + 1].value!, asset: false });
          break;
        }
      }
    } else if (t.kind === K.ExportKeyword) {
      let j = i + 1;
      let typeOnly = false;
      if (
        toks[j]?.text === "type" &&
        (toks[j + 1]?.kind === K.OpenBraceToken || toks[j + 1]?.kind === K.AsteriskToken)
      ) {
        typeOnly = true;
        j++;
      }
      if (toks[j]?.kind === K.OpenBraceToken) {
        const r = allTypeSpecifiers(toks, j);
        typeOnly ||= r.allType;
        j = r.close + 1;
      } else if (toks[j]?.kind === K.AsteriskToken) {
        j++;
        if (toks[j]?.text === "as") j += 2;
      } else continue; // export const/function/class/default/...: not a re-export
      if (toks[j]?.text === "from" && isStr(toks[j + 1]) && !typeOnly) {
        refs.push({ spec: toks[j + 1].value!, asset: false });
      }
    } else if (
      t.kind === K.NewKeyword && toks[i + 1]?.text === "URL" && toks[i + 2]?.kind === K.OpenParenToken
    ) {
      const s = toks[i + 3];
      const rest = toks.slice(i + 4, i + 11).map((x) => x.text).join("");
      if (isStr(s) && rest === ",import.meta.url)") refs.push({ spec: s.value!, asset: true });
    }
  }
  return refs;
}

function readInfo(path: string): FileInfo {
  const cached = fileCache.get(path);
  if (cached) return cached;
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch {
    const info = { hash: "missing", locals: [], external: [] };
    fileCache.set(path, info);
    return info;
  }
  let info: FileInfo;
  if (/\.(m?[jt]sx?)$/.test(path)) {
    const toks = tokenizeTs(new TextDecoder().decode(bytes), /x$/.test(path));
    info = { hash: sha256(toks.map((t) => t.text).join("\0")), locals: [], external: [] };
    for (const ref of valueImports(toks)) {
      const spec = ref.asset && !/^(\.|\/|[a-z]+:)/.test(ref.spec) ? `./${ref.spec}` : ref.spec;
      const r = resolve(spec, path);
      if (r.local) info.locals.push(r.local);
      else if (r.external && !ref.asset) info.external.push(r.external);
    }
  } else if (path.endsWith(".wgsl")) {
    info = {
      hash: sha256(tokenizeWgsl(expandedWgsl(new TextDecoder().decode(bytes), path)).join("\0")),
      locals: [],
      external: [],
    };
  } else {
    info = { hash: sha256(bytes), locals: [], external: [] };
  }
  fileCache.set(path, info);
  return info;
}

/**
 * Fingerprints the module graph rooted at `moduleUrl` (plus `extraFiles`). File contents are read once
 * per process (call {@link clearFingerprintCache} after editing files in the same process). `skip`
 * (paths relative to the project root) are not walked: what is reachable without them (for tests).
 */
export function fingerprintModule(
  moduleUrl: string,
  extraFiles: readonly string[] = [],
  skip: readonly string[] = [],
): CodeFingerprint {
  const files: Record<string, string> = {};
  const via: Record<string, string> = {};
  const external = new Set<string>();
  const seen = new Set<string>();
  const queue: { path: string; from?: string }[] = [];
  const push = (spec: string) => {
    if (!spec.startsWith("file:")) {
      external.add(spec);
      return;
    }
    queue.push({ path: new URL(spec).pathname });
  };
  push(moduleUrl);
  for (const f of extraFiles) push(f);
  // Breadth first, so that `via` names a shortest import chain.
  for (let q = 0; q < queue.length; q++) {
    const { path, from } = queue[q];
    if (seen.has(path) || isEngine(path)) continue;
    seen.add(path);
    const info = readInfo(path);
    const rel = relPath(path);
    if (skip.includes(rel)) continue;
    files[rel] = info.hash;
    if (from) via[rel] = from;
    for (const e of info.external) external.add(e);
    for (const l of info.locals) if (!seen.has(l)) queue.push({ path: l, from: rel });
  }
  const ext = [...external].sort();
  const lines = Object.keys(files).sort().map((p) => `${p}\0${files[p]}\n`);
  const hash = sha256(lines.join("") + ext.map((e) => `ext\0${e}\n`).join(""));
  return { hash, files, external: ext, via };
}

/** The import chain that brought `file` into a fingerprint, root first (e.g. stage → model → kernel). */
export function importChain(fp: CodeFingerprint, file: string): string[] {
  const chain = [file];
  let cur = file;
  while (fp.via[cur] && chain.length < 100) {
    cur = fp.via[cur];
    chain.unshift(cur);
  }
  return chain;
}

/** Forgets cached file contents (the CLI is one process per run; long-lived callers may need this). */
export function clearFingerprintCache(): void {
  fileCache.clear();
}
