/**
 * Probe: are operand loads cheaper through textures than through storage buffers on this adapter?
 *
 * Every kernel of this project reads its operands from storage buffers. llvmpipe (Mesa 22.3) loads a storage
 * element lane by lane and inserts each lane's value into the vector through the stack
 * (`experiments/bench/cpu-portability.md`). This probe runs the same two kernels both ways:
 * - an elementwise update `e = 0.9 e + 0.1 p` over 1M floats, with p from a storage buffer or from an
 *   rgba32float texture (`textureLoad`);
 * - a register-tiled matmul C = A·B (TM rows × TN vec4 columns per invocation, unrolled, k in order),
 *   with A and B read from storage buffers or from rgba32float textures.
 *
 * Both ways compute the same sums in the same order, so the outputs must be bit-identical (checked, with
 * one element of C against float64). Times are wall clock per dispatch (`reps` submits, then one wait), so
 * small problems include the submit overhead. Not a benchmark of the project's kernels: a measurement of
 * a load path they could take.
 *
 * ```sh
 * deno run -A tools/probe_texture_loads.ts [--shapes 1024x1024x1024,256x512x128] [--tile 16x8] [--reps 3]
 * ```
 * @module
 */

import { parseArgs } from "node:util";
import { getRuntime } from "../lib/gpu/runtime.ts";

const { values } = parseArgs({
  options: {
    shapes: { type: "string", default: "1024x1024x1024,256x512x128" },
    tile: { type: "string", default: "16x8" },
    reps: { type: "string", default: "3" },
  },
});
const rt = await getRuntime();
const device = rt.device;
const reps = Number(values.reps);
const [TM, TN] = values.tile.split("x").map(Number);
const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const TU = GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST;
const rnd = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s));

/** Wall-clock milliseconds per dispatch of `workgroups` over `reps` submits (after one warm-up). */
async function time(p: GPUComputePipeline, bg: GPUBindGroup, workgroups: [number, number]): Promise<number> {
  const once = () => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(p);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(...workgroups);
    pass.end();
    device.queue.submit([enc.finish()]);
  };
  once();
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) once();
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / reps;
}

async function readBuffer(b: GPUBuffer, bytes: number): Promise<Float32Array> {
  return new Float32Array(await rt.read(b, bytes));
}

function pipeline(code: string): GPUComputePipeline {
  return device.createComputePipeline({
    layout: "auto",
    compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
  });
}

/** A texture of `width` rgba32float texels per row holding `data` row-major. */
function texture(data: Float32Array<ArrayBuffer>, width: number, height: number): GPUTexture {
  const t = device.createTexture({ size: [width, height], format: "rgba32float", usage: TU });
  device.queue.writeTexture({ texture: t }, data, { bytesPerRow: width * 16 }, [width, height]);
  return t;
}

const rows: string[] = [];

// --- elementwise -------------------------------------------------------------------------------------
{
  const W = 1024, H = 256, n4 = W * H;
  const data = rnd(4 * n4, 0);
  const e = device.createBuffer({ size: 16 * n4, usage: S });
  const p = device.createBuffer({ size: 16 * n4, usage: S });
  device.queue.writeBuffer(p, 0, data);
  const tp = texture(data, W, H);
  const body = (load: string) =>
    `@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= ${n4}u) { return; }
  e[i] = e[i] * 0.9 + 0.1 * ${load};
}`;
  const ms: number[] = [];
  const outs: Float32Array[] = [];
  for (const tex of [false, true]) {
    const decl = tex
      ? "@group(0) @binding(1) var p: texture_2d<f32>;"
      : "@group(0) @binding(1) var<storage, read> p: array<vec4f>;";
    const pl = pipeline(
      `@group(0) @binding(0) var<storage, read_write> e: array<vec4f>;\n${decl}\n` +
        body(tex ? `textureLoad(p, vec2u(i % ${W}u, i / ${W}u), 0)` : "p[i]"),
    );
    const bg = device.createBindGroup({
      layout: pl.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: e } },
        { binding: 1, resource: tex ? tp.createView() : { buffer: p } },
      ],
    });
    device.queue.writeBuffer(e, 0, data);
    ms.push(await time(pl, bg, [n4 / 256, 1]));
    // The same number of updates from the same start again, for the bit-for-bit comparison.
    device.queue.writeBuffer(e, 0, data);
    await time(pl, bg, [n4 / 256, 1]);
    outs.push(await readBuffer(e, 16 * n4));
  }
  const same = outs[0].every((v, i) => Object.is(v, outs[1][i]));
  if (!same) throw new Error("elementwise: the two load paths' outputs differ");
  rows.push(
    `| e = 0.9 e + 0.1 p, ${4 * n4} floats | ${ms[0].toFixed(2)} ms | ${ms[1].toFixed(2)} ms | ${
      (ms[0] / ms[1]).toFixed(2)
    }× | bit-identical |`,
  );
  e.destroy();
  p.destroy();
  tp.destroy();
}

