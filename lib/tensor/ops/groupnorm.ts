/**
 * GroupNorm (`torch.nn.functional.group_norm`) over x [N, C, ...spatial], with backward.
 * Kernels: `kernels/groupnorm.wgsl` (one small workgroup per (sample, group) row, walked channel by
 * channel, with deterministic lane-ordered sums; vec4 variants when the spatial size is a multiple of 4).
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, full, ShapeError, type Tensor } from "../tensor.ts";
import { launch } from "../launch.ts";
import { assertF32, grid } from "./util.ts";

const K = wgsl(new URL("../../../kernels/groupnorm.wgsl", import.meta.url));
/** Invocations per row: one 8-lane SIMD group is the fastest on llvmpipe (see the kernel file). */
const WG = 8;

/**
 * GroupNorm: the C channels of x [N, C, ...] are split into `groups` groups of consecutive channels; each
 * (sample, group) is normalised by its mean and biased variance, `(x − mean) / √(var + eps)`, then scaled
 * by `weight` [C] and shifted by `bias` [C] per channel (pass null for 1 and 0). Defaults are those of
 * diffusers' VAE: 32 groups, eps 1e-6. Differentiable in x, weight and bias. The saved statistics belong
 * to the enclosing tidy scope when recorded.
 */
export function groupNorm(
  x: Tensor,
  groups = 32,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-6,
): Tensor {
  assertF32("groupNorm", x);
  if (x.ndim < 2) throw new ShapeError("groupNorm", `x must be [N, C, ...], got ${fmtShape(x.shape)}`);
  const [n, c] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new ShapeError(
      "groupNorm",
      `${groups} groups do not divide the ${c} channels of x ${fmtShape(x.shape)}`,
    );
  }
  for (const [nm, t] of [["weight", weight], ["bias", bias]] as const) {
    if (!t) continue;
    assertF32("groupNorm", t);
    if (t.ndim !== 1 || t.shape[0] !== c) {
      throw new ShapeError(
        "groupNorm",
        `${nm} ${fmtShape(t.shape)} does not fit x ${fmtShape(x.shape)} (want [${c}])`,
      );
    }
  }
  const s = c === 0 || n === 0 ? 0 : x.size / (n * c);
  const cpg = c / groups;
  const rows = n * groups;
  const w = weight ?? full([c], 1, "groupNorm weight 1");
  const b = bias ?? full([c], 0, "groupNorm bias 0");
  const params = { rows, cpg, s, c, eps, n };
  const v4 = s > 0 && s % 4 === 0; // vec4 kernels: every channel is whole vec4s
  const fwd = launch(K, "gn_forward", {
    vec4: v4,
    constants: { WG },
    params,
    inputs: { fx: x, fw: w, fb: b },
    outputs: { fy: x.shape, fstats: [rows, 2] },
    workgroups: grid(rows, 1),
    label: "groupNorm",
  });
  const stats = fwd.fstats;
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const out = record(fwd.fy, "groupNorm", inputs, (g) => {
    const dx = x.requiresGrad
      ? launch(K, "gn_backward", {
        vec4: v4,
        constants: { WG },
        params,
        inputs: { bx: x, bw: w, bstats: stats, bdy: g },
        outputs: { bdx: x.shape },
        workgroups: grid(rows, 1),
        label: "groupNorm backward",
      }).bdx
      : null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (weight?.requiresGrad || bias?.requiresGrad) {
      ({ pdw: dw, pdb: db } = launch(K, "gn_backward_params", {
        vec4: v4,
        constants: { WG },
        params,
        inputs: { px: x, pstats: stats, pdy: g },
        outputs: { pdw: [c], pdb: [c] },
        workgroups: grid(c, 1),
        label: "groupNorm backward (weight, bias)",
      }));
      if (!weight?.requiresGrad) {
        dw.dispose();
        dw = null;
      }
      if (!bias?.requiresGrad) {
        db.dispose();
        db = null;
      }
    }
    const grads: (Tensor | null)[] = [dx];
    if (weight) grads.push(dw);
    if (bias) grads.push(db);
    return grads;
  });
  if (!out.node) {
    stats.dispose();
    if (!weight) w.dispose();
    if (!bias) b.dispose();
  }
  return out;
}
