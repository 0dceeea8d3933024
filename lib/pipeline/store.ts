/**
 * The content-addressed object store under a cache root (default `.ditflow/`, or `DITFLOW_CACHE`):
 *
 * ```
 * objects/<key[0:2]>/<key>/   meta.json, log.txt, out/<output>/...   (immutable, complete or absent)
 * tmp/<host>~<pid>~<rand>/     a stage being written; promoted by one atomic rename after success
 * locks/<key>.lock             per-key lock (see lock.ts)
 * checkpoints/<key>/           survives crashes; removed after the stage succeeds
 * refs/<pipeline>.json         the keys of each stage's last successful run (status, show, gc roots)
 * logs/<key>.failed.log        log of the last failed attempt
 * progress/<key>.json          live progress of a running stage (see live.ts; removed when it ends)
 * ```
 * An object directory exists only once complete, so readers never lock.
 * @module
 */

import type { KeyComponents } from "./cache_key.ts";
import { digestPath, type FileEntry } from "./hash.ts";
import { ownerAlive, processStart } from "./lock.ts";

/** Metadata stored with every artifact (meta.json). */
export interface ArtifactMeta {
  format: 1;
  key: string;
  /** Expanded stage name and the stage's name in the file. */
  name: string;
  base: string;
  pipeline: string;
  kind: string;
  point: Record<string, unknown>;
  components: KeyComponents;
  /** Code fingerprint files (relative path → hash), to say which file changed. */
  code_files: Record<string, string>;
  /** Inputs as bound when the stage ran. */
  inputs: Record<string, { stage: string; output: string; key: string; digest: string }[]>;
  outputs: Record<string, { digest: string; bytes: number; files: RecordedFile[] }>;
  metrics: Record<string, unknown>;
  timings: { started: string; finished: string; ms: number };
  adapter: unknown;
  host: string;
  pid: number;
  ditflow: string;
}

/** An output file as recorded in meta.json: path, size, SHA-256, and its mtime (ms) when it was stored. */
export interface RecordedFile extends FileEntry {
  /** Modification time in ms since the epoch when the artifact was stored (absent in older artifacts). */
  mtime?: number;
}

/** A stored file that no longer matches its record (see {@link Store.quickCheck}, {@link Store.verify}). */
export interface ArtifactProblem {
  key: string;
  /** The producing stage's expanded name. */
  stage: string;
  output: string;
  /** Path relative to the output directory. */
  file: string;
  /** What was recorded and what is there now, in words (`sha256 ab12… (100 bytes)`, `missing`, ...). */
  expected: string;
  found: string;
}

/** Describes a problem in one line: stage, file, expected vs found. */
export function formatProblem(p: ArtifactProblem): string {
  return `stage ${p.stage}: out/${p.output}/${p.file}: expected ${p.expected}, found ${p.found}`;
}

/** Makes every file under `dir` read-only (directories stay writable so `gc` and `--force` can remove). */
export function sealFiles(dir: string): void {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) sealFiles(p);
    else if (e.isFile) Deno.chmodSync(p, 0o444);
  }
}

/** The last successful keys of a pipeline's stages. */
export interface PipelineRef {
  pipeline: string;
  file: string;
  updated: string;
  stages: Record<string, string>;
}

const HOST = Deno.hostname();
const SAFE_HOST = HOST.replace(/[^A-Za-z0-9_.-]/g, "_");

/** The default cache root: `$DITFLOW_CACHE` or `.ditflow` in the current directory. */
export function defaultCacheRoot(): string {
  return Deno.env.get("DITFLOW_CACHE") || `${Deno.cwd()}/.ditflow`;
}

/** The object store. */
export class Store {
  readonly root: string;
  #metaCache = new Map<string, ArtifactMeta>();
  #dirsMade = false;

  constructor(root: string) {
    this.root = root.replace(/\/$/, "");
  }

  /** Directory of a complete artifact. */
  objectDir(key: string): string {
    return `${this.root}/objects/${key.slice(0, 2)}/${key}`;
  }
  /** Directory of one output of an artifact. */
  outputDir(key: string, output: string): string {
    return `${this.objectDir(key)}/out/${output}`;
  }
  /** The crash-surviving checkpoint directory of a key. */
  checkpointDir(key: string): string {
    return `${this.root}/checkpoints/${key}`;
  }
  /** The lock file of a key. */
  lockPath(key: string): string {
    return `${this.root}/locks/${key}.lock`;
  }
  /** Where the log of a failed attempt is kept. */
  failedLogPath(key: string): string {
    return `${this.root}/logs/${key}.failed.log`;
  }

