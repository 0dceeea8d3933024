/**
 * A pool of storage buffers with reuse by size class.
 *
 * Buffers are handed out by size class (powers of two below 1 MiB, then eighth-of-a-power-of-two steps)
 * and returned on release. Reuse is safe without fences because every use of a buffer is recorded on the
 * one in-order queue: a later dispatch that reuses a released buffer runs after the earlier ones.
 * @module
 */

import { fmtBytes } from "./device.ts";

/** Thrown when an allocation exceeds a device limit; names the size, the limit and the tensor. */
export class AllocationError extends Error {
  constructor(bytes: number, limit: number, limitName: string, what: string) {
    super(
      `cannot allocate ${fmtBytes(bytes)} (${bytes} bytes) for ${what}: ` +
        `exceeds the device's ${limitName} of ${fmtBytes(limit)} (${limit} bytes)`,
    );
    this.name = "AllocationError";
  }
}

/** Rounds a byte count up to its size class. */
export function sizeClass(bytes: number): number {
  const min = 256;
  if (bytes <= min) return min;
  if (bytes <= 1 << 20) return 1 << Math.ceil(Math.log2(bytes));
  const p = 1 << (Math.floor(Math.log2(bytes)) - 3); // eighth of the power of two below
  return Math.ceil(bytes / p) * p;
}

/** Statistics about the pool's use of device memory. */
export interface PoolStats {
  /** Bytes in buffers handed out now. */
  inUse: number;
  /** Bytes in buffers created and not destroyed (in use + free). */
  allocated: number;
  /** Highest value `allocated` reached. */
  peak: number;
  /** Number of `createBuffer` calls (a low number in a steady loop means reuse works). */
  creates: number;
}

/** Storage-buffer pool. */
export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #stats: PoolStats = { inUse: 0, allocated: 0, peak: 0, creates: 0 };
  readonly usage: GPUBufferUsageFlags;

  constructor(
    readonly device: GPUDevice,
    readonly maxBufferSize: number,
    readonly maxBindingSize: number,
  ) {
    this.usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  }

  /** Returns a buffer of at least `bytes` bytes. `what` names the tensor for error messages. */
  acquire(bytes: number, what = "a tensor"): GPUBuffer {
    if (bytes > this.maxBindingSize) {
      throw new AllocationError(bytes, this.maxBindingSize, "maxStorageBufferBindingSize", what);
    }
    let cls = sizeClass(bytes);
    if (cls > this.maxBufferSize) cls = bytes; // exact size still fits
    if (cls > this.maxBufferSize) throw new AllocationError(bytes, this.maxBufferSize, "maxBufferSize", what);
    const list = this.#free.get(cls);
    let buf = list?.pop();
    if (!buf) {
      buf = this.device.createBuffer({ size: cls, usage: this.usage, label: what });
      this.#stats.creates++;
      this.#stats.allocated += cls;
      if (this.#stats.allocated > this.#stats.peak) this.#stats.peak = this.#stats.allocated;
    }
    this.#stats.inUse += cls;
    return buf;
  }

  /** Returns a buffer to the pool. */
  release(buf: GPUBuffer): void {
    const cls = buf.size;
    this.#stats.inUse -= cls;
    let list = this.#free.get(cls);
    if (!list) this.#free.set(cls, list = []);
    list.push(buf);
  }

  /** Destroys all free buffers. Call only when no recorded-but-unsubmitted work uses them. */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const b of list) {
        this.#stats.allocated -= b.size;
        b.destroy();
      }
    }
    this.#free.clear();
  }

  /** A snapshot of the pool's statistics. */
  stats(): PoolStats {
    return { ...this.#stats };
  }
}
