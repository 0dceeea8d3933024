/**
 * Registers all of ditflow's stage kinds. Each kind lives in its own module under `lib/stages/`, defines
 * itself with `defineKind` from `lib/pipeline/stage.ts` and calls `registerKind` from
 * `lib/pipeline/registry.ts`; add an import line for it here. The CLI imports this module.
 * @module
 */

import "./mnist.ts";
import "./train.ts";
import "./sample.ts";
import "./report.ts";
import "./train_vae.ts";
import "./encode.ts";
import "./decode.ts";
import "./train_classifier.ts";
import "./fid.ts";
import "./images.ts";
import "./compare.ts";
