/**
 * U-ViT and DiT with long skips against the PyTorch reference (tools/uvit_reference.py, fixtures from
 * tools/golden_uvit.py): official key names and order, the forward, and the gradient of every parameter.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { assertClose, gpu } from "../helpers/gradcheck.ts";
import { assertGradsMatch, configFromPy } from "../helpers/golden_model.ts";
import { readSafetensors } from "../../lib/io/safetensors.ts";
import { customConfig, type DiTConfig, gflops, paramCount } from "../../lib/models/config.ts";
import { type HostTensor, timestepEmbedding } from "../../lib/models/dit.ts";
import { backboneClass, backboneLayout } from "../../lib/models/arch.ts";
import { UViT } from "../../lib/models/uvit.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import { noGrad } from "../../lib/tensor/autograd.ts";
import { backward } from "../../lib/tensor/backward.ts";
import { initRngFor } from "../../lib/train/init_rng.ts";

await gpu();

const golden = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/uvit/golden_uvit.json", import.meta.url)),
);

function uvitConfig(py: Record<string, unknown>): DiTConfig {
  const uvit = py.arch === "uvit";
  return configFromPy(py, {
    ...(uvit ? { learnSigma: false } : {}),
    block: (py.block ?? "adaLN-Zero") as DiTConfig["block"],
    ...(uvit ? { arch: "uvit" as const } : { skips: true }),
  });
}

async function load(name: string) {
  const cfg = uvitConfig(golden[name].config);
  const f = await readSafetensors(new URL(`../fixtures/uvit/${name}.safetensors`, import.meta.url).pathname);
  const state = new Map<string, HostTensor>();
  for (const k of f.names()) {
    if (!k.startsWith("__")) state.set(k, { shape: [...f.info(k).shape], data: f.getF32(k) });
  }
  const model = backboneClass(cfg).fromHost(cfg, state);
  const t = Array.from(f.get("__inputs__.t") as Int32Array);
  const N = t.length;
  const inputs = () => ({
    x: tensor(f.getF32("__inputs__.x"), [N, cfg.inChannels, cfg.inputSize, cfg.inputSize]),
    te: tensor(timestepEmbedding(t, model.timestepDim), [N, model.timestepDim]),
    y: tensor(Uint32Array.from(f.get("__inputs__.y") as Int32Array), [N], "u32"),
  });
  return { cfg, f, model, inputs };
}

for (const name of Object.keys(golden)) {
  Deno.test(`${name}: official key names in order, and the PyTorch forward (relative error < 1e-4)`, async () => {
    const { cfg, f, model, inputs } = await load(name);
    assertEquals(backboneLayout(cfg).specs.map((s) => s.name), golden[name].keys);
    // The counted parameters are the layout's.
    assertEquals(paramCount(cfg), model.specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0));
    const out = noGrad(() =>
      tidy(() => {
        const { x, te, y } = inputs();
        return model.forward(x, te, y);
      })
    );
    const got = await out.data();
    out.dispose();
    assertClose(got, f.getF32("__outputs__.out"), 1e-4, `${name} forward`);
    model.dispose();
  });

  Deno.test(`${name}: gradients of every parameter match PyTorch (relative error < 5e-4)`, async () => {
    const { f, model, inputs } = await load(name);
    tidy(() => {
      const { x, te, y } = inputs();
      const out = model.forward(x, te, y);
      backward(out, tensor(f.getF32("__inputs__.w"), out.shape));
    });
    await assertGradsMatch(f, model.params, 5e-4, name, 20);
    model.dispose();
  });
}

Deno.test("U-ViT: init follows the official _init_weights and is deterministic; GFLOPs count the extras", () => {
  const cfg = customConfig({
    inputSize: 8,
    patchSize: 2,
    hiddenSize: 32,
    depth: 4,
    numHeads: 2,
    numClasses: 10,
    learnSigma: false,
    arch: "uvit",
  });
  const a = new UViT(cfg).initHost(initRngFor(5));
  const b = new UViT(cfg).initHost(initRngFor(5));
  for (const [k, v] of a) assertEquals(v.data, b.get(k)!.data, k);
  assertEquals([...a.get("norm.weight")!.data].every((v) => v === 1), true);
  assertEquals([...a.get("decoder_pred.bias")!.data].every((v) => v === 0), true);
  const std = (d: Float32Array) => Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
  assert(Math.abs(std(a.get("in_blocks.0.attn.qkv.weight")!.data) - 0.02) < 0.003);
  assert(Math.abs(std(a.get("label_emb.weight")!.data) - 1) < 0.15);
  assert(gflops(cfg) > 0);
  assertThrows(() => customConfig({ ...cfg, learnSigma: true }), "learnSigma must be false");
});
