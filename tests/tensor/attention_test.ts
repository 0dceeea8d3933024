import { assert, assertThrows } from "../helpers/assert.ts";
import { assertClose, checkOp, f32, gpu, randn } from "../helpers/gradcheck.ts";
import {
  attention,
  attentionForward,
  type AttentionTiles,
  getAttentionTiles,
  mergeHeads,
  setAttentionTiles,
  splitHeads,
} from "../../lib/tensor/ops/attention.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { type Tensor, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";
import { assertDeterministic } from "../helpers/bits.ts";

await gpu();

// Small tiles and workgroups, one row per invocation: every case crosses several tiles and row blocks
// (edges), all cases of one head dim share pipelines, and llvmpipe compiles the (fully unrolled) kernels
// quickly. Cases with the default tile sizes opt out with `defaultTiles`; the small-tiles case covers
// several rows per invocation.
const TEST_TILES: Partial<AttentionTiles> = {
  tileRows: 4,
  fwdWG: 8,
  fwdRQ: 1,
  dqWG: 8,
  dqRQ: 1,
  dkdvWG: 8,
  dkdvRQ: 1,
};
setAttentionTiles(TEST_TILES);

/** Float64 reference attention: softmax(scale·q·kᵀ)·v per (batch·head); also returns the logsumexp. */
function refAttention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  bh: number,
  tq: number,
  tk: number,
  dh: number,
  scale = 1 / Math.sqrt(dh),
): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(bh * tq * dh);
  const lse = new Float64Array(bh * tq);
  const s = new Float64Array(tk);
  for (let h = 0; h < bh; h++) {
    for (let i = 0; i < tq; i++) {
      const qo = (h * tq + i) * dh;
      let m = -Infinity;
      for (let j = 0; j < tk; j++) {
        const ko = (h * tk + j) * dh;
        let acc = 0;
        for (let d = 0; d < dh; d++) acc += q[qo + d] * k[ko + d];
        s[j] = acc * scale;
        if (s[j] > m) m = s[j];
      }
      let l = 0;
      for (let j = 0; j < tk; j++) {
        s[j] = Math.exp(s[j] - m);
        l += s[j];
      }
      lse[h * tq + i] = m + Math.log(l);
      for (let j = 0; j < tk; j++) {
        const p = s[j] / l;
        const vo = (h * tk + j) * dh;
        for (let d = 0; d < dh; d++) out[qo + d] += p * v[vo + d];
      }
    }
  }
  return { out, lse };
}

/** Detaches a leaf's gradient so that it outlives the leaf (disposing a leaf disposes its .grad). */
function takeGrad(t: Tensor): Tensor {
  const g = t.grad;
  assert(g !== null, `${t.name} got no gradient`);
  t.grad = null;
  return g;
}

interface Case {
  b: number;
  h: number;
  tq: number;
  tk: number;
  dh: number;
  scale?: number;
  /** Skip the q and k gradients (identically zero with a single key). */
  onlyV?: boolean;
  /** Run with the default tile sizes instead of the small test tiles. */
  defaultTiles?: boolean;
}

async function checkAttention(c: Case, seed: number) {
  const prev = c.defaultTiles
    ? setAttentionTiles({ tileRows: 0, fwdWG: 0, fwdRQ: 0, dqWG: 0, dqRQ: 0, dkdvWG: 0, dkdvRQ: 0 })
    : null;
  try {
    await checkAttention_(c, seed);
  } finally {
    if (prev) setAttentionTiles(prev);
  }
}

function checkAttention_(c: Case, seed: number) {
  const nq = c.b * c.h * c.tq * c.dh;
  const nk = c.b * c.h * c.tk * c.dh;
  return checkOp({
    name: `attention ${JSON.stringify(c)}`,
    inputs: [
      { shape: [c.b, c.h, c.tq, c.dh], data: randn(nq, seed), grad: !c.onlyV },
      { shape: [c.b, c.h, c.tk, c.dh], data: randn(nk, seed + 1), grad: !c.onlyV },
      { shape: [c.b, c.h, c.tk, c.dh], data: randn(nk, seed + 2) },
    ],
    gpu: ([q, k, v]) => attention(q, k, v, c.scale === undefined ? {} : { scale: c.scale }),
    ref: ([q, k, v]) => refAttention(q, k, v, c.b * c.h, c.tq, c.tk, c.dh, c.scale).out,
    seed,
  });
}

