/**
 * The diffusion losses, as in guided-diffusion's `losses.py` and DiT's training loss:
 * - {@link mse}: mean over all elements of (a − b)², shape [];
 * - {@link msePerSample}: `mean_flat((a − b)²)`, the mean over all but the first axis, shape [N] (DiT's
 *   mse term);
 * - {@link normalKl}: `normal_kl(mean1, logvar1, mean2, logvar2)`, elementwise, in nats;
 * - {@link discretizedGaussianLogLikelihood}: `discretized_gaussian_log_likelihood(x, means, log_scales)`,
 *   elementwise log-probabilities in nats (tanh-approximate CDF, bins of width 2/255 on [-1, 1],
 *   clamped at 1e-12, edge bins below -0.999 and above 0.999).
 * Every float input gets a gradient where it requires one (the gradient of a clamped branch is 0, as in
 * torch's `clamp`; `where` passes it to the selected branch only). The elementwise ops require equal shapes
 * (guided-diffusion broadcasts, but DiT always calls them with full-shape tensors).
 * Kernels: `kernels/loss.wgsl` (the multi-stage mean reuses `reduce.wgsl`'s `seg_sum`).
 * @module
 */

import { wgsl } from "../../gpu/runtime.ts";
import { record } from "../autograd.ts";
import { fmtShape, type Shape, ShapeError, type Tensor } from "../tensor.ts";
import { launch } from "../launch.ts";
import { segParams, segPlan, sumSegments } from "./reduce.ts";
import { assertF32, assertSameShape, debugCheck, grid } from "./util.ts";

const K = wgsl(new URL("../../../kernels/loss.wgsl", import.meta.url));
const WG = 256;

function checkSame(op: string, ts: Tensor[]): void {
  for (const t of ts) assertF32(op, t);
  for (let i = 1; i < ts.length; i++) assertSameShape(op, ts[0], ts[i]);
}

/** mean over segments of (a − b)²: `rows` segments of `cols` elements → outShape. */
function mseImpl(op: string, a: Tensor, b: Tensor, rows: number, cols: number, outShape: Shape): Tensor {
  checkSame(op, [a, b]);
  const alpha = 1 / cols;
  const plan = segPlan(cols);
  const chunks = plan.chunks;
  const firstShape = chunks === 1 ? outShape : [rows, chunks];
  const first = launch(K, "sqdiff_sum", {
    vec4: plan.vec,
    constants: { WG: plan.wg },
    params: segParams(rows, plan, chunks === 1 ? alpha : 1),
    inputs: { sa: a, sb: b },
    outputs: { sout: firstShape },
    workgroups: grid(rows * chunks, 1),
    label: op,
  }).sout;
  let out = first;
  if (chunks > 1) {
    out = sumSegments(first, rows, chunks, alpha, outShape);
    first.dispose();
  }
  return record(debugCheck(out, op), op, [a, b], (g) => {
    const { mda, mdb } = launch(K, "mse_backward", {
      constants: { WG },
      params: { n: a.size, cols, alpha: 2 / cols },
      inputs: { ma: a, mb: b, mg: g },
      outputs: { mda: a.shape, mdb: b.shape },
      workgroups: grid(a.size, WG),
      label: `${op} backward`,
    });
    return [mda, mdb];
  });
}

/** Mean squared error over all elements, `mean((a − b)²)`; shape []. Deterministic multi-stage sum. */
export function mse(a: Tensor, b: Tensor): Tensor {
  checkSame("mse", [a, b]);
  return mseImpl("mse", a, b, 1, a.size, []);
}

/**
 * Per-sample mean squared error `mean_flat((a − b)²)`: the mean over every axis but the first, [N, ...] →
 * [N] (DiT's mse term).
 */
export function msePerSample(a: Tensor, b: Tensor): Tensor {
  checkSame("msePerSample", [a, b]);
  if (a.ndim < 1) throw new ShapeError("msePerSample", `expects at least 1 dim, got ${fmtShape(a.shape)}`);
  const n = a.shape[0];
  return mseImpl("msePerSample", a, b, n, n === 0 ? 0 : a.size / n, [n]);
}

/**
 * KL divergence between two diagonal Gaussians, elementwise, in nats (guided-diffusion `normal_kl`):
 * `0.5·(−1 + logvar2 − logvar1 + exp(logvar1 − logvar2) + (mean1 − mean2)²·exp(−logvar2))`.
 */
export function normalKl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor): Tensor {
  const ins = [mean1, logvar1, mean2, logvar2];
  checkSame("normalKl", ins);
  const n = mean1.size;
  const { kout } = launch(K, "normal_kl", {
    constants: { WG },
    params: { n },
    inputs: { km1: mean1, klv1: logvar1, km2: mean2, klv2: logvar2 },
    outputs: { kout: mean1.shape },
    workgroups: grid(n, WG),
    label: "normalKl",
  });
  return record(
    kout,
    "normalKl",
    ins,
    (g) =>
      ins.map((t, which) =>
        t.requiresGrad
          ? launch(K, "normal_kl_backward", {
            constants: { WG, WHICH: which },
            params: { n },
            inputs: { kbm1: mean1, kblv1: logvar1, kbm2: mean2, kblv2: logvar2, kbg: g },
            outputs: { kbout: t.shape },
            workgroups: grid(n, WG),
            label: "normalKl backward",
          }).kbout
          : null
      ),
  );
}

/**
 * Log-likelihood (nats) of `x` (images in [-1, 1], assumed to be uint8 values rescaled) under a Gaussian
 * discretised to 256 bins, elementwise (guided-diffusion `discretized_gaussian_log_likelihood`).
 * Gradients for x, means and logScales (DiT detaches the mean; the log-scale gradient trains the
 * variance head).
 */
export function discretizedGaussianLogLikelihood(x: Tensor, means: Tensor, logScales: Tensor): Tensor {
  const ins = [x, means, logScales];
  checkSame("discretizedGaussianLogLikelihood", ins);
  const n = x.size;
  const op = "discretizedGaussianLogLikelihood";
  const { dout } = launch(K, "dgll_forward", {
    constants: { WG },
    params: { n },
    inputs: { dx: x, dmean: means, dls: logScales },
    outputs: { dout: x.shape },
    workgroups: grid(n, WG),
    label: op,
  });
  return record(dout, op, ins, (g) =>
    ins.map((t, which) =>
      t.requiresGrad
        ? launch(K, "dgll_backward", {
          constants: { WG, WHICH: which },
          params: { n },
          inputs: { dbx: x, dbmean: means, dbls: logScales, dbg: g },
          outputs: { dbout: t.shape },
          workgroups: grid(n, WG),
          label: `${op} backward`,
        }).dbout
        : null
    ));
}
