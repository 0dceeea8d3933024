/**
 * A small `nn.Module`: a layer declares its parameters where it is built, under the names of the
 * official state dict, and the model's root holds them all in registration (state-dict) order. One
 * implementation of what every model needs: the key check on load ({@link checkStateDict}), host-side
 * initialisation in registration order, `trainable`, `stateDict` and `dispose`.
 *
 * A model builds its tree in its constructor (no GPU memory yet), then {@link Model.load} checks a state
 * dict against the registered names and shapes and uploads it. Forward code reads parameters through the
 * fields of the layers (`this.qkv.weight.value`), so a misspelt parameter is a type error, and a
 * registered name that does not fit the checkpoint fails on load with every mismatching key named.
 * @module
 */

import { fmtShape, type Tensor, tensor } from "../tensor/tensor.ts";
import { type HostTensor, type InitRng, StateDictError } from "./host_tensor.ts";

/** Initial host values of a parameter of `n` elements, drawn from `rng` (or not). */
export type Init = (n: number, rng: InitRng) => Float32Array;

/** All zeros (draws nothing). */
export const zeros: Init = (n) => new Float32Array(n);
/** All ones (draws nothing). */
export const ones: Init = (n) => new Float32Array(n).fill(1);
/** N(0, std²). */
export const normal = (std: number): Init => (n, rng) => Float32Array.from(rng.normal(n), (v) => std * v);
/** U(−bound, bound), as (2u − 1)·bound. */
export const uniform = (bound: number): Init => (n, rng) =>
  Float32Array.from(rng.uniform(n), (u) => (2 * u - 1) * bound);
/** `xavier_uniform_`: U(±√(6 / (fan_in + fan_out))). */
export const xavier = (fanIn: number, fanOut: number): Init => uniform(Math.sqrt(6 / (fanIn + fanOut)));
/** PyTorch's default for Conv2d/Linear weights and biases: U(±1/√fan_in). */
export const fanIn = (fan: number): Init => uniform(1 / Math.sqrt(fan));
/** Fixed values (a buffer such as a sin-cos table; draws nothing). */
export const fixed = (data: () => Float32Array): Init => () => data();

/** One named parameter; its tensor exists once the model is loaded. */
export class Parameter {
  #value: Tensor | null = null;
  constructor(
    /** Full state-dict name. */
    readonly name: string,
    readonly shape: readonly number[],
    readonly init: Init,
    /** Trained by the optimizer (a fixed buffer such as `pos_embed` is saved but not trained). */
    readonly trainable: boolean,
  ) {}

