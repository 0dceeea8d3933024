import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, f32, gpu, randn } from "../helpers/gradcheck.ts";
import {
  isCpuAdapter,
  linear,
  matmul,
  type MatmulKernel,
  planMatmul,
  setMatmulKernel,
} from "../../lib/tensor/ops/matmul.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";
import { assertDeterministic, assertSameBits } from "../helpers/bits.ts";

await gpu();

const prod = (s: number[]) => s.reduce((x, y) => x * y, 1);

/**
 * Float64 reference of matmul with transposes and batch broadcasting: a [...bA, r, c], b [...bB, r, c];
 * the batch with one element is broadcast.
 */
function mmRef(
  a: Float64Array,
  as: number[],
  b: Float64Array,
  bs: number[],
  tA: boolean,
  tB: boolean,
): Float64Array {
  const [ar, ac] = as.slice(-2);
  const [br, bc] = bs.slice(-2);
  const M = tA ? ac : ar;
  const K = tA ? ar : ac;
  const N = tB ? br : bc;
  const nA = prod(as.slice(0, -2));
  const nB = prod(bs.slice(0, -2));
  const batch = Math.max(nA, nB);
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = nA === 1 ? 0 : z * M * K;
    const bo = nB === 1 ? 0 : z * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          s += a[ao + (tA ? k * M + i : i * K + k)] * b[bo + (tB ? j * K + k : k * N + j)];
        }
        out[z * M * N + i * N + j] = s;
      }
    }
  }
  return out;
}

/** Float64 reference of linear: x [rows, in] · weight [out, in]ᵀ + bias. */
function linearRef(x: Float64Array, w: Float64Array, bias: Float64Array | null, inF: number, outF: number) {
  const rows = x.length / inF;
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      out[r * outF + o] = s;
    }
  }
  return out;
}

/** Runs `fn` with a forced matmul kernel family. */
async function withKernel<T>(k: "auto" | MatmulKernel, fn: () => Promise<T>): Promise<T> {
  const prev = setMatmulKernel(k);
  try {
    return await fn();
  } finally {
    setMatmulKernel(prev);
  }
}

