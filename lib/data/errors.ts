/**
 * The error type of the data modules (`lib/data/`).
 * @module
 */

/**
 * A data-loading or image-coding failure. Messages name the file or folder concerned and, where the input
 * was malformed, what was expected instead.
 */
export class DataError extends Error {
  /** The file or folder the error is about, when there is one. */
  readonly path?: string;

  /** Creates the error; `path` is kept for callers that report or skip per file. */
  constructor(message: string, options?: { path?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DataError";
    this.path = options?.path;
  }
}
