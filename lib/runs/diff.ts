/**
 * `ditflow diff A B`: finds two stage runs by name or key and compares them: parameters, matrix point,
 * seed, code, files and version that differ; inputs whose content differs, followed upstream recursively
 * down to the first ancestor that differs by itself (its inputs identical); and how the metrics moved.
 * @module
 */

import type { ArtifactMeta, Store } from "../pipeline/store.ts";
import { type Cell, flatten } from "./model.ts";
import { fmtCell } from "./format.ts";

/** Finds the runs a user means by `what`: a stage name (expanded or base) in the refs, or a key prefix. */
export function findRuns(store: Store, what: string, pipeline?: string): ArtifactMeta[] {
  const found = new Map<string, ArtifactMeta>();
  const refs = store.readRefs().filter((r) => !pipeline || r.pipeline === pipeline || r.file === pipeline);
  for (const exact of [true, false]) {
    for (const r of refs) {
      for (const [name, key] of Object.entries(r.stages)) {
        if (exact ? name === what : name.replace(/\[.*$/, "") === what) {
          const m = store.readMeta(key);
          if (m) found.set(key, m);
        }
      }
    }
    if (found.size) return [...found.values()];
  }
  if (/^[0-9a-f]{4,64}$/.test(what)) {
    for (const k of store.findKeys(what)) {
      const m = store.readMeta(k);
      if (m && (!pipeline || m.pipeline === pipeline)) found.set(k, m);
    }
  }
  return [...found.values()];
}

/** One value that differs. */
export interface Change {
  field: string;
  a: Cell | undefined;
  b: Cell | undefined;
}

/** How one metric moved. */
export interface MetricMove extends Change {
  /** b − a, when both are numbers. */
  delta?: number;
  /** (b − a) / |a|, when both are numbers and a ≠ 0. */
  rel?: number;
}

/** One input slot (input name, position) whose bound content differs. */
export interface InputDiff {
  input: string;
  index: number;
  a?: { stage: string; output: string; key: string };
  b?: { stage: string; output: string; key: string };
  /** The comparison of the two upstream runs (absent when one side is missing from the store). */
  upstream?: RunDiff;
}

/** The comparison of two runs. */
export interface RunDiff {
  a: { name: string; key: string; kind: string; pipeline: string };
  b: { name: string; key: string; kind: string; pipeline: string };
  /** Kind, seed, version, code hash when they differ. */
  components: Change[];
  /** Code files whose fingerprint differs (when the code hash differs). */
  codeFiles: Change[];
  point: Change[];
  params: Change[];
  /** `path` parameter file digests that differ. */
  files: Change[];
  inputs: InputDiff[];
  metrics: MetricMove[];
}

function changes(a: Record<string, Cell>, b: Record<string, Cell>): Change[] {
  const out: Change[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ field: k, a: a[k], b: b[k] });
  }
  return out;
}

function who(m: ArtifactMeta) {
  return { name: m.name, key: m.key, kind: m.kind, pipeline: m.pipeline };
}

/** Compares two runs (see the module doc). `depth` bounds the upstream recursion. */
export function diffRuns(store: Store, a: ArtifactMeta, b: ArtifactMeta, depth = 32): RunDiff {
  const ca = a.components, cb = b.components;
  const components = changes(
    { kind: ca.kind, seed: ca.seed, version: ca.version, code: ca.code },
    { kind: cb.kind, seed: cb.seed, version: cb.version, code: cb.code },
  );
  const codeFiles = ca.code === cb.code ? [] : changes(a.code_files ?? {}, b.code_files ?? {});
  const metrics: MetricMove[] = changes(flatten(a.metrics ?? {}), flatten(b.metrics ?? {})).map((c) => {
    if (typeof c.a === "number" && typeof c.b === "number") {
      return { ...c, delta: c.b - c.a, ...(c.a !== 0 ? { rel: (c.b - c.a) / Math.abs(c.a) } : {}) };
    }
    return c;
  });
  const inputs: InputDiff[] = [];
  for (const name of new Set([...Object.keys(a.inputs ?? {}), ...Object.keys(b.inputs ?? {})])) {
    const la = a.inputs?.[name] ?? [], lb = b.inputs?.[name] ?? [];
    for (let i = 0; i < Math.max(la.length, lb.length); i++) {
      const ia = la[i], ib = lb[i];
      if (ia && ib && ia.digest === ib.digest) continue;
      const d: InputDiff = { input: name, index: i };
      if (ia) d.a = { stage: ia.stage, output: ia.output, key: ia.key };
      if (ib) d.b = { stage: ib.stage, output: ib.output, key: ib.key };
      if (ia && ib && depth > 0 && ia.key !== ib.key) {
        const ma = store.readMeta(ia.key), mb = store.readMeta(ib.key);
        if (ma && mb) d.upstream = diffRuns(store, ma, mb, depth - 1);
      }
      inputs.push(d);
    }
  }
  return {
    a: who(a),
    b: who(b),
    components,
    codeFiles,
    point: changes(flatten(a.point ?? {}), flatten(b.point ?? {})),
    params: changes(flatten(ca.params ?? {}), flatten(cb.params ?? {})),
    files: changes(ca.files ?? {}, cb.files ?? {}),
    inputs,
    metrics,
  };
}