/** The policies among `policies` that launch different kernels for this problem (duplicates dropped). */
function distinctPolicies(
  M: number,
  N: number,
  K: number,
  tA: boolean,
  tB: boolean,
  policies: ("auto" | MatmulKernel)[],
): ("auto" | MatmulKernel)[] {
  const seen = new Set<string>();
  const out: ("auto" | MatmulKernel)[] = [];
  for (const p of policies) {
    const prev = setMatmulKernel(p);
    const plan = planMatmul(M, N, K, tA, tB);
    setMatmulKernel(prev);
    const key = plan.entry + JSON.stringify(plan.constants);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  return out;
}

/** matmul forward on float64 data rounded to f32, read back. */
async function mmForward(
  ad: Float64Array,
  as: number[],
  bd: Float64Array,
  bs: number[],
  tA: boolean,
  tB: boolean,
): Promise<Float32Array> {
  const y = tidy(() =>
    matmul(tensor(Float32Array.from(ad), as), tensor(Float32Array.from(bd), bs), { transA: tA, transB: tB })
  );
  const d = await y.data();
  y.dispose();
  return d;
}

const combos: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
const tname = (tA: boolean, tB: boolean) => `${tA ? "T" : "N"}${tB ? "T" : "N"}`;

/** Checks matmul forward and both gradients vs float64 for one problem. */
async function checkMatmul(
  M: number,
  N: number,
  K: number,
  tA: boolean,
  tB: boolean,
  aB: number[] = [],
  bB: number[] = [],
) {
  const as = [...aB, ...(tA ? [K, M] : [M, K])];
  const bs = [...bB, ...(tB ? [N, K] : [K, N])];
  await checkOp({
    name: `matmul ${tname(tA, tB)} a ${JSON.stringify(as)} b ${JSON.stringify(bs)}`,
    inputs: [{ shape: as, data: randn(prod(as), M * 7 + N) }, {
      shape: bs,
      data: randn(prod(bs), K * 3 + 1),
    }],
    gpu: ([a, b]) => matmul(a, b, { transA: tA, transB: tB }),
    ref: ([a, b]) => mmRef(a, as, b, bs, tA, tB),
  });
}

// Each kernel family on every transpose combination: `auto` (reg4 on llvmpipe, tile4 on GPUs) and the
// other vec4 kernel on vec4-friendly sizes, reg1 on odd sizes (which every policy falls back to).
for (const kernel of ["auto", "tile4", "reg4"] as const) {
  for (const [tA, tB] of combos) {
    Deno.test(`matmul ${tname(tA, tB)} [${kernel}] 12x8x16: forward and gradients vs float64`, async () => {
      await withKernel(kernel, () => checkMatmul(12, 8, 16, tA, tB));
    });
  }
}
for (const [tA, tB] of combos) {
  Deno.test(`matmul ${tname(tA, tB)} odd sizes 7x5x9 (scalar kernel): forward and gradients vs float64`, async () => {
    await checkMatmul(7, 5, 9, tA, tB);
  });
}

Deno.test("matmul batched, equal batch dims: forward and gradients vs float64", async () => {
  await checkMatmul(8, 4, 12, false, false, [3], [3]);
  await checkMatmul(8, 4, 12, true, true, [2], [2]);
  await checkMatmul(5, 3, 7, true, false, [2, 2], [2, 2]);
});

Deno.test("matmul batched a with 2-D b (flattened rows, and transA): forward and gradients vs float64", async () => {
  await checkMatmul(5, 4, 8, false, false, [2, 3], []);
  await checkMatmul(5, 4, 8, false, true, [3], [1]);
  await checkMatmul(4, 12, 8, true, false, [3], []);
  await checkMatmul(3, 5, 7, true, true, [2], []);
});

Deno.test("matmul 2-D a with batched b (gradient of a summed over the batch): vs float64", async () => {
  await checkMatmul(4, 6, 8, false, true, [], [3]);
  await checkMatmul(5, 3, 7, true, false, [1], [2]);
});

Deno.test("matmul 70x130x90 and 72x128x96 forward vs float64 (tolerance 1e-5), each kernel", async () => {
  for (const [M, N, K] of [[70, 130, 90], [72, 128, 96]]) {
    for (const [tA, tB] of combos) {
      const as = tA ? [K, M] : [M, K];
      const bs = tB ? [N, K] : [K, N];
      const ad = f32(randn(M * K, 11));
      const bd = f32(randn(K * N, 12));
      const want = mmRef(ad, as, bd, bs, tA, tB);
      for (const kernel of distinctPolicies(M, N, K, tA, tB, ["auto", "tile4", "reg4"])) {
        const got = await withKernel(kernel, () => mmForward(ad, as, bd, bs, tA, tB));
        assertClose(got, want, 1e-5, `matmul ${M}x${N}x${K} ${tname(tA, tB)} [${kernel}]`);
      }
    }
  }
});

Deno.test("matmul odd and edge sizes (1, 7, 33, 65, 129) forward vs float64", async () => {
  const shapes: [number, number, number][] = [
    [1, 7, 33],
    [33, 1, 7],
    [7, 33, 1],
    [65, 129, 33],
    [129, 65, 7],
    [1, 1, 1],
    // vec4-friendly but not multiples of the tiles: partial row/column blocks and a partial K slice
    [132, 36, 68],
    [4, 132, 20],
    [129, 68, 17],
  ];
  for (const [M, N, K] of shapes) {
    for (const [tA, tB] of combos) {
      const as = tA ? [K, M] : [M, K];
      const bs = tB ? [N, K] : [K, N];
      const ad = f32(randn(M * K, M + 2 * N));
      const bd = f32(randn(K * N, K + 5));
      const want = mmRef(ad, as, bd, bs, tA, tB);
      for (const kernel of distinctPolicies(M, N, K, tA, tB, ["auto", "tile4"])) {
        const got = await withKernel(kernel, () => mmForward(ad, as, bd, bs, tA, tB));
        assertClose(got, want, 1e-5, `matmul ${M}x${N}x${K} ${tname(tA, tB)} [${kernel}]`);
      }
    }
  }
});

Deno.test("matmul split-K (long K): forward and linear gradients vs float64, tile4 and reg4", async () => {
  // tile4 splits K when there are few tiles; reg4 splits K >= 4096 on CPU adapters (cache blocking).
  for (const [kernel, Kbase] of [["tile4", 2056], ["reg4", 4100]] as const) {
    await withKernel(kernel, async () => {
      for (const [tA, tB, batch] of [[false, false, 1], [true, false, 1], [false, true, 2]] as const) {
        // TA && !TB allows K % 4 != 0: the last block of the last split is partial
        const K = tA && !tB ? Kbase + 2 : Kbase;
        const [M, N] = [8, 12];
        const plan = planMatmul(M, N, K, tA, tB, batch);
        if (kernel === "tile4" || isCpuAdapter()) {
          assert(plan.splits > 1, `expected a split-K plan, got ${JSON.stringify(plan)}`);
        }
        const bb = batch > 1 ? [batch] : [];
        const as = [...bb, ...(tA ? [K, M] : [M, K])];
        const bs = [...bb, ...(tB ? [N, K] : [K, N])];
        const ad = f32(randn(prod(as), 41));
        const bd = f32(randn(prod(bs), 42));
        const got = await mmForward(ad, as, bd, bs, tA, tB);
        const what = `[${kernel}] split-K matmul ${tname(tA, tB)} K ${K} batch ${batch}`;
        assertClose(got, mmRef(ad, as, bd, bs, tA, tB), 1e-5, what);
      }
      // linear: x [rows, 8] · W [4, 8]ᵀ + b; dW = dyᵀ·x has K = rows (split), db sums all rows.
      const [rows, inF, outF] = [Kbase + 2, 8, 4];
      const xd = f32(randn(rows * inF, 43));
      const wd = f32(randn(outF * inF, 44));
      const bd = f32(randn(outF, 45));
      const gd = f32(randn(rows * outF, 46));
      const res = tidy(() => {
        const x = tensor(Float32Array.from(xd), [rows, inF]);
        const w = tensor(Float32Array.from(wd), [outF, inF]);
        const b = tensor(Float32Array.from(bd), [outF]);
        for (const t of [x, w, b]) t.requiresGrad = true;
        const y = linear(x, w, b);
        backward(y, tensor(Float32Array.from(gd), y.shape));
        return [y, x, w, b];
      });
      const [y, x, w, b] = res;
      assertClose(
        await y.data(),
        linearRef(xd, wd, bd, inF, outF),
        1e-5,
        `[${kernel}] split-K linear output`,
      );
      const dx = mmRef(gd, [rows, outF], wd, [outF, inF], false, false);
      const dw = mmRef(gd, [rows, outF], xd, [rows, inF], true, false);
      const db = new Float64Array(outF);
      for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) db[o] += gd[r * outF + o];
      assertClose(await x.grad!.data(), dx, 1e-5, `[${kernel}] split-K linear dx`);
      assertClose(await w.grad!.data(), dw, 1e-5, `[${kernel}] split-K linear dW`);
      assertClose(await b.grad!.data(), db, 1e-5, `[${kernel}] split-K linear db`);
      for (const t of res) t.dispose();
    });
  }
});

