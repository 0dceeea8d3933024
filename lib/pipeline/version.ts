/**
 * The ditflow version (deno.json `version`). It is part of every cache key: the engine's own code
 * (lib/pipeline) is covered by it rather than by the per-kind code fingerprint.
 * @module
 */

import config from "../../deno.json" with { type: "json" };

/** The ditflow version string, e.g. `0.1.0`. */
export const DITFLOW_VERSION: string = (config as { version?: string }).version ?? "0.0.0";
