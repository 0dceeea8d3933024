/**
 * Per-key locks between processes that share a cache. A lock is a file `locks/<key>.lock` created with
 * O_EXCL (`createNew`), holding the owner's pid, host, process start time and a random token. A lock whose
 * owner is dead (same host: no /proc/PID, or a different process start time, i.e. the pid was reused;
 * other host: no heartbeat for {@link LEASE_MS}) is stale and is broken, under a second O_EXCL file so
 * that only one process breaks it. A live lock is waited for. Reads of the store never lock.
 * @module
 */

/** What a lock file holds. */
export interface LockInfo {
  pid: number;
  host: string;
  /** Process start time (clock ticks since boot, from /proc/PID/stat), to detect pid reuse. */
  start: number | null;
  created: string;
  token: string;
}

/** A lock from another host is stale when its file has not been touched for this long. */
export const LEASE_MS = 60_000;
const HEARTBEAT_MS = 10_000;
/** An empty or unreadable lock file (owner died while creating it) is stale after this long. */
const EMPTY_GRACE_MS = 5_000;

const HOST = Deno.hostname();

/** The start time of a process from /proc (null when unknown), or undefined when it does not exist. */
export function processStart(pid: number): number | null | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = fields[0];
    if (state === "Z" || state === "X") return undefined; // zombie: dead for our purposes
    return Number(fields[19]);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    return null; // no /proc: cannot tell
  }
}

const SELF_START = processStart(Deno.pid) ?? null;

/** This process's lock identity. */
export function selfInfo(): LockInfo {
  return {
    pid: Deno.pid,
    host: HOST,
    start: SELF_START,
    created: new Date().toISOString(),
    token: crypto.randomUUID(),
  };
}

/** True when the owner described by `info` (a lock or temp dir owner) is still running. */
export function ownerAlive(info: Pick<LockInfo, "pid" | "host" | "start">, mtimeMs?: number): boolean {
  if (info.host !== HOST) return mtimeMs === undefined || Date.now() - mtimeMs < LEASE_MS;
  const start = processStart(info.pid);
  if (start === undefined) return false;
  if (start !== null && info.start !== null && start !== info.start) return false;
  return true;
}

function readLock(path: string): { info?: LockInfo; mtime: number } | undefined {
  let mtime = Date.now();
  try {
    mtime = Deno.statSync(path).mtime?.getTime() ?? mtime;
    const text = Deno.readTextFileSync(path);
    return { info: JSON.parse(text) as LockInfo, mtime };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    return { mtime }; // empty or partial: being written, or the writer died
  }
}

function createExclusive(path: string, content: string): boolean {
  try {
    const f = Deno.openSync(path, { write: true, createNew: true });
    try {
      f.writeSync(new TextEncoder().encode(content));
    } finally {
      f.close();
    }
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  }
}

function isStale(l: { info?: LockInfo; mtime: number }): boolean {
  if (!l.info) return Date.now() - l.mtime > EMPTY_GRACE_MS;
  return !ownerAlive(l.info, l.mtime);
}

/** Lets the process exit while a timer is pending. */
export function unref(timer: unknown): void {
  const t = timer as { unref?: () => void };
  if (typeof t?.unref === "function") t.unref();
  else if (typeof timer === "number") Deno.unrefTimer(timer);
}

/** A held lock. */
export class KeyLock {
  #timer: ReturnType<typeof setInterval>;
  #released = false;
  constructor(readonly path: string, readonly info: LockInfo) {
    this.#timer = setInterval(() => {
      try {
        const now = new Date();
        Deno.utimeSync(this.path, now, now);
      } catch { /* released or broken */ }
    }, HEARTBEAT_MS);
    unref(this.#timer);
  }
  /** Releases the lock (only if the file is still ours). Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    clearInterval(this.#timer);
    const cur = readLock(this.path);
    if (cur?.info?.token === this.info.token) {
      try {
        Deno.removeSync(this.path);
      } catch { /* already gone */ }
    }
  }
}

/** Removes a stale lock file, serialised by `<path>.break` so that two breakers cannot both succeed. */
function breakStale(path: string, seen: { info?: LockInfo; mtime: number }): void {
  const breaker = `${path}.break`;
  const me = selfInfo();
  if (!createExclusive(breaker, JSON.stringify(me))) {
    const b = readLock(breaker);
    if (b && isStale(b)) {
      try {
        Deno.removeSync(breaker);
      } catch { /* someone else did */ }
    }
    return;
  }
  try {
    const again = readLock(path);
    if (again && again.info?.token === seen.info?.token && isStale(again)) Deno.removeSync(path);
  } finally {
    try {
      Deno.removeSync(breaker);
    } catch { /* ignore */ }
  }
}

/** Tries once to take the lock; returns it, or the current holder's info (undefined if unreadable). */
export function tryLock(path: string): KeyLock | { holder?: LockInfo } {
  for (let attempt = 0; attempt < 3; attempt++) {
    const info = selfInfo();
    if (createExclusive(path, JSON.stringify(info))) return new KeyLock(path, info);
    const cur = readLock(path);
    if (!cur) continue; // released meanwhile
    if (isStale(cur)) {
      breakStale(path, cur);
      continue;
    }
    return { holder: cur.info };
  }
  return { holder: readLock(path)?.info };
}

/** Options for {@link acquireLock}. */
export interface AcquireOptions {
  signal?: AbortSignal;
  /** Called once when the lock is held by someone else and we start waiting. */
  onWait?: (holder?: LockInfo) => void;
  /** Stop waiting (and return undefined) as soon as this returns true, e.g. the artifact appeared. */
  done?: () => boolean;
  pollMs?: number;
}

/**
 * Takes the lock at `path`, waiting while a live owner holds it. Returns undefined when `done()` became
 * true while waiting (another process produced the result).
 */
export async function acquireLock(path: string, opts: AcquireOptions = {}): Promise<KeyLock | undefined> {
  let waited = false;
  let delay = 20;
  while (true) {
    opts.signal?.throwIfAborted();
    const r = tryLock(path);
    if (r instanceof KeyLock) return r;
    if (!waited) {
      opts.onWait?.(r.holder);
      waited = true;
    }
    if (opts.done?.()) return undefined;
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(opts.pollMs ?? 250, delay * 2);
    if (opts.done?.()) return undefined;
  }
}

/**
 * The live holder of the lock at `path`, or undefined when the lock is free or stale (a dead owner, an
 * expired lease). Reads only; never takes or breaks the lock.
 */
export function liveHolder(path: string): LockInfo | undefined {
  const cur = readLock(path);
  if (!cur || isStale(cur)) return undefined;
  return cur.info ?? { pid: 0, host: "?", start: null, created: "", token: "" };
}