Deno.test("linear with and without bias on 2-D and 3-D x: forward and gradients vs float64", async () => {
  const cases: [number[], number, boolean][] = [
    [[6, 8], 12, true],
    [[6, 8], 12, false],
    [[2, 50, 8], 4, true], // 100 rows: the bias gradient's column sum runs in two passes
    [[2, 3, 5], 7, true], // odd: scalar kernel
    [[3, 4, 7], 5, false],
    [[9], 4, true], // 1-D x
  ];
  for (const [xs, outF, hasBias] of cases) {
    const inF = xs[xs.length - 1];
    const inputs = [
      { shape: xs, data: randn(prod(xs), 21) },
      { shape: [outF, inF], data: randn(outF * inF, 22) },
    ];
    if (hasBias) inputs.push({ shape: [outF], data: randn(outF, 23) });
    await checkOp({
      name: `linear x ${JSON.stringify(xs)} -> ${outF}${hasBias ? " with bias" : ""}`,
      inputs,
      gpu: ([x, w, b]) => linear(x, w, hasBias ? b : null),
      ref: ([x, w, b]) => linearRef(x, w, hasBias ? b : null, inF, outF),
    });
  }
});

// Mid-size problems (from 4 MFLOP) on CPU adapters get 16-row register tiles of 4, 3 or 2 vec4 columns
// (TN), the 32 × 32 tile (32 rows, TN 8) or 8-row tiles (the convolutions' few output channels), with the 8 lanes of a workgroup spread over rows and columns
// (LC), picked per shape; these sizes leave partial row and column blocks. The asserts keep the coverage
// honest on CPU adapters; on GPUs the same sizes check the default kernels. The layouts are those of a
// Linear layer (NT forward, NN and TN gradients; TN = 3 is in the linear test below): each variant
// compiles for seconds on llvmpipe.
const lanePlans: [number, number, number, [boolean, boolean][], { TM: number; TN: number; LC: number }][] = [
  [100, 76, 276, [[false, true], [false, false], [true, false]], { TM: 32, TN: 8, LC: 4 }],
  [196, 44, 276, [[false, true]], { TM: 32, TN: 8, LC: 2 }],
  [196, 76, 276, [[false, true]], { TM: 16, TN: 4, LC: 1 }],
  [8, 276, 1000, [[false, true]], { TM: 8, TN: 8, LC: 8 }],
];