  /** Creates the store's directories (once per process). Not called by read-only commands. */
  ensureDirs(): void {
    if (this.#dirsMade) return;
    for (const d of ["objects", "tmp", "locks", "checkpoints", "refs", "logs"]) {
      Deno.mkdirSync(`${this.root}/${d}`, { recursive: true });
    }
    this.#dirsMade = true;
  }

  /** True when the artifact exists (lock-free: object directories appear atomically). */
  has(key: string): boolean {
    if (this.#metaCache.has(key)) return true;
    try {
      Deno.statSync(`${this.objectDir(key)}/meta.json`);
      return true;
    } catch {
      return false;
    }
  }

  /** The artifact's metadata, or undefined when it is not in the store. */
  readMeta(key: string): ArtifactMeta | undefined {
    const c = this.#metaCache.get(key);
    if (c) return c;
    try {
      const meta = JSON.parse(Deno.readTextFileSync(`${this.objectDir(key)}/meta.json`)) as ArtifactMeta;
      this.#metaCache.set(key, meta);
      return meta;
    } catch {
      return undefined;
    }
  }

  /**
   * The cheap check done before every use of an artifact: each recorded file of the given outputs (all
   * by default) must exist with its recorded size and mtime. Returns the mismatches (empty: unchanged as
   * far as size and mtime tell; `verify` re-hashes).
   */
  quickCheck(key: string, outputs?: string[]): ArtifactProblem[] {
    const meta = this.readMeta(key);
    if (!meta) return [];
    const problems: ArtifactProblem[] = [];
    for (const [o, rec] of Object.entries(meta.outputs)) {
      if (outputs && !outputs.includes(o)) continue;
      for (const f of rec.files) {
        const base = { key, stage: meta.name, output: o, file: f.path };
        let st: Deno.FileInfo;
        try {
          st = Deno.statSync(f.path ? `${this.outputDir(key, o)}/${f.path}` : this.outputDir(key, o));
        } catch {
          problems.push({ ...base, expected: `${f.size} bytes`, found: "missing" });
          continue;
        }
        if (st.size !== f.size) {
          problems.push({ ...base, expected: `${f.size} bytes`, found: `${st.size} bytes` });
        } else if (f.mtime !== undefined && st.mtime && st.mtime.getTime() !== f.mtime) {
          problems.push({
            ...base,
            expected: `mtime ${new Date(f.mtime).toISOString()}`,
            found: `mtime ${st.mtime.toISOString()} (modified after it was stored)`,
          });
        }
      }
    }
    return problems;
  }

  /**
   * Re-hashes an artifact's outputs against the digests recorded in its meta.json: changed, missing and
   * extra files. Returns the mismatches (empty: intact).
   */
  async verify(key: string): Promise<ArtifactProblem[]> {
    const meta = this.readMeta(key);
    if (!meta) return [];
    const problems: ArtifactProblem[] = [];
    for (const [o, rec] of Object.entries(meta.outputs)) {
      const dir = this.outputDir(key, o);
      let now;
      try {
        now = await digestPath(dir);
      } catch {
        problems.push({ key, stage: meta.name, output: o, file: "", expected: rec.digest, found: "missing" });
        continue;
      }
      if (now.digest === rec.digest) continue;
      const found = new Map(now.files.map((f) => [f.path, f]));
      for (const f of rec.files) {
        const n = found.get(f.path);
        found.delete(f.path);
        const base = { key, stage: meta.name, output: o, file: f.path };
        if (!n) problems.push({ ...base, expected: `sha256 ${f.hash} (${f.size} bytes)`, found: "missing" });
        else if (n.hash !== f.hash || n.size !== f.size) {
          problems.push({
            ...base,
            expected: `sha256 ${f.hash} (${f.size} bytes)`,
            found: `sha256 ${n.hash} (${n.size} bytes)`,
          });
        }
      }
      for (const n of found.values()) {
        problems.push({
          key,
          stage: meta.name,
          output: o,
          file: n.path,
          expected: "no such file",
          found: `an extra file (${n.size} bytes)`,
        });
      }
    }
    return problems;
  }

  /** Forgets cached metadata of a key (after `--force` replaced it). */
  forget(key: string): void {
    this.#metaCache.delete(key);
  }

  /** Creates a fresh temporary directory owned by this process. */
  makeTmp(label: string): string {
    this.ensureDirs();
    const start = processStart(Deno.pid) ?? "x";
    const name = `${SAFE_HOST}~${Deno.pid}~${start}~${label.slice(0, 16)}~${crypto.randomUUID().slice(0, 8)}`;
    const dir = `${this.root}/tmp/${name}`;
    Deno.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /**
   * Moves a finished temporary directory into place with one atomic rename. Returns "exists" when the
   * key is already present (the temporary directory is then removed). With `replace`, an existing object
   * is first moved aside (used by `--force`).
   */
  promote(tmpDir: string, key: string, replace = false): "promoted" | "exists" {
    const dest = this.objectDir(key);
    Deno.mkdirSync(`${this.root}/objects/${key.slice(0, 2)}`, { recursive: true });
    if (replace && this.has(key)) {
      const trash = this.makeTmp(`old-${key}`);
      try {
        Deno.renameSync(dest, `${trash}/obj`);
      } catch { /* gone meanwhile */ }
      Deno.removeSync(trash, { recursive: true });
      this.#metaCache.delete(key);
    }
    try {
      Deno.renameSync(tmpDir, dest);
      return "promoted";
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists || /not empty|exists/i.test((e as Error).message)) {
        Deno.removeSync(tmpDir, { recursive: true });
        return "exists";
      }
      throw e;
    }
  }

  /**
   * Removes temporary directories left by dead processes (kill -9, power loss). Directories of live
   * processes (including other `run`s on this cache) are left alone. Returns the removed paths.
   */
  sweepStaleTmp(): string[] {
    const removed: string[] = [];
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${this.root}/tmp`)];
    } catch {
      return removed;
    }
    for (const e of entries) {
      const [host, pid, start] = e.name.split("~");
      if (host !== SAFE_HOST || !pid) continue;
      const alive = ownerAlive({ pid: Number(pid), host: HOST, start: start === "x" ? null : Number(start) });
      if (alive) continue;
      try {
        Deno.removeSync(`${this.root}/tmp/${e.name}`, { recursive: true });
        removed.push(e.name);
      } catch { /* someone else swept it */ }
    }
    return removed;
  }

  /** All keys in the store. */
  listKeys(): string[] {
    const keys: string[] = [];
    try {
      for (const p of Deno.readDirSync(`${this.root}/objects`)) {
        if (!p.isDirectory) continue;
        for (const o of Deno.readDirSync(`${this.root}/objects/${p.name}`)) {
          if (o.isDirectory) keys.push(o.name);
        }
      }
    } catch { /* empty store */ }
    return keys.sort();
  }

  /** Keys starting with `prefix`. */
  findKeys(prefix: string): string[] {
    if (prefix.length < 2) return [];
    try {
      return [...Deno.readDirSync(`${this.root}/objects/${prefix.slice(0, 2)}`)].map((e) => e.name).filter((
        n,
      ) => n.startsWith(prefix));
    } catch {
      return [];
    }
  }

  /** The ref of a pipeline (its stages' last successful keys). */
  readRef(pipeline: string): PipelineRef | undefined {
    try {
      return JSON.parse(Deno.readTextFileSync(`${this.root}/refs/${pipeline}.json`)) as PipelineRef;
    } catch {
      return undefined;
    }
  }

  /** All refs. */
  readRefs(): PipelineRef[] {
    const out: PipelineRef[] = [];
    try {
      for (const e of Deno.readDirSync(`${this.root}/refs`)) {
        if (!e.name.endsWith(".json")) continue;
        const r = this.readRef(e.name.slice(0, -5));
        if (r) out.push(r);
      }
    } catch { /* none */ }
    return out;
  }

  /** Merges stage keys into a pipeline's ref (written atomically: temp file + rename). */
  updateRef(pipeline: string, file: string, stages: Record<string, string>, keepOnly?: Set<string>): void {
    this.ensureDirs();
    const cur = this.readRef(pipeline);
    const merged: Record<string, string> = {};
    for (const [k, v] of Object.entries(cur?.stages ?? {})) if (!keepOnly || keepOnly.has(k)) merged[k] = v;
    Object.assign(merged, stages);
    const ref: PipelineRef = { pipeline, file, updated: new Date().toISOString(), stages: merged };
    const tmp = `${this.root}/refs/.${pipeline}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
    Deno.writeTextFileSync(tmp, JSON.stringify(ref, null, 1));
    Deno.renameSync(tmp, `${this.root}/refs/${pipeline}.json`);
  }
}