// --- matmul ------------------------------------------------------------------------------------------
function matmulKernel(tex: boolean, N4: number, K4: number): string {
  const L: string[] = [];
  const la = (r: number) =>
    tex ? `textureLoad(tA, vec2u(kb, row0 + ${r}u), 0)` : `A[(row0 + ${r}u) * ${K4}u + kb]`;
  const lb = (u: number, j: number) =>
    tex
      ? `textureLoad(tB, vec2u(col0 + ${j}u, 4u * kb + ${u}u), 0)`
      : `B[(4u * kb + ${u}u) * ${N4}u + col0 + ${j}u]`;
  L.push(
    tex
      ? "@group(0) @binding(0) var tA: texture_2d<f32>;"
      : "@group(0) @binding(0) var<storage, read> A: array<vec4f>;",
  );
  L.push(
    tex
      ? "@group(0) @binding(1) var tB: texture_2d<f32>;"
      : "@group(0) @binding(1) var<storage, read> B: array<vec4f>;",
  );
  L.push("@group(0) @binding(2) var<storage, read_write> C: array<vec4f>;");
  L.push("@compute @workgroup_size(8) fn main(@builtin(global_invocation_id) g: vec3u) {");
  L.push(`  let col0 = g.x * ${TN}u;`, `  let row0 = g.y * ${TM}u;`);
  for (let r = 0; r < TM; r++) for (let j = 0; j < TN; j++) L.push(`  var c${r}_${j} = vec4f(0.0);`);
  L.push(`  for (var kb = 0u; kb < ${K4}u; kb++) {`);
  for (let r = 0; r < TM; r++) L.push(`    let a${r} = ${la(r)};`);
  for (let u = 0; u < 4; u++) {
    for (let j = 0; j < TN; j++) {
      L.push(`    let b${u}_${j} = ${lb(u, j)};`);
      for (let r = 0; r < TM; r++) L.push(`    c${r}_${j} += a${r}[${u}] * b${u}_${j};`);
    }
  }
  L.push("  }");
  for (let r = 0; r < TM; r++) {
    for (let j = 0; j < TN; j++) L.push(`  C[(row0 + ${r}u) * ${N4}u + col0 + ${j}u] = c${r}_${j};`);
  }
  L.push("}");
  return L.join("\n");
}

for (const shape of values.shapes.split(",")) {
  const [M, N, K] = shape.split("x").map(Number);
  if (M % TM || N % (4 * TN * 8) || K % 4) {
    console.error(`skipping ${shape}: M must divide by ${TM}, N by ${32 * TN}, K by 4`);
    continue;
  }
  const [N4, K4] = [N / 4, K / 4];
  const A = rnd(M * K, 1), B = rnd(K * N, 2);
  const bA = device.createBuffer({ size: A.byteLength, usage: S });
  const bB = device.createBuffer({ size: B.byteLength, usage: S });
  const bC = device.createBuffer({ size: M * N * 4, usage: S });
  device.queue.writeBuffer(bA, 0, A);
  device.queue.writeBuffer(bB, 0, B);
  const [tA, tB] = [texture(A, K4, M), texture(B, N4, K)];
  const ms: number[] = [];
  const outs: Float32Array[] = [];
  for (const tex of [false, true]) {
    const pl = pipeline(matmulKernel(tex, N4, K4));
    const bg = device.createBindGroup({
      layout: pl.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: tex ? tA.createView() : { buffer: bA } },
        { binding: 1, resource: tex ? tB.createView() : { buffer: bB } },
        { binding: 2, resource: { buffer: bC } },
      ],
    });
    ms.push(await time(pl, bg, [N4 / TN / 8, M / TM]));
    outs.push(await readBuffer(bC, M * N * 4));
  }
  const same = outs[0].every((v, i) => Object.is(v, outs[1][i]));
  let ref = 0;
  for (let k = 0; k < K; k++) ref += A[5 * K + k] * B[k * N + 7];
  const err = Math.abs(outs[1][5 * N + 7] - ref) / Math.max(1, Math.abs(ref));
  if (!same || err > 1e-4) {
    throw new Error(`matmul ${shape}: outputs differ (bit-identical ${same}, error ${err})`);
  }
  const gf = (t: number) => (2 * M * N * K / t / 1e6).toFixed(2);
  rows.push(
    `| matmul ${M}×${N}×${K}, tile ${TM}×${TN} vec4 | ${ms[0].toFixed(2)} ms (${gf(ms[0])} GFLOP/s) | ${
      ms[1].toFixed(2)
    } ms (${gf(ms[1])} GFLOP/s) | ${(ms[0] / ms[1]).toFixed(2)}× | bit-identical |`,
  );
  for (const b of [bA, bB, bC]) b.destroy();
  for (const t of [tA, tB]) t.destroy();
}

console.log(`adapter: ${rt.adapter.description}; wall clock per dispatch over ${reps} submits\n`);
console.log("| kernel | storage-buffer operands | texture operands | speed-up | outputs |");
console.log("| --- | ---: | ---: | ---: | --- |");
for (const r of rows) console.log(r);
