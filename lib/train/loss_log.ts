/**
 * A trainer's loss log as a file (`loss.csv`, one row per logged step with the chosen columns) and the
 * summary statistic the stages report (`final_loss`: the mean of the last tenth). The curve is drawn where
 * it is looked at (reports, `ditflow ui`), not stored with the model: a chart's style is no part of what
 * determines a trained model, so changing it must not invalidate cached training runs.
 * @module
 */

import type { LossEntry } from "./loop.ts";

/** Writes `dir/loss.csv` (header `columns`, a null value as an empty cell). */
export async function writeLossLog<E extends LossEntry>(
  dir: string,
  losses: readonly E[],
  columns: readonly (keyof E & string)[],
): Promise<void> {
  const rows = losses.map((l) => columns.map((c) => `${l[c] ?? ""}`).join(","));
  await Deno.writeTextFile(`${dir}/loss.csv`, [columns.join(","), ...rows].join("\n") + "\n");
}

/** The mean of `key` over the last tenth of the log (at least one entry); null for an empty log. */
export function tailMean<E extends LossEntry>(
  losses: readonly E[],
  key: keyof E & string = "loss",
): number | null {
  const tail = losses.slice(-Math.max(1, Math.floor(losses.length / 10)));
  return tail.length ? tail.reduce((a, l) => a + (l[key] as number), 0) / tail.length : null;
}
