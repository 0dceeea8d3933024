/**
 * A trainer's loss log as files (`loss.csv`, one row per step with the chosen columns; `loss.png`, the
 * loss curve) and the summary statistic the stages report (`final_loss`: the mean of the last tenth).
 * @module
 */

import { writeLossCurve } from "../report/plots.ts";
import type { LossEntry } from "./loop.ts";

/**
 * Writes `dir/loss.csv` (header `columns`, a null value as an empty cell) and `dir/loss.png` (the total
 * loss against the step, one series named `label`).
 */
export async function writeLossLog<E extends LossEntry>(
  dir: string,
  losses: readonly E[],
  columns: readonly (keyof E & string)[],
  plot: { label: string; title: string },
): Promise<void> {
  const rows = losses.map((l) => columns.map((c) => `${l[c] ?? ""}`).join(","));
  await Deno.writeTextFile(`${dir}/loss.csv`, [columns.join(","), ...rows].join("\n") + "\n");
  await writeLossCurve(`${dir}/loss.png`, [{
    label: plot.label,
    points: losses.map((l) => [l.step, l.loss]),
  }], { title: plot.title });
}

/** The mean of `key` over the last tenth of the log (at least one entry); null for an empty log. */
export function tailMean<E extends LossEntry>(
  losses: readonly E[],
  key: keyof E & string = "loss",
): number | null {
  const tail = losses.slice(-Math.max(1, Math.floor(losses.length / 10)));
  return tail.length ? tail.reduce((a, l) => a + (l[key] as number), 0) / tail.length : null;
}
