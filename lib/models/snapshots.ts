/**
 * The layout of a `train` output's snapshots: the EMA weights kept every `snapshot_every` steps, one file
 * a step, which `sample` reads with `snapshot: STEP` (curves over training come from them). A leaf module,
 * so that `sample` does not import the trainer.
 * @module
 */

/** The folder of a train output that holds the EMA snapshots. */
export const SNAPSHOTS = "snapshots";

/** The file of the snapshot at `step` (zero-padded, so names sort by step). */
export function snapshotFile(step: number): string {
  return `step_${String(step).padStart(7, "0")}.safetensors`;
}
