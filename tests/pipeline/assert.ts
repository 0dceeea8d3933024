/**
 * Minimal assertions (jsr:@std/assert is not reachable from this environment).
 * @module
 */

/** Throws when `cond` is falsy. */
export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Deep equality via canonical JSON. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  const a = JSON.stringify(sortKeys(actual));
  const e = JSON.stringify(sortKeys(expected));
  if (a !== e) throw new Error(`${msg ? msg + "\n" : ""}expected ${e}\n     got ${a}`);
}

/** Deep inequality via canonical JSON. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  const a = JSON.stringify(sortKeys(actual));
  if (a === JSON.stringify(sortKeys(expected))) {
    throw new Error(`${msg ? msg + "\n" : ""}expected a difference, got ${a}`);
  }
}

/** Substring check. */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    throw new Error(`${msg ? msg + "\n" : ""}expected to find ${JSON.stringify(expected)} in:\n${actual}`);
  }
}

/** Expects `fn` to reject. */
export async function assertRejects(fn: () => Promise<unknown>, msgIncludes?: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (msgIncludes && !(e as Error).message.includes(msgIncludes)) {
      throw new Error(`rejected with ${(e as Error).message}, expected ${msgIncludes}`);
    }
    return;
  }
  throw new Error("expected rejection");
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v instanceof Set) return [...v].map(sortKeys);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
