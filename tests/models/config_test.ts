import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import {
  CONDITIONING_BLOCKS,
  DIT_MODEL_NAMES,
  ditConfig,
  gflops,
  PAPER_CONDITIONING,
  PAPER_TABLE4,
  paramCount,
} from "../../lib/models/config.ts";
import { infoMain } from "../../lib/models/info_cli.ts";

Deno.test("DiT-XL/2 has exactly 675,129,632 parameters", () => {
  assertEquals(paramCount(ditConfig("DiT-XL/2")), 675_129_632);
});

Deno.test("all 12 models reproduce Table 4: params and GFLOPs within 1%", () => {
  assertEquals(DIT_MODEL_NAMES.length, 12);
  for (const name of DIT_MODEL_NAMES) {
    const cfg = ditConfig(name);
    const paper = PAPER_TABLE4[name];
    const p = paramCount(cfg) / 1e6;
    const g = gflops(cfg);
    assert(
      Math.abs(p / paper.paramsM - 1) < 0.01,
      `${name}: ${p.toFixed(2)}M params vs paper ${paper.paramsM}M`,
    );
    assert(Math.abs(g / paper.gflops - 1) < 0.01, `${name}: ${g.toFixed(3)} GFLOPs vs paper ${paper.gflops}`);
  }
});

Deno.test("the four conditioning blocks reproduce the XL/2 ablation's params and GFLOPs within 1%", () => {
  for (const block of CONDITIONING_BLOCKS) {
    const cfg = ditConfig("DiT-XL/2", { block });
    const paper = PAPER_CONDITIONING[block];
    const p = paramCount(cfg) / 1e6;
    const g = gflops(cfg);
    assert(Math.abs(p / paper.paramsM - 1) < 0.01, `${block}: ${p.toFixed(2)}M vs ${paper.paramsM}M`);
    assert(Math.abs(g / paper.gflops - 1) < 0.01, `${block}: ${g.toFixed(3)} vs ${paper.gflops}`);
  }
});

Deno.test("unknown model names list the valid ones; inconsistent configs name the fields", () => {
  assertThrows(() => ditConfig("DiT-XXL/2"), "unknown model", "DiT-S/2", "DiT-XL/8");
  assertThrows(() => ditConfig("DiT-S/2", { inputSize: 30, patchSize: 4 }), "inputSize 30", "patchSize 4");
  assertThrows(() => ditConfig("DiT-S/2", { numHeads: 5 }), "hiddenSize 384", "numHeads 5");
});

Deno.test("info CLI prints JSON with params and GFLOPs", () => {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (s: string) => lines.push(s);
  try {
    assertEquals(infoMain(["DiT-XL/2", "--json"]), 0);
  } finally {
    console.log = orig;
  }
  const r = JSON.parse(lines[0]);
  assertEquals(r.params, 675_129_632);
  assert(Math.abs(r.gflops - 118.64) / 118.64 < 0.01, `gflops ${r.gflops}`);
  assertEquals(infoMain(["DiT-Q/2"]), 2);
});
