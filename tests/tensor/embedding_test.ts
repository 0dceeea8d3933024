import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn, rng } from "../helpers/gradcheck.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import { embedding } from "../../lib/tensor/ops/embedding.ts";
import { loadGolden } from "../helpers/golden.ts";
import { assertDeterministic } from "../helpers/bits.ts";

await gpu();

function indices(n: number, v: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * v));
}

function embRef(table: Float64Array, idx: Uint32Array, d: number): Float64Array {
  const out = new Float64Array(idx.length * d);
  idx.forEach((v, i) => out.set(table.subarray(v * d, (v + 1) * d), i * d));
  return out;
}

// Repeated indices (N > V) and unused rows (N < V), odd widths, the DiT label table width.
for (const [v, d, n] of [[5, 3, 17], [11, 33, 4], [1001, 8, 64], [7, 384, 9]]) {
  Deno.test(`embedding V=${v} D=${d} N=${n}: forward and gradient vs float64`, async () => {
    const idx = indices(n, v, v + d + n);
    await checkOp({
      name: "embedding",
      inputs: [{ shape: [v, d], data: randn(v * d, v + d) }],
      gpu: ([t]) => embedding(t, tensor(idx, [n])),
      ref: ([t]) => embRef(t, idx, d),
    });
  });
}

Deno.test("embedding with 2-D indices keeps their shape", async () => {
  const idx = indices(6, 4, 3);
  await checkOp({
    name: "embedding 2-D",
    inputs: [{ shape: [4, 5], data: randn(20, 4) }],
    gpu: ([t]) => {
      const y = embedding(t, tensor(idx, [2, 3]));
      assertEquals(y.shape, [2, 3, 5]);
      return y;
    },
    ref: ([t]) => embRef(t, idx, 5),
  });
});

Deno.test("embedding: out-of-range indices give NaN rows and no gradient", async () => {
  const r = tidy(() => {
    const t = tensor(Float32Array.from(randn(6, 5)), [3, 2]);
    t.requiresGrad = true;
    const y = embedding(t, tensor(Uint32Array.of(1, 3, 1), [3]));
    backward(y, tensor(new Float32Array(6).fill(1), [3, 2]));
    return [y, t.grad!, t];
  });
  const y = await r[0].data();
  const g = await r[1].data();
  assert(Number.isNaN(y[2]) && Number.isNaN(y[3]) && Number.isFinite(y[0]), `forward ${y}`);
  assertEquals(Array.from(g), [0, 0, 2, 2, 0, 0]);
  for (const t of r) t.dispose();
});

Deno.test("embedding backward is deterministic (many repeats of few rows)", async () => {
  const [v, d, n] = [4, 64, 4096];
  const idx = indices(n, v, 77);
  const gdata = Float32Array.from(randn(n * d, 78, 5, 1));
  const run = async () => {
    const r = tidy(() => {
      const t = tensor(Float32Array.from(randn(v * d, 79)), [v, d]);
      t.requiresGrad = true;
      backward(embedding(t, tensor(idx, [n])), tensor(gdata, [n, d]));
      return [t.grad!, t];
    });
    const out = await r[0].data();
    for (const t of r) t.dispose();
    return out;
  };
  const a = await assertDeterministic(run, "dtable");
  // Sequential float64 sum in position order.
  const want = new Float64Array(v * d);
  idx.forEach((row, i) => {
    for (let j = 0; j < d; j++) want[row * d + j] += gdata[i * d + j];
  });
  assertClose(a, want, 1e-6, "dtable");
});

Deno.test("embedding matches PyTorch golden values", async () => {
  const c = (await loadGolden())["embedding"];
  const res = tidy(() => {
    const t = tensor(Float32Array.from(c.inputs[0].data), c.inputs[0].shape);
    t.requiresGrad = true;
    const idx = c.indices as number[];
    const y = embedding(t, tensor(Uint32Array.from(idx), [idx.length]));
    backward(y, tensor(Float32Array.from(c.cotangent), y.shape));
    return [y, t.grad!, t];
  });
  assertClose(await res[0].data(), c.output, 1e-6, "embedding golden forward");
  assertClose(await res[1].data(), c.grads[0]!, 1e-6, "embedding golden gradient");
  for (const t of res) t.dispose();
});

Deno.test("embedding shape errors name the op and both shapes", () => {
  tidy(() => {
    const t = tensor(new Float32Array(6).fill(1), [6]);
    assertThrows(() => embedding(t, tensor(Uint32Array.of(0), [1])), "embedding", "[6]");
    const t2 = tensor(new Float32Array(6).fill(1), [3, 2]);
    assertThrows(
      () => embedding(t2, tensor(Float32Array.of(0, 1), [2])),
      "embedding",
      "u32",
      "[2]",
      "[3, 2]",
    );
  });
});
