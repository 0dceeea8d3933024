/**
 * Minimal assertions (JSR's @std/assert is not reachable from this machine).
 * @module
 */

/** Throws with `msg` unless `cond` holds. */
export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Deep equality via JSON for plain data; throws with both values shown. */
export function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg ? msg + ": " : ""}expected ${e}, got ${a}`);
}

/** Asserts that `fn` throws an error whose message includes every fragment. */
export function assertThrows(fn: () => unknown, ...fragments: string[]): Error {
  try {
    fn();
  } catch (e) {
    const m = (e as Error).message;
    for (const f of fragments) {
      if (!m.includes(f)) throw new Error(`error message ${JSON.stringify(m)} lacks ${JSON.stringify(f)}`);
    }
    return e as Error;
  }
  throw new Error(`expected an error containing ${JSON.stringify(fragments)}`);
}

/** Async variant of {@link assertThrows}. */
export async function assertRejects(fn: () => Promise<unknown>, ...fragments: string[]): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const m = (e as Error).message;
    for (const f of fragments) {
      if (!m.includes(f)) throw new Error(`error message ${JSON.stringify(m)} lacks ${JSON.stringify(f)}`);
    }
    return e as Error;
  }
  throw new Error(`expected a rejection containing ${JSON.stringify(fragments)}`);
}
