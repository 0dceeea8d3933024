/**
 * One call per kernel launch: inputs, outputs and params by their WGSL names. The binding numbers and
 * the params struct layout come from the kernel's source (see `lib/gpu/wgsl_layout.ts`), so nothing is
 * kept in step by position: an unknown or missing name, a gap in the bindings, an input bound to a
 * read-only declaration as an output, or a params field the struct lacks throws at the call.
 *
 * ```ts
 * const { nout } = launch(K, "sum_n", {
 *   params: { n, alpha: 1, beta: 1 },
 *   inputs: { n_0: a, n_1: b },
 *   outputs: { nout: a.shape },   // a shape: allocated (dtype from the WGSL array type), debug-checked
 *   workgroups: grid(n),
 * });
 * ```
 *
 * A kernel written once as a `//#variants` block (`lib/gpu/wgsl_variants.ts`) launches its vec4 instance
 * with `vec4: true` and the same f32 names: `launch(K, "sum_n", { vec4: n % 4 === 0, ... }).nout`.
 * @module
 */

import type { BufferRef, KernelFile } from "../gpu/runtime.ts";
import { bindingGroup, packParams, type ParamValues, wgslLayout } from "../gpu/wgsl_layout.ts";
import { type DType, empty, type Shape, Tensor } from "./tensor.ts";
import { debugCheck, rt } from "./ops/util.ts";

/** What a launch binds and runs. */
export interface LaunchSpec {
  /** Values of the uniform params struct's fields, by name (fields named `_...` are padding). */
  params?: ParamValues;
  /** Buffers the kernel reads, by WGSL variable name. */
  inputs?: Record<string, Tensor | BufferRef>;
  /**
   * Buffers the kernel writes, by WGSL variable name (declared `read_write`): a tensor or buffer, or a
   * shape, for which a tensor is allocated (dtype from the declaration's array type), returned, and
   * debug-checked for NaN/Inf.
   */
  outputs?: Record<string, Tensor | BufferRef | Shape>;
  /** Workgroup counts. */
  workgroups: readonly [number, number?, number?];
  /** Values of WGSL `override` constants. */
  constants?: Record<string, number>;
  /** For profiles and errors (default: the entry point's name). */
  label?: string;
  /**
   * Launch the vec4 instance of a `//#variants` entry point: `entry`, `inputs` and `outputs` name the f32
   * instance and are renamed by the kernel's {@link KernelFile.vec4Names} (names outside the blocks, shared
   * by both instances, stay); the allocated outputs are returned under the f32 names.
   */
  vec4?: boolean;
}

/** Resolved binding groups by kernel, entry and names (resolving costs a scan of the declarations). */
const groups = new Map<string, ReturnType<typeof bindingGroup>>();

function isShape(v: unknown): v is Shape {
  return Array.isArray(v) && v.every((d) => typeof d === "number");
}

/** The dtype of an `array<T>` declaration (T a scalar or a vector: `u32`, `vec2u`, `vec4<i32>`, ...). */
function dtypeOf(type: string): DType {
  const m = /array<\s*(?:vec\d\s*<\s*)?(f32|u32|i32)|array<\s*vec\d([fui])\b/.exec(type);
  if (m?.[2]) return ({ f: "f32", u: "u32", i: "i32" } as const)[m[2] as "f" | "u" | "i"];
  return (m?.[1] ?? "f32") as DType;
}

/**
 * Launches `entry` of `kernel` (see the module doc). Returns the tensors allocated for outputs given as
 * shapes, by name.
 */
export function launch(kernel: KernelFile, entry: string, spec: LaunchSpec): Record<string, Tensor> {
  if (spec.vec4) return launchVec4(kernel, entry, spec);
  const what = `${kernel.name}.${entry}`;
  const layout = wgslLayout(kernel.source);
  const inputs = spec.inputs ?? {};
  const outputs = spec.outputs ?? {};
  const names = [...Object.keys(inputs), ...Object.keys(outputs)];
  if (names.length === 0) throw new Error(`${what}: a launch needs at least one buffer`);
  const key = `${kernel.url.href}#${entry}#${names.join(",")}`;
  let group = groups.get(key);
  if (!group) {
    group = bindingGroup(layout, names, what);
    groups.set(key, group);
  }
  const allocated: Record<string, Tensor> = {};
  const buffers: BufferRef[] = [];
  let params: Uint8Array | undefined;
  for (const b of group) {
    if (b.space === "uniform") {
      if (!spec.params) throw new Error(`${what}: the kernel takes params (${b.type}); none given`);
      params = packParams(layout, b.type, spec.params, what);
      continue;
    }
    const inp = inputs[b.name];
    const out = outputs[b.name];
    if (inp === undefined && out === undefined) {
      throw new Error(`${what}: binding ${b.binding} "${b.name}" is not given`);
    }
    if (out !== undefined && b.access !== "read_write") {
      throw new Error(`${what}: "${b.name}" is declared ${b.access}, not read_write; it cannot be an output`);
    }
    let ref: Tensor | BufferRef = (inp ?? out) as Tensor | BufferRef;
    if (out !== undefined && isShape(out)) {
      const t = empty(out, dtypeOf(b.type), `${entry} ${b.name}`);
      allocated[b.name] = t;
      ref = t;
    }
    buffers.push(ref instanceof Tensor ? ref.binding() : ref);
  }
  if (spec.params && !params) throw new Error(`${what}: params given but the kernel declares no uniform`);
  const label = spec.label ?? entry;
  rt().dispatch({
    kernel,
    entry,
    constants: spec.constants,
    params,
    buffers,
    workgroups: spec.workgroups,
    label,
  });
  for (const t of Object.values(allocated)) if (t.dtype === "f32") debugCheck(t, label);
  return allocated;
}

/** {@link launch} of the vec4 instance of `entry` (see {@link LaunchSpec.vec4}). */
function launchVec4(kernel: KernelFile, entry: string, spec: LaunchSpec): Record<string, Tensor> {
  const names = kernel.vec4Names;
  const entry4 = names.get(entry);
  if (entry4 === undefined) {
    throw new Error(
      `${kernel.name}.${entry}: no vec4 variant (it is not in a //#variants block as ${entry}$4)`,
    );
  }
  const renamed = <T>(r: Record<string, T> | undefined) =>
    r && Object.fromEntries(Object.entries(r).map(([k, v]) => [names.get(k) ?? k, v]));
  const out = launch(kernel, entry4, {
    ...spec,
    vec4: false,
    inputs: renamed(spec.inputs),
    outputs: renamed(spec.outputs),
    label: spec.label ?? entry4,
  });
  return Object.fromEntries(
    Object.keys(spec.outputs ?? {}).flatMap((k) => {
      const t = out[names.get(k) ?? k];
      return t ? [[k, t]] : [];
    }),
  );
}
