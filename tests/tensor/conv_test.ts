import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn } from "../helpers/gradcheck.ts";
import { conv2d, conv2dDirect, type Padding, upsampleNearest } from "../../lib/tensor/ops/conv.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";
import { assertDeterministic } from "../helpers/bits.ts";

await gpu();

/** Float64 reference conv2d (NCHW) with [top, bottom, left, right] zero padding. */
function convRef(
  x: Float64Array,
  xs: number[],
  w: Float64Array,
  ws: number[],
  b: Float64Array | null,
  stride: [number, number],
  pad: [number, number, number, number],
): { out: Float64Array; shape: number[] } {
  const [N, C, H, W] = xs;
  const [O, , kh, kw] = ws;
  const [sh, sw] = stride;
  const [pt, pb, pl, pr] = pad;
  const Ho = Math.floor((H + pt + pb - kh) / sh) + 1;
  const Wo = Math.floor((W + pl + pr - kw) / sw) + 1;
  const out = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let s = b ? b[o] : 0;
          for (let c = 0; c < C; c++) {
            for (let i = 0; i < kh; i++) {
              const y = oy * sh - pt + i;
              if (y < 0 || y >= H) continue;
              for (let j = 0; j < kw; j++) {
                const xx = ox * sw - pl + j;
                if (xx < 0 || xx >= W) continue;
                s += w[((o * C + c) * kh + i) * kw + j] * x[((n * C + c) * H + y) * W + xx];
              }
            }
          }
          out[((n * O + o) * Ho + oy) * Wo + ox] = s;
        }
      }
    }
  }
  return { out, shape: [N, O, Ho, Wo] };
}

function pad4(p: Padding): [number, number, number, number] {
  if (typeof p === "number") return [p, p, p, p];
  if (p.length === 2) return [p[0], p[0], p[1], p[1]];
  return [p[0], p[1], p[2], p[3]];
}

const cases: { xs: number[]; ws: number[]; stride: number; padding: Padding; bias: boolean }[] = [
  { xs: [2, 3, 7, 5], ws: [4, 3, 3, 3], stride: 1, padding: 1, bias: true }, // odd sizes, same conv
  { xs: [1, 5, 6, 6], ws: [3, 5, 3, 3], stride: 2, padding: [0, 1, 0, 1], bias: true }, // SD downsample
  { xs: [2, 3, 7, 9], ws: [2, 3, 3, 3], stride: 2, padding: [0, 1, 0, 1], bias: false }, // odd, stride 2
  { xs: [2, 6, 3, 5], ws: [5, 6, 1, 1], stride: 1, padding: 0, bias: true }, // 1×1 (no im2col)
  { xs: [1, 2, 5, 4], ws: [3, 2, 2, 3], stride: 1, padding: [1, 2], bias: true }, // rectangular kernel
];

for (const cs of cases) {
  const label = `conv2d x${JSON.stringify(cs.xs)} w${JSON.stringify(cs.ws)} stride ${cs.stride} pad ${
    JSON.stringify(cs.padding)
  }${cs.bias ? "" : " no bias"}`;
  Deno.test(`${label}: forward and gradients vs float64`, async () => {
    const nx = cs.xs.reduce((a, b) => a * b, 1);
    const nw = cs.ws.reduce((a, b) => a * b, 1);
    const inputs = [
      { shape: cs.xs, data: randn(nx, 1) },
      { shape: cs.ws, data: randn(nw, 2, 0.3) },
    ];
    if (cs.bias) inputs.push({ shape: [cs.ws[0]], data: randn(cs.ws[0], 3) });
    const st: [number, number] = [cs.stride, cs.stride];
    await checkOp({
      name: label,
      inputs,
      gpu: ([x, w, b]) => conv2d(x, w, b, { stride: cs.stride, padding: cs.padding }),
      ref: ([x, w, b]) => convRef(x, cs.xs, w, cs.ws, b ?? null, st, pad4(cs.padding)).out,
    });
  });
}

Deno.test("conv2dDirect matches the float64 reference (same, stride-2 asymmetric)", async () => {
  for (const cs of cases.slice(0, 3)) {
    const nx = cs.xs.reduce((a, b) => a * b, 1);
    const nw = cs.ws.reduce((a, b) => a * b, 1);
    const x = randn(nx, 4);
    const w = randn(nw, 5, 0.3);
    const b = randn(cs.ws[0], 6);
    const want = convRef(x, cs.xs, w, cs.ws, cs.bias ? b : null, [cs.stride, cs.stride], pad4(cs.padding));
    const out = tidy(() =>
      conv2dDirect(
        tensor(Float32Array.from(x), cs.xs),
        tensor(Float32Array.from(w), cs.ws),
        cs.bias ? tensor(Float32Array.from(b), [cs.ws[0]]) : null,
        { stride: cs.stride, padding: cs.padding },
      )
    );
    assert(out.shape.join() === want.shape.join(), `shape ${out.shape} vs ${want.shape}`);
    assertClose(await out.data(), want.out, 1e-5, "conv2dDirect");
    out.dispose();
  }
});

