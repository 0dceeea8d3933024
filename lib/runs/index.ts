/**
 * A row index of the store, so that `ditflow runs` on a cache of thousands of entries does not read and
 * parse every meta.json each time: `<cache>/index/runs-v1.json` keeps, per object shard directory
 * (`objects/<key[0:2]>/`), its modification time and the rows of its objects. A shard whose directory
 * changed since (an object added, removed, or replaced by `--force`: each is a rename in that directory)
 * is read again. Shards modified in the last few seconds are not indexed (a change within the same
 * timestamp tick could otherwise go unseen). The file is written atomically (temp file + rename); a
 * read-only cache just goes without it.
 * @module
 */

import type { Store } from "../pipeline/store.ts";
import { rowOf, type RunRow } from "./model.ts";

/** Shards changed more recently than this are read but not indexed. */
const SETTLE_MS = 3000;

interface RunIndexFile {
  version: 1;
  shards: Record<string, { mtime: number; rows: RunRow[] }>;
}

/** Where the index lives. */
export function indexPath(store: Store): string {
  return `${store.root}/index/runs-v1.json`;
}

function readIndex(store: Store): RunIndexFile["shards"] {
  try {
    const f = JSON.parse(Deno.readTextFileSync(indexPath(store))) as RunIndexFile;
    return f.version === 1 && f.shards ? f.shards : {};
  } catch {
    return {};
  }
}

/** Statistics of one indexed load. */
export interface IndexedLoad {
  rows: RunRow[];
  /** Shards read from meta.json files (the rest came from the index). */
  shardsRead: number;
  shardsIndexed: number;
}

/**
 * Every object's row (`current` false; the caller sets it), using and refreshing the index. With
 * `write: false` the index is used but not rewritten.
 */
export function loadRowsIndexed(store: Store, opts: { write?: boolean } = {}): IndexedLoad {
  const old = readIndex(store);
  const next: RunIndexFile["shards"] = {};
  const rows: RunRow[] = [];
  let shardsRead = 0, changed = false;
  let shards: string[] = [];
  try {
    shards = [...Deno.readDirSync(`${store.root}/objects`)].filter((e) => e.isDirectory).map((e) => e.name);
  } catch { /* empty store */ }
  const now = Date.now();
  for (const shard of shards.sort()) {
    const dir = `${store.root}/objects/${shard}`;
    let mtime: number;
    try {
      mtime = Deno.statSync(dir).mtime?.getTime() ?? 0;
    } catch {
      continue;
    }
    const hit = old[shard];
    if (hit && hit.mtime === mtime && mtime > 0) {
      rows.push(...hit.rows);
      next[shard] = hit;
      continue;
    }
    shardsRead++;
    const got: RunRow[] = [];
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (!e.isDirectory) continue;
        const m = store.readMeta(e.name);
        if (m) got.push(rowOf(m));
      }
    } catch { /* removed meanwhile */ }
    rows.push(...got);
    if (mtime > 0 && now - mtime > SETTLE_MS) {
      next[shard] = { mtime, rows: got };
      changed = true;
    } else if (hit) changed = true;
  }
  if (Object.keys(old).some((s) => !(s in next))) changed = true;
  if (changed && opts.write !== false) {
    try {
      Deno.mkdirSync(`${store.root}/index`, { recursive: true });
      const tmp = `${indexPath(store)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
      Deno.writeTextFileSync(tmp, JSON.stringify({ version: 1, shards: next } satisfies RunIndexFile));
      Deno.renameSync(tmp, indexPath(store));
    } catch { /* read-only cache: no index */ }
  }
  return { rows, shardsRead, shardsIndexed: Object.keys(next).length };
}
