import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn, rng } from "../helpers/gradcheck.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { crossEntropy, crossEntropyRows, logSoftmax, softmax } from "../../lib/tensor/ops/softmax.ts";
import { loadGolden } from "../helpers/golden.ts";

await gpu();

/** Float64 log-softmax over rows of length c. */
function logSoftmaxRef(x: Float64Array, c: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / c; r++) {
    let m = -Infinity;
    for (let j = 0; j < c; j++) m = Math.max(m, x[r * c + j]);
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp(x[r * c + j] - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < c; j++) out[r * c + j] = x[r * c + j] - lse;
  }
  return out;
}

function labelsFor(n: number, c: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * c));
}

function ceRef(x: Float64Array, labels: Uint32Array, c: number): Float64Array {
  const ls = logSoftmaxRef(x, c);
  return Float64Array.from(labels, (l, i) => -ls[i * c + l]);
}

for (const shape of [[3, 7], [2, 3, 33], [4, 256], [2, 1001]]) {
  const n = shape.reduce((a, b) => a * b, 1);
  const c = shape[shape.length - 1];
  Deno.test(`softmax ${JSON.stringify(shape)}: forward and gradient vs float64`, async () => {
    await checkOp({
      name: "softmax",
      inputs: [{ shape, data: randn(n, 80 + c, 3) }],
      gpu: ([x]) => softmax(x),
      ref: ([x]) => logSoftmaxRef(x, c).map(Math.exp),
    });
  });
  Deno.test(`logSoftmax ${JSON.stringify(shape)}: forward and gradient vs float64`, async () => {
    await checkOp({
      name: "logSoftmax",
      inputs: [{ shape, data: randn(n, 90 + c, 3) }],
      gpu: ([x]) => logSoftmax(x),
      ref: ([x]) => logSoftmaxRef(x, c),
    });
  });
}

Deno.test("softmax is stable for large logits", async () => {
  await checkOp({
    name: "softmax (large)",
    inputs: [{
      shape: [2, 5],
      data: Float64Array.from([1000, 999, 998, -1000, 0, -500, -501, -499, -502, -498]),
    }],
    gpu: ([x]) => softmax(x),
    ref: ([x]) => logSoftmaxRef(x, 5).map(Math.exp),
  });
});

for (const [n, c] of [[5, 7], [3, 300], [3, 2]]) {
  Deno.test(`crossEntropy [${n}, ${c}]: forward and gradient vs float64`, async () => {
    const labels = labelsFor(n, c, n + c);
    await checkOp({
      name: "crossEntropyRows",
      inputs: [{ shape: [n, c], data: randn(n * c, 100 + c, 2) }],
      gpu: ([x]) => crossEntropyRows(x, tensor(labels, [n])),
      ref: ([x]) => ceRef(x, labels, c),
    });
    await checkOp({
      name: "crossEntropy",
      inputs: [{ shape: [n, c], data: randn(n * c, 200 + c, 2) }],
      gpu: ([x]) => crossEntropy(x, tensor(labels, [n])),
      ref: ([x]) => Float64Array.of(ceRef(x, labels, c).reduce((a, b) => a + b, 0) / n),
    });
  });
}

Deno.test("crossEntropy: scalar output, NaN for an out-of-range label", async () => {
  const r = tidy(() => {
    const x = tensor(Float32Array.from(randn(6, 3)), [2, 3]);
    return [
      crossEntropy(x, tensor(Uint32Array.of(0, 2), [2])),
      crossEntropyRows(x, tensor(Uint32Array.of(1, 3), [2])),
    ];
  });
  assertEquals(r[0].shape, []);
  const rows = await r[1].data();
  assert(Number.isFinite(rows[0]) && Number.isNaN(rows[1]), `got ${rows}`);
  for (const t of r) t.dispose();
});

Deno.test("softmax and crossEntropy are deterministic", async () => {
  const run = async () => {
    const r = tidy(() => {
      const x = tensor(Float32Array.from(randn(64 * 1001, 5, 4)), [64, 1001]);
      x.requiresGrad = true;
      const l = crossEntropy(x, tensor(labelsFor(64, 1001, 9), [64]));
      backward(l);
      return [l, softmax(x), x.grad!, x];
    });
    const out = [];
    for (const t of r.slice(0, 3)) out.push(await t.data());
    for (const t of r) t.dispose();
    return out;
  };
  const a = await run();
  const b = await run();
  for (let k = 0; k < a.length; k++) {
    assert(a[k].every((v, i) => Object.is(v, b[k][i])), `output ${k} differs between runs`);
  }
});

Deno.test("softmax, logSoftmax and crossEntropy match PyTorch golden values", async () => {
  const g = await loadGolden();
  for (const name of ["softmax", "log_softmax", "cross_entropy"]) {
    const c = g[name];
    const res = tidy(() => {
      const x = tensor(Float32Array.from(c.inputs[0].data), c.inputs[0].shape);
      x.requiresGrad = true;
      let y: Tensor;
      if (name === "softmax") y = softmax(x);
      else if (name === "log_softmax") y = logSoftmax(x);
      else y = crossEntropy(x, tensor(Uint32Array.from(c.labels as number[]), [x.shape[0]]));
      backward(y, tensor(Float32Array.from(c.cotangent), y.shape));
      return [y, x.grad!, x];
    });
    assertClose(await res[0].data(), c.output, 1e-5, `${name} golden forward`);
    assertClose(await res[1].data(), c.grads[0]!, 1e-5, `${name} golden gradient`);
    for (const t of res) t.dispose();
  }
});

Deno.test("crossEntropy shape errors name the op and both shapes", () => {
  tidy(() => {
    const x = tensor(new Float32Array(6).fill(1), [2, 3]);
    assertThrows(
      () => crossEntropy(x, tensor(Uint32Array.of(0, 1, 2), [3])),
      "crossEntropy",
      "[3]",
      "[2, 3]",
    );
    assertThrows(() => crossEntropy(x.view([6]), tensor(Uint32Array.of(0), [1])), "crossEntropy", "[6]");
    assertThrows(() => crossEntropy(x, tensor(Float32Array.of(0, 1), [2])), "crossEntropy", "u32");
  });
});
