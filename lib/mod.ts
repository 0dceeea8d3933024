/**
 * ditflow as a library. `ditflow(args)` is the command line (the same commands and exit codes as
 * `deno task ditflow`); `loadPipeline` reads, checks and expands a pipeline file into a {@link Plan}
 * without touching the cache; the rest are the pieces the stages are built from: the DiT with the
 * official state-dict names, safetensors, datasets and the metrics.
 *
 * ```ts
 * import { ditflow, loadPipeline } from "@ditflow/ditflow";
 * const { plan } = await loadPipeline("pipelines/mini.yaml");
 * console.log(plan?.stages.map((s) => s.name));
 * const code = await ditflow(["run", "pipelines/mini.yaml"]); // 0 when every stage succeeded
 * ```
 * @module
 */

export { main as ditflow } from "./cli/main.ts";
export { type Loaded, type LoadOptions, loadPipeline } from "./pipeline/load.ts";
export type { Plan, PlannedStage } from "./pipeline/plan.ts";
export { shutdownRuntime } from "./gpu/runtime.ts";
export { DiT } from "./models/dit.ts";
export { type DiTConfig, ditConfig } from "./models/config.ts";
export { frechetDistance, frechetDistanceStats } from "./metrics/frechet.ts";
export { kernelInceptionDistance } from "./metrics/kid.ts";
export { readSafetensors, writeSafetensors } from "./io/safetensors.ts";
export * as data from "./data/mod.ts";
