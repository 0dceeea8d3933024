import { assert, assertEquals } from "../helpers/assert.ts";
import { cpuModel } from "../../lib/bench/report.ts";

Deno.test("cpuModel: the model name with family and model numbers, from /proc/cpuinfo text", () => {
  const info = [
    "processor\t: 0",
    "vendor_id\t: AuthenticAMD",
    "cpu family\t: 25",
    "model\t\t: 1",
    "model name\t: AMD EPYC",
    "stepping\t: 1",
    "",
    "processor\t: 1",
    "model name\t: AMD EPYC",
  ].join("\n");
  assertEquals(cpuModel(info), "AMD EPYC (family 25, model 1)");
  assertEquals(cpuModel("model name\t: Some CPU\n"), "Some CPU");
  assertEquals(cpuModel("processor\t: 0\n"), "?");
});

Deno.test("cpuModel: reads this machine's CPU (a name, or ? where /proc/cpuinfo is absent)", () => {
  const m = cpuModel();
  assert(m.length > 0 && !m.includes("\n"), m);
});