const cases: [string, Case][] = [
  ["self-attention T 64, Dh 8, default tiles", { b: 1, h: 2, tq: 64, tk: 64, dh: 8, defaultTiles: true }],
  ["odd T 17, Dh 16", { b: 1, h: 2, tq: 17, tk: 17, dh: 16 }],
  ["Tq 17 ≠ Tk 33, Dh 16", { b: 1, h: 2, tq: 17, tk: 33, dh: 16 }],
  ["cross-attention over 2 tokens", { b: 2, h: 3, tq: 33, tk: 2, dh: 8 }],
  ["Dh 72 (DiT-XL), many key tiles", { b: 1, h: 1, tq: 4, tk: 65, dh: 72 }],
  ["Tq over one row block, explicit scale", { b: 1, h: 1, tq: 70, tk: 4, dh: 8, scale: 0.3 }],
  ["Dh not a multiple of 4", { b: 1, h: 2, tq: 5, tk: 9, dh: 6 }],
  ["single key (output = v)", { b: 1, h: 2, tq: 4, tk: 1, dh: 8, onlyV: true }],
];

for (const [what, c] of cases) {
  Deno.test(`attention ${what}: forward and dq, dk, dv vs float64`, async () => {
    await checkAttention(c, 11 + c.tq + c.dh);
  });
}

Deno.test("attention with small tiles, rows per invocation, both tile forms, 2-D grids: edges everywhere", async () => {
  const small: Partial<AttentionTiles> = {
    mode: "dispatch",
    fwdWG: 8,
    fwdRQ: 2,
    dqWG: 4,
    dqRQ: 3,
    dkdvWG: 8,
    dkdvRQ: 2,
    tileRows: 8,
  };
  const forms: Partial<AttentionTiles>[] = [
    small,
    { mode: "loop", fwdWG: 4, fwdRQ: 1, dqWG: 8, dqRQ: 2, dkdvWG: 4, dkdvRQ: 2, tileRows: 4 },
    // 2-D grids with surplus workgroups (which must not write: the dispatch form carries state in the
    // outputs).
    { ...small, gridX: 3 },
  ];
  for (const form of forms) {
    const prev = setAttentionTiles({ ...TEST_TILES, ...form });
    try {
      await checkAttention({ b: 1, h: 2, tq: 33, tk: 17, dh: 8 }, 3);
      await checkAttention({ b: 2, h: 1, tq: 7, tk: 23, dh: 8 }, 4);
    } finally {
      setAttentionTiles(prev);
    }
    assert(getAttentionTiles().mode === prev.mode, "tiles restored");
  }
});

Deno.test("attention saves the logsumexp of the scaled scores", async () => {
  const [bh, tq, tk, dh] = [3, 9, 13, 16];
  const q64 = f32(randn(bh * tq * dh, 21));
  const k64 = f32(randn(bh * tk * dh, 22));
  const v64 = f32(randn(bh * tk * dh, 23));
  const want = refAttention(q64, k64, v64, bh, tq, tk, dh);
  const { out, lse } = tidy(() =>
    attentionForward(
      tensor(Float32Array.from(q64), [1, bh, tq, dh]),
      tensor(Float32Array.from(k64), [1, bh, tk, dh]),
      tensor(Float32Array.from(v64), [1, bh, tk, dh]),
    )
  );
  assertClose(await out.data(), want.out, 1e-5, "attentionForward out");
  assertClose(await lse.data(), want.lse, 1e-6, "attentionForward lse");
  out.dispose();
  lse.dispose();
});