/** True when two runs have the same key components (the same run). */
export function sameRun(d: RunDiff): boolean {
  return d.components.length + d.params.length + d.files.length + d.inputs.length === 0;
}

function val(v: Cell | undefined): string {
  if (v === undefined) return "(unset)";
  if (v === null) return "null";
  if (typeof v === "string" && !/^[0-9a-f]{64}$/.test(v)) return JSON.stringify(v);
  return fmtCell(v);
}

function move(m: MetricMove): string {
  let s = `${val(m.a)} → ${val(m.b)}`;
  if (m.delta !== undefined) {
    s += `  (${m.delta >= 0 ? "+" : ""}${fmtCell(m.delta)}`;
    if (m.rel !== undefined) s += `, ${m.rel >= 0 ? "+" : ""}${(m.rel * 100).toFixed(1)}%`;
    s += ")";
  }
  return s;
}

/** Renders a diff as indented text (upstream differences nested under the input that brought them). */
export function formatDiff(d: RunDiff, indent = ""): string {
  const lines: string[] = [];
  const section = (title: string, items: { field: string; text: string }[]) => {
    if (!items.length) return;
    lines.push(`${indent}${title}`);
    const w = Math.min(28, Math.max(...items.map((i) => i.field.length)));
    for (const i of items) lines.push(`${indent}  ${i.field.padEnd(w)}  ${i.text}`);
  };
  const ch = (c: Change) => ({ field: c.field, text: `${val(c.a)} → ${val(c.b)}` });
  section("point", d.point.map(ch));
  section("params", d.params.map(ch));
  section("run", d.components.filter((c) => c.field !== "code").map(ch));
  if (d.components.some((c) => c.field === "code")) {
    section(
      "code",
      d.codeFiles.length
        ? d.codeFiles.map((c) => ({
          field: c.field.replace(/^.*\/lib\//, "lib/"),
          text: c.a === undefined ? "added" : c.b === undefined ? "removed" : "changed",
        }))
        : [{ field: "fingerprint", text: "changed" }],
    );
  }
  section("files", d.files.map(ch));
  if (d.inputs.length) {
    lines.push(`${indent}inputs`);
    for (const i of d.inputs) {
      const side = (s?: { stage: string; output: string; key: string }) =>
        s ? `${s.stage}.${s.output} (${s.key.slice(0, 12)})` : "(none)";
      lines.push(`${indent}  ${i.input}${i.index ? `[${i.index}]` : ""}: ${side(i.a)} → ${side(i.b)}`);
      if (i.upstream) {
        if (sameRun(i.upstream)) lines.push(`${indent}    (same key components; output differs)`);
        else lines.push(formatDiff(i.upstream, indent + "    "));
      } else if (i.a && i.b && i.a.key !== i.b.key) {
        lines.push(`${indent}    (an upstream run is not in the cache)`);
      }
    }
  }
  if (d.metrics.length && indent === "") {
    section("metrics", d.metrics.map((m) => ({ field: m.field, text: move(m) })));
  }
  return lines.join("\n");
}

/** The full text of `ditflow diff`: the two runs, then {@link formatDiff}, or a line saying they match. */
export function diffText(d: RunDiff): string {
  const head = [
    `A  ${d.a.name}  (${d.a.kind}, ${d.a.pipeline})  ${d.a.key.slice(0, 12)}`,
    `B  ${d.b.name}  (${d.b.kind}, ${d.b.pipeline})  ${d.b.key.slice(0, 12)}`,
  ];
  const body = formatDiff(d);
  if (d.a.key === d.b.key) return [...head, "same run (same key)"].join("\n");
  return [...head, body || "no differences in params, inputs or metrics"].join("\n");
}
