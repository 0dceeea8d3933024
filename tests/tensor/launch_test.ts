import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { gpu } from "../helpers/gradcheck.ts";
import { Params, wgsl } from "../../lib/gpu/runtime.ts";
import { bindingGroup, packParams, wgslLayout } from "../../lib/gpu/wgsl_layout.ts";
import { launch } from "../../lib/tensor/launch.ts";
import { tensor } from "../../lib/tensor/tensor.ts";

await gpu();

const SRC = `
struct P { n: u32, alpha: f32, shape: array<vec4u, 2>, k: i32, _pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;   // a comment
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(0) var<uniform> q: P;
@group(0) @binding(2) var<storage, read> qa: array<f32>;
`;

Deno.test("wgslLayout: bindings, access, struct offsets with WGSL's alignment rules", () => {
  const l = wgslLayout(SRC);
  assertEquals(l.bindings.map((b) => [b.binding, b.name, b.space, b.access]), [
    [0, "p", "uniform", "read"],
    [1, "a", "storage", "read"],
    [2, "out", "storage", "read_write"],
    [0, "q", "uniform", "read"],
    [2, "qa", "storage", "read"],
  ]);
  const s = l.structs.get("P")!;
  assertEquals(s.fields.map((f) => [f.name, f.offset]), [["n", 0], ["alpha", 4], ["shape", 16], ["k", 48], [
    "_pad",
    52,
  ]]);
  assertEquals(s.size, 64);
});

Deno.test("packParams: fields by name equal the positional Params builder; unknown or missing fields throw", () => {
  const l = wgslLayout(SRC);
  const got = packParams(l, "P", { n: 7, alpha: 0.1, shape: [1, 2, 3, 4, 5], k: -2 }, "t");
  const want = new Params().u32(7).f32(0.1).u32(0).u32(0).u32(1).u32(2).u32(3).u32(4).u32(5).u32(0).u32(0)
    .u32(0).i32(-2).u32(0).bytes();
  assertEquals([...got], [...want]);
  assertThrows(
    () => packParams(l, "P", { n: 1, alpha: 1, shape: [], k: 0, beta: 2 }, "t"),
    "no field",
  );
  assertThrows(() => packParams(l, "P", { n: 1, shape: [], k: 0 }, "t"), "missing value for P.alpha");
});

Deno.test("bindingGroup: names resolve to their group; gaps and foreign names throw", () => {
  const l = wgslLayout(SRC);
  assertEquals(bindingGroup(l, ["out", "a"], "t").map((b) => b.name), ["p", "a", "out"]);
  assertThrows(() => bindingGroup(l, ["qa"], "t"), "not 0..n-1");
  assertThrows(() => bindingGroup(l, ["nope"], "t"), "no binding");
  assertThrows(() => bindingGroup(l, ["a", "qa"], "t"), "group");
});

Deno.test("bindingGroup: aliased binding numbers resolve to the named declaration", () => {
  const l = wgslLayout(`
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4f>;
`);
  assertEquals(bindingGroup(l, ["x", "y"], "t").map((b) => b.name), ["p", "x", "y"]);
  assertEquals(bindingGroup(l, ["x4", "y"], "t").map((b) => b.name), ["p", "x4", "y"]);
  assertEquals(bindingGroup(l, ["y4", "x4"], "t").map((b) => b.name), ["p", "x4", "y4"]);
  assertThrows(() => bindingGroup(l, ["x", "x4", "y"], "t"), "alias binding 1");
});

Deno.test("launch: runs a real kernel by names, allocates shaped outputs, rejects wrong names", async () => {
  const K = wgsl(new URL("../../kernels/elementwise.wgsl", import.meta.url));
  const a = tensor(Float32Array.from([1, 2, 3]), [3]);
  const b = tensor(Float32Array.from([10, 20, 30]), [3]);
  const ins = { n_0: a, n_1: b, n_2: a, n_3: a, n_4: a, n_5: a };
  const { nout } = launch(K, "sum_n", {
    constants: { NIN: 2 },
    params: { n: 3, alpha: 1, beta: 1 },
    inputs: ins,
    outputs: { nout: [3] },
    workgroups: [1],
  });
  assertEquals([...(await nout.data())], [11, 22, 33]);
  assertThrows(
    () => launch(K, "sum_n", { params: { n: 3, alpha: 1, beta: 1 }, inputs: { n_0: a }, workgroups: [1] }),
    "is not given",
  );
  assertThrows(
    () =>
      launch(K, "sum_n", {
        params: { n: 3, alpha: 1, beta: 1 },
        inputs: { n_1: b, n_2: a, n_3: a, n_4: a, n_5: a, nout: a },
        outputs: { n_0: [3] },
        workgroups: [1],
      }),
    "cannot be an output",
  );
});

Deno.test("launch { vec4 }: the f32 names launch the vec4 instance, outputs come back by f32 name; no variant throws", async () => {
  const K = wgsl(new URL("../../kernels/elementwise.wgsl", import.meta.url));
  const a = tensor(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [8]);
  const b = tensor(Float32Array.from([10, 20, 30, 40, 50, 60, 70, 80]), [8]);
  const ins = { n_0: a, n_1: b, n_2: a, n_3: a, n_4: a, n_5: a };
  const spec = { constants: { NIN: 2 }, params: { n: 8, alpha: 1, beta: 1 }, inputs: ins };
  const v = launch(K, "sum_n", { ...spec, vec4: true, outputs: { nout: [8] }, workgroups: [1] });
  assertEquals(Object.keys(v), ["nout"]);
  assertEquals([...(await v.nout.data())], [11, 22, 33, 44, 55, 66, 77, 88]);
  // The same call without vec4 runs the f32 entry point over 8 elements: the same values.
  const f = launch(K, "sum_n", { ...spec, outputs: { nout: [8] }, workgroups: [1] });
  assertEquals([...(await f.nout.data())], [...(await v.nout.data())]);
  assertThrows(
    () => launch(K, "binary", { ...spec, vec4: true, outputs: { out: [8] }, workgroups: [1] }),
    "no vec4 variant",
  );
  for (const t of [a, b, v.nout, f.nout]) t.dispose();
});
