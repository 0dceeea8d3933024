/**
 * Tensors on GPU buffers: shapes, dtypes, creation, read-back and disposal scopes.
 *
 * A tensor owns one pooled storage buffer until it is disposed. Tensors created inside {@link tidy}
 * are disposed when the scope ends, except those returned from it or marked with {@link Tensor.keep}.
 * @module
 */

import { rt } from "../gpu/runtime.ts";
import type { GradNode } from "./autograd.ts";

/** Element types. Float tensors are f32; labels and indices are u32 or i32. */
export type DType = "f32" | "u32" | "i32";

/** A tensor shape. */
export type Shape = readonly number[];

/** Thrown when operand shapes do not fit an op; names the op and the shapes. */
export class ShapeError extends Error {
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = "ShapeError";
  }
}

/** Number of elements of a shape. */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError("shape", `invalid dimension ${d} in [${shape}]`);
    n *= d;
  }
  return n;
}

/** Formats a shape as `[2, 3]`. */
export function fmtShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

let nextId = 1;
const scopes: Set<Tensor>[] = [];

/** A pooled buffer shared by a tensor and its views; returned to the pool when the last one is disposed. */
class Storage {
  refs = 1;
  constructor(public buffer: GPUBuffer | null) {}
  release(): void {
    if (--this.refs === 0 && this.buffer) {
      rt().pool.release(this.buffer);
      this.buffer = null;
    }
  }
}