Deno.test("attention with large logits (±80) does not overflow", async () => {
  // q and k rows of norm ~√(80·√Dh) in the same or opposite direction: logits near +80 and -80.
  const [bh, tq, tk, dh] = [2, 6, 10, 16];
  const dir = randn(dh, 31);
  const norm = Math.hypot(...dir);
  const a = Math.sqrt(80 * Math.sqrt(dh));
  const signs = randn(bh * (tq + tk), 32);
  const noise = randn(bh * (tq + tk) * dh, 33, 0.02);
  const row = (r: number) =>
    Array.from({ length: dh }, (_, d) => (Math.sign(signs[r]) * a * dir[d]) / norm + noise[r * dh + d]);
  const q = Float64Array.from({ length: bh * tq * dh }, (_, i) => row(Math.floor(i / dh))[i % dh]);
  const k = Float64Array.from({ length: bh * tk * dh }, (_, i) => row(bh * tq + Math.floor(i / dh))[i % dh]);
  const v = randn(bh * tk * dh, 34);
  const qf = f32(q);
  const kf = f32(k);
  const { lse } = refAttention(qf, kf, f32(v), bh, tq, tk, dh);
  const maxAbs = Math.max(...lse.map(Math.abs));
  assert(maxAbs > 75, `test setup: logits reach only ${maxAbs}`);
  const res = await checkOp({
    name: "attention large logits",
    inputs: [
      { shape: [1, bh, tq, dh], data: q },
      { shape: [1, bh, tk, dh], data: k },
      { shape: [1, bh, tk, dh], data: v },
    ],
    gpu: ([q, k, v]) => attention(q, k, v),
    ref: ([q, k, v]) => refAttention(q, k, v, bh, tq, tk, dh).out,
  });
  for (const e of [res.fwdErr, ...res.gradErrs]) assert(Number.isFinite(e), "errors are finite");
});

Deno.test("attention is deterministic: bit-identical outputs and gradients on repeat", async () => {
  const [b, h, tq, tk, dh] = [2, 2, 37, 41, 16];
  const qd = Float32Array.from(randn(b * h * tq * dh, 41));
  const kd = Float32Array.from(randn(b * h * tk * dh, 42));
  const vd = Float32Array.from(randn(b * h * tk * dh, 43));
  const gd = Float32Array.from(randn(b * h * tq * dh, 44));
  const run = async () => {
    const res = tidy(() => {
      const ts = [tensor(qd, [b, h, tq, dh]), tensor(kd, [b, h, tk, dh]), tensor(vd, [b, h, tk, dh])];
      for (const t of ts) t.requiresGrad = true;
      const y = attention(ts[0], ts[1], ts[2]);
      backward(y, tensor(gd, y.shape));
      return [y, ...ts.map(takeGrad)];
    });
    const data = await Promise.all(res.map((t) => t.data()));
    res.forEach((t) => t.dispose());
    return data;
  };
  await assertDeterministic(run);
});

Deno.test("attention releases every intermediate (padded head dims too)", async () => {
  const { rt } = await import("../../lib/gpu/runtime.ts");
  const { noGrad } = await import("../../lib/tensor/autograd.ts");
  for (const dh of [8, 6]) {
    const [b, h, tq, tk] = [1, 2, 9, 5];
    const q = tensor(Float32Array.from(randn(b * h * tq * dh, 71)), [b, h, tq, dh]);
    const k = tensor(Float32Array.from(randn(b * h * tk * dh, 72)), [b, h, tk, dh]);
    const v = tensor(Float32Array.from(randn(b * h * tk * dh, 73)), [b, h, tk, dh]);
    await rt().sync();
    const before = rt().pool.stats().inUse;
    // Recorded, inside a scope: everything goes when the scope ends.
    tidy(() => {
      for (const t of [q, k, v]) t.requiresGrad = true;
      const y = attention(q, k, v);
      backward(y, tensor(Float32Array.from(randn(y.size, 74)), y.shape));
      for (const t of [q, k, v]) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
    // Not recorded, outside any scope: only the output is left.
    noGrad(() => attention(q, k, v)).dispose();
    await rt().sync();
    const after = rt().pool.stats().inUse;
    for (const t of [q, k, v]) t.dispose();
    assert(after === before, `Dh ${dh}: pool bytes in use ${after} vs ${before} before`);
  }
});

/** Reference splitHeads: qkv [B, T, 3, H, Dh] → slot s as [B, H, T, Dh]. */
function refSplit(qkv: Float64Array, b: number, t: number, h: number, dh: number, s: number): Float64Array {
  const out = new Float64Array(b * h * t * dh);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      for (let ti = 0; ti < t; ti++) {
        for (let d = 0; d < dh; d++) {
          out[((bi * h + hi) * t + ti) * dh + d] = qkv[(((bi * t + ti) * 3 + s) * h + hi) * dh + d];
        }
      }
    }
  }
  return out;
}

