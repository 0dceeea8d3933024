/**
 * The GPU runtime: one device, a buffer pool, a WGSL kernel registry with pipeline cache, and a command
 * recorder that batches many dispatches into few command buffers and never reads back unless asked.
 *
 * Kernel convention (every file in `kernels/`): an entry point binds `@group(0) @binding(0)` to a uniform
 * params struct (when it has params) and then its storage buffers at bindings 1, 2, ... in the order the
 * caller passes them, and it uses every binding it declares. Workgroup and tile sizes are `override`
 * constants, specialised per pipeline.
 * @module
 */

import { type AcquiredDevice, acquireDevice, type AdapterDescription } from "./device.ts";
import { BufferPool } from "./buffer_pool.ts";
import { expandVariants, variantNames } from "./wgsl_variants.ts";

/** A WGSL source file in `kernels/`, referenced by URL so that stage fingerprints can find it. */
export class KernelFile {
  #text: string | null = null;
  #source: string | null = null;
  #vec4Names: Map<string, string> | null = null;
  /** The file name without extension, e.g. `matmul`. */
  readonly name: string;
  constructor(readonly url: URL) {
    const base = url.pathname.split("/").pop() ?? "";
    this.name = base.replace(/\.wgsl$/, "");
  }
  /** The WGSL text, read once, with its f32/vec4 variant blocks expanded (`wgsl_variants.ts`). */
  get source(): string {
    this.#source ??= expandVariants(this.#read(), this.url.pathname);
    return this.#source;
  }
  /** The vec4 instance's name of each f32 name of the variant blocks (`variantNames`). */
  get vec4Names(): ReadonlyMap<string, string> {
    this.#vec4Names ??= variantNames(this.#read(), this.url.pathname);
    return this.#vec4Names;
  }
  #read(): string {
    if (this.#text === null) {
      try {
        this.#text = Deno.readTextFileSync(this.url);
      } catch (e) {
        throw new Error(`kernel file ${this.url.pathname} could not be read: ${(e as Error).message}`);
      }
    }
    return this.#text;
  }
}

/** Declares a kernel file. Use `wgsl(new URL("../../kernels/x.wgsl", import.meta.url))`. */
export function wgsl(url: URL): KernelFile {
  return new KernelFile(url);
}

/** A storage buffer reference for a dispatch. */
export type BufferRef = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

/** One compute dispatch. */
export interface DispatchSpec {
  kernel: KernelFile;
  entry: string;
  /** Values for the WGSL `override` constants. */
  constants?: Record<string, number>;
  /** Bytes for the uniform params struct at binding 0; omit if the entry point has none. */
  params?: ArrayBuffer | ArrayBufferView;
  /** Storage buffers, bound at 1, 2, ... (or 0, 1, ... when there are no params). */
  buffers: BufferRef[];
  /** Workgroup counts. */
  workgroups: readonly [number, number?, number?];
  /** What this dispatch computes, for error messages and profiles. */
  label?: string;
}

/** Thrown by the debug mode when an op produced a NaN or an Inf. */
export class NonFiniteError extends Error {
  constructor(readonly op: string, readonly index: number) {
    super(`debug mode: op #${index} \`${op}\` produced a NaN or Inf`);
    this.name = "NonFiniteError";
  }
}

