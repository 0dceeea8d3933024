import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, f32, gpu, randn, randu } from "../helpers/gradcheck.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { discretizedGaussianLogLikelihood, mse, msePerSample, normalKl } from "../../lib/tensor/ops/loss.ts";
import { loadGolden } from "../helpers/golden.ts";

await gpu();

// Float64 references, transcribed from guided-diffusion's losses.py.
function normalKlRef(m1: number, lv1: number, m2: number, lv2: number): number {
  return 0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + (m1 - m2) ** 2 * Math.exp(-lv2));
}

function cdf(x: number): number {
  return 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

function dgllRef(x: number, m: number, ls: number): number {
  const c = x - m;
  const s = Math.exp(-ls);
  const cdfPlus = cdf(s * (c + 1 / 255));
  const cdfMin = cdf(s * (c - 1 / 255));
  if (x < -0.999) return Math.log(Math.max(cdfPlus, 1e-12));
  if (x > 0.999) return Math.log(Math.max(1 - cdfMin, 1e-12));
  return Math.log(Math.max(cdfPlus - cdfMin, 1e-12));
}

for (const shape of [[7], [3, 5, 11], [2, 4, 16, 16], [1, 70000], [3, 23335]]) {
  const n = shape.reduce((a, b) => a * b, 1);
  const small = n < 5000;
  Deno.test(`mse and msePerSample ${JSON.stringify(shape)}: forward and gradients vs float64`, async () => {
    const cols = n / shape[0];
    const a = randn(n, 300 + n);
    const b = randn(n, 301 + n);
    const mseRef = ([a, b]: Float64Array[]) =>
      Float64Array.of(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / n);
    const perRef = ([a, b]: Float64Array[]) => {
      const o = new Float64Array(shape[0]);
      a.forEach((v, i) => (o[Math.floor(i / cols)] += (v - b[i]) ** 2 / cols));
      return o;
    };
    if (!small) {
      // Finite differences cost O(n²): the forward of the multi-stage case only (its gradient is below).
      const r = tidy(() => {
        const ta = tensor(Float32Array.from(a), shape);
        const tb = tensor(Float32Array.from(b), shape);
        return [mse(ta, tb), msePerSample(ta, tb)];
      });
      const a32 = f32(a);
      const b32 = f32(b);
      assertClose(await r[0].data(), mseRef([a32, b32]), 1e-6, "mse forward");
      assertClose(await r[1].data(), perRef([a32, b32]), 1e-6, "msePerSample forward");
      for (const t of r) t.dispose();
      return;
    }
    await checkOp({
      name: "mse",
      inputs: [{ shape, data: a }, { shape, data: b }],
      gpu: ([a, b]) => mse(a, b),
      ref: mseRef,
    });
    await checkOp({
      name: "msePerSample",
      inputs: [{ shape, data: a }, { shape, data: b }],
      gpu: ([a, b]) => msePerSample(a, b),
      ref: perRef,
    });
  });
}

Deno.test("mse gradient through a large (multi-stage) reduction", async () => {
  // 70000 elements: the forward sum runs in two stages; the gradient is elementwise, checked exactly.
  const n = 70000;
  const a = Float32Array.from(randn(n, 9));
  const b = Float32Array.from(randn(n, 10));
  const r = tidy(() => {
    const ta = tensor(a, [n]);
    const tb = tensor(b, [n]);
    ta.requiresGrad = tb.requiresGrad = true;
    backward(mse(ta, tb));
    return [ta.grad!, tb.grad!, ta, tb];
  });
  const want = Float64Array.from(a, (v, i) => (2 * (v - b[i])) / n);
  assertClose(await r[0].data(), want, 1e-6, "d mse / da");
  assertClose(await r[1].data(), want.map((v) => -v), 1e-6, "d mse / db");
  for (const t of r) t.dispose();
});

Deno.test("normalKl: forward and gradients of all four inputs vs float64", async () => {
  const n = 3 * 4 * 5;
  const shape = [3, 4, 5];
  await checkOp({
    name: "normalKl",
    inputs: [
      { shape, data: randn(n, 401) },
      { shape, data: randu(n, 402, -3, 1) },
      { shape, data: randn(n, 403) },
      { shape, data: randu(n, 404, -3, 1) },
    ],
    gpu: ([m1, lv1, m2, lv2]) => normalKl(m1, lv1, m2, lv2),
    ref: ([m1, lv1, m2, lv2]) => m1.map((_, i) => normalKlRef(m1[i], lv1[i], m2[i], lv2[i])),
  });
});

Deno.test("normalKl with only logvar2 requiring a gradient (DiT's vb term)", async () => {
  const n = 33;
  await checkOp({
    name: "normalKl (logvar2)",
    inputs: [
      { shape: [n], data: randn(n, 411), grad: false },
      { shape: [n], data: randu(n, 412, -6, -1), grad: false },
      { shape: [n], data: randn(n, 413, 1.1), grad: false },
      { shape: [n], data: randu(n, 414, -6, -1) },
    ],
    gpu: ([m1, lv1, m2, lv2]) => normalKl(m1, lv1, m2, lv2),
    ref: ([m1, lv1, m2, lv2]) => m1.map((_, i) => normalKlRef(m1[i], lv1[i], m2[i], lv2[i])),
  });
});

/**
 * Inputs for the discretized Gaussian: x on the 256-level grid in [-1, 1] including both edge bins (x = ±1
 * exactly, far from the ±0.999 thresholds for the 1e-6 finite-difference steps), scales in [0.03, 0.5] and
 * means within about 1.5 scales of x, so that the CDF differences stay well above float32 resolution (in
 * the saturated tails the float32 op, like torch's float32 one, loses the difference to cancellation).
 */
function dgllInputs(n: number, seed: number): Float64Array[] {
  const u = randu(n, seed, 0, 1);
  const x = Float64Array.from(
    u,
    (v, i) => (i % 7 === 0 ? -1 : i % 7 === 1 ? 1 : Math.round(v * 255) / 127.5 - 1),
  );
  const ls = randu(n, seed + 2, Math.log(0.03), Math.log(0.5));
  const z = randn(n, seed + 1);
  const m = Float64Array.from(x, (v, i) => v + 0.5 * z[i] * Math.exp(ls[i]));
  return [x, m, ls];
}

Deno.test("discretizedGaussianLogLikelihood: forward and gradients of x, means, logScales vs float64", async () => {
  const n = 96;
  const [x, m, ls] = dgllInputs(n, 501);
  await checkOp({
    name: "discretizedGaussianLogLikelihood",
    inputs: [{ shape: [2, 48], data: x }, { shape: [2, 48], data: m }, { shape: [2, 48], data: ls }],
    gpu: ([a, b, c]) => discretizedGaussianLogLikelihood(a, b, c),
    ref: ([a, b, c]) => a.map((_, i) => dgllRef(a[i], b[i], c[i])),
  });
});

Deno.test("discretizedGaussianLogLikelihood: clamped log-probabilities have zero gradient", async () => {
  // Far-off means: every branch clamps at log(1e-12).
  const r = tidy(() => {
    const x = tensor(Float32Array.of(-1, 0, 1), [3]);
    const m = tensor(Float32Array.of(5, -5, -5), [3]);
    const ls = tensor(Float32Array.of(-3, -3, -3), [3]);
    m.requiresGrad = ls.requiresGrad = true;
    const y = discretizedGaussianLogLikelihood(x, m, ls);
    backward(y, tensor(Float32Array.of(1, 1, 1), [3]));
    return [y, m.grad!, ls.grad!, x, m, ls];
  });
  const y = await r[0].data();
  for (const v of y) assert(Math.abs(v - Math.log(1e-12)) < 1e-4, `clamped value ${v}`);
  assertEquals(Array.from(await r[1].data()), [0, 0, 0]);
  assertEquals(Array.from(await r[2].data()), [0, 0, 0]);
  for (const t of r) t.dispose();
});

Deno.test("losses are deterministic (bit-identical reruns)", async () => {
  const n = 32 * 4 * 32 * 32;
  const a = Float32Array.from(randn(n, 601));
  const b = Float32Array.from(randn(n, 602));
  const run = async () => {
    const r = tidy(() => {
      const ta = tensor(a, [32, 4, 32, 32]);
      const tb = tensor(b, [32, 4, 32, 32]);
      return [mse(ta, tb), msePerSample(ta, tb)];
    });
    const out = [await r[0].data(), await r[1].data()];
    for (const t of r) t.dispose();
    return out;
  };
  const x = await run();
  const y = await run();
  for (let k = 0; k < x.length; k++) {
    assert(x[k].every((v, i) => Object.is(v, y[k][i])), `output ${k} differs between runs`);
  }
});

Deno.test("losses match PyTorch golden values (guided-diffusion losses.py)", async () => {
  const g = await loadGolden();
  const ops: Record<string, (xs: Tensor[]) => Tensor> = {
    mse: ([a, b]) => mse(a, b),
    mse_per_sample: ([a, b]) => msePerSample(a, b),
    normal_kl: ([a, b, c, d]) => normalKl(a, b, c, d),
    discretized_gaussian_log_likelihood: ([a, b, c]) => discretizedGaussianLogLikelihood(a, b, c),
  };
  for (const [name, f] of Object.entries(ops)) {
    const c = g[name];
    const res = tidy(() => {
      const ins = c.inputs.map((i) => {
        const t = tensor(Float32Array.from(i.data), i.shape);
        t.requiresGrad = true;
        return t;
      });
      const y = f(ins);
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

Deno.test("loss shape errors name the op and both shapes", () => {
  tidy(() => {
    const a = tensor(new Float32Array(6).fill(1), [2, 3]);
    const b = tensor(new Float32Array(6).fill(1), [3, 2]);
    assertThrows(() => mse(a, b), "mse", "[2, 3]", "[3, 2]");
    assertThrows(() => msePerSample(a, b), "msePerSample", "[2, 3]", "[3, 2]");
    assertThrows(() => normalKl(a, a, b, a), "normalKl", "[2, 3]", "[3, 2]");
    assertThrows(
      () => discretizedGaussianLogLikelihood(a, a, b),
      "discretizedGaussianLogLikelihood",
      "[3, 2]",
    );
  });
});