Deno.test("splitHeads matches qkv.reshape(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4), with gradients", async () => {
  const [b, t, h, dh] = [2, 5, 3, 8];
  const n = b * t * 3 * h * dh;
  for (const [s, key] of [[0, "q"], [1, "k"], [2, "v"]] as const) {
    await checkOp({
      name: `splitHeads ${key}`,
      inputs: [{ shape: [b, t, 3 * h * dh], data: randn(n, 51 + s) }],
      gpu: ([x]) => splitHeads(x, h)[key],
      ref: ([x]) => refSplit(x, b, t, h, dh, s),
    });
  }
  // All three outputs used at once: the gradients of the three thirds add up.
  await checkOp({
    name: "splitHeads q·k·v",
    inputs: [{ shape: [b, t, 3 * h * dh], data: randn(n, 55) }],
    gpu: ([x]) => {
      const { q, k, v } = splitHeads(x, h);
      return mergeHeads(attention(q, k, v));
    },
    ref: ([x]) => {
      const [q, k, v] = [0, 1, 2].map((s) => refSplit(x, b, t, h, dh, s));
      const o = refAttention(q, k, v, b * h, t, t, dh).out;
      return refMerge(o, b, h, t, dh);
    },
  });
});

/** Reference mergeHeads: [B, H, T, Dh] → [B, T, H·Dh]. */
function refMerge(o: Float64Array, b: number, h: number, t: number, dh: number): Float64Array {
  const out = new Float64Array(o.length);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      for (let ti = 0; ti < t; ti++) {
        for (let d = 0; d < dh; d++) {
          out[((bi * t + ti) * h + hi) * dh + d] = o[((bi * h + hi) * t + ti) * dh + d];
        }
      }
    }
  }
  return out;
}

Deno.test("mergeHeads: forward and gradient", async () => {
  const [b, h, t, dh] = [2, 3, 7, 5];
  await checkOp({
    name: "mergeHeads",
    inputs: [{ shape: [b, h, t, dh], data: randn(b * h * t * dh, 61) }],
    gpu: ([x]) => mergeHeads(x),
    ref: ([x]) => refMerge(x, b, h, t, dh),
  });
});

interface GoldenCase {
  name: string;
  kind: "attention" | "qkv";
  shape: Record<string, number>;
  scale?: number;
  inputs: Record<string, number[]>;
  cotangent: number[];
  output: number[];
  grads: Record<string, number[]>;
}

const golden = await loadGolden<{ cases: GoldenCase[] }>("attention.json");

