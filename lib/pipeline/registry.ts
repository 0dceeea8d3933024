/**
 * The registry of stage kinds. Kind modules call {@link registerKind} at import time; `lib/stages/mod.ts`
 * imports all of the product's kinds, and extra modules (tests, experiments) can be loaded with the
 * `DITFLOW_STAGE_MODULES` environment variable or a pipeline's `plugins:` list.
 * @module
 */

import type { ParamSchema } from "./schema.ts";
import type { AnyStageKind } from "./stage.ts";

const kinds = new Map<string, AnyStageKind>();

const NAME_RE = /^[a-z][a-z0-9_-]*$/;

/**
 * Registers a kind under its name. Registering the same object twice is a no-op; a different kind with
 * the same name replaces it only with `replace: true` (otherwise it throws).
 */
export function registerKind(kind: AnyStageKind, opts: { replace?: boolean } = {}): void {
  if (!NAME_RE.test(kind.name)) {
    throw new Error(`invalid stage kind name "${kind.name}" (use [a-z][a-z0-9_-]*)`);
  }
  const prev = kinds.get(kind.name);
  if (prev && prev !== kind && !opts.replace && prev.module !== kind.module) {
    throw new Error(`stage kind "${kind.name}" is already registered by ${prev.module}`);
  }
  for (const [name, spec] of Object.entries(kind.params as ParamSchema)) {
    if (spec.default === undefined || spec.type === "object" || spec.type === "list") continue;
    if (spec.type === "enum" && !spec.values.includes(spec.default)) {
      throw new Error(`kind ${kind.name}: default of ${name} is not one of its values`);
    }
  }
  kinds.set(kind.name, kind);
}

/** The kind registered under `name`, if any. */
export function getKind(name: string): AnyStageKind | undefined {
  return kinds.get(name);
}

/** All registered kinds, sorted by name. */
export function listKinds(): AnyStageKind[] {
  return [...kinds.values()].sort((a, b) => a.name < b.name ? -1 : 1);
}

/** Removes a kind (tests). */
export function unregisterKind(name: string): void {
  kinds.delete(name);
}

/** Imports a module that registers kinds; relative paths are resolved against `base` (a directory). */
export async function loadKindModule(spec: string, base = Deno.cwd()): Promise<void> {
  let url: string;
  if (/^[a-z]+:/.test(spec)) url = spec;
  else {
    const abs = spec.startsWith("/") ? spec : `${base.replace(/\/$/, "")}/${spec}`;
    url = new URL(`file://${abs}`).href;
  }
  await import(url);
}
