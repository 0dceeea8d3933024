import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, gpu, randn } from "../helpers/gradcheck.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { addGated, gate, layerNorm, layerNormModulate, modulate } from "../../lib/tensor/ops/layernorm.ts";
import { loadGolden } from "../helpers/golden.ts";

await gpu();

/** Float64 LayerNorm over the last dim (biased variance). */
function lnRef(x: Float64Array, d: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += x[r * d + j];
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[r * d + j] - m) ** 2;
    v /= d;
    const rs = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < d; j++) out[r * d + j] = (x[r * d + j] - m) * rs;
  }
  return out;
}

/** Float64 x·(1+scale)+shift with x [N,T,D], shift/scale [N,D]. */
function modRef(x: Float64Array, sh: Float64Array, sc: Float64Array, t: number, d: number): Float64Array {
  return x.map((v, i) => {
    const c = Math.floor(i / (t * d)) * d + (i % d);
    return v * (1 + sc[c]) + sh[c];
  });
}

for (const shape of [[3, 7], [2, 3, 33], [2, 2, 384], [1, 1152], [4, 5]]) {
  Deno.test(`layerNorm ${JSON.stringify(shape)}: forward and gradient vs float64`, async () => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = shape[shape.length - 1];
    // A nonzero mean and a non-unit scale, so that the normalisation does something.
    await checkOp({
      name: "layerNorm",
      inputs: [{ shape, data: randn(n, 11 + d, 2, 0.5) }],
      gpu: ([x]) => layerNorm(x, { eps: 1e-5 }),
      ref: ([x]) => lnRef(x, d, 1e-5),
    });
  });
}

// Row kernels (LayerNorm) at small odd and at DiT widths; the elementwise/column kernels at small sizes
// that still span several workgroups (the float64 finite differences cost O(n²)).
for (const [nn, t, d] of [[2, 3, 7], [2, 5, 33], [2, 2, 384], [1, 2, 1152], [2, 37, 8]]) {
  const xs = [nn, t, d];
  const cs = [nn, d];
  Deno.test(`layerNormModulate ${JSON.stringify(xs)}: forward and gradients vs float64`, async () => {
    await checkOp({
      name: "layerNormModulate",
      inputs: [
        { shape: xs, data: randn(nn * t * d, 4, 1.5, 0.3) },
        { shape: cs, data: randn(nn * d, 5) },
        { shape: cs, data: randn(nn * d, 6, 0.5) },
      ],
      gpu: ([x, sh, sc]) => layerNormModulate(x, sh, sc, { eps: 1e-6 }),
      ref: ([x, sh, sc]) => modRef(lnRef(x, d, 1e-6), sh, sc, t, d),
    });
  });
}

// T > 32 cuts T into chunks for the parameter gradients (partial sums, then their ordered sum).
for (const [nn, t, d] of [[2, 3, 7], [2, 5, 33], [3, 2, 130], [2, 37, 9], [2, 35, 8]]) {
  const xs = [nn, t, d];
  const cs = [nn, d];
  Deno.test(`modulate ${JSON.stringify(xs)}: forward and gradients vs float64`, async () => {
    await checkOp({
      name: "modulate",
      inputs: [
        { shape: xs, data: randn(nn * t * d, 1) },
        { shape: cs, data: randn(nn * d, 2) },
        { shape: cs, data: randn(nn * d, 3, 0.5) },
      ],
      gpu: ([x, sh, sc]) => modulate(x, sh, sc),
      ref: ([x, sh, sc]) => modRef(x, sh, sc, t, d),
    });
  });
  Deno.test(`gate and addGated ${JSON.stringify(xs)}: forward and gradients vs float64`, async () => {
    const gref = (x: Float64Array, g: Float64Array) =>
      x.map((v, i) => v * g[Math.floor(i / (t * d)) * d + (i % d)]);
    await checkOp({
      name: "gate",
      inputs: [{ shape: xs, data: randn(nn * t * d, 7) }, { shape: cs, data: randn(nn * d, 8) }],
      gpu: ([x, g]) => gate(x, g),
      ref: ([x, g]) => gref(x, g),
    });
    await checkOp({
      name: "addGated",
      inputs: [
        { shape: xs, data: randn(nn * t * d, 9) },
        { shape: xs, data: randn(nn * t * d, 10) },
        { shape: cs, data: randn(nn * d, 11) },
      ],
      gpu: ([r, x, g]) => addGated(r, x, g),
      ref: ([r, x, g]) => gref(x, g).map((v, i) => v + r[i]),
    });
  });
}

