/**
 * Per-stage cluster resources (`resources:` in a stage, and `defaults.resources.<kind>`): CPUs, memory,
 * wall time, GPUs, partition, account, QoS, constraint and free `sbatch_args`. They are validated like
 * parameters (every error at `file:line:col`) but never enter the cache key: where a stage ran does not
 * change what it computes. The local executors ignore them; the Slurm executor turns them into `#SBATCH`
 * lines (see `slurm/script.ts`).
 * @module
 */

import type { Diagnostic } from "./diagnostics.ts";
import { checkFields, type ParamSchema } from "./schema.ts";
import type { YMap, YNode } from "./yaml_source.ts";

/** Validated resources of one stage (only what was set). */
export interface Resources {
  /** CPUs per task (`--cpus-per-task`). */
  cpus?: number;
  /** Memory per node (`--mem`), e.g. `16G` or `16000` (MiB). */
  mem?: string;
  /** Wall-time limit (`--time`): `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`. */
  time?: string;
  /** GPUs (`--gpus`); 0 asks for none even for a `gpu: true` kind. */
  gpus?: number;
  partition?: string;
  account?: string;
  qos?: string;
  constraint?: string;
  /** Extra `sbatch` arguments, passed through verbatim (e.g. `--exclusive`, `--gres=gpu:a100:1`). */
  sbatch_args?: string[];
}

/** The keys of `resources:`, with their types (validated by the parameter checker). */
export const RESOURCE_SCHEMA: ParamSchema = {
  cpus: { type: "int", min: 1, optional: true, doc: "CPUs per task (--cpus-per-task)" },
  mem: {
    type: "string",
    pattern: "^[0-9]+[KMGTkmgt]?$",
    optional: true,
    doc: "memory per node (--mem): 16G, 500M, or MiB as a number",
  },
  time: {
    type: "string",
    pattern: "^([0-9]+-[0-9]{1,2}(:[0-9]{1,2}){0,2}|[0-9]+(:[0-9]{1,2}){0,2})$",
    optional: true,
    doc: "wall-time limit (--time): minutes, MM:SS, HH:MM:SS or D-HH:MM:SS",
  },
  gpus: { type: "int", min: 0, optional: true, doc: "GPUs (--gpus); 0 for none" },
  partition: { type: "string", optional: true, doc: "--partition" },
  account: { type: "string", optional: true, doc: "--account" },
  qos: { type: "string", optional: true, doc: "--qos" },
  constraint: { type: "string", optional: true, doc: "--constraint" },
  sbatch_args: {
    type: "list",
    items: { type: "string", pattern: "^-" },
    optional: true,
    doc: "extra sbatch arguments, each starting with `-`",
  },
};

/** The allowed keys of `resources:`. */
export const RESOURCE_KEYS: string[] = Object.keys(RESOURCE_SCHEMA);

/** `mem: 16000` and `time: 30` are numbers in YAML; Slurm reads them as MiB and minutes. */
function numbersAsStrings(map: YMap): YMap {
  return {
    ...map,
    entries: map.entries.map((e) => {
      const v: YNode = e.value;
      if (
        (e.key === "mem" || e.key === "time") && v.type === "scalar" && typeof v.value === "number" &&
        Number.isInteger(v.value) && v.value >= 0
      ) {
        return { ...e, value: { ...v, value: String(v.value) } };
      }
      return e;
    }),
  };
}

/**
 * Validates a (merged, interpolated) `resources:` mapping. `where` names it in messages, e.g.
 * `train.resources`. Problems go to `diags`.
 */
export function checkResources(map: YMap, where: string, baseDir: string, diags: Diagnostic[]): Resources {
  const first = diags.length;
  const out = checkFields(RESOURCE_SCHEMA, numbersAsStrings(map), where, { diags, baseDir }, map);
  // Say what a pattern means rather than print the pattern.
  for (const d of diags.slice(first)) {
    d.message = d.message.replace(/, which does not match \/.*\/$/, (m) => {
      if (d.message.includes(".mem`")) return ": write megabytes (16000) or a size with a unit (16G, 500M)";
      if (d.message.includes(".time`")) {
        return ": write minutes (30), MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS (1-12:00:00)";
      }
      if (d.message.includes(".sbatch_args")) return ": each item is an sbatch option starting with `-`";
      return m;
    });
  }
  return out as Resources;
}

/** Merges resource mappings: later ones win key by key (kind defaults, then the stage's own). */
export function mergeResourceMaps(pos: YMap["pos"], ...maps: (YMap | undefined)[]): YMap {
  const merged: YMap = { type: "map", pos, entries: [] };
  for (const m of maps) {
    for (const e of m?.entries ?? []) {
      const i = merged.entries.findIndex((x) => x.key === e.key);
      if (i >= 0) merged.entries[i] = e;
      else merged.entries.push(e);
    }
  }
  return merged;
}
