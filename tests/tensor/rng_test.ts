import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { gpu, rng } from "../helpers/gradcheck.ts";
import { Generator, type GeneratorState, normalPair, philox4x32 } from "../../lib/tensor/rng.ts";
import type { Tensor } from "../../lib/tensor/tensor.ts";

await gpu();

const hex = (a: ArrayLike<number>) => Array.from(a, (v) => v.toString(16).padStart(8, "0")).join(" ");

async function bits(t: Tensor): Promise<Uint32Array> {
  const d = await t.read();
  t.dispose();
  return new Uint32Array(d.buffer, d.byteOffset, d.length);
}

function assertBitsEqual(a: Uint32Array, b: Uint32Array, what: string): void {
  assertEquals(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      throw new Error(`${what}: differs at [${i}]: ${a[i].toString(16)} vs ${b[i].toString(16)}`);
    }
  }
}

Deno.test("philox4x32: Random123 known-answer vectors (kat_vectors)", () => {
  // Random123 tests/kat_vectors: counter (4 words), key (2 words) -> output (4 words).
  const kat: [number, number[], number[], number[]][] = [
    [10, [0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [
      10,
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      10,
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
    [
      7,
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a],
    ],
  ];
  for (const [rounds, ctr, key, want] of kat) {
    assertEquals(hex(philox4x32(ctr, key, rounds)), hex(want), `philox4x32-${rounds} ${hex(ctr)}`);
  }
});

Deno.test("philox: the GPU block equals the CPU block (uniform words reassembled)", async () => {
  // The uniform draw exposes the top 24 bits of every word of the blocks it uses.
  const g = new Generator(0xa4093822299f31d0n);
  const st = g.state();
  const u = await (async () => {
    const t = g.uniform([8]);
    return await t.data().finally(() => t.dispose());
  })();
  for (let b = 0; b < 2; b++) {
    const w = philox4x32([st.offset[0] + b, st.offset[1], 0, 0], st.key);
    for (let k = 0; k < 4; k++) assertEquals(u[4 * b + k] * 16777216, w[k] >>> 8, `block ${b} word ${k}`);
  }
});

Deno.test("GPU stream == CPU stream bit for bit (all kinds, ragged sizes, 64-bit offset carry)", async () => {
  for (const seed of [0, 1, 20240607, 0xffffffffffffffffn]) {
    const a = new Generator(seed);
    const b = new Generator(seed);
    if (seed === 1) {
      // start just below a 2^32 block boundary so that the draws carry into the high counter word
      const s: GeneratorState = { algorithm: "philox4x32-10", key: a.state().key, offset: [0xfffffffd, 7] };
      a.setState(s);
      b.setState(s);
    }
    assertBitsEqual(
      await bits(a.normal([3, 7, 5])),
      new Uint32Array(b.normalCpu(105).buffer),
      `normal ${seed}`,
    );
    assertBitsEqual(
      await bits(a.uniform([1001])),
      new Uint32Array(b.uniformCpu(1001).buffer),
      `uniform ${seed}`,
    );
    assertBitsEqual(await bits(a.randint([333], 1000)), b.randintCpu(333, 1000), `randint ${seed}`);
    assertBitsEqual(
      await bits(a.randint([64], 0xffffffff)),
      b.randintCpu(64, 0xffffffff),
      `randint max ${seed}`,
    );
    assertBitsEqual(await bits(a.bernoulli([2, 51], 0.3)), b.bernoulliCpu(102, 0.3), `bernoulli ${seed}`);
    assertBitsEqual(
      await bits(a.normal([4099])),
      new Uint32Array(b.normalCpu(4099).buffer),
      `normal 2 ${seed}`,
    );
    assertEquals(a.state(), b.state(), "states after the same draws");
  }
});

Deno.test("a large GPU normal draw (2-D grid) equals the CPU stream", async () => {
  const n = (1 << 18) + 3;
  const a = new Generator(7);
  const b = new Generator(7);
  assertBitsEqual(await bits(a.normal([n])), new Uint32Array(b.normalCpu(n).buffer), "normal 2^18+3");
});

Deno.test("the integer Box–Muller is within 0.6 ulp of the float64 formula on the same words", () => {
  let worst = 0;
  let at = "";
  const check = (w0: number, w1: number) => {
    const u1 = ((w0 >>> 8) + 1) / 16777216;
    const th = 2 * Math.PI * (w1 / 4294967296);
    const r = Math.sqrt(-2 * Math.log(u1));
    const ref = [r * Math.cos(th), r * Math.sin(th)];
    const got = normalPair(w0, w1);
    for (let k = 0; k < 2; k++) {
      // in units of the f32 spacing at the reference (absolute below 1e-12, where Math.cos is not exact)
      const e = Math.abs(got[k] - ref[k]) / Math.max(Math.abs(ref[k]) * 2 ** -23, 1e-12);
      if (e > worst) {
        worst = e;
        at = `(${w0.toString(16)}, ${w1.toString(16)})[${k}]: ${got[k]} vs ${ref[k]}`;
      }
    }
  };
  const r = rng(5);
  for (let i = 0; i < 20000; i++) check((r() * 2 ** 32) >>> 0, (r() * 2 ** 32) >>> 0);
  // branch edges: u1 = 1 and the series/log2 switch; quadrant and octant boundaries of the angle
  const w0s = [0, 0xff, 0xffffffff, 0xffffff00, 0xfffffeff, 0xfff7ff00, 0xfff80000, 0xfff7feff, 0x80000000];
  const w1s = [0, 1, 0x1fffffff, 0x20000000, 0x20000001, 0x3fffffff, 0x40000000, 0x80000000, 0xc0000000];
  for (const a of w0s) for (const b of [...w1s, 0xffffffff, 0x12345678]) check(a, b);
  for (let d = 0; d < 600; d++) {
    check(((0xffffff - d) << 8) >>> 0, 0x12345678);
    check((0xfff80000 + (d - 300) * 256) >>> 0, 0x2345678);
  }
  assert(worst < 0.6, `worst error ${worst.toFixed(3)} ulp at ${at}`);
});

Deno.test("statistics: uniform, normal moments, chi-square of randint, bernoulli rate", async () => {
  const g = new Generator(12345);
  const n = 1 << 18;
  const u = await (async () => {
    const t = g.uniform([n]);
    return await t.data().finally(() => t.dispose());
  })();
  let s = 0, s2 = 0, mn = 1, mx = 0;
  for (const v of u) {
    s += v;
    s2 += v * v;
    mn = Math.min(mn, v);
    mx = Math.max(mx, v);
  }
  const um = s / n;
  const uv = s2 / n - um * um;
  assert(mn >= 0 && mx < 1, `uniform range [${mn}, ${mx}]`);
  assert(Math.abs(um - 0.5) < 5 * Math.sqrt(1 / 12 / n), `uniform mean ${um}`);
  assert(Math.abs(uv - 1 / 12) < 5 * Math.sqrt(1 / 180 / n), `uniform variance ${uv}`);

  const z = await (async () => {
    const t = g.normal([n]);
    return await t.data().finally(() => t.dispose());
  })();
  const m = [0, 0, 0, 0];
  for (const v of z) {
    m[0] += v;
    m[1] += v * v;
    m[2] += v * v * v;
    m[3] += v * v * v * v;
  }
  const [m1, m2, m3, m4] = m.map((x) => x / n);
  assert(Math.abs(m1) < 5 / Math.sqrt(n), `normal mean ${m1}`);
  assert(Math.abs(m2 - 1) < 5 * Math.sqrt(2 / n), `normal variance ${m2}`);
  assert(Math.abs(m3) < 5 * Math.sqrt(15 / n), `normal third moment ${m3}`);
  assert(Math.abs(m4 - 3) < 5 * Math.sqrt(96 / n), `normal fourth moment ${m4}`);
  // fraction within one sigma
  const within = z.filter((v) => Math.abs(v) < 1).length / n;
  assert(Math.abs(within - 0.6826894921) < 5 * Math.sqrt(0.22 / n), `P(|z| < 1) = ${within}`);

  const bound = 1000;
  const r = await bits(g.randint([n], bound));
  const counts = new Float64Array(bound);
  for (const v of r) {
    assert(v < bound, `randint ${v} out of range`);
    counts[v]++;
  }
  const e = n / bound;
  let chi = 0;
  for (const c of counts) chi += (c - e) ** 2 / e;
  // chi-square with 999 degrees of freedom: mean 999, sd 44.7
  assert(Math.abs(chi - 999) < 5 * 44.7, `chi-square ${chi}`);

  const bm = await bits(g.bernoulli([n], 0.1));
  const rate = bm.reduce((a, b) => a + b, 0) / n;
  assert(bm.every((v) => v === 0 || v === 1), "bernoulli values are 0/1");
  assert(Math.abs(rate - 0.1) < 5 * Math.sqrt(0.09 / n), `bernoulli rate ${rate}`);
});

Deno.test("state()/setState() resume the stream exactly; draws advance by whole blocks", async () => {
  const g = new Generator(42);
  g.normal([10]).dispose();
  g.uniformCpu(3);
  const saved = JSON.parse(JSON.stringify(g.state())) as GeneratorState;
  assertEquals(saved.offset, [4, 0], "3 normal blocks then 1 uniform block");
  const a1 = await bits(g.normal([37]));
  const a2 = g.randintCpu(9, 17);
  const a3 = await bits(g.bernoulli([5], 0.5));
  const h = Generator.fromState(saved);
  assertBitsEqual(await bits(h.normal([37])), a1, "normal after resume");
  assertBitsEqual(h.randintCpu(9, 17), a2, "randint after resume");
  assertBitsEqual(await bits(h.bernoulli([5], 0.5)), a3, "bernoulli after resume");
  assertEquals(h.state(), g.state());
  const c = g.clone();
  assertBitsEqual(new Uint32Array(c.normalCpu(6).buffer), new Uint32Array(g.normalCpu(6).buffer), "clone");
  // different seeds give different streams
  const x = new Generator(1).uniformCpu(8);
  const y = new Generator(2).uniformCpu(8);
  assert(x.some((v, i) => v !== y[i]), "seeds 1 and 2 agree");
});

Deno.test("bad arguments are rejected", () => {
  assertThrows(() => new Generator(-1), "seed");
  assertThrows(() => new Generator(1.5), "seed");
  assertThrows(() => new Generator(1n << 64n), "seed");
  const g = new Generator(3);
  assertThrows(() => g.randintCpu(4, 0), "bound");
  assertThrows(() => g.bernoulliCpu(4, 1.5), "p must be");
  assertThrows(
    () => g.setState({ algorithm: "philox4x32-10", key: [1, -1], offset: [0, 0] }),
    "key",
  );
});
