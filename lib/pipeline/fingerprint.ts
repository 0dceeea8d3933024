/**
 * Code fingerprints, computed automatically: starting at a kind's module (`import.meta.url`), follow the
 * static imports, `export ... from` and literal dynamic imports of local files, and every file referenced
 * as `new URL("...", import.meta.url)` (the WGSL kernels a stage loads). The fingerprint is the hash of
 * the sorted (path relative to the project root, content hash) pairs plus the external specifiers
 * (`npm:yaml@2.9.1`, `node:fs`, ...), which contribute their text only.
 *
 * The engine itself (`lib/pipeline/`) is not walked: it is covered by the ditflow version in every key,
 * so editing the scheduler does not invalidate every artifact.
 * @module
 */

import { sha256 } from "./hash.ts";

/** The code fingerprint of one kind. */
export interface CodeFingerprint {
  /** Hash over {@link files} and {@link external}. */
  hash: string;
  /** Path relative to the project root → SHA-256 of the content (`missing` when absent). */
  files: Record<string, string>;
  /** External specifiers (npm:, jsr:, node:, https:) the graph imports. */
  external: string[];
}

const ENGINE_DIR = new URL(".", import.meta.url).pathname;
/** The project root (the directory holding deno.json). */
export const PROJECT_ROOT: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

const IMPORT_RE = /(?:^|[;\s}])(?:import|export)\s+(?:type\s+)?(?:[^;'"`]*?\s+from\s+)?["']([^"'\n]+)["']/g;
const DYNAMIC_RE = /\bimport\s*\(\s*["']([^"'\n]+)["']\s*\)/g;
const ASSET_RE = /new\s+URL\s*\(\s*["'`]([^"'`\n]+)["'`]\s*,\s*import\.meta\.url\s*\)/g;

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
  const info: FileInfo = { hash: sha256(bytes), locals: [], external: [] };
  if (/\.(m?[jt]sx?)$/.test(path)) {
    const text = new TextDecoder().decode(bytes);
    for (const re of [IMPORT_RE, DYNAMIC_RE]) {
      for (const m of text.matchAll(re)) {
        const r = resolve(m[1], path);
        if (r.local) info.locals.push(r.local);
        else if (r.external) info.external.push(r.external);
      }
    }
    for (const m of text.matchAll(ASSET_RE)) {
      const r = resolve(m[1].startsWith(".") || m[1].startsWith("/") ? m[1] : `./${m[1]}`, path);
      if (r.local) info.locals.push(r.local);
    }
  }
  fileCache.set(path, info);
  return info;
}

/**
 * Fingerprints the module graph rooted at `moduleUrl` (plus `extraFiles`). File contents are read once
 * per process (call {@link clearFingerprintCache} after editing files in the same process).
 */
export function fingerprintModule(moduleUrl: string, extraFiles: readonly string[] = []): CodeFingerprint {
  const files: Record<string, string> = {};
  const external = new Set<string>();
  const seen = new Set<string>();
  const stack: string[] = [];
  const push = (spec: string) => {
    if (!spec.startsWith("file:")) {
      external.add(spec);
      return;
    }
    stack.push(new URL(spec).pathname);
  };
  push(moduleUrl);
  for (const f of extraFiles) push(f);
  while (stack.length > 0) {
    const path = stack.pop()!;
    if (seen.has(path) || isEngine(path)) continue;
    seen.add(path);
    const info = readInfo(path);
    files[relPath(path)] = info.hash;
    for (const e of info.external) external.add(e);
    for (const l of info.locals) if (!seen.has(l)) stack.push(l);
  }
  const ext = [...external].sort();
  const lines = Object.keys(files).sort().map((p) => `${p}\0${files[p]}\n`);
  const hash = sha256(lines.join("") + ext.map((e) => `ext\0${e}\n`).join(""));
  return { hash, files, external: ext };
}

/** Forgets cached file contents (the CLI is one process per run; long-lived callers may need this). */
export function clearFingerprintCache(): void {
  fileCache.clear();
}
