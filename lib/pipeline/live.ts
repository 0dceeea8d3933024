/**
 * Live progress files: while a stage runs, `runStage` keeps `<cache>/progress/<key>.json` up to date (at
 * most once a second, written to a temporary file and renamed, so readers never see a partial file) and
 * removes it when the stage ends. `ditflow ui` reads them to show running stages (step, loss, ETA); files
 * left by a killed process are ignored (their owner is not alive; on the same host, readers remove them).
 * @module
 */

import { ownerAlive, processStart } from "./lock.ts";
import type { ProgressUpdate } from "./stage.ts";

/** The content of a progress file. */
export interface LiveProgress {
  key: string;
  name: string;
  pipeline: string;
  kind: string;
  host: string;
  pid: number;
  /** Process start time (lock.ts's notion), to tell a recycled pid apart. */
  start: number | null;
  /** Epoch ms the stage started, and of the first and the latest update. */
  startedMs: number;
  firstMs?: number;
  firstStep?: number;
  updatedMs: number;
  /** The latest update (step, total, scalars). */
  update?: ProgressUpdate;
}

/** The progress directory of a cache root. */
export function progressDir(root: string): string {
  return `${root}/progress`;
}

/** Writes a stage's progress file, throttled; call {@link LiveWriter.close} when the stage ends. */
export class LiveWriter {
  #path: string;
  #state: LiveProgress;
  #last = 0;
  #closed = false;
  constructor(
    root: string,
    info: { key: string; name: string; pipeline: string; kind: string },
    readonly minIntervalMs = 1000,
  ) {
    Deno.mkdirSync(progressDir(root), { recursive: true });
    this.#path = `${progressDir(root)}/${info.key}.json`;
    this.#state = {
      ...info,
      host: Deno.hostname(),
      pid: Deno.pid,
      start: processStart(Deno.pid) ?? null,
      startedMs: Date.now(),
      updatedMs: Date.now(),
    };
    this.#write();
  }
  /** Records an update; writes the file when the last write is at least `minIntervalMs` old. */
  update(u: ProgressUpdate): void {
    if (this.#closed) return;
    const now = Date.now();
    if (this.#state.firstMs === undefined) {
      this.#state.firstMs = now;
      this.#state.firstStep = u.step;
    }
    this.#state.update = { ...u };
    this.#state.updatedMs = now;
    if (now - this.#last >= this.minIntervalMs || (u.total !== undefined && u.step >= u.total)) this.#write();
  }
  #write(): void {
    this.#last = Date.now();
    const tmp = `${this.#path}.${Deno.pid}.tmp`;
    try {
      Deno.writeTextFileSync(tmp, JSON.stringify(this.#state));
      Deno.renameSync(tmp, this.#path);
    } catch { /* progress is best effort */ }
  }
  /** Removes the progress file. */
  close(): void {
    this.#closed = true;
    try {
      Deno.removeSync(this.#path);
    } catch { /* gone */ }
  }
}

/** The progress of stages running now (files whose owner process is alive). */
export function readLive(root: string): LiveProgress[] {
  const out: LiveProgress[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(progressDir(root))];
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.name.endsWith(".json")) continue;
    try {
      const path = `${progressDir(root)}/${e.name}`;
      const p = JSON.parse(Deno.readTextFileSync(path)) as LiveProgress;
      if (ownerAlive({ pid: p.pid, host: p.host, start: p.start }, p.updatedMs)) out.push(p);
      else if (p.host === Deno.hostname()) Deno.removeSync(path); // left by a killed process on this host
    } catch { /* being replaced, or not ours */ }
  }
  return out.sort((a, b) => a.startedMs - b.startedMs);
}

/** Steps per second and seconds left, from the first and latest updates (undefined until known). */
export function liveRate(p: LiveProgress): { rate?: number; etaSec?: number } {
  const u = p.update;
  if (!u || p.firstMs === undefined || p.firstStep === undefined) return {};
  const dt = (p.updatedMs - p.firstMs) / 1000;
  if (dt <= 0 || u.step <= p.firstStep) return {};
  const rate = (u.step - p.firstStep) / dt;
  return { rate, etaSec: u.total !== undefined ? Math.max(0, (u.total - u.step) / rate) : undefined };
}
