/**
 * The stage kind interface. A *kind* (encode, train, sample, fid, report, ...) is a TypeScript module that
 * calls {@link defineKind} and registers the result (see `registry.ts`). A *stage* is one use of a kind in
 * a pipeline, with parameters, inputs and a seed; the engine runs it through the kind's single entry point
 * `run(ctx)`.
 *
 * ```ts
 * import { defineKind } from "../pipeline/stage.ts";
 * import { registerKind } from "../pipeline/registry.ts";
 *
 * export const train = defineKind({
 *   name: "train",
 *   module: import.meta.url, // the code fingerprint walks this module's imports and WGSL kernels
 *   gpu: true,
 *   params: {
 *     model: { type: "enum", values: ["DiT-S/2", "DiT-B/2"], doc: "architecture" },
 *     lr: { type: "number", default: 1e-4, min: 0 },
 *     steps: { type: "int", default: 1000, min: 1 },
 *   },
 *   inputs: { latents: { doc: "encoded dataset" } },
 *   outputs: { checkpoint: { doc: "final weights" } },
 *   headline: ["loss"],
 *   async run(ctx) {
 *     const latentsDir = ctx.inputs.latents.dir;
 *     for (let step = 0; step < ctx.params.steps; step++) {
 *       ctx.signal.throwIfAborted();
 *       ctx.progress({ step: step + 1, total: ctx.params.steps, loss: 0.1 });
 *     }
 *     await Deno.writeFile(`${ctx.outputs.checkpoint}/weights.bin`, new Uint8Array(4));
 *     ctx.metrics({ loss: 0.1 });
 *   },
 * });
 * registerKind(train);
 * ```
 * @module
 */

import type { Diagnostic, Pos } from "./diagnostics.ts";
import type { ParamSchema, ParamValues } from "./schema.ts";
import type { Scalar } from "./yaml_source.ts";

/**
 * What is known at plan time about the artifact an output will hold, as a kind's
 * {@link StageKind.describe} declares it (every field optional: unknown stays unknown).
 */
export interface ArtifactInfo {
  /** A dataset's space: images, or VAE latents. */
  space?: "pixels" | "latents";
  /** A dataset's item shape [C, H, W]. */
  shape?: [number, number, number];
  /** A dataset's number of classes. */
  numClasses?: number;
  /** A DiT model artifact: its objective, class dropout, data space and input shape. */
  model?: {
    objective?: "ddpm" | "sit";
    classDropout?: number;
    /** Its training steps. */
    steps?: number;
    /** Every how many steps it keeps an EMA snapshot (0: none). */
    snapshotEvery?: number;
    /** The stage that trained it (for messages). */
    stage: string;
  };
  /** A VAE artifact: its latent channels, downsampling factor and image channels. */
  vae?: { latentChannels: number; factor: number; inChannels?: number };
}

/** One artifact bound to an input, as {@link ValidateContext.input} describes it. */
export interface UpstreamInfo extends ArtifactInfo {
  /** The producing stage's expanded name. */
  stage: string;
  /** The producing stage's kind. */
  kind: string;
  /** The producing stage's output name. */
  output: string;
}

/** What a kind's plan-time hooks ({@link StageKind.validate}, {@link StageKind.describe}) receive. */
export interface ValidateContext {
  /** The stage's expanded name. */
  readonly stage: string;
  /** Where a parameter's value is written (the stage's name when it is not written: a default). */
  at(param: string): Pos;
  /** Where an input's reference is written (the stage's name when the input is not bound). */
  inputAt(input: string): Pos;
  /** What is known about each artifact bound to an input (empty when unbound). */
  input(name: string): UpstreamInfo[];
}

/** A named input of a kind: an artifact produced by an upstream stage's named output. */
export interface InputSpec {
  doc?: string;
  /**
   * When true the input takes a list of artifacts (fan-in, e.g. a report over all sweep points); a plain
   * reference `stage.output` then collects every point of `stage` instead of expanding along its matrix.
   */
  many?: boolean;
  /** When true the pipeline may leave the input out. */
  optional?: boolean;
}

/** A named output of a kind: a directory the stage fills. */
export interface OutputSpec {
  doc?: string;
}

/** One upstream artifact given to a stage. */
export interface InputArtifact {
  /** Absolute path of the directory holding the upstream stage's output (read only). */
  dir: string;
  /** The upstream stage's expanded name, e.g. `train[model=DiT-S/2]`. */
  stage: string;
  /** The upstream output's name. */
  output: string;
  /** The upstream stage's cache key. */
  key: string;
  /** Content digest of the output directory. */
  digest: string;
  /** The matrix point of the upstream stage (axis → value), empty outside a matrix. */
  point: Record<string, Scalar>;
  /**
   * The metrics the upstream stage recorded (`metrics` of its meta.json: `final_loss`, `fid`, ...). Filled
   * by `runStage` from the store for every input a stage receives; absent only in a job description that
   * has not been through `runStage` (the engine and cluster executors ship jobs without it).
   */
  metrics?: Record<string, unknown>;
}

/**
 * A cached run of the same kind that this stage can continue from (see {@link StageKind.extends}): its
 * outputs hold a checkpoint of fewer steps of the same computation.
 */
export interface PriorRun {
  /** The prior run's cache key. */
  key: string;
  /** The value of the extended parameter in the prior run (e.g. its `steps`). */
  value: number;
  /** Its output directories (read only), by output name. */
  outputs: Record<string, string>;
  /** The metrics it recorded (e.g. its `train_seconds`, so that a continued run reports the total). */
  metrics: Record<string, unknown>;
}

