/**
 * Atomic file writes: the bytes go to a temporary file in the destination's folder, are flushed to disk,
 * and the file is renamed over the destination, so readers see the old file or the complete new one,
 * never a partial write. On failure the temporary file is removed.
 * @module
 */

import { basename, dirname, join } from "node:path";

/** Writes `data` to `path` atomically (temp file + fsync + rename), creating the parent folder if needed. */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const tmp = join(dir, `.${basename(path)}.tmp-${Deno.pid}-${rand}`);
  try {
    const f = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let off = 0;
      while (off < data.length) off += await f.write(data.subarray(off));
      await f.syncData();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
