/**
 * A test stage kind that writes a tiny deterministic pixel dataset (8 images of 1×8×8 in 2 classes), for
 * tests that run `train`/`sample` through the engine. Registered once per name.
 * @module
 */

import { writeDataArtifact } from "../../lib/data/artifact.ts";
import { defineKind } from "../../lib/pipeline/stage.ts";
import { getKind, registerKind } from "../../lib/pipeline/registry.ts";

/** Registers (once) a kind `name` whose `dataset` output holds the tiny dataset (info.dataset `dataset`). */
export function tinyDataKind(name: string, dataset = name): string {
  if (getKind(name)) return name;
  registerKind(defineKind({
    name,
    module: import.meta.url,
    gpu: false,
    params: {},
    inputs: {},
    outputs: { dataset: {} },
    async run(ctx) {
      const n = 8, per = 64;
      await writeDataArtifact(ctx.outputs.dataset, {
        x: new Float32Array(n * per).map((_, i) => Math.sin(i * 0.37) * 0.8),
        y: Uint32Array.from({ length: n }, (_, i) => i % 2),
        shape: [1, 8, 8],
        count: n,
        numClasses: 2,
        classNames: ["a", "b"],
        space: "pixels",
        info: { dataset },
      });
    },
  }));
  return name;
}