Deno.test("matmul register tiles (32 × 32, 8 × 32; lanes spread over rows, LC 4, 2, 1), partial blocks: vs float64, bit-identical", async () => {
  for (const [M, N, K, layouts, want] of lanePlans) {
    for (const [tA, tB] of layouts) {
      const what = `matmul ${M}x${N}x${K} ${tname(tA, tB)}`;
      const plan = planMatmul(M, N, K, tA, tB);
      const c = plan.constants;
      if (isCpuAdapter()) {
        assert(
          c.TM === want.TM && c.TN === want.TN && (plan.lc || 8) === want.LC,
          `${what}: plan ${JSON.stringify(plan)}`,
        );
      }
      const as = tA ? [K, M] : [M, K];
      const bs = tB ? [N, K] : [K, N];
      const ad = f32(randn(M * K, M + N + K));
      const bd = f32(randn(K * N, K + 3));
      const got = await mmForward(ad, as, bd, bs, tA, tB);
      assertClose(got, mmRef(ad, as, bd, bs, tA, tB), 1e-5, what);
      assertSameBits(await mmForward(ad, as, bd, bs, tA, tB), got, `${what}: two runs`);
    }
  }
});

Deno.test("linear on 100 rows (32 × 32 and TN 3 register tiles): forward and gradients vs float64", async () => {
  // y = x·Wᵀ + b: 100x76x276 (NT); dx = dy·W: 100x276x76 (NN); dW = dyᵀ·x: 76x276x100 (TN, TN = 3).
  const [rows, inF, outF] = [100, 276, 76];
  if (isCpuAdapter()) {
    const plans = [planMatmul(rows, outF, inF, false, true), planMatmul(outF, inF, rows, true, false)];
    assert(plans[0].constants.TM === 32 && plans[1].constants.TN === 3, JSON.stringify(plans));
  }
  const xd = f32(randn(rows * inF, 61));
  const wd = f32(randn(outF * inF, 62));
  const bd = f32(randn(outF, 63));
  const gd = f32(randn(rows * outF, 64));
  const res = tidy(() => {
    const x = tensor(Float32Array.from(xd), [rows, inF]);
    const w = tensor(Float32Array.from(wd), [outF, inF]);
    const b = tensor(Float32Array.from(bd), [outF]);
    for (const t of [x, w, b]) t.requiresGrad = true;
    const y = linear(x, w, b);
    backward(y, tensor(Float32Array.from(gd), y.shape));
    return [y, x, w, b];
  });
  const [y, x, w, b] = res;
  assertClose(await y.data(), linearRef(xd, wd, bd, inF, outF), 1e-5, "linear output");
  const db = new Float64Array(outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) db[o] += gd[r * outF + o];
  assertClose(
    await x.grad!.data(),
    mmRef(gd, [rows, outF], wd, [outF, inF], false, false),
    1e-5,
    "linear dx",
  );
  assertClose(await w.grad!.data(), mmRef(gd, [rows, outF], xd, [rows, inF], true, false), 1e-5, "linear dW");
  assertClose(await b.grad!.data(), db, 1e-5, "linear db");
  for (const t of res) t.dispose();
});

