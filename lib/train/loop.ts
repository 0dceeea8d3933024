/**
 * The training loop every trainer runs (DiT, VAE, LeNet), as small as DiT's `train.py` loop. A model
 * supplies its step (batch → loss terms, drawn from the loop's Philox generator, backward done) and its
 * state; the loop owns the rest: the exact resume from a checkpoint (model, EMA, optimizer moments, RNG
 * position, step, loss log), the checkpoint cadence, the optional EMA and its decay schedule, the
 * learning-rate schedule, the stop on a non-finite loss (keeping the last good checkpoint), progress, ETA
 * and log lines, and the abort signal.
 *
 * Per step, in this order: `step()` (host draws, forward, backward), AdamW step, zero grads, EMA update,
 * one readback of the loss terms. A run stopped at step k and resumed is bit-identical to an
 * uninterrupted run on the same adapter.
 * @module
 */

import type { HostTensor } from "../models/dit.ts";
import type { ParamSchema, ParamValues } from "../pipeline/schema.ts";
import type { InitRng } from "../models/dit.ts";
import { initRngFor } from "./init_rng.ts";
import { Generator } from "../tensor/rng.ts";
import { AdamW, type AdamWOptions, EMA } from "../tensor/optim.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { getRuntime } from "../gpu/runtime.ts";
import { type CheckpointKind, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";

/** Stage parameters of the loop shared by the `train` and `train-vae` kinds. */
export const LOOP_PARAMS = {
  ckpt_every: { type: "int", default: 200, min: 0, doc: "checkpoint every N steps (resume point)" },
  log_every: { type: "int", default: 50, min: 1 },
} as const satisfies ParamSchema;

/** Thrown when the loss becomes NaN or Inf; says at which step and which checkpoint was kept. */
export class DivergedError extends Error {
  constructor(readonly step: number, readonly checkpoint: string | null) {
    super(
      `training diverged: the loss is not finite at step ${step}; ` +
        (checkpoint
          ? `the last good checkpoint is kept at ${checkpoint}`
          : "no checkpoint had been written yet"),
    );
    this.name = "DivergedError";
  }
}

/** One logged step: at least its number and total loss. */
export interface LossEntry {
  step: number;
  loss: number;
}

/** Progress of one step: its loss entry, the total, throughput and the ETA. */
export type StepProgress<E extends LossEntry> = E & { total: number; imgPerSec: number; etaSec: number };

/** Hooks for progress and logs. */
export interface LoopHooks<E extends LossEntry> {
  onStep?: (s: StepProgress<E>) => void;
  log?: (msg: string) => void;
  signal?: AbortSignal;
}

/** The loop's own options, as the stages' parameters spell them. */
export interface LoopOptions extends ParamValues<typeof LOOP_PARAMS> {
  steps: number;
  /** Samples per step (for img/s and the ETA). */
  batch_size: number;
  /** Seed of the training Philox stream. */
  seed: number;
  /** Directory of the checkpoint (resumed from when it holds one); no checkpoints without it. */
  ckptDir?: string;
}

/** How the loop makes, restores and reads a model. */
export interface ModelHooks<M> {
  /** A fresh model. */
  init(): M;
  /** A model from a checkpoint's state dict. */
  fromHost(state: Map<string, HostTensor>): M;
  /** The parameters AdamW updates. */
  params(m: M): Tensor[];
  /** The state dict (for checkpoints). */
  stateDict(m: M): Promise<Map<string, HostTensor>>;
}

/** {@link ModelHooks} of a model class with the usual `init(cfg, rng)` and `fromHost(cfg, state)`. */
export function modelHooks<
  C,
  M extends { trainable(): Tensor[]; stateDict(): Promise<Map<string, HostTensor>> },
>(
  cls: { init(cfg: C, rng: InitRng): M; fromHost(cfg: C, state: Map<string, HostTensor>): M },
  cfg: C,
  seed: number,
): ModelHooks<M> {
  return {
    init: () => cls.init(cfg, initRngFor(seed)),
    fromHost: (state) => cls.fromHost(cfg, state),
    params: (m) => m.trainable(),
    stateDict: (m) => m.stateDict(),
  };
}

/** What a model gives the loop: its parameters, state and step. */
export interface LoopSpec<M extends { dispose(): void }, E extends LossEntry> extends LoopOptions {
  model: ModelHooks<M>;
  /** The checkpoint file (needed with `ckptDir`). */
  checkpoint?: CheckpointKind;
  /** Written into the checkpoint; a checkpoint of another config is refused. */
  config: unknown;
  optim: AdamWOptions & { lr: number };
  /** The learning rate of a step (0-based); default: `optim.lr` throughout. */
  lrAt?: (step: number) => number;
  /** An EMA of `params` (all of them, `names` in the same order), starting as a copy. */
  ema?: {
    params(m: M): Tensor[];
    names(m: M): { name: string; shape: number[] }[];
    /** The decay of update `t` (0-based; one update per step, so t = the step). */
    decayAt(t: number): number;
  };
  /**
   * Snapshots along the run: every `every` steps (the last one too, when it falls on a multiple, so that a
   * longer run continued from this one has the same snapshots as one trained straight through) `write`
   * gets the step and the EMA weights (the raw weights without an EMA). Curves over training come from
   * these.
   */
  snapshot?: { every: number; write(step: number, weights: Map<string, HostTensor>): Promise<void> };
  /** Lines logged once the model is ready (after "resumed from …"). */
  intro?: () => string[];
  /** One step: draws from `gen`, forward, backward; returns the loss terms to read back (total first). */
  step(m: M, gen: Generator, step: number): Tensor;
  /** The loss entry of step `step` (1-based) from the terms read back. */
  entry(terms: Float32Array, step: number): E;
  /** The part of a log line in parentheses after the loss, e.g. `mse 0.1, vb 0.01`. */
  detail?(e: E): string;
}

/** What {@link trainLoop} returns. */
export interface LoopResult<M, E extends LossEntry> {
  model: M;
  /** The EMA by parameter name (null without one). */
  ema: Map<string, HostTensor> | null;
  /** The loss log, including the steps of earlier runs when resumed. */
  losses: E[];
  /** Seconds spent training in this process (0 when no step ran). */
  seconds: number;
  imgPerSec: number;
  /** The step the run resumed from (0: started afresh). */
  resumedFrom: number;
  /** Steps run in this process. */
  stepsRun: number;
}

/** Runs the loop of `spec` from its checkpoint (when one exists) to `spec.steps`. */
export async function trainLoop<M extends { dispose(): void }, E extends LossEntry>(
  spec: LoopSpec<M, E>,
  hooks: LoopHooks<E> = {},
): Promise<LoopResult<M, E>> {
  await getRuntime();
  const log = hooks.log ?? (() => {});
  const N = spec.batch_size;
  const ckKind = spec.checkpoint;
  if (spec.ckptDir && !ckKind) throw new Error("internal: a checkpoint directory without a checkpoint kind");
  let gen = new Generator(spec.seed);
  let model: M;
  let ema: EMA | null = null;
  let start = 0;
  let losses: E[] = [];
  const ckptPath = spec.ckptDir && ckKind ? `${spec.ckptDir}/${ckKind.file}` : null;
  let lastCkpt: string | null = null;
  const existing = ckptPath ? await Deno.stat(ckptPath).then(() => true, () => false) : false;
  let ck = null;
  if (existing && ckptPath && ckKind) {
    ck = await loadCheckpoint<E>(ckptPath, ckKind, spec.config);
    model = spec.model.fromHost(ck.model);
    if (spec.ema) ema = EMA.fromHost(spec.ema.names(model).map((s) => ck!.ema.get(s.name)!));
    gen = Generator.fromState(ck.rng);
    start = ck.step;
    losses = ck.losses;
    lastCkpt = ckptPath;
    log(`resumed from ${ckptPath} at step ${start}`);
  } else {
    model = spec.model.init();
    if (spec.ema) ema = EMA.copyOf(spec.ema.params(model));
  }
  const opt = new AdamW(spec.model.params(model), spec.optim);
  if (ck) opt.loadState(ck.optim);
  for (const line of spec.intro?.() ?? []) log(line);
  const t0 = performance.now();
  let stepsRun = 0;
  // The loss of step s is read back while step s + 1 is recorded: the GPU runs one step while the CPU
  // builds the next (the same commands in the same order, so the results are bit-identical). Steps that
  // end in a checkpoint or snapshot, and the last, are finished before the next is recorded, since those
  // read the weights back.
  const snapshotAfter = (done: number) =>
    spec.snapshot !== undefined && spec.snapshot.every > 0 && done % spec.snapshot.every === 0;
  const checkpointAfter = (done: number) =>
    done === spec.steps || (spec.ckpt_every > 0 && done % spec.ckpt_every === 0);
  const finish = async (p: { stats: Promise<Float32Array>; terms: Tensor; step: number }) => {
    const step = p.step;
    const stats = await p.stats;
    p.terms.dispose();
    const e = spec.entry(stats, step + 1);
    if (!Number.isFinite(e.loss)) throw new DivergedError(step + 1, lastCkpt);
    losses.push(e);
    stepsRun++;
    const imgPerSec = (stepsRun * N) / ((performance.now() - t0) / 1000);
    const etaSec = ((spec.steps - step - 1) * N) / imgPerSec;
    hooks.onStep?.({ ...e, total: spec.steps, imgPerSec, etaSec });
    const isLast = step + 1 === spec.steps;
    if (spec.log_every > 0 && ((step + 1) % spec.log_every === 0 || isLast)) {
      const detail = spec.detail ? ` (${spec.detail(e)})` : "";
      log(
        `step ${step + 1}/${spec.steps} loss ${e.loss.toFixed(4)}${detail} ` +
          `${imgPerSec.toFixed(1)} img/s ETA ${etaSec.toFixed(0)}s`,
      );
    }
    if (spec.snapshot && snapshotAfter(step + 1)) {
      await spec.snapshot.write(
        step + 1,
        ema && spec.ema ? await emaToHost(ema, spec.ema.names(model)) : await spec.model.stateDict(model),
      );
    }
    if (spec.ckptDir && ckKind && checkpointAfter(step + 1)) {
      lastCkpt = await saveCheckpoint(spec.ckptDir, ckKind, {
        step: step + 1,
        rng: gen.state(),
        model: await spec.model.stateDict(model),
        ema: ema && spec.ema ? await emaToHost(ema, spec.ema.names(model)) : new Map(),
        optim: await opt.toHost(),
        losses,
      }, spec.config);
    }
  };
  let pending: Parameters<typeof finish>[0] | null = null;
  try {
    for (let step = start; step < spec.steps; step++) {
      hooks.signal?.throwIfAborted();
      if (spec.lrAt) opt.lr = spec.lrAt(step);
      const terms = spec.step(model, gen, step);
      opt.step();
      opt.zeroGrad();
      if (ema && spec.ema) ema.update(spec.ema.params(model), spec.ema.decayAt(step));
      const cur = { stats: terms.data(), terms, step };
      const prev = pending;
      pending = cur; // released by the catch below if finishing `prev` throws
      if (prev) await finish(prev);
      if (snapshotAfter(step + 1) || checkpointAfter(step + 1)) {
        pending = null;
        await finish(cur);
      }
    }
  } catch (err) {
    if (pending) {
      await pending.stats.catch(() => {});
      pending.terms.dispose();
    }
    model.dispose();
    ema?.dispose();
    opt.dispose();
    throw err;
  }
  const seconds = stepsRun > 0 ? (performance.now() - t0) / 1000 : 0;
  const emaHost = ema && spec.ema ? await emaToHost(ema, spec.ema.names(model)) : null;
  ema?.dispose();
  opt.dispose();
  return {
    model,
    ema: emaHost,
    losses,
    seconds,
    imgPerSec: stepsRun > 0 ? (stepsRun * N) / seconds : 0,
    resumedFrom: start,
    stepsRun,
  };
}

function emaToHost(ema: EMA, names: { name: string; shape: number[] }[]): Promise<Map<string, HostTensor>> {
  return ema.toHost(names.map((s) => s.name), names.map((s) => s.shape));
}

/**
 * EMA decay with the warm-up of `ema_warmup`: min(decay, (1 + t) / (10 + t)) at update t (0-based), or
 * the constant `decay` without it.
 */
export function emaDecayAt(decay: number, warmup: boolean): (t: number) => number {
  return warmup ? (t) => Math.min(decay, (1 + t) / (10 + t)) : () => decay;
}

/** Linear learning-rate warm-up over `warmup` steps: lr · min(1, (step + 1) / warmup); none for 0. */
export function warmupLr(lr: number, warmup: number): ((step: number) => number) | undefined {
  return warmup > 0 ? (step) => lr * Math.min(1, (step + 1) / warmup) : undefined;
}

/**
 * Cosine decay from `lr` at step 0 to 0 over `total` steps: lr · (1 + cos(π · step / total)) / 2. It depends
 * on the total, so a longer run does not extend a shorter one (the DiT trains at a constant rate for that).
 */
export function cosineLr(lr: number, total: number): (step: number) => number {
  return (step) => lr * 0.5 * (1 + Math.cos(Math.PI * step / total));
}
