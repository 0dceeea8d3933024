/**
 * The kernel variants that conv2d, upsampleNearest and groupNorm pick per shape (kernels/conv.wgsl,
 * kernels/groupnorm.wgsl), each against a float64 reference with gradients: im2col with 8 or 4 outputs
 * per invocation as vec4s (Wo % 8, Wo % 4) or a whole row (other widths), strided and rectangular
 * kernels, the vec4 and scalar bias kernels (P % 4), and the vec4 (S % 4 == 0) and scalar GroupNorm
 * kernels with several channels per group, rows longer than the workgroup and several samples.
 */

import { assert } from "../helpers/assert.ts";
import { checkOp, gpu, randn } from "../helpers/gradcheck.ts";
import { conv2d, upsampleNearest } from "../../lib/tensor/ops/conv.ts";
import { groupNorm } from "../../lib/tensor/ops/groupnorm.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";

await gpu();

type Pad4 = [number, number, number, number];

/** Float64 conv2d (NCHW) with [top, bottom, left, right] zero padding. */
function convRef(
  x: Float64Array,
  [N, C, H, W]: number[],
  w: Float64Array,
  [O, , kh, kw]: number[],
  b: Float64Array | null,
  s: number,
  [pt, pb, pl, pr]: Pad4,
): Float64Array {
  const Ho = Math.floor((H + pt + pb - kh) / s) + 1;
  const Wo = Math.floor((W + pl + pr - kw) / s) + 1;
  const out = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let acc = b ? b[o] : 0;
          for (let c = 0; c < C; c++) {
            for (let i = 0; i < kh; i++) {
              const y = oy * s - pt + i;
              if (y < 0 || y >= H) continue;
              for (let j = 0; j < kw; j++) {
                const xx = ox * s - pl + j;
                if (xx < 0 || xx >= W) continue;
                acc += w[((o * C + c) * kh + i) * kw + j] * x[((n * C + c) * H + y) * W + xx];
              }
            }
          }
          out[((n * O + o) * Ho + oy) * Wo + ox] = acc;
        }
      }
    }
  }
  return out;
}

const convCases: { xs: number[]; ws: number[]; stride: number; pad: Pad4; bias: boolean; what: string }[] = [
  {
    xs: [1, 2, 5, 16],
    ws: [3, 2, 3, 3],
    stride: 1,
    pad: [1, 1, 1, 1],
    bias: true,
    what: "Wo 16: 8 per lane",
  },
  {
    xs: [2, 2, 4, 12],
    ws: [2, 2, 3, 3],
    stride: 1,
    pad: [1, 1, 1, 1],
    bias: true,
    what: "Wo 12: 4 per lane",
  },
  { xs: [1, 2, 7, 17], ws: [3, 2, 3, 3], stride: 2, pad: [0, 1, 0, 1], bias: true, what: "stride 2, Wo 8" },
  { xs: [2, 3, 4, 7], ws: [2, 3, 1, 3], stride: 1, pad: [0, 0, 1, 1], bias: true, what: "1×3, Wo 7: rows" },
  { xs: [1, 2, 6, 9], ws: [2, 2, 3, 2], stride: 2, pad: [1, 0, 0, 1], bias: false, what: "3×2 stride 2" },
];

for (const cs of convCases) {
  const label = `conv2d ${cs.what}: x${JSON.stringify(cs.xs)} w${
    JSON.stringify(cs.ws)
  } stride ${cs.stride} pad ${JSON.stringify(cs.pad)}`;
  Deno.test(`${label}: forward and gradients vs float64`, async () => {
    const nx = cs.xs.reduce((a, b) => a * b, 1);
    const nw = cs.ws.reduce((a, b) => a * b, 1);
    const inputs = [
      { shape: cs.xs, data: randn(nx, 21) },
      { shape: cs.ws, data: randn(nw, 22, 0.3) },
    ];
    if (cs.bias) inputs.push({ shape: [cs.ws[0]], data: randn(cs.ws[0], 23) });
    await checkOp({
      name: label,
      inputs,
      gpu: ([x, w, b]) => conv2d(x, w, b, { stride: cs.stride, padding: cs.pad }),
      ref: ([x, w, b]) => convRef(x, cs.xs, w, cs.ws, b ?? null, cs.stride, cs.pad),
    });
  });
}

