/**
 * The binding and uniform-struct layout of a WGSL kernel file, read from its source: every
 * `@group(0) @binding(n) var<space[, access]> name: type;` declaration and every `struct`, with WGSL's
 * uniform layout rules (sizes and alignments of scalars, vectors and arrays of vec4). {@link packParams}
 * packs a params struct by field name; {@link bindingGroup} resolves buffers by variable name to binding
 * numbers. Both check what the caller passes against the declarations, so a launch cannot drift out of
 * step with its WGSL.
 * @module
 */

/** One `var` declaration with a binding. */
export interface WgslBinding {
  binding: number;
  name: string;
  /** `uniform` or `storage`. */
  space: string;
  /** `read` or `read_write` (storage); `read` for uniforms. */
  access: string;
  type: string;
  /** Position of the declaration in the source (declarations are grouped per entry point). */
  pos: number;
}

/** One field of a struct, with its byte offset. */
export interface WgslField {
  name: string;
  type: string;
  offset: number;
  size: number;
}

/** A struct's layout. */
export interface WgslStruct {
  name: string;
  fields: WgslField[];
  /** Size in bytes, rounded up to the struct's alignment. */
  size: number;
}

/** The parsed layout of one WGSL file. */
export interface WgslLayout {
  bindings: WgslBinding[];
  structs: Map<string, WgslStruct>;
}

function sizeAlign(type: string, structs: Map<string, WgslStruct>): [number, number] {
  const t = type.replace(/\s+/g, "");
  if (/^(u32|i32|f32)$/.test(t)) return [4, 4];
  const v = /^vec([234])(?:<(?:u32|i32|f32)>|[uif])$/.exec(t);
  if (v) {
    const n = Number(v[1]);
    return [4 * n, n === 2 ? 8 : 16];
  }
  const a = /^array<(.+),(\d+)u?>$/.exec(t);
  if (a) {
    const [es, ea] = sizeAlign(a[1], structs);
    const stride = Math.ceil(es / ea) * ea;
    return [stride * Number(a[2]), ea];
  }
  const s = structs.get(t);
  if (s) return [s.size, 16];
  return [NaN, 4]; // not a host-shareable type (bool, ...): such a struct cannot be packed (packParams throws)
}

/** Splits at commas outside `<...>` (a field list; `array<vec4u, 2>` holds a comma). */
function splitTop(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of text) {
    if (ch === "<") depth++;
    if (ch === ">") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const cache = new Map<string, WgslLayout>();

/** Parses (and caches by source text) the bindings and structs of a WGSL source. */
export function wgslLayout(source: string): WgslLayout {
  const hit = cache.get(source);
  if (hit) return hit;
  const src = source.replace(/\/\/[^\n]*/g, "");
  const structs = new Map<string, WgslStruct>();
  for (const m of src.matchAll(/struct\s+(\w+)\s*\{([^}]*)\}/g)) {
    const fields: WgslField[] = [];
    let off = 0;
    let maxAlign = 4;
    for (const f of splitTop(m[2]).map((x) => x.trim()).filter(Boolean)) {
      const fm = /^(?:@\w+(?:\([^)]*\))?\s*)*(\w+)\s*:\s*(.+)$/.exec(f);
      if (!fm) throw new Error(`cannot parse field "${f}" of struct ${m[1]}`);
      const [size, align] = sizeAlign(fm[2], structs);
      off = Math.ceil(off / align) * align;
      fields.push({ name: fm[1], type: fm[2].replace(/\s+/g, ""), offset: off, size });
      off += size;
      maxAlign = Math.max(maxAlign, align);
    }
    structs.set(m[1], { name: m[1], fields, size: Math.ceil(off / maxAlign) * maxAlign });
  }
  const bindings: WgslBinding[] = [];
  const re =
    /@group\(\s*0\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var\s*(?:<\s*(\w+)\s*(?:,\s*(\w+)\s*)?>)?\s+(\w+)\s*:\s*([^;]+);/g;
  for (const m of src.matchAll(re)) {
    bindings.push({
      binding: Number(m[1]),
      space: m[2] ?? "handle",
      access: m[3] ?? "read",
      name: m[4],
      type: m[5].trim(),
      pos: m.index!,
    });
  }
  const out = { bindings, structs };
  cache.set(source, out);
  return out;
}

/** Values of a params struct by field name: numbers for scalars, arrays for vectors and arrays. */
export type ParamValues = Record<string, number | boolean | readonly number[]>;

/** The scalar kind of each field of a struct, by field index (cached: packParams runs per launch). */
const fieldKinds = new WeakMap<WgslStruct, ("f32" | "u32" | "i32")[]>();