interface GoldenCase {
  name: string;
  kind: "matmul" | "linear";
  transA?: boolean;
  transB?: boolean;
  shapes: Record<string, number[]>;
  inputs: Record<string, number[]>;
  cotangent: number[];
  output: number[];
  grads: Record<string, number[]>;
}

Deno.test("matmul and linear match PyTorch golden values (outputs and input gradients)", async () => {
  const golden = await loadGolden<{ cases: GoldenCase[] }>("matmul.json");
  assert(golden.cases.length >= 10, "golden file has too few cases");
  for (const c of golden.cases) {
    const names = c.kind === "matmul" ? ["a", "b"] : ["x", "weight", ...(c.inputs.bias ? ["bias"] : [])];
    const res = tidy(() => {
      const ts = names.map((n) => {
        const t = tensor(Float32Array.from(c.inputs[n]), c.shapes[n]);
        t.requiresGrad = true;
        return t.keep();
      });
      const y = c.kind === "matmul"
        ? matmul(ts[0], ts[1], { transA: c.transA, transB: c.transB })
        : linear(ts[0], ts[1], ts[2] ?? null);
      backward(y, tensor(Float32Array.from(c.cotangent), y.shape));
      return { y, ts };
    });
    assertClose(await res.y.data(), c.output, 1e-5, `${c.name}: output`);
    for (let i = 0; i < names.length; i++) {
      assertClose(
        await res.ts[i].grad!.data(),
        c.grads[names[i]],
        1e-5,
        `${c.name}: gradient of ${names[i]}`,
      );
    }
    res.y.dispose();
    for (const t of res.ts) t.dispose();
  }
});

Deno.test("matmul and linear are deterministic: two runs are bit-identical", async () => {
  const run = async (kernel: "auto" | MatmulKernel) =>
    await withKernel(kernel, async () => {
      const res = tidy(() => {
        const x = tensor(Float32Array.from(randn(3 * 700 * 36, 31)), [3, 700, 36]);
        const w = tensor(Float32Array.from(randn(20 * 36, 32)), [20, 36]);
        const b = tensor(Float32Array.from(randn(20, 33)), [20]);
        for (const t of [x, w, b]) t.requiresGrad = true;
        const y = linear(x, w, b);
        const z = matmul(y, y, { transA: true });
        backward(z, tensor(Float32Array.from(randn(3 * 20 * 20, 34)), z.shape));
        // dW = dyᵀ·x has K = 2100 rows: split-K under tile4
        return [z, x, w, b];
      });
      const [z, x, w, b] = res;
      const out: Float32Array[] = [];
      for (const t of [z, x.grad!, w.grad!, b.grad!]) out.push(await t.data());
      for (const t of res) t.dispose();
      return out;
    });
  for (const kernel of ["auto", "tile4"] as const) {
    await assertDeterministic(() => run(kernel), `[${kernel}] outputs`);
  }
});

Deno.test("shape errors name the op and both shapes", () => {
  const mk = (s: number[]): Tensor => tensor(new Float32Array(prod(s)).fill(1), s);
  const ts = [mk([2, 3]), mk([4, 5]), mk([2, 3, 4]), mk([3, 4, 5]), mk([3]), mk([5, 4]), mk([4])];
  const [a23, b45, c234, d345, v3, w54, bias4] = ts;
  assertThrows(() => matmul(a23, b45), "matmul", "[2, 3]", "[4, 5]");
  assertThrows(() => matmul(a23, a23, { transB: false }), "matmul", "[2, 3]");
  assertThrows(() => matmul(c234, d345), "matmul", "[2, 3, 4]", "[3, 4, 5]", "batch");
  assertThrows(() => matmul(v3, a23), "matmul", "[3]", "[2, 3]");
  assertThrows(() => linear(a23, w54), "linear", "[2, 3]", "[5, 4]");
  assertThrows(() => linear(b45, w54, v3), "linear", "[4, 5]", "[5, 4]", "[3]");
  assertThrows(() => linear(b45, bias4), "linear", "[4, 5]", "[4]");
  for (const t of ts) t.dispose();
});