Deno.test("upsampleNearest ×2 of a 16-wide map: forward and gradient vs float64", async () => {
  const [N, C, H, W, f] = [2, 3, 4, 16, 2];
  await checkOp({
    name: "upsampleNearest 16 wide",
    inputs: [{ shape: [N, C, H, W], data: randn(N * C * H * W, 24) }],
    gpu: ([x]) => upsampleNearest(x, f),
    ref: ([x]) => {
      const out = new Float64Array(N * C * H * f * W * f);
      for (let nc = 0; nc < N * C; nc++) {
        for (let y = 0; y < H * f; y++) {
          for (let xx = 0; xx < W * f; xx++) {
            out[(nc * H * f + y) * W * f + xx] = x[(nc * H + Math.floor(y / f)) * W + Math.floor(xx / f)];
          }
        }
      }
      return out;
    },
  });
});

/** Float64 GroupNorm over x [N, C, S...]. */
function gnRef(x: Float64Array, [N, C]: number[], G: number, w: Float64Array, b: Float64Array): Float64Array {
  const S = x.length / (N * C);
  const cpg = C / G;
  const L = cpg * S;
  const out = new Float64Array(x.length);
  for (let r = 0; r < N * G; r++) {
    const base = r * L;
    let m = 0;
    for (let e = 0; e < L; e++) m += x[base + e];
    m /= L;
    let v = 0;
    for (let e = 0; e < L; e++) v += (x[base + e] - m) ** 2;
    const rstd = 1 / Math.sqrt(v / L + 1e-6);
    for (let e = 0; e < L; e++) {
      const c = (r % G) * cpg + Math.floor(e / S);
      out[base + e] = (x[base + e] - m) * rstd * w[c] + b[c];
    }
  }
  return out;
}

const gnCases: { shape: number[]; groups: number; what: string }[] = [
  { shape: [2, 6, 4, 6], groups: 2, what: "vec4, 3 channels per group" },
  { shape: [3, 4, 5, 5], groups: 2, what: "scalar, 2 channels per group" },
  { shape: [2, 8, 12, 12], groups: 4, what: "vec4, rows of 288" },
  { shape: [2, 4, 3, 7, 2], groups: 4, what: "scalar, 3-D spatial" },
];

for (const cs of gnCases) {
  const label = `groupNorm ${cs.what}: ${JSON.stringify(cs.shape)} groups ${cs.groups}`;
  Deno.test(`${label}: forward and gradients vs float64`, async () => {
    const n = cs.shape.reduce((a, b) => a * b, 1);
    const C = cs.shape[1];
    await checkOp({
      name: label,
      inputs: [
        { shape: cs.shape, data: randn(n, 31, 2, 0.5) },
        { shape: [C], data: randn(C, 32, 0.5, 1) },
        { shape: [C], data: randn(C, 33) },
      ],
      gpu: ([x, w, b]) => groupNorm(x, cs.groups, w, b, 1e-6),
      ref: ([x, w, b]) => gnRef(x, cs.shape, cs.groups, w, b),
      gradTol: 1e-4,
    });
  });
}

Deno.test("conv2d (8 per lane) and groupNorm (vec4) are bit-identical run to run", async () => {
  const run = async () => {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(randn(2 * 4 * 16 * 16, 41)), [2, 4, 16, 16]).keep();
      const w = tensor(Float32Array.from(randn(8 * 4 * 9, 42, 0.2)), [8, 4, 3, 3]).keep();
      const b = tensor(Float32Array.from(randn(8, 43)), [8]).keep();
      const gw = tensor(Float32Array.from(randn(8, 44)), [8]).keep();
      const gb = tensor(Float32Array.from(randn(8, 45)), [8]).keep();
      const leaves = [x, w, b, gw, gb];
      for (const t of leaves) t.requiresGrad = true;
      const y = groupNorm(conv2d(x, w, b, { padding: 1 }), 4, gw, gb);
      backward(y, tensor(Float32Array.from(randn(y.size, 46)), y.shape));
      return { y, leaves };
    });
    const arrs = [await res.y.data()];
    for (const t of res.leaves) arrs.push(await t.grad!.data());
    res.y.dispose();
    for (const t of res.leaves) t.dispose();
    return arrs;
  };
  const a = await run();
  const b = await run();
  for (let k = 0; k < a.length; k++) {
    assert(a[k].every((v, i) => Object.is(v, b[k][i])), `output ${k} differs between runs`);
  }
});