function kindsOf(s: WgslStruct): ("f32" | "u32" | "i32")[] {
  let kinds = fieldKinds.get(s);
  if (!kinds) {
    kinds = s.fields.map((f) => {
      const scalar = /(f32|u32|i32)|vec\d([uif])/.exec(f.type)!;
      return (scalar[1] ?? { u: "u32", i: "i32", f: "f32" }[scalar[2]]!) as "f32" | "u32" | "i32";
    });
    fieldKinds.set(s, kinds);
  }
  return kinds;
}

/**
 * Packs `values` into the uniform struct `struct` of `layout` (fields by name; fields whose name starts
 * with `_` are padding and are zero). Throws on an unknown or a missing field.
 */
export function packParams(
  layout: WgslLayout,
  struct: string,
  values: ParamValues,
  what: string,
): Uint8Array {
  const s = layout.structs.get(struct);
  if (!s) throw new Error(`${what}: no struct ${struct} in the WGSL`);
  if (Number.isNaN(s.size)) {
    throw new Error(`${what}: struct ${struct} has a type packParams does not support`);
  }
  let named = 0;
  for (const f of s.fields) if (f.name in values) named++;
  let given = 0;
  for (const _ in values) given++;
  if (given !== named) {
    const known = new Set(s.fields.map((f) => f.name));
    const k = Object.keys(values).find((k) => !known.has(k));
    throw new Error(`${what}: ${struct} has no field "${k}" (fields: ${[...known].join(", ")})`);
  }
  const kinds = kindsOf(s);
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(s.size / 16) * 16));
  const dv = new DataView(buf);
  const put = (o: number, x: number, kind: "f32" | "u32" | "i32") => {
    if (kind === "f32") dv.setFloat32(o, x, true);
    else if (kind === "i32") dv.setInt32(o, x | 0, true);
    else dv.setUint32(o, x >>> 0, true);
  };
  s.fields.forEach((f, i) => {
    const v = values[f.name];
    if (v === undefined) {
      if (f.name.startsWith("_")) return;
      throw new Error(`${what}: missing value for ${struct}.${f.name}`);
    }
    if (typeof v === "number" || typeof v === "boolean") return put(f.offset, Number(v), kinds[i]);
    // Arrays of vec4 are laid out densely (stride 16): element k at offset + 4k.
    if (v.length * 4 > f.size) throw new Error(`${what}: ${v.length} values for ${struct}.${f.name}`);
    for (let k = 0; k < v.length; k++) put(f.offset + 4 * k, v[k], kinds[i]);
  });
  return new Uint8Array(buf);
}

/**
 * The declarations of the bindings `names` use, checked: all declared, in one group (the binding-0
 * declaration that precedes them and the declarations up to the next binding 0), binding numbers
 * 0..k-1 with no gap. Returns the group sorted by binding number (the uniform first where there is one).
 *
 * Aliases: a group may declare several variables at one binding number (e.g. `x: array<f32>` and
 * `x4: array<vec4f>` at binding 1, for an f32 and a vec4 entry point sharing the other declarations);
 * the one among `names` is taken (naming two of them throws; naming none leaves the first, which the
 * caller then reports as not given).
 */
export function bindingGroup(layout: WgslLayout, names: readonly string[], what: string): WgslBinding[] {
  const byName = new Map(layout.bindings.map((b) => [b.name, b]));
  const decl = names.map((n) => {
    const b = byName.get(n);
    if (!b) throw new Error(`${what}: the WGSL declares no binding "${n}"`);
    return b;
  });
  const first = Math.min(...decl.map((b) => b.pos));
  const zeros = layout.bindings.filter((b) => b.binding === 0);
  const start = zeros.filter((b) => b.pos <= first).pop();
  const next = zeros.find((b) => b.pos > first);
  const byNumber = new Map<number, WgslBinding>();
  for (const b of layout.bindings) {
    if (b.pos < (start?.pos ?? 0) || (next && b.pos >= next.pos)) continue;
    const prev = byNumber.get(b.binding);
    if (!prev || (decl.includes(b) && !decl.includes(prev))) byNumber.set(b.binding, b);
    else if (decl.includes(b)) {
      throw new Error(`${what}: "${prev.name}" and "${b.name}" alias binding ${b.binding}; give one of them`);
    }
  }
  const group = [...byNumber.values()].sort((a, b) => a.binding - b.binding);
  group.forEach((b, i) => {
    if (b.binding !== i) throw new Error(`${what}: binding numbers of ${b.name}'s group are not 0..n-1`);
  });
  for (const b of decl) {
    if (!group.includes(b)) throw new Error(`${what}: binding "${b.name}" is not in the group of the others`);
  }
  return group;
}