/** Little helper to pack a uniform params struct of 4-byte scalars in declaration order. */
export class Params {
  #view: DataView;
  #off = 0;
  constructor(capacity = 256) {
    this.#view = new DataView(new ArrayBuffer(capacity));
  }
  /** Appends a u32. */
  u32(v: number): this {
    this.#view.setUint32(this.#off, v >>> 0, true);
    this.#off += 4;
    return this;
  }
  /** Appends an i32. */
  i32(v: number): this {
    this.#view.setInt32(this.#off, v | 0, true);
    this.#off += 4;
    return this;
  }
  /** Appends an f32. */
  f32(v: number): this {
    this.#view.setFloat32(this.#off, v, true);
    this.#off += 4;
    return this;
  }
  /** The packed bytes, padded to 16 bytes as uniform structs require. */
  bytes(): Uint8Array {
    const n = Math.max(16, Math.ceil(this.#off / 16) * 16);
    return new Uint8Array(this.#view.buffer, 0, n);
  }
}

const MAX_DISPATCHES_PER_BATCH = 512;
const TIMESTAMP_CAPACITY = 4096;
const DEBUG_CAPACITY = 65536;

/** Options for {@link Runtime.create}. */
export interface RuntimeOptions {
  /** Check every op's output for NaN/Inf and name the op (slow; default from DITFLOW_DEBUG=1). */
  debug?: boolean;
  /** Print the adapter description on creation. */
  verbose?: boolean;
}

/** Counters that tell how the runtime is used. */
export interface RuntimeStats {
  dispatches: number;
  submits: number;
  readbacks: number;
  pipelines: number;
}

const debugKernel = wgsl(new URL("../../kernels/debug.wgsl", import.meta.url));

/** The GPU runtime. */
export class Runtime {
  readonly device: GPUDevice;
  readonly adapter: AdapterDescription;
  readonly pool: BufferPool;
  readonly hasTimestamps: boolean;
  debug: boolean;

  #pipelines = new Map<string, GPUComputePipeline>();
  #modules = new Map<string, GPUShaderModule>();
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  #afterSubmit: (() => void)[] = [];
  #uniformCpu: Uint8Array<ArrayBuffer>;
  #uniformGpu: GPUBuffer;
  #uniformUsed = 0;
  #uniformAlign: number;
  #stats: RuntimeStats = { dispatches: 0, submits: 0, readbacks: 0, pipelines: 0 };
  #kernelsLoaded = new Set<string>();
  #passLabel = "pass";
  // timing
  #timing: {
    set: GPUQuerySet;
    next: number;
    resolves: Promise<void>[];
    /** One timestamped pass per dispatch (profiling) rather than per batch. */
    perDispatch: boolean;
    /** Label of each query pair of the current batch. */
    labels: string[];
    totalNs: number;
    byLabel: Map<string, { ns: number; count: number }>;
  } | null = null;
  // debug
  #debugFlags: GPUBuffer | null = null;
  #debugOps: string[] = [];
  #lostReason: string | null = null;

  private constructor(acq: AcquiredDevice, opts: RuntimeOptions) {
    this.device = acq.device;
    this.adapter = acq.adapter_info;
    this.hasTimestamps = acq.device.features.has("timestamp-query");
    this.debug = opts.debug ?? (Deno.env.get("DITFLOW_DEBUG") === "1");
    const lim = acq.adapter_info.limits;
    this.pool = new BufferPool(acq.device, lim.maxBufferSize, lim.maxStorageBufferBindingSize);
    this.#uniformAlign = Math.max(256, lim.minUniformBufferOffsetAlignment ?? 256);
    const cap = this.#uniformAlign * MAX_DISPATCHES_PER_BATCH;
    this.#uniformCpu = new Uint8Array(cap);
    this.#uniformGpu = acq.device.createBuffer({
      size: cap,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: "uniform arena",
    });
    acq.device.lost.then((info) => {
      this.#lostReason = `${info.reason}: ${info.message}`;
    });
    acq.device.addEventListener("uncapturederror", (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      console.error(`ditflow: WebGPU error: ${err.message}`);
    });
  }

  /** Creates a runtime on a freshly acquired device. */
  static async create(opts: RuntimeOptions = {}): Promise<Runtime> {
    const acq = await acquireDevice({ verbose: opts.verbose });
    return new Runtime(acq, opts);
  }