/** A tensor on the GPU. */
export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly size: number;
  readonly dtype: DType;
  /** Name used in error messages and checkpoints. */
  name: string;
  /** Whether gradients flow to this tensor. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf tensor after `backward`. */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when recorded on the tape. */
  node: GradNode | null = null;
  #storage: Storage | null;

  /** Wraps a buffer; use the creation functions rather than this constructor. */
  constructor(shape: Shape, dtype: DType, buffer: GPUBuffer | Storage, name = "") {
    this.shape = [...shape];
    this.size = numel(shape);
    this.dtype = dtype;
    this.#storage = buffer instanceof Storage ? buffer : new Storage(buffer);
    this.name = name || `t${this.id}`;
    const scope = scopes[scopes.length - 1];
    if (scope) scope.add(this);
  }

  /** The underlying buffer; throws if the tensor was disposed. */
  get buffer(): GPUBuffer {
    const b = this.#storage?.buffer;
    if (!b) throw new Error(`tensor ${this.name} ${fmtShape(this.shape)} was used after dispose()`);
    return b;
  }

  /** Whether the tensor has been disposed. */
  get disposed(): boolean {
    return this.#storage === null;
  }

  /**
   * A tensor of another shape with the same number of elements that shares this tensor's buffer (no
   * copy, no autograd record: use `reshape` from the ops for a differentiable reshape). The buffer is
   * returned to the pool when the last tensor sharing it is disposed.
   */
  view(shape: Shape, name = ""): Tensor {
    const n = numel(shape);
    if (n !== this.size) {
      throw new ShapeError(
        "view",
        `cannot view ${fmtShape(this.shape)} (${this.size} elements) as ${fmtShape(shape)}`,
      );
    }
    if (!this.#storage) this.buffer; // throws the use-after-dispose error
    this.#storage!.refs++;
    return new Tensor(shape, this.dtype, this.#storage!, name || this.name);
  }

  /** Size in bytes. */
  get bytes(): number {
    return this.size * 4;
  }

  /** Rank. */
  get ndim(): number {
    return this.shape.length;
  }

  /** A binding of exactly this tensor's bytes, for a dispatch. */
  binding(): { buffer: GPUBuffer; offset: number; size: number } {
    return { buffer: this.buffer, offset: 0, size: Math.max(4, this.bytes) };
  }

  /** Returns the buffer to the pool. Safe to call twice. */
  dispose(): void {
    if (!this.#storage) return;
    this.#storage.release();
    this.#storage = null;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    this.node = null;
  }

  /** Removes this tensor from the enclosing scopes so that it outlives them. */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }

  /** Reads the data back (flushes pending work). */
  async read(): Promise<Float32Array | Uint32Array | Int32Array> {
    const ab = await rt().read(this.buffer, this.bytes);
    if (this.dtype === "f32") return new Float32Array(ab);
    if (this.dtype === "u32") return new Uint32Array(ab);
    return new Int32Array(ab);
  }

  /** Reads a float tensor back as a Float32Array. */
  async data(): Promise<Float32Array> {
    if (this.dtype !== "f32") throw new Error(`tensor ${this.name} is ${this.dtype}, not f32`);
    return (await this.read()) as Float32Array;
  }

  /** Reads a one-element tensor as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new ShapeError("item", `tensor ${this.name} has shape ${fmtShape(this.shape)}`);
    }
    return (await this.read())[0];
  }

  toString(): string {
    return `Tensor(${this.name}, ${fmtShape(this.shape)}, ${this.dtype})`;
  }
}

/** Allocates an uninitialised tensor. */
export function empty(shape: Shape, dtype: DType = "f32", name = ""): Tensor {
  const n = numel(shape);
  const what = name ? `tensor ${name} ${fmtShape(shape)}` : `a tensor of shape ${fmtShape(shape)}`;
  const buf = rt().pool.acquire(Math.max(4, n * 4), what);
  return new Tensor(shape, dtype, buf, name);
}

/** A tensor of zeros. */
export function zeros(shape: Shape, dtype: DType = "f32", name = ""): Tensor {
  const t = empty(shape, dtype, name);
  rt().clear(t.buffer, 0, Math.ceil(Math.max(4, t.bytes) / 4) * 4);
  return t;
}

/** Uploads host data into a new tensor. */
export function tensor(
  data: ArrayLike<number> | Float32Array | Uint32Array | Int32Array,
  shape: Shape,
  dtype?: DType,
  name = "",
): Tensor {
  const dt: DType = dtype ??
    (data instanceof Uint32Array ? "u32" : data instanceof Int32Array ? "i32" : "f32");
  const n = numel(shape);
  if (data.length !== n) {
    throw new ShapeError(
      "tensor",
      `${data.length} values do not fill shape ${fmtShape(shape)} (${n} elements)`,
    );
  }
  let typed: Float32Array | Uint32Array | Int32Array;
  if (dt === "f32") {
    typed = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  } else if (dt === "u32") {
    typed = data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
  } else typed = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
  const t = empty(shape, dt, name);
  rt().upload(t.buffer, typed);
  return t;
}

/** A tensor filled with one value. */
export function full(shape: Shape, value: number, name = ""): Tensor {
  return tensor(new Float32Array(numel(shape)).fill(value), shape, "f32", name);
}

type Nested = Tensor | null | undefined | number | string | boolean | Nested[] | { [k: string]: Nested };

function collect(x: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || x === null || x === undefined) return;
  if (x instanceof Tensor) out.add(x);
  else if (Array.isArray(x)) { for (const v of x) collect(v, out, depth + 1); }
  else if (typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) {
    for (const v of Object.values(x as Record<string, unknown>)) collect(v, out, depth + 1);
  }
}

/**
 * Runs `fn` in a scope: tensors created inside are disposed at the end, except those in the result
 * (a tensor, or arrays/plain objects of tensors) and those marked with `keep()`. Synchronous only.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new Error("tidy() takes a synchronous function");
  const keepSet = new Set<Tensor>();
  collect(result as Nested, keepSet);
  for (const t of scope) {
    if (keepSet.has(t)) {
      const parent = scopes[scopes.length - 1];
      if (parent) parent.add(t);
    } else t.dispose();
  }
  return result!;
}

/** Disposes every tensor in a (nested) structure. */
export function dispose(x: unknown): void {
  const s = new Set<Tensor>();
  collect(x, s);
  for (const t of s) t.dispose();
}
