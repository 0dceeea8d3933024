/**
 * Interop check, ditflow → PyTorch: builds a DiT in ditflow from a golden fixture's config with fresh
 * random weights (ditflow's own initialisation, perturbed so no block is the identity), runs a forward
 * pass, and writes the weights with ditflow's safetensors writer together with the inputs and ditflow's
 * output. Then `/usr/bin/python3 tools/golden_dit.py --verify FILE` loads the file into the PyTorch DiT
 * (strict key and shape check) and compares its output with ditflow's.
 *
 *   deno run -A tools/dit_roundtrip_check.ts /tmp/ditflow_written.safetensors [fixture-name]
 * @module
 */

import { getRuntime } from "../lib/gpu/runtime.ts";
import { customConfig, type DiTConfig } from "../lib/models/config.ts";
import { DiT, type HostTensor, initParams, timestepEmbedding } from "../lib/models/dit.ts";
import { writeSafetensors } from "../lib/io/safetensors.ts";
import { tensor, tidy } from "../lib/tensor/tensor.ts";
import { noGrad } from "../lib/tensor/autograd.ts";
import { initRngFor } from "../lib/train/init_rng.ts";
import { Generator } from "../lib/tensor/rng.ts";

const out = Deno.args[0];
const name = Deno.args[1] ?? "adaln_zero";
if (!out) {
  console.error("usage: deno run -A tools/dit_roundtrip_check.ts OUT.safetensors [fixture-name]");
  Deno.exit(2);
}
await getRuntime();
const golden = JSON.parse(
  await Deno.readTextFile(new URL("../tests/fixtures/dit/golden_dit.json", import.meta.url)),
);
const py = golden[name].config;
const cfg: DiTConfig = customConfig({
  inputSize: py.input_size,
  patchSize: py.patch_size,
  inChannels: py.in_channels,
  hiddenSize: py.hidden_size,
  depth: py.depth,
  numHeads: py.num_heads,
  numClasses: py.num_classes,
  learnSigma: py.learn_sigma ?? true,
  block: py.block,
});
const g = new Generator(42);
const state = initParams(cfg, initRngFor(7));
for (const [k, v] of state) {
  if (k === "pos_embed") continue;
  const z = g.normalCpu(v.data.length);
  state.set(k, { shape: v.shape, data: Float32Array.from(v.data, (x, i) => x + 0.1 * z[i]) } as HostTensor);
}
const model = DiT.fromHost(cfg, state);
const N = 3;
const x = g.normalCpu(N * cfg.inChannels * cfg.inputSize * cfg.inputSize);
const t = [3, 400, 998];
const y = new Uint32Array([0, cfg.numClasses, 2]);
const res = noGrad(() =>
  tidy(() =>
    model.forward(
      tensor(x, [N, cfg.inChannels, cfg.inputSize, cfg.inputSize]),
      tensor(timestepEmbedding(t), [N, 256]),
      tensor(y, [N], "u32"),
    )
  )
);
const o = await res.data();
const sd = await model.stateDict();
const tensors: Record<string, { dtype: "F32" | "I32"; shape: number[]; data: Float32Array | Int32Array }> =
  {};
for (const [k, v] of sd) tensors[k] = { dtype: "F32", shape: v.shape, data: v.data };
tensors["__inputs__.x"] = { dtype: "F32", shape: [N, cfg.inChannels, cfg.inputSize, cfg.inputSize], data: x };
tensors["__inputs__.t"] = { dtype: "I32", shape: [N], data: Int32Array.from(t) };
tensors["__inputs__.y"] = { dtype: "I32", shape: [N], data: Int32Array.from(y) };
tensors["__outputs__.out"] = { dtype: "F32", shape: [...res.shape], data: o };
await writeSafetensors(out, tensors, { config: JSON.stringify(py), format: "ditflow-golden" });
console.log(`wrote ${out}: ${sd.size} tensors of ${cfg.name} (${cfg.block}) and ditflow's output`);