Deno.test("upsampleNearest ×2 and ×3: forward and gradient vs float64", async () => {
  for (const [shape, f] of [[[2, 3, 3, 5], 2], [[1, 2, 2, 3], 3]] as [number[], number][]) {
    const [N, C, H, W] = shape;
    await checkOp({
      name: `upsampleNearest ×${f}`,
      inputs: [{ shape, data: randn(N * C * H * W, 9) }],
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
  }
});

Deno.test("conv2d is deterministic (bit-identical forward and gradients)", async () => {
  const run = async () => {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(randn(2 * 4 * 9 * 9, 11)), [2, 4, 9, 9]).keep();
      const w = tensor(Float32Array.from(randn(6 * 4 * 9, 12, 0.2)), [6, 4, 3, 3]).keep();
      const b = tensor(Float32Array.from(randn(6, 13)), [6]).keep();
      for (const t of [x, w, b]) t.requiresGrad = true;
      const y = conv2d(x, w, b, { stride: 2, padding: [0, 1, 0, 1] });
      backward(y, tensor(Float32Array.from(randn(y.size, 14)), y.shape));
      return { y, x, w, b };
    });
    const arrs = [
      await res.y.data(),
      await res.x.grad!.data(),
      await res.w.grad!.data(),
      await res.b.grad!.data(),
    ];
    for (const t of [res.y, res.x, res.w, res.b]) t.dispose();
    return arrs;
  };
  await assertDeterministic(run);
});

Deno.test("conv2d over the binding limit runs in batch chunks: same output and dx, same dw/db up to order", async () => {
  const run = async (chunkBytes?: number) => {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(randn(5 * 3 * 8 * 8, 21)), [5, 3, 8, 8]).keep();
      const w = tensor(Float32Array.from(randn(4 * 3 * 9, 22, 0.2)), [4, 3, 3, 3]).keep();
      const b = tensor(Float32Array.from(randn(4, 23)), [4]).keep();
      for (const t of [x, w, b]) t.requiresGrad = true;
      // cols per image: 4 · 27 · 64 = 6912 bytes; a budget of 14,000 bytes makes chunks of 2, 2, 1.
      const y = conv2d(x, w, b, { padding: 1, chunkBytes });
      backward(y, tensor(Float32Array.from(randn(y.size, 24)), y.shape));
      return { y, x, w, b };
    });
    const arrs = [
      await res.y.data(),
      await res.x.grad!.data(),
      await res.w.grad!.data(),
      await res.b.grad!.data(),
    ];
    for (const t of [res.y, res.x, res.w, res.b]) t.dispose();
    return arrs;
  };
  const whole = await run();
  const chunked = await run(14_000);
  for (const k of [0, 1]) {
    assert(whole[k].every((v, i) => Object.is(v, chunked[k][i])), `output ${k} differs when chunked`);
  }
  for (const k of [2, 3]) assertClose(chunked[k], whole[k], 1e-6, `gradient ${k} when chunked`);
});

/** The golden fixture written by tools/golden_conv.py (torch, float64). */
interface GoldenCase {
  name: string;
  x: number[];
  x_shape: number[];
  w: number[];
  w_shape: number[];
  b: number[] | null;
  stride: number;
  padding: number[];
  /** "conv" or "upsample". */
  op: string;
  factor?: number;
  out: number[];
  out_shape: number[];
  cot: number[];
  dx: number[];
  dw: number[] | null;
  db: number[] | null;
}

Deno.test("conv2d and upsampleNearest match PyTorch golden values (forward and gradients)", async () => {
  const { cases } = await loadGolden<{ cases: GoldenCase[] }>("conv.json");
  assert(cases.length >= 4, "golden cases missing");
  for (const c of cases) {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(c.x), c.x_shape).keep();
      x.requiresGrad = true;
      const ps: ReturnType<typeof tensor>[] = [x];
      let y;
      if (c.op === "upsample") y = upsampleNearest(x, c.factor ?? 2);
      else {
        const w = tensor(Float32Array.from(c.w), c.w_shape).keep();
        w.requiresGrad = true;
        ps.push(w);
        let b = null;
        if (c.b) {
          b = tensor(Float32Array.from(c.b), [c.b.length]).keep();
          b.requiresGrad = true;
          ps.push(b);
        }
        const p = c.padding as [number, number, number, number];
        y = conv2d(x, w, b, { stride: c.stride, padding: p });
      }
      backward(y, tensor(Float32Array.from(c.cot), y.shape));
      return { y, ps };
    });
    assert(res.y.shape.join() === c.out_shape.join(), `${c.name}: shape ${res.y.shape} vs ${c.out_shape}`);
    assertClose(await res.y.data(), c.out, 1e-5, `${c.name} forward`);
    assertClose(await res.ps[0].grad!.data(), c.dx, 1e-5, `${c.name} dx`);
    if (c.dw) assertClose(await res.ps[1].grad!.data(), c.dw, 1e-5, `${c.name} dw`);
    if (c.db) assertClose(await res.ps[2].grad!.data(), c.db, 1e-5, `${c.name} db`);
    res.y.dispose();
    for (const t of res.ps) t.dispose();
  }
});

Deno.test("conv2d: shape errors name the op and the shapes", () => {
  tidy(() => {
    const x = tensor(new Float32Array(2 * 3 * 4 * 4).fill(1), [2, 3, 4, 4]);
    const w = tensor(new Float32Array(5 * 2 * 9).fill(1), [5, 2, 3, 3]);
    assertThrows(() => conv2d(x, w), "conv2d", "[2, 3, 4, 4]", "[5, 2, 3, 3]");
    const w3 = tensor(new Float32Array(5 * 3 * 9).fill(1), [5, 3, 3, 3]);
    const b = tensor(new Float32Array(4).fill(1), [4]);
    assertThrows(() => conv2d(x, w3, b), "conv2d", "[4]");
    const big = tensor(new Float32Array(5 * 3 * 36).fill(1), [5, 3, 6, 6]);
    assertThrows(() => conv2d(x, big), "conv2d", "does not fit");
    assertThrows(
      () => upsampleNearest(tensor(new Float32Array(4).fill(1), [2, 2])),
      "upsampleNearest",
      "[2, 2]",
    );
  });
});
