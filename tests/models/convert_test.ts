/**
 * Checkpoints converted by tools/convert_dit_checkpoint.py from official-format .pt files (U-ViT, MDTv2 and a
 * DiT with long skips; fixtures from tools/golden_convert.py) load as the sample stage loads a model file,
 * with the config inferred from the shapes, and give the PyTorch reference's forward.
 */
import { assertEquals } from "../helpers/assert.ts";
import { assertClose, gpu } from "../helpers/gradcheck.ts";
import { configFromPy } from "../helpers/golden_model.ts";
import { readSafetensors } from "../../lib/io/safetensors.ts";
import type { DiTConfig } from "../../lib/models/config.ts";
import { readModelFile } from "../../lib/models/checkpoint.ts";
import { backboneClass } from "../../lib/models/arch.ts";
import { timestepEmbedding } from "../../lib/models/dit.ts";
import { tensor, tidy } from "../../lib/tensor/tensor.ts";
import { noGrad } from "../../lib/tensor/autograd.ts";

await gpu();

const dir = new URL("../fixtures/convert/", import.meta.url);
const golden: Record<string, { arch: string; config: Record<string, unknown> }> = JSON.parse(
  await Deno.readTextFile(new URL("golden_convert.json", dir)),
);

/** The config ditflow should infer, from the reference's constructor arguments. */
function expected(arch: string, py: Record<string, unknown>): DiTConfig {
  if (arch === "uvit") return configFromPy(py, { arch: "uvit", learnSigma: false });
  if (arch === "mdt") return configFromPy(py, { arch: "mdt", decodeLayers: py.decode_layer as number });
  return configFromPy(py, { skips: true });
}

for (const [name, g] of Object.entries(golden)) {
  Deno.test(`converted ${name}: config inferred from the shapes, forward matches PyTorch (relative error < 1e-4)`, async () => {
    const { cfg, state } = await readModelFile(new URL(`${name}.safetensors`, dir).pathname);
    const sorted = (c: DiTConfig) => Object.fromEntries(Object.entries(c).sort());
    assertEquals(sorted(cfg), sorted(expected(g.arch, g.config)));
    const model = backboneClass(cfg).fromHost(cfg, state);
    const io = await readSafetensors(new URL(`${name}_io.safetensors`, dir).pathname);
    const t = Array.from(io.get("t") as Int32Array);
    const N = t.length;
    const out = noGrad(() =>
      tidy(() =>
        model.forward(
          tensor(io.getF32("x"), [N, cfg.inChannels, cfg.inputSize, cfg.inputSize]),
          tensor(timestepEmbedding(t, model.timestepDim), [N, model.timestepDim]),
          tensor(Uint32Array.from(io.get("y") as Int32Array), [N], "u32"),
        )
      )
    );
    const got = await out.data();
    out.dispose();
    assertClose(got, io.getF32("out"), 1e-4, `${name} forward`);
    model.dispose();
  });
}