  /** The tensor on the GPU. */
  get value(): Tensor {
    if (!this.#value) throw new Error(`${this.name}: the model's parameters are not loaded`);
    return this.#value;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** @internal Sets the tensor (by {@link Model.load}). */
  _set(t: Tensor | null): void {
    this.#value = t;
  }
}

/** Name, shape and trainability of a registered parameter. */
export interface ParamInfo {
  name: string;
  shape: number[];
  trainable: boolean;
}

const SEGMENT = /^[A-Za-z_][A-Za-z0-9_]*$|^[0-9]+$/;

/**
 * Checks a state dict against a layout: every key present with its shape and no key left over. Throws
 * {@link StateDictError} naming the missing, unexpected and misshapen keys. `ignore` names keys that may
 * be present without being part of the layout (e.g. BatchNorm's `num_batches_tracked`).
 */
export function checkStateDict(
  model: string,
  specs: readonly { name: string; shape: readonly number[] }[],
  map: Map<string, HostTensor>,
  ignore: (key: string) => boolean = () => false,
): void {
  const problems: string[] = [];
  for (const s of specs) {
    const h = map.get(s.name);
    if (!h) problems.push(`missing key ${s.name} ${fmtShape([...s.shape])}`);
    else if (h.shape.length !== s.shape.length || h.shape.some((d, i) => d !== s.shape[i])) {
      problems.push(
        `${s.name}: checkpoint has shape ${fmtShape(h.shape)}, model expects ${fmtShape([...s.shape])}`,
      );
    } else if (h.data.length !== s.shape.reduce((a, b) => a * b, 1)) {
      problems.push(`${s.name}: ${h.data.length} values for shape ${fmtShape([...s.shape])}`);
    }
  }
  const known = new Set(specs.map((s) => s.name));
  for (const k of map.keys()) if (!known.has(k) && !ignore(k)) problems.push(`unexpected key ${k}`);
  if (problems.length) throw new StateDictError(model, problems);
}

/**
 * A module: a named node of the model tree. Subclasses register parameters with {@link Module.param}
 * and children by constructing them with `this` as parent; the registration order is the state-dict order.
 */
export class Module {
  /** Dotted path from the root ("" at the root). */
  readonly path: string;
  readonly #registry: Parameter[];
  readonly #names: Set<string>;

  constructor(parent: Module | null, name = "") {
    if (parent) {
      for (const seg of name.split(".")) {
        if (!SEGMENT.test(seg)) throw new Error(`module name "${name}" under "${parent.path}" is not valid`);
      }
      this.path = parent.path ? `${parent.path}.${name}` : name;
      this.#registry = parent.#registry;
      this.#names = parent.#names;
    } else {
      this.path = "";
      this.#registry = [];
      this.#names = new Set();
    }
  }

  /** Registers a parameter `name` of this module (fails on an invalid or repeated name). */
  protected param(name: string, shape: number[], init: Init, trainable = true): Parameter {
    if (!SEGMENT.test(name)) throw new Error(`parameter name "${name}" under "${this.path}" is not valid`);
    const full = this.path ? `${this.path}.${name}` : name;
    if (this.#names.has(full)) throw new Error(`parameter ${full} is registered twice`);
    if (shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`parameter ${full} has an invalid shape ${fmtShape(shape)}`);
    }
    this.#names.add(full);
    const p = new Parameter(full, [...shape], init, trainable);
    this.#registry.push(p);
    return p;
  }

  /** @internal Every parameter registered in this module's tree, in order. */
  protected get registry(): readonly Parameter[] {
    return this.#registry;
  }
}

/** The root of a model: the shared load / init / trainable / stateDict / dispose. */
export class Model extends Module {
  /** Every parameter by state-dict name, in order (filled by {@link Model.load}). */
  readonly params: Map<string, Tensor> = new Map();

  constructor(
    /** The model's name in error messages. */
    readonly modelName: string,
  ) {
    super(null);
  }

  /** Every parameter, in state-dict order. */
  parameters(): readonly Parameter[] {
    return this.registry;
  }

  /** Names, shapes and trainability in state-dict order. */
  get specs(): ParamInfo[] {
    return this.registry.map((p) => ({ name: p.name, shape: [...p.shape], trainable: p.trainable }));
  }

  /** Initial host values of every parameter, drawn in registration order. */
  initHost(rng: InitRng): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const p of this.registry) out.set(p.name, { shape: [...p.shape], data: p.init(p.size, rng) });
    return out;
  }

  /**
   * Checks a state dict against the registered layout ({@link checkStateDict}) and uploads it; returns
   * `this`. `ignore` names keys a checkpoint may carry beyond the layout.
   */
  load(state: Map<string, HostTensor> | Record<string, HostTensor>, ignore?: (key: string) => boolean): this {
    const map = state instanceof Map ? state : new Map(Object.entries(state));
    checkStateDict(this.modelName, this.registry, map, ignore);
    for (const p of this.registry) {
      const t = tensor(map.get(p.name)!.data, [...p.shape], "f32", p.name).keep();
      t.requiresGrad = p.trainable;
      p._set(t);
      this.params.set(p.name, t);
    }
    return this;
  }

  /** The trainable parameters, in state-dict order. */
  trainable(): Tensor[] {
    return this.registry.filter((p) => p.trainable).map((p) => p.value);
  }

  /** Reads every parameter back to the host, in state-dict order. */
  async stateDict(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const p of this.registry) out.set(p.name, { shape: [...p.shape], data: await p.value.data() });
    return out;
  }

  /** Releases the parameters (and their gradients). */
  dispose(): void {
    for (const p of this.registry) {
      if (this.params.has(p.name)) p.value.dispose();
      p._set(null);
    }
    this.params.clear();
  }
}

/** `nn.Linear`: weight [out, in], bias [out]; `y = x Wᵀ + b`. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(parent: Module, name: string, inp: number, out: number, init: { weight: Init; bias: Init }) {
    super(parent, name);
    this.weight = this.param("weight", [out, inp], init.weight);
    this.bias = this.param("bias", [out], init.bias);
  }
}

/** `nn.Conv2d` parameters: weight [out, in, kh, kw], bias [out]. */
export class Conv2dParams extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    parent: Module,
    name: string,
    inp: number,
    out: number,
    kernel: number | [number, number],
    init: { weight: Init; bias: Init },
  ) {
    super(parent, name);
    const [kh, kw] = typeof kernel === "number" ? [kernel, kernel] : kernel;
    this.weight = this.param("weight", [out, inp, kh, kw], init.weight);
    this.bias = this.param("bias", [out], init.bias);
  }
}

/** An affine norm's parameters (LayerNorm / GroupNorm with affine): weight (ones) and bias (zeros). */
export class NormParams extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(parent: Module, name: string, channels: number) {
    super(parent, name);
    this.weight = this.param("weight", [channels], ones);
    this.bias = this.param("bias", [channels], zeros);
  }
}
