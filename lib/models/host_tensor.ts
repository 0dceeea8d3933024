/**
 * Small shared types of the models: host-side parameter data, the initialisation RNG interface, and the
 * state-dict mismatch error. A leaf module (no imports), so that a model or a file format needing only
 * these does not import a whole model (and a stage kind's code fingerprint stays small).
 * @module
 */

/** A source of host-side random numbers for initialisation (float64). */
export interface InitRng {
  /** `n` uniform numbers in [0, 1). */
  uniform(n: number): Float64Array;
  /** `n` standard normal numbers. */
  normal(n: number): Float64Array;
}

/** Host data for one parameter. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Thrown when a state dict does not fit the model; names the first mismatching keys. */
export class StateDictError extends Error {
  constructor(model: string, problems: string[]) {
    const shown = problems.slice(0, 8);
    super(
      `checkpoint does not match ${model}: ${shown.join("; ")}` +
        (problems.length > shown.length ? ` (and ${problems.length - shown.length} more)` : ""),
    );
    this.name = "StateDictError";
  }
}