Deno.test("layerNormModulate with only shift/scale requiring gradients", async () => {
  const [nn, t, d] = [2, 3, 16];
  await checkOp({
    name: "layerNormModulate (x detached)",
    inputs: [
      { shape: [nn, t, d], data: randn(nn * t * d, 21), grad: false },
      { shape: [nn, d], data: randn(nn * d, 22) },
      { shape: [nn, d], data: randn(nn * d, 23) },
    ],
    gpu: ([x, sh, sc]) => layerNormModulate(x, sh, sc),
    ref: ([x, sh, sc]) => modRef(lnRef(x, d, 1e-6), sh, sc, t, d),
  });
});

Deno.test("addGated with only the residual, or only x and gate, requiring gradients", async () => {
  const [nn, t, d] = [2, 3, 8];
  const gref = (r: Float64Array, x: Float64Array, g: Float64Array) =>
    x.map((v, i) => r[i] + v * g[Math.floor(i / (t * d)) * d + (i % d)]);
  for (const resGrad of [true, false]) {
    await checkOp({
      name: `addGated (res ${resGrad ? "only" : "detached"})`,
      inputs: [
        { shape: [nn, t, d], data: randn(nn * t * d, 41), grad: resGrad },
        { shape: [nn, t, d], data: randn(nn * t * d, 42), grad: !resGrad },
        { shape: [nn, d], data: randn(nn * d, 43), grad: !resGrad },
      ],
      gpu: ([r, x, g]) => addGated(r, x, g),
      ref: ([r, x, g]) => gref(r, x, g),
    });
  }
});

Deno.test("layerNorm and layerNormModulate are deterministic (bit-identical reruns)", async () => {
  const [nn, t, d] = [4, 64, 384];
  const run = async () => {
    const r = tidy(() => {
      const x = tensor(Float32Array.from(randn(nn * t * d, 31, 3, 1)), [nn, t, d]);
      const sh = tensor(Float32Array.from(randn(nn * d, 32)), [nn, d]);
      const sc = tensor(Float32Array.from(randn(nn * d, 33)), [nn, d]);
      for (const v of [x, sh, sc]) v.requiresGrad = true;
      const y = layerNormModulate(x, sh, sc);
      backward(y, tensor(Float32Array.from(randn(nn * t * d, 34)), y.shape));
      return [y, x.grad!, sh.grad!, sc.grad!, x, sh, sc];
    });
    const out = [];
    for (const v of r.slice(0, 4)) out.push(await v.data());
    for (const v of r) v.dispose();
    return out;
  };
  const a = await run();
  const b = await run();
  for (let k = 0; k < a.length; k++) {
    assert(a[k].every((v, i) => Object.is(v, b[k][i])), `output ${k} differs between runs`);
  }
});

Deno.test("layerNorm matches PyTorch golden values", async () => {
  const g = await loadGolden();
  for (const name of ["layer_norm", "layer_norm_modulate", "modulate", "add_gated"]) {
    const c = g[name];
    const res = tidy(() => {
      const ins = c.inputs.map((i) => {
        const t = tensor(Float32Array.from(i.data), i.shape);
        t.requiresGrad = true;
        return t;
      });
      let y: Tensor;
      const eps = c.eps as number;
      if (name === "layer_norm") y = layerNorm(ins[0], { eps });
      else if (name === "layer_norm_modulate") y = layerNormModulate(ins[0], ins[1], ins[2], { eps });
      else if (name === "modulate") y = modulate(ins[0], ins[1], ins[2]);
      else y = addGated(ins[0], ins[1], ins[2]);
      backward(y, tensor(Float32Array.from(c.cotangent), y.shape));
      return [y, ...ins.map((t) => t.grad!), ...ins];
    });
    assertClose(await res[0].data(), c.output, 1e-5, `${name} golden forward`);
    for (let k = 0; k < c.inputs.length; k++) {
      assertClose(await res[1 + k].data(), c.grads[k]!, 1e-5, `${name} golden gradient ${k}`);
    }
    for (const t of res) t.dispose();
  }
});

Deno.test("shape errors name the op and both shapes", () => {
  const x = tensor(new Float32Array(2 * 3 * 4).fill(1), [2, 3, 4]);
  const c = tensor(new Float32Array(2 * 5).fill(1), [2, 5]);
  const ok = tensor(new Float32Array(2 * 4).fill(1), [2, 4]);
  const r = tensor(new Float32Array(2 * 3 * 5).fill(1), [2, 3, 5]);
  assertThrows(() => modulate(x, c, ok), "modulate", "[2, 5]", "[2, 3, 4]");
  assertThrows(() => layerNormModulate(x, ok, c), "layerNormModulate", "[2, 5]", "[2, 3, 4]");
  assertThrows(() => addGated(r, x, ok), "addGated", "[2, 3, 5]", "[2, 3, 4]");
  assertThrows(() => gate(x, c), "gate", "[2, 5]", "[2, 3, 4]");
  assertThrows(() => modulate(ok, ok, ok), "modulate", "[2, 4]");
  for (const t of [x, c, ok, r]) t.dispose();
});
