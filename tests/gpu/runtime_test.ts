import { assert, assertEquals, assertRejects, assertThrows } from "../helpers/assert.ts";
import { getRuntime, grid1d, NonFiniteError, wgsl } from "../../lib/gpu/runtime.ts";
import { NoAdapterError } from "../../lib/gpu/device.ts";
import { sizeClass } from "../../lib/gpu/buffer_pool.ts";
import { empty, tensor, tidy } from "../../lib/tensor/tensor.ts";
import { add, log, mul, scale } from "../../lib/tensor/ops/elementwise.ts";

const rt = await getRuntime();

Deno.test("the device has the adapter's real limits, not the 128 MiB default, and names the adapter", () => {
  assert(rt.adapter.description.length > 0, "no adapter description");
  assert(
    rt.adapter.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024,
    `maxStorageBufferBindingSize ${rt.adapter.limits.maxStorageBufferBindingSize}`,
  );
  assertEquals(rt.device.limits.maxStorageBufferBindingSize, rt.adapter.limits.maxStorageBufferBindingSize);
});

Deno.test("an allocation over the device's limit fails with the size, the limit and the tensor's name", () => {
  const lim = rt.adapter.limits.maxStorageBufferBindingSize;
  const n = Math.floor(lim / 4) + 1024;
  assertThrows(
    () => empty([n], "f32", "huge_activations"),
    "huge_activations",
    String(n * 4),
    String(lim),
    "maxStorageBufferBindingSize",
  );
});

Deno.test("debug mode names the op that produced a NaN", async () => {
  rt.debug = true;
  try {
    const x = tensor(Float32Array.from([1, 2, -3, 4]), [4]);
    const y = tidy(() => scale(add(log(x), x), 2)); // log(-3) is NaN
    await assertRejects(() => y.data(), "op #", "`log` produced a NaN or Inf");
    x.dispose();
    y.dispose();
    // Finite work passes and the flags are reset.
    const z = tensor(Float32Array.from([1, 2]), [2]);
    const w = mul(z, z);
    assertEquals(Array.from(await w.data()), [1, 4]);
    z.dispose();
    w.dispose();
  } finally {
    rt.debug = false;
  }
  assert(new NonFiniteError("x", 0).message.includes("`x`"));
});

Deno.test("buffers are reused, work is batched, nothing is read back unless asked", async () => {
  const x = tensor(new Float32Array(4096).fill(0.5), [4096]);
  // warm up: the first iteration creates the buffers
  tidy(() => {
    scale(add(x, x), 3);
  });
  await rt.sync();
  const s0 = rt.stats();
  const p0 = rt.pool.stats();
  for (let i = 0; i < 50; i++) {
    tidy(() => {
      scale(add(x, x), 3);
    });
  }
  await rt.sync();
  const s1 = rt.stats();
  const p1 = rt.pool.stats();
  assertEquals(p1.creates, p0.creates, "steady-state loop created buffers");
  assertEquals(s1.readbacks, s0.readbacks, "a loop without reads read back");
  assert(s1.dispatches - s0.dispatches >= 100, "dispatches were not recorded");
  assert(s1.submits - s0.submits <= 3, `${s1.submits - s0.submits} submits for 100 dispatches`);
  x.dispose();
});

Deno.test("pipelines are cached per kernel, entry point and constants", () => {
  const k = wgsl(new URL("../../kernels/elementwise.wgsl", import.meta.url));
  const a = rt.pipeline(k, "unary", { OP: 1 });
  const b = rt.pipeline(k, "unary", { OP: 1 });
  const c = rt.pipeline(k, "unary", { OP: 2 });
  assert(a === b, "same key, different pipeline objects");
  assert(a !== c, "different constants share a pipeline");
  assert(rt.kernelsLoaded().includes("elementwise"));
});

Deno.test("GPU timing with timestamp queries, per op when asked", async () => {
  if (!rt.hasTimestamps) return;
  const x = tensor(new Float32Array(1 << 16).fill(1), [1 << 16]);
  rt.startTiming(true);
  const y = tidy(() => scale(add(x, x), 2));
  const prof = await rt.stopProfile();
  assert(prof && prof.totalMs > 0, "no GPU time measured");
  const labels = prof!.ops.map((o) => o.label);
  assert(labels.includes("add") && labels.includes("affine"), `labels ${labels}`);
  x.dispose();
  y.dispose();
});

Deno.test("grids, size classes and the no-adapter message", () => {
  assertEquals(grid1d(10, 256), [1, 1]);
  assertEquals(grid1d(65536 * 256 + 1, 256), [65535, 2]);
  assertEquals(sizeClass(1), 256);
  assertEquals(sizeClass(1000), 1024);
  assert(sizeClass(5_000_000) >= 5_000_000 && sizeClass(5_000_000) < 5_000_000 * 1.13);
  const m = new NoAdapterError("test").message;
  assert(m.includes("mesa-vulkan-drivers") && m.includes("libvulkan1"), m);
});
