/**
 * Registers all of ditflow's stage kinds. Each kind lives in its own module under `lib/stages/`
 * (encode, train-vae, train, sample, fid, report, ...), defines itself with `defineKind` from
 * `lib/pipeline/stage.ts` and calls `registerKind` from `lib/pipeline/registry.ts`; add an import line
 * for it here. The CLI imports this module.
 * @module
 */

// Kinds are added here by the issues that implement them, e.g.:
// import "./encode.ts";
// import "./train.ts";
export {};