for (const gc of golden.cases) {
  Deno.test(`attention golden (PyTorch): ${gc.name}`, async () => {
    const s = gc.shape;
    const res = tidy(() => {
      let inputs: Tensor[];
      let y: Tensor;
      if (gc.kind === "attention") {
        inputs = [
          tensor(Float32Array.from(gc.inputs.q), [s.B, s.H, s.Tq, s.Dh]),
          tensor(Float32Array.from(gc.inputs.k), [s.B, s.H, s.Tk, s.Dh]),
          tensor(Float32Array.from(gc.inputs.v), [s.B, s.H, s.Tk, s.Dh]),
        ];
        for (const t of inputs) t.requiresGrad = true;
        y = attention(inputs[0], inputs[1], inputs[2], gc.scale === undefined ? {} : { scale: gc.scale });
      } else {
        inputs = [tensor(Float32Array.from(gc.inputs.qkv), [s.B, s.T, 3 * s.H * s.Dh])];
        inputs[0].requiresGrad = true;
        const { q, k, v } = splitHeads(inputs[0], s.H);
        y = mergeHeads(attention(q, k, v));
      }
      backward(y, tensor(Float32Array.from(gc.cotangent), y.shape));
      return [y, ...inputs.map(takeGrad)];
    });
    const [y, ...grads] = await Promise.all(res.map((t) => t.data()));
    res.forEach((t) => t.dispose());
    assertClose(y, gc.output, 1e-5, `${gc.name} output`);
    const names = Object.keys(gc.grads);
    names.forEach((n, i) => assertClose(grads[i], gc.grads[n], 1e-5, `${gc.name} grad ${n}`));
  });
}

Deno.test("shape errors name the op and the shapes", () => {
  tidy(() => {
    const q = tensor(new Float32Array(2 * 3 * 4 * 8).fill(0.5), [2, 3, 4, 8]);
    const k = tensor(new Float32Array(2 * 3 * 5 * 8).fill(0.5), [2, 3, 5, 8]);
    const kBad = tensor(new Float32Array(2 * 3 * 5 * 4).fill(0.5), [2, 3, 5, 4]);
    const vBad = tensor(new Float32Array(2 * 3 * 6 * 8).fill(0.5), [2, 3, 6, 8]);
    const q3 = tensor(new Float32Array(3 * 4 * 8).fill(0.5), [3, 4, 8]);
    const big = tensor(new Float32Array(136).fill(0.5), [1, 1, 1, 136]);
    assertThrows(() => attention(q, kBad, kBad), "attention", "[2, 3, 4, 8]", "[2, 3, 5, 4]");
    assertThrows(() => attention(q, k, vBad), "attention", "[2, 3, 5, 8]", "[2, 3, 6, 8]");
    assertThrows(() => attention(q3, k, k), "attention", "[3, 4, 8]", "[2, 3, 5, 8]");
    assertThrows(() => attention(big, big, big), "attention", "136", "[1, 1, 1, 136]");
    const qkv = tensor(new Float32Array(2 * 4 * 30).fill(0.5), [2, 4, 30]);
    assertThrows(() => splitHeads(qkv, 4), "splitHeads", "[2, 4, 30]", "4 heads");
    assertThrows(() => splitHeads(q, 2), "splitHeads", "[2, 3, 4, 8]");
    assertThrows(() => mergeHeads(q3), "mergeHeads", "[3, 4, 8]");
    for (const e of [() => attention(q, kBad, kBad), () => splitHeads(qkv, 4)]) {
      try {
        e();
      } catch (err) {
        assert((err as Error).name === "ShapeError", `ShapeError, got ${(err as Error).name}`);
      }
    }
  });
});

Deno.test("splitHeads / mergeHeads on the scalar (Dh % 4 != 0) and vec4 paths, T past one workgroup", async () => {
  const [b, t, h] = [2, 67, 2];
  for (const dh of [3, 8]) {
    const n = b * t * 3 * h * dh;
    await checkOp({
      name: `splitHeads v, Dh ${dh}`,
      inputs: [{ shape: [b, t, 3 * h * dh], data: randn(n, 81 + dh) }],
      gpu: ([x]) => splitHeads(x, h).v,
      ref: ([x]) => refSplit(x, b, t, h, dh, 2),
    });
    await checkOp({
      name: `mergeHeads, Dh ${dh}`,
      inputs: [{ shape: [b, h, t, dh], data: randn(b * h * t * dh, 91 + dh) }],
      gpu: ([x]) => mergeHeads(x),
      ref: ([x]) => refMerge(x, b, h, t, dh),
    });
  }
});
