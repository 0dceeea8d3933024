import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { gpu, randn, relErr } from "../helpers/gradcheck.ts";
import { AdamW, clipGradNorm, EMA, gradNorm, setMultiTensorMax, zeroGrad } from "../../lib/tensor/optim.ts";
import { type Tensor, tensor } from "../../lib/tensor/tensor.ts";
import { loadGolden } from "../helpers/golden.ts";

await gpu();

interface Golden {
  shapes: number[][];
  init: number[][];
  grads: number[][][];
  missing: [number, number];
  adamw: {
    lr: number;
    betas: [number, number];
    eps: number;
    weight_decay: number;
    trajectory: { params: number[][]; exp_avg: number[][]; exp_avg_sq: number[][]; step: number[] }[];
  }[];
  ema: { decay: number; snapshots: number[][][]; trajectory: number[][][] }[];
  clip: { max_norm: number; total_norm: number; grads_before: number[][]; grads_after: number[][] }[];
}

const golden = await loadGolden<Golden>("optim.json");

const TOL = 1e-6;

/**
 * Norm-relative error below 1e-6, and every element within 1e-6 of max(|want|, rms(want)) (elements that
 * come out of a cancellation, e.g. a moment whose gradient changed sign, are only good to the operands'
 * rounding, and torch's own vectorised path fuses some of these multiply-adds).
 */
