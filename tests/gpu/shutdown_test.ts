/**
 * Orderly GPU teardown: `shutdownRuntime()` finishes the GPU work and destroys buffers and device in order
 * (the CLI awaits it before exiting); a runtime still alive at `unload` is destroyed synchronously. Neither
 * path may abort the process (the WebGPU teardown abort tools/run_tests.sh guards against).
 */

import { assert, assertEquals } from "../helpers/assert.ts";
import { getRuntime, shutdownRuntime } from "../../lib/gpu/runtime.ts";
import { matmul } from "../../lib/tensor/ops/matmul.ts";
import { tensor } from "../../lib/tensor/tensor.ts";

Deno.test("shutdownRuntime waits, destroys the device, and a later getRuntime starts afresh", async () => {
  const first = await getRuntime();
  const a = tensor(new Float32Array(64 * 64).fill(1), [64, 64]);
  const b = matmul(a, a);
  first.flush();
  await shutdownRuntime();
  const info = await first.device.lost;
  assertEquals(info.reason, "destroyed");
  const second = await getRuntime();
  assert(second !== first);
  const c = tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
  assertEquals([...await matmul(c, c).data()], [7, 10, 15, 22]);
  void b;
});

Deno.test("processes that end with GPU work in flight exit 0 (Deno.exit after shutdown, and unload)", async () => {
  const script = `
import { getRuntime, shutdownRuntime } from "${new URL("../../lib/gpu/runtime.ts", import.meta.url).href}";
import { matmul } from "${new URL("../../lib/tensor/ops/matmul.ts", import.meta.url).href}";
import { tensor } from "${new URL("../../lib/tensor/tensor.ts", import.meta.url).href}";
const rt = await getRuntime();
const a = tensor(new Float32Array(256 * 256).fill(0.5), [256, 256]);
let x = a;
for (let i = 0; i < 8; i++) x = matmul(x, a);
rt.flush();
if (Deno.args[0] === "exit") { await shutdownRuntime(); Deno.exit(0); }
`;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, script);
    for (const mode of ["exit", "end"]) {
      const r = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", file, mode], stderr: "piped" })
        .output();
      assertEquals(
        r.code,
        0,
        `${mode}: code ${r.code} signal ${r.signal}\n${new TextDecoder().decode(r.stderr)}`,
      );
    }
  } finally {
    await Deno.remove(file);
  }
});
