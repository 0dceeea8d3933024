import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn } from "../helpers/gradcheck.ts";
import { groupNorm } from "../../lib/tensor/ops/groupnorm.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";
import { assertDeterministic } from "../helpers/bits.ts";

await gpu();

/** Float64 reference GroupNorm over x [N, C, S]. */
function gnRef(
  x: Float64Array,
  shape: number[],
  groups: number,
  w: Float64Array | null,
  b: Float64Array | null,
  eps: number,
): Float64Array {
  const [N, C] = shape;
  const S = x.length / (N * C);
  const cpg = C / groups;
  const L = cpg * S;
  const out = new Float64Array(x.length);
  for (let r = 0; r < N * groups; r++) {
    const base = r * L;
    let m = 0;
    for (let e = 0; e < L; e++) m += x[base + e];
    m /= L;
    let v = 0;
    for (let e = 0; e < L; e++) v += (x[base + e] - m) ** 2;
    v /= L;
    const rstd = 1 / Math.sqrt(v + eps);
    const g = r % groups;
    for (let e = 0; e < L; e++) {
      const c = g * cpg + Math.floor(e / S);
      out[base + e] = (x[base + e] - m) * rstd * (w ? w[c] : 1) + (b ? b[c] : 0);
    }
  }
  return out;
}

const cases: { shape: number[]; groups: number; affine: boolean }[] = [
  { shape: [2, 6, 3, 5], groups: 3, affine: true }, // odd spatial size
  { shape: [1, 8, 7, 7], groups: 8, affine: true }, // one channel per group
  { shape: [3, 4, 2, 3], groups: 1, affine: true }, // one group (LayerNorm over C, H, W)
  { shape: [2, 32, 4, 4], groups: 32, affine: true }, // the VAE default
  { shape: [2, 6, 5], groups: 2, affine: false }, // 1-D spatial, no affine
  { shape: [1, 4, 40, 40], groups: 2, affine: true }, // rows longer than a workgroup
];

for (const cs of cases) {
  const label = `groupNorm ${JSON.stringify(cs.shape)} groups ${cs.groups}${cs.affine ? "" : " no affine"}`;
  Deno.test(`${label}: forward and gradients vs float64`, async () => {
    const n = cs.shape.reduce((a, b) => a * b, 1);
    const C = cs.shape[1];
    const inputs = [{ shape: cs.shape, data: randn(n, 1, 2, 0.5) }];
    if (cs.affine) {
      inputs.push({ shape: [C], data: randn(C, 2, 0.5, 1) }, { shape: [C], data: randn(C, 3) });
    }
    await checkOp({
      name: label,
      inputs,
      gpu: ([x, w, b]) => groupNorm(x, cs.groups, w ?? null, b ?? null, 1e-6),
      ref: ([x, w, b]) => gnRef(x, cs.shape, cs.groups, w ?? null, b ?? null, 1e-6),
      gradTol: 1e-4,
    });
  });
}

Deno.test("groupNorm is deterministic (bit-identical forward and gradients)", async () => {
  const run = async () => {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(randn(2 * 8 * 30 * 30, 5)), [2, 8, 30, 30]).keep();
      const w = tensor(Float32Array.from(randn(8, 6)), [8]).keep();
      const b = tensor(Float32Array.from(randn(8, 7)), [8]).keep();
      for (const t of [x, w, b]) t.requiresGrad = true;
      const y = groupNorm(x, 4, w, b);
      backward(y, tensor(Float32Array.from(randn(y.size, 8)), y.shape));
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

/** The golden cases of tools/golden_conv.py (torch.nn.functional.group_norm, float64). */
interface GoldenGN {
  name: string;
  x: number[];
  shape: number[];
  groups: number;
  eps: number;
  w: number[];
  b: number[];
  out: number[];
  cot: number[];
  dx: number[];
  dw: number[];
  db: number[];
}

Deno.test("groupNorm matches PyTorch golden values (forward and gradients)", async () => {
  const cases = (await loadGolden<{ group_norm: GoldenGN[] }>("conv.json")).group_norm;
  assert(cases.length >= 2, "golden cases missing");
  for (const c of cases) {
    const res = tidy(() => {
      const x = tensor(Float32Array.from(c.x), c.shape).keep();
      const w = tensor(Float32Array.from(c.w), [c.w.length]).keep();
      const b = tensor(Float32Array.from(c.b), [c.b.length]).keep();
      for (const t of [x, w, b]) t.requiresGrad = true;
      const y = groupNorm(x, c.groups, w, b, c.eps);
      backward(y, tensor(Float32Array.from(c.cot), y.shape));
      return { y, x, w, b };
    });
    assertClose(await res.y.data(), c.out, 1e-5, `${c.name} forward`);
    assertClose(await res.x.grad!.data(), c.dx, 1e-4, `${c.name} dx`);
    assertClose(await res.w.grad!.data(), c.dw, 1e-5, `${c.name} dweight`);
    assertClose(await res.b.grad!.data(), c.db, 1e-5, `${c.name} dbias`);
    for (const t of [res.y, res.x, res.w, res.b]) t.dispose();
  }
});

Deno.test("groupNorm: shape errors name the op and the shapes", () => {
  tidy(() => {
    const x = tensor(new Float32Array(2 * 6 * 4).fill(1), [2, 6, 2, 2]);
    assertThrows(() => groupNorm(x, 4), "groupNorm", "4 groups", "[2, 6, 2, 2]");
    const w = tensor(new Float32Array(5).fill(1), [5]);
    assertThrows(() => groupNorm(x, 3, w), "groupNorm", "[5]", "[2, 6, 2, 2]");
    assertThrows(() => groupNorm(tensor(new Float32Array(3).fill(1), [3]), 1), "groupNorm", "[3]");
  });
});