/** A progress update: the current step, optionally the total, and any scalars (loss, ...) to show. */
export interface ProgressUpdate {
  step: number;
  total?: number;
  [scalar: string]: number | undefined;
}

/** The value of `ctx.inputs[name]`: one artifact, or a list for inputs declared `many`. */
export type InputValue<S extends InputSpec> = S extends { many: true } ? InputArtifact[]
  : S extends { optional: true } ? InputArtifact | undefined
  : InputArtifact;

/** What a stage's `run` receives. */
export interface StageContext<
  P extends ParamSchema = ParamSchema,
  I extends Record<string, InputSpec> = Record<string, InputSpec>,
  O extends Record<string, OutputSpec> = Record<string, OutputSpec>,
> {
  /** Expanded stage name, e.g. `train[model=DiT-S/2]`. */
  readonly name: string;
  /** The kind's name. */
  readonly kind: string;
  /** The stage's cache key (hex sha-256). */
  readonly key: string;
  /** Validated parameters, defaults filled in. */
  readonly params: ParamValues<P>;
  /** Upstream artifacts, by input name. */
  readonly inputs: { readonly [K in keyof I]: InputValue<I[K]> };
  /** Output directories (already created, empty), by output name. Write results here only. */
  readonly outputs: { readonly [K in keyof O]: string };
  /** The stage's seed (from `seed:` in the pipeline, default 0); part of the cache key. */
  readonly seed: number;
  /** The matrix point of this stage (axis → value), empty outside a matrix. */
  readonly point: Record<string, Scalar>;
  /**
   * A directory that survives crashes and Ctrl-C, keyed by the cache key: write checkpoints here and
   * resume from them when the stage starts again. It is deleted once the stage succeeds.
   */
  readonly checkpointDir: string;
  /** Aborted on Ctrl-C or when the run is cancelled; long loops should check it. */
  readonly signal: AbortSignal;
  /**
   * For kinds that declare {@link StageKind.extends}: the cached run with everything equal but a smaller
   * value of the extended parameter (the largest such value), when one exists and the checkpoint
   * directory is still empty; the stage continues from its checkpoint instead of starting afresh.
   */
  readonly prior?: PriorRun;
  /** Writes a line to the stage's log (kept with the artifact, `log.txt`). */
  log(...parts: unknown[]): void;
  /** Reports progress (drives the live display and the ETA). Cheap; call it every step if you like. */
  progress(update: ProgressUpdate): void;
  /** Records metrics (merged into `metrics` of the artifact's meta.json; numbers show in the summary). */
  metrics(values: Record<string, unknown>): void;
  /** Records a description of the hardware/adapter the stage ran on (stored in meta.json). */
  setAdapter(description: unknown): void;
}

/** A stage kind: what the pipeline's `uses:` names. */
export interface StageKind<
  P extends ParamSchema = ParamSchema,
  I extends Record<string, InputSpec> = Record<string, InputSpec>,
  O extends Record<string, OutputSpec> = Record<string, OutputSpec>,
> {
  /** The name used in `uses:`. */
  readonly name: string;
  /** URL of the implementing module (`import.meta.url`): the root of the code fingerprint. */
  readonly module: string;
  /** One line shown by `ditflow info` and `dag`. */
  readonly description?: string;
  /** Parameter schema (validation, defaults, canonicalisation). */
  readonly params: P;
  /** Named inputs. */
  readonly inputs: I;
  /** Named outputs (each a directory). */
  readonly outputs: O;
  /** True when the stage needs a GPU; it then holds one of the scheduler's GPU slots while it runs. */
  readonly gpu: boolean;
  /** Metric names shown in the run summary (default: the first three numeric metrics). */
  readonly headline?: readonly string[];
  /**
   * A numeric parameter (e.g. `steps`) along which a run extends a shorter one: when a run with every key
   * component equal except a smaller value of it is cached, the stage receives it as `ctx.prior` and may
   * continue from the checkpoint it left (so `--set steps=N` after an earlier run costs only the extra
   * steps). The result must be bit-identical to a run from scratch; the cache key is unaffected.
   */
  readonly extends?: string;
  /** Extra files that belong to the implementation but are not found by the import walk (URLs). */
  readonly extraFiles?: readonly string[];
  /**
   * Deep plan-time validation of the (already schema-checked) parameters against each other and against
   * what is known about the inputs: everything that can be known without running. Problems are returned
   * as diagnostics placed with `ctx.at(param)` / `ctx.inputAt(input)`; any diagnostic stops the pipeline
   * before anything runs (exit 2).
   */
  validate?(params: ParamValues<P>, ctx: ValidateContext): Diagnostic[];
  /** What is known at plan time about the outputs (space, shape, model facts), for downstream checks. */
  describe?(params: ParamValues<P>, ctx: ValidateContext): { [K in keyof O]?: ArtifactInfo };
  /** The entry point. Throw to fail; the output is discarded unless `run` resolves. */
  run(ctx: StageContext<P, I, O>): Promise<void>;
}

/** A kind with its type parameters erased, as stored in the registry. */
// deno-lint-ignore no-explicit-any
export type AnyStageKind = StageKind<any, any, any>;

/**
 * Defines a stage kind with full type inference of `ctx.params`, `ctx.inputs` and `ctx.outputs` from the
 * schemas (the `const` type parameters keep literal enum values). Returns the definition unchanged.
 */
export function defineKind<
  const P extends ParamSchema,
  const I extends Record<string, InputSpec>,
  const O extends Record<string, OutputSpec>,
>(kind: StageKind<P, I, O>): StageKind<P, I, O> {
  return kind;
}