  /** Counters for tests and benchmarks. */
  stats(): RuntimeStats {
    return { ...this.#stats, pipelines: this.#pipelines.size };
  }

  /** Names of the kernel files loaded so far. */
  kernelsLoaded(): string[] {
    return [...this.#kernelsLoaded].sort();
  }

  /** Returns (and caches) the compute pipeline for a kernel entry point and its constants. */
  pipeline(kernel: KernelFile, entry: string, constants?: Record<string, number>): GPUComputePipeline {
    const ckey = constants ? Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",") : "";
    const key = `${kernel.url.href}#${entry}#${ckey}`;
    let p = this.#pipelines.get(key);
    if (p) return p;
    let mod = this.#modules.get(kernel.url.href);
    if (!mod) {
      mod = this.device.createShaderModule({ code: kernel.source, label: kernel.name });
      this.#modules.set(kernel.url.href, mod);
      this.#kernelsLoaded.add(kernel.name);
    }
    p = this.device.createComputePipeline({
      layout: "auto",
      label: `${kernel.name}.${entry}`,
      compute: { module: mod, entryPoint: entry, constants },
    });
    this.#pipelines.set(key, p);
    return p;
  }

  #ensurePass(): GPUComputePassEncoder {
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder();
    if (!this.#pass) {
      const desc: GPUComputePassDescriptor = {};
      if (this.#timing && this.#timing.next + 2 <= TIMESTAMP_CAPACITY) {
        const i = this.#timing.next;
        this.#timing.next += 2;
        this.#timing.labels.push(this.#passLabel);
        desc.timestampWrites = {
          querySet: this.#timing.set,
          beginningOfPassWriteIndex: i,
          endOfPassWriteIndex: i + 1,
        };
      }
      this.#pass = this.#encoder.beginComputePass(desc);
    }
    return this.#pass;
  }