function close(got: ArrayLike<number>, want: number[], what: string): void {
  const e = relErr(got, want);
  assert(e < TOL, `${what}: relative error ${e.toExponential(3)} ≥ ${TOL}`);
  const rms = Math.sqrt(want.reduce((a, b) => a + b * b, 0) / want.length);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    assert(d <= TOL * Math.max(Math.abs(want[i]), rms), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

function upload(data: number[][], shapes: number[][], names?: string[]): Tensor[] {
  return data.map((d, i) => tensor(Float32Array.from(d), shapes[i], "f32", names?.[i] ?? ""));
}

for (const run of golden.adamw) {
  Deno.test(`AdamW weight_decay ${run.weight_decay}: 5 steps match torch.optim.AdamW within 1e-6`, async () => {
    const ps = upload(golden.init, golden.shapes, ["a", "b", "c"]);
    const opt = new AdamW(ps, { lr: run.lr, betas: run.betas, eps: run.eps, weightDecay: run.weight_decay });
    for (let k = 0; k < run.trajectory.length; k++) {
      zeroGrad(ps);
      for (let j = 0; j < ps.length; j++) {
        if (k === golden.missing[0] && j === golden.missing[1]) continue;
        ps[j].grad = tensor(Float32Array.from(golden.grads[k][j]), golden.shapes[j]);
      }
      opt.step();
      const want = run.trajectory[k];
      const st = opt.state();
      assertEquals(st.steps, want.step, `step counts after step ${k}`);
      for (let j = 0; j < ps.length; j++) {
        close(await ps[j].data(), want.params[j], `step ${k} param ${j}`);
        close(await st.m[j].data(), want.exp_avg[j], `step ${k} exp_avg ${j}`);
        close(await st.v[j].data(), want.exp_avg_sq[j], `step ${k} exp_avg_sq ${j}`);
      }
      for (const t of [...st.m, ...st.v]) t.dispose();
    }
    zeroGrad(ps);
    opt.dispose();
    for (const p of ps) p.dispose();
  });
}

for (const via of ["tensors", "host"] as const) {
  Deno.test(`AdamW checkpoint via ${via} resumes exactly (bit for bit)`, async () => {
    const run = golden.adamw[1];
    const mk = () => upload(golden.init, golden.shapes);
    const setGrads = (ps: Tensor[], k: number) => {
      zeroGrad(ps);
      ps.forEach((p, j) => p.grad = tensor(Float32Array.from(golden.grads[k][j]), golden.shapes[j]));
    };
    const opts = { lr: run.lr, weightDecay: run.weight_decay };
    // reference: 4 uninterrupted steps
    const a = mk();
    const oa = new AdamW(a, opts);
    for (let k = 0; k < 4; k++) {
      setGrads(a, k);
      oa.step();
    }
    // 2 steps, checkpoint (params + state read back to host), restore into fresh objects, 2 more steps
    const b = mk();
    const ob = new AdamW(b, opts);
    for (let k = 0; k < 2; k++) {
      setGrads(b, k);
      ob.step();
    }
    const host = await ob.toHost();
    assertEquals(host.step, 2);
    assertEquals(host.steps, [2, 2, 2]);
    const p = await Promise.all(b.map((t) => t.data()));
    const c = p.map((d, i) => tensor(d, golden.shapes[i]));
    const oc = new AdamW(c, opts);
    if (via === "host") oc.loadState({ step: host.step, m: host.m, v: host.v });
    else {
      const mt = host.m.map((d, i) => tensor(d, golden.shapes[i]));
      const vt = host.v.map((d, i) => tensor(d, golden.shapes[i]));
      oc.loadState({ steps: host.steps!, m: mt, v: vt });
      for (const t of [...mt, ...vt]) t.dispose();
    }
    const sc = oc.state();
    assertEquals(sc.steps, [2, 2, 2]);
    for (const t of [...sc.m, ...sc.v]) t.dispose();
    for (let k = 2; k < 4; k++) {
      setGrads(c, k);
      oc.step();
    }
    for (let j = 0; j < a.length; j++) {
      assertEquals(Array.from(await c[j].data()), Array.from(await a[j].data()), `param ${j}`);
    }
    assertThrows(() => oc.loadState({ steps: [0], m: [], v: [] }), "AdamW.loadState");
    assertThrows(
      () => oc.loadState({ step: 1, m: host.m.map(() => new Float32Array(2)), v: host.v }),
      "AdamW.loadState",
      "[13, 4]",
    );
    for (const ps of [a, b, c]) zeroGrad(ps);
    for (const o of [oa, ob, oc]) o.dispose();
    for (const t of [...a, ...b, ...c]) t.dispose();
  });
}

for (const run of golden.ema) {
  Deno.test(`EMA decay ${run.decay}: starts as a copy, 5 updates match DiT's update_ema`, async () => {
    const ps = upload(golden.init, golden.shapes);
    const ema = new EMA(ps, run.decay);
    const init = await ema.data();
    for (let j = 0; j < ps.length; j++) {
      assertEquals(Array.from(init[j]), Array.from(Float32Array.from(golden.init[j])));
    }
    for (let k = 0; k < run.trajectory.length; k++) {
      const snap = upload(run.snapshots[k], golden.shapes);
      ema.update(snap);
      const avg = await ema.data();
      for (let j = 0; j < ps.length; j++) close(avg[j], run.trajectory[k][j], `update ${k} tensor ${j}`);
      for (const t of snap) t.dispose();
    }
    // host round trip (checkpoints)
    const host = await ema.toHost(["a", "b", "c"], golden.shapes);
    const back = EMA.fromHost(["a", "b", "c"].map((k) => host.get(k)!), run.decay);
    const [got, want] = [await back.data(), await ema.data()];
    for (let j = 0; j < ps.length; j++) assertEquals(Array.from(got[j]), Array.from(want[j]));
    back.dispose();
    ema.copyFrom(ps);
    assertEquals(Array.from((await ema.data())[2]), Array.from(Float32Array.from(golden.init[2])));
    assertThrows(() => ema.update(ps.slice(1)), "EMA.update");
    ema.dispose();
    for (const p of ps) p.dispose();
  });
}

for (const run of golden.clip) {
  Deno.test(`clipGradNorm max_norm ${run.max_norm} matches torch.nn.utils.clip_grad_norm_`, async () => {
    const ps = upload(golden.init, golden.shapes);
    ps.forEach((p, j) => p.grad = tensor(Float32Array.from(run.grads_before[j]), golden.shapes[j]));
    const n0 = gradNorm(ps);
    const norm = clipGradNorm(ps, run.max_norm);
    const want = run.total_norm;
    assert(Math.abs((await n0.item()) - want) / want < TOL, `gradNorm ${await n0.item()} vs ${want}`);
    assert(Math.abs((await norm.item()) - want) / want < TOL, `norm ${await norm.item()} vs ${want}`);
    for (let j = 0; j < ps.length; j++) close(await ps[j].grad!.data(), run.grads_after[j], `grad ${j}`);
    n0.dispose();
    norm.dispose();
    zeroGrad(ps);
    for (const p of ps) p.dispose();
  });
}

Deno.test("gradNorm of large tensors: deterministic and equal to the float64 norm", async () => {
  const sizes = [300001, 1025, 7];
  const ps = sizes.map((n, i) => {
    const p = tensor(new Float32Array(n), [n]);
    p.grad = tensor(Float32Array.from(randn(n, 50 + i)), [n]);
    return p;
  });
  let ref = 0;
  for (const p of ps) for (const v of await p.grad!.data()) ref += v * v;
  ref = Math.sqrt(ref);
  const a = gradNorm(ps);
  const b = gradNorm(ps);
  const va = await a.item();
  assertEquals(va, await b.item(), "two reductions of the same data");
  assert(Math.abs(va - ref) / ref < 1e-6, `norm ${va} vs float64 ${ref}`);
  a.dispose();
  b.dispose();
  zeroGrad(ps);
  for (const p of ps) p.dispose();
});

Deno.test("optimiser shape mismatches name the op and both shapes", () => {
  const p = tensor(new Float32Array(6).fill(1), [2, 3]);
  p.grad = tensor(new Float32Array(6).fill(1), [3, 2]);
  const opt = new AdamW([p]);
  assertThrows(() => opt.step(), "AdamW.step", "[2, 3]", "[3, 2]");
  const ema = new EMA([p]);
  const q = tensor(new Float32Array(6).fill(1), [6]);
  assertThrows(() => ema.update([q]), "EMA.update", "[2, 3]", "[6]");
  assertThrows(() => clipGradNorm([p], 0), "maxNorm");
  zeroGrad([p]);
  assertEquals(p.grad, null);
  for (const t of [p, q]) t.dispose();
  opt.dispose();
  ema.dispose();
});

Deno.test("AdamW and EMA: the flat state (one dispatch for all small tensors, or one per slot when steps differ) is bit-identical to one buffer and dispatch per tensor, and the vec4 kernels to the f32 ones", async () => {
  // Sizes 2112 and 90300 (and the flat buffers) run the vec4 kernels, the others the f32 ones.
  const shapes = [[3, 5], [7], [64, 33], [1], [300, 301]]; // the last is above the multi-tensor limit
  const rnd = (shape: number[], seed: number) =>
    tensor(Float32Array.from(randn(shape.reduce((a, b) => a * b, 1), seed)), shape);
  const run = async (multiMax: number, skip: boolean) => {
    const prev = setMultiTensorMax(multiMax);
    try {
      const ps = shapes.map((s, i) => rnd(s, 10 + i).keep());
      const opt = new AdamW(ps, { lr: 1e-2, weightDecay: 0.1 });
      const ema = EMA.copyOf(ps, 0.9);
      for (let k = 0; k < 4; k++) {
        zeroGrad(ps);
        // With `skip` the second tensor skips step 1 (its step count then differs from the others', and
        // every later step runs a dispatch per slot of the flat state); else every step is one dispatch.
        for (let j = 0; j < ps.length; j++) {
          if (!(skip && k === 1 && j === 1)) ps[j].grad = rnd(shapes[j], 100 * k + j).keep();
        }
        opt.step();
        ema.update(ps);
      }
      const out = [];
      const st = opt.state();
      for (const t of [...ps, ...st.m, ...st.v]) out.push(await t.data());
      for (const t of [...st.m, ...st.v]) t.dispose();
      out.push(...await ema.data());
      zeroGrad(ps);
      for (const p of ps) p.dispose();
      opt.dispose();
      ema.dispose();
      return out;
    } finally {
      setMultiTensorMax(prev);
    }
  };
  for (const skip of [false, true]) {
    const single = await run(0, skip);
    const multi = await run(1 << 16, skip);
    for (let i = 0; i < single.length; i++) {
      assertEquals(
        new Uint32Array(multi[i].buffer),
        new Uint32Array(single[i].buffer),
        `skip ${skip}, tensor ${i}`,
      );
    }
  }
});
