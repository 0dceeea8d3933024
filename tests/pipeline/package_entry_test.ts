import { assert, assertEquals } from "../helpers/assert.ts";
import { ditConfig, ditflow, loadPipeline } from "../../lib/mod.ts";

Deno.test("the package entry (deno.json exports) loads a pipeline and runs the command line", async () => {
  const { plan, diagnostics } = await loadPipeline("pipelines/mini.yaml");
  assertEquals(diagnostics, []);
  assert(plan !== undefined && plan.stages.some((s) => s.kind.name === "train"), "mini has a train stage");
  assertEquals(await ditflow(["help"]), 0);
  assertEquals(ditConfig("DiT-S/2").hiddenSize, 384);
});