  #ensureEncoderNoPass(): GPUCommandEncoder {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder();
    return this.#encoder;
  }

  /** Records a dispatch. Nothing runs until a flush (automatic after many dispatches, or on read). */
  dispatch(spec: DispatchSpec): void {
    if (this.#lostReason) throw new Error(`the GPU device was lost (${this.#lostReason})`);
    const maxWg = this.adapter.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = spec.workgroups;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new Error(
        `${spec.label ?? spec.kernel.name + "." + spec.entry}: dispatch of [${x}, ${y}, ${z}] workgroups ` +
          `exceeds the device limit of ${maxWg} per dimension`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    if (this.#pending >= MAX_DISPATCHES_PER_BATCH) this.flush();
    const pipe = this.pipeline(spec.kernel, spec.entry, spec.constants);
    const entries: GPUBindGroupEntry[] = [];
    let b = 0;
    if (spec.params) {
      const bytes = spec.params instanceof ArrayBuffer
        ? new Uint8Array(spec.params)
        : new Uint8Array(spec.params.buffer, spec.params.byteOffset, spec.params.byteLength);
      if (bytes.byteLength > this.#uniformAlign) throw new Error("params struct larger than 256 bytes");
      const off = this.#uniformUsed;
      this.#uniformCpu.set(bytes, off);
      this.#uniformUsed += this.#uniformAlign;
      entries.push({
        binding: b++,
        resource: { buffer: this.#uniformGpu, offset: off, size: bytes.byteLength },
      });
    }
    for (const ref of spec.buffers) {
      if (ref instanceof GPUBuffer) entries.push({ binding: b++, resource: { buffer: ref } });
      else {entries.push({
          binding: b++,
          resource: { buffer: ref.buffer, offset: ref.offset ?? 0, size: ref.size },
        });}
    }
    const bg = this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
    const profiling = this.#timing?.perDispatch ?? false;
    if (profiling) {
      if (this.#timing!.next + 2 > TIMESTAMP_CAPACITY) this.flush();
      this.#ensureEncoderNoPass();
      this.#passLabel = spec.label ?? `${spec.kernel.name}.${spec.entry}`;
    }
    const pass = this.#ensurePass();
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(x, y, z);
    if (profiling) {
      pass.end();
      this.#pass = null;
      this.#passLabel = "pass";
    }
    this.#pending++;
    this.#stats.dispatches++;
  }

  /** Records a copy between buffers (ordered with the dispatches). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.#ensureEncoderNoPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.#pending++;
  }

  /** Records a clear to zero of `bytes` bytes (a multiple of 4) of a buffer. */
  clear(buf: GPUBuffer, offset = 0, bytes?: number): void {
    this.#ensureEncoderNoPass().clearBuffer(buf, offset, bytes);
    this.#pending++;
  }

  /** Records an upload of host data into a buffer, ordered with the recorded dispatches. */
  upload(dst: GPUBuffer, data: ArrayBufferView, dstOffset = 0): void {
    const bytes = Math.ceil(data.byteLength / 4) * 4;
    if (bytes === 0) return;
    const staging = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    staging.unmap();
    this.#ensureEncoderNoPass().copyBufferToBuffer(staging, 0, dst, dstOffset, bytes);
    this.#pending++;
    this.#afterSubmit.push(() => staging.destroy());
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.#encoder) return;
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    if (this.#timing && this.#timing.next > 0) this.#resolveTimestamps(this.#encoder);
    const cb = this.#encoder.finish();
    this.#encoder = null;
    if (this.#uniformUsed > 0) {
      this.device.queue.writeBuffer(this.#uniformGpu, 0, this.#uniformCpu, 0, this.#uniformUsed);
      this.#uniformUsed = 0;
    }
    this.device.queue.submit([cb]);
    this.#stats.submits++;
    this.#pending = 0;
    for (const f of this.#afterSubmit) f();
    this.#afterSubmit = [];
  }

  /** Flushes and waits until the GPU has finished all submitted work; checks debug flags. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    if (this.debug) await this.#checkDebugFlags();
  }

  /** Reads `bytes` bytes of a buffer back to the host. Flushes. */
  async read(src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({
      size: Math.max(4, size),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    if (size > 0) this.#ensureEncoderNoPass().copyBufferToBuffer(src, offset, staging, 0, size);
    this.flush();
    this.#stats.readbacks++;
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    if (this.debug) await this.#checkDebugFlags();
    return out;
  }

  // ---- timing -------------------------------------------------------------------------------------

  /** Starts GPU timing with timestamp queries (no-op where the adapter has none). */
  startTiming(perDispatch = false): void {
    if (!this.hasTimestamps) return;
    this.flush();
    this.#timing = {
      set: this.device.createQuerySet({ type: "timestamp", count: TIMESTAMP_CAPACITY }),
      next: 0,
      resolves: [],
      perDispatch,
      labels: [],
      totalNs: 0,
      byLabel: new Map(),
    };
  }

  #resolveTimestamps(enc: GPUCommandEncoder): void {
    const t = this.#timing!;
    const n = t.next;
    const labels = t.labels.splice(0);
    const resolve = this.device.createBuffer({
      size: n * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const read = this.device.createBuffer({
      size: n * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    enc.resolveQuerySet(t.set, 0, n, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, n * 8);
    t.next = 0;
    // Map only after the submit that fills `read` (mapping a buffer used by a submit is an error).
    const submitted = new Promise<void>((res) => this.#afterSubmit.push(res));
    t.resolves.push(
      (async () => {
        await submitted;
        await read.mapAsync(GPUMapMode.READ);
        const ts = new BigUint64Array(read.getMappedRange().slice(0));
        read.unmap();
        read.destroy();
        resolve.destroy();
        for (let i = 0; i + 1 < n; i += 2) {
          const ns = ts[i + 1] > ts[i] ? Number(ts[i + 1] - ts[i]) : 0;
          t.totalNs += ns;
          const label = labels[i / 2] ?? "pass";
          const e = t.byLabel.get(label) ?? { ns: 0, count: 0 };
          e.ns += ns;
          e.count++;
          t.byLabel.set(label, e);
        }
      })(),
    );
  }

  /**
   * Stops GPU timing and returns the GPU time of all compute passes since {@link startTiming}, in
   * milliseconds, or null where the adapter has no timestamp queries.
   */
  async stopTiming(): Promise<number | null> {
    return (await this.stopProfile())?.totalMs ?? null;
  }

  /**
   * Stops GPU timing and returns the total and, after `startTiming(true)`, the GPU time per dispatch
   * label (op), largest first. Null where the adapter has no timestamp queries.
   */
  async stopProfile(): Promise<
    { totalMs: number; ops: { label: string; ms: number; count: number }[] } | null
  > {
    if (!this.#timing) return null;
    this.flush();
    const t = this.#timing;
    this.#timing = null;
    await Promise.all(t.resolves);
    t.set.destroy();
    const ops = [...t.byLabel].map(([label, e]) => ({ label, ms: e.ns / 1e6, count: e.count }))
      .sort((a, b) => b.ms - a.ms);
    return { totalMs: t.totalNs / 1e6, ops };
  }

  // ---- debug --------------------------------------------------------------------------------------

  /** In debug mode, records a check that `count` f32 values of `buf` are finite, blamed on `op`. */
  checkFinite(buf: GPUBuffer, count: number, op: string): void {
    if (!this.debug || count === 0) return;
    if (!this.#debugFlags) {
      this.#debugFlags = this.device.createBuffer({
        size: DEBUG_CAPACITY * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label: "debug flags",
      });
      this.clear(this.#debugFlags);
    }
    if (this.#debugOps.length >= DEBUG_CAPACITY) return;
    const idx = this.#debugOps.length;
    this.#debugOps.push(op);
    const wg = 256;
    const groups = Math.ceil(count / wg);
    const gx = Math.min(groups, 65535);
    const gy = Math.ceil(groups / gx);
    this.dispatch({
      kernel: debugKernel,
      entry: "check_finite",
      params: new Params().u32(count).u32(idx).bytes(),
      buffers: [{ buffer: buf, size: count * 4 }, this.#debugFlags],
      workgroups: [gx, gy],
      label: `debug check of ${op}`,
    });
  }

  async #checkDebugFlags(): Promise<void> {
    if (!this.#debugFlags || this.#debugOps.length === 0) return;
    const n = this.#debugOps.length;
    const flagsBuf = this.#debugFlags;
    const staging = this.device.createBuffer({
      size: n * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#ensureEncoderNoPass().copyBufferToBuffer(flagsBuf, 0, staging, 0, n * 4);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const flags = new Uint32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    const ops = this.#debugOps;
    this.#debugOps = [];
    this.clear(flagsBuf);
    for (let i = 0; i < n; i++) {
      if (flags[i] !== 0) throw new NonFiniteError(ops[i], i);
    }
  }

  /** Releases device resources. */
  destroy(): void {
    this.flush();
    this.pool.trim();
    this.#uniformGpu.destroy();
    this.#debugFlags?.destroy();
    this.device.destroy();
  }
}

let current: Runtime | null = null;
let creating: Promise<Runtime> | null = null;

/** Returns the process-wide runtime, creating it on first use. */
export function getRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
  if (current) return Promise.resolve(current);
  if (!creating) {
    creating = Runtime.create(opts).then((rt) => {
      current = rt;
      return rt;
    });
  }
  return creating;
}

/**
 * At process end (`unload`: after `deno test` has reported, or when a script's event loop ends), a
 * runtime still alive is destroyed synchronously (flush, pooled buffers, own buffers, device) so that
 * the WebGPU device is not torn down by the process exit while the driver (llvmpipe/lavapipe) still holds
 * it. Deno.exit() callers should `await shutdownRuntime()` first, which also waits for the GPU.
 */
function destroyAtUnload(): void {
  const r = current;
  current = null;
  creating = null;
  if (!r) return;
  try {
    r.destroy();
  } catch { /* already lost */ }
}
globalThis.addEventListener("unload", destroyAtUnload);

/**
 * Releases the process-wide runtime, if one was created: waits for the GPU to finish the submitted work,
 * then destroys the pooled buffers, the runtime's own buffers and the device, in that order, and waits
 * for the device to report itself lost (wgpu has then released its Vulkan objects). Call it before the
 * process exits, so that no driver thread is still working while the process tears down; a later
 * {@link getRuntime} creates a new runtime.
 */
export async function shutdownRuntime(): Promise<void> {
  const r = current ?? (creating ? await creating.catch(() => null) : null);
  current = null;
  creating = null;
  if (!r) return;
  try {
    await r.sync();
  } catch { /* a lost device has nothing left to finish */ }
  r.destroy();
  await Promise.race([r.device.lost, new Promise((res) => setTimeout(res, 2000))]);
}

/** Returns the process-wide runtime; throws if {@link getRuntime} has not been awaited yet. */
export function rt(): Runtime {
  if (!current) throw new Error("the GPU runtime is not initialised: `await getRuntime()` first");
  return current;
}

/** Splits a 1-D workgroup count into a 2-D grid within the per-dimension limit. */
export function grid1d(total: number, workgroupSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(total / workgroupSize));
  const x = Math.min(groups, maxPerDim);
  return [x, Math.ceil(groups / x)];
}
