/**
 * Cache keys and the field-by-field explanation of why a key changed.
 *
 * A stage's key is the SHA-256 of the canonical JSON of its {@link KeyComponents}: kind, code fingerprint,
 * canonical parameters, the digests of its inputs (content, not upstream keys: an upstream rerun that
 * produces identical output does not invalidate downstream stages), the digests of `path` parameters,
 * the seed, and the ditflow version.
 * @module
 */

import { canonicalJson, sha256 } from "./hash.ts";

/** Everything a cache key is made of. Stored in every artifact's meta.json. */
export interface KeyComponents {
  kind: string;
  /** Code fingerprint hash of the kind's module graph. */
  code: string;
  params: Record<string, unknown>;
  /** Input name → digests of the bound upstream outputs, in order. */
  inputs: Record<string, string[]>;
  /** Absolute path of each `path` parameter → its content digest. */
  files: Record<string, string>;
  seed: number;
  version: string;
}

/** The cache key of a stage (64 hex digits). */
export function cacheKey(c: KeyComponents): string {
  return sha256(canonicalJson({ format: 1, ...c }));
}

/** One reason for a (re)run, with the field it concerns. */
export interface Reason {
  field:
    | "new"
    | "param"
    | "input"
    | "code"
    | "seed"
    | "version"
    | "kind"
    | "file"
    | "forced"
    | "missing"
    | "modified"
    | "upstream";
  message: string;
}

/** Formats a value for reasons: numbers in their shortest form (`1e-4`, not `0.0001`), strings quoted. */
export function formatReasonValue(v: unknown): string {
  if (v === undefined) return "(unset)";
  if (typeof v === "number") {
    const plain = String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return plain;
    const exp = v.toExponential().replace("e+", "e");
    return exp.length < plain.length ? exp : plain;
  }
  if (typeof v === "string") return JSON.stringify(v);
  const s = canonicalJson(v);
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function diffValues(path: string, a: unknown, b: unknown, out: Reason[]): void {
  if (canonicalJson(a ?? null) === canonicalJson(b ?? null)) return;
  const isObj = (x: unknown) => x !== null && typeof x === "object" && !Array.isArray(x);
  if (isObj(a) && isObj(b)) {
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) {
      diffValues(`${path}.${k}`, ao[k], bo[k], out);
    }
    return;
  }
  out.push({ field: "param", message: `param ${path} ${formatReasonValue(a)} → ${formatReasonValue(b)}` });
}

/** What is known about the previous run of a stage, for explanations. */
export interface PreviousRun {
  components: KeyComponents;
  codeFiles?: Record<string, string>;
}

/**
 * Explains, field by field, how `cur` differs from the previous run of the same stage:
 * `param train.lr 1e-4 → 2e-4`, `input latents changed`, `code of stage train changed (lib/stages/train.ts)`.
 * Inputs whose digests are not known yet (`undefined`: upstream will run) are skipped here.
 */
export function explainChange(
  stage: string,
  base: string,
  prev: PreviousRun,
  cur: Omit<KeyComponents, "inputs"> & { inputs: Record<string, (string | undefined)[]> },
  codeFiles?: Record<string, string>,
): Reason[] {
  const out: Reason[] = [];
  const p = prev.components;
  if (p.kind !== cur.kind) {
    out.push({ field: "kind", message: `kind of stage ${stage} ${p.kind} → ${cur.kind}` });
  }
  diffValues(base, p.params, cur.params, out);
  for (const name of [...new Set([...Object.keys(p.inputs), ...Object.keys(cur.inputs)])].sort()) {
    const a = p.inputs[name];
    const b = cur.inputs[name];
    if (!a) out.push({ field: "input", message: `input ${name} added` });
    else if (!b) out.push({ field: "input", message: `input ${name} removed` });
    else if (b.some((d) => d === undefined)) continue;
    else if (a.length !== b.length) {
      out.push({ field: "input", message: `input ${name} changed (${a.length} → ${b.length} artifacts)` });
    } else if (a.some((d, i) => d !== b[i])) out.push({ field: "input", message: `input ${name} changed` });
  }
  for (const f of [...new Set([...Object.keys(p.files), ...Object.keys(cur.files)])].sort()) {
    if (p.files[f] !== cur.files[f]) out.push({ field: "file", message: `file ${f} changed` });
  }
  if (p.code !== cur.code) {
    let detail = "";
    if (prev.codeFiles && codeFiles) {
      const changed = [...new Set([...Object.keys(prev.codeFiles), ...Object.keys(codeFiles)])].sort().filter(
        (f) => prev.codeFiles![f] !== codeFiles[f],
      );
      if (changed.length > 0) {
        detail = ` (${changed.slice(0, 4).join(", ")}${changed.length > 4 ? ", ..." : ""})`;
      }
    }
    out.push({ field: "code", message: `code of stage ${base} changed${detail}` });
  }
  if (p.seed !== cur.seed) out.push({ field: "seed", message: `seed ${p.seed} → ${cur.seed}` });
  if (p.version !== cur.version) {
    out.push({ field: "version", message: `ditflow version ${p.version} → ${cur.version}` });
  }
  return out;
}
