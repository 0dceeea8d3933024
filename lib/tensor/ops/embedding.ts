/**
 * Embedding lookup (DiT's label table `y_embedder.embedding_table`): `table [V, D]`, `idx u32 [N]` →
 * `[N, D]`.
 *
 * Backward is a deterministic scatter-add into dTable without atomics (`kernels/embedding.wgsl`): a first
 * kernel threads, per table row, the positions that use it into a linked list in increasing order (one
 * invocation per row scans the N indices: V·N u32 compares), then one invocation per (row, column) walks
 * its list and sums the gradient rows in that order (N·D + V·D work). The sum order is that of a
 * sequential loop over positions, so results are bit-identical across runs. Chosen over a per-(row,
 * column) scan of all N indices (V·D·N work) and over a sort-based segment sum (several passes); fine for
 * N up to many thousands. Indices outside [0, V) give NaN rows forward and no gradient.
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, ShapeError, type Tensor } from "../tensor.ts";
import { assertF32, grid } from "./util.ts";

import { launch } from "../launch.ts";
const K = wgsl(new URL("../../../kernels/embedding.wgsl", import.meta.url));
const WG = 256;

/** Rows `idx` of `table` [V, D] as [...idx.shape, D]; `idx` is u32 (or i32 with non-negative values). */
export function embedding(table: Tensor, idx: Tensor): Tensor {
  assertF32("embedding", table);
  if (table.ndim !== 2) {
    throw new ShapeError("embedding", `expects a table of shape [V, D], got ${fmtShape(table.shape)}`);
  }
  if (idx.dtype === "f32") {
    throw new ShapeError(
      "embedding",
      `expects u32 indices, got f32 tensor ${idx.name} of shape ${fmtShape(idx.shape)} for table ${
        fmtShape(table.shape)
      }`,
    );
  }
  const [v, d] = table.shape;
  const n = idx.size;
  const p = { n, d, v };
  const { fout: out } = launch(K, "embed_forward", {
    constants: { WG },
    params: p,
    inputs: { ftable: table, fidx: idx },
    outputs: { fout: [...idx.shape, d] },
    workgroups: grid(n * d, WG),
    label: "embedding",
  });
  return record(out, "embedding", [table, idx], (g) => {
    const { links } = launch(K, "embed_links", {
      constants: { WG },
      params: p,
      inputs: { lidx: idx },
      outputs: { links: [v + n] },
      workgroups: grid(v, WG),
      label: "embedding backward (links)",
    });
    const { bdtable: dtable } = launch(K, "embed_backward", {
      constants: { WG },
      params: p,
      inputs: { blinks: links, bg: g },
      outputs: { bdtable: table.shape },
      workgroups: grid(v * d, WG),
      label: "embedding backward",
    });
    links.dispose();
    return [dtable, null];
  });
}
