/**
 * Shared pieces of the model tests against PyTorch golden fixtures (tests/models/{dit,uvit,mdt}_test.ts):
 * the config a tools/golden_*.py script recorded, and the check of every recorded parameter gradient.
 * @module
 */

import { customConfig, type DiTConfig } from "../../lib/models/config.ts";
import type { Tensor } from "../../lib/tensor/tensor.ts";
import type { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { assert } from "./assert.ts";
import { assertClose } from "./gradcheck.ts";

/** The model config of a golden case (the Python script's snake_case fields) plus `extra` fields. */
export function configFromPy(py: Record<string, unknown>, extra: Partial<DiTConfig> = {}): DiTConfig {
  return customConfig({
    inputSize: py.input_size as number,
    patchSize: py.patch_size as number,
    inChannels: py.in_channels as number,
    hiddenSize: py.hidden_size as number,
    depth: py.depth as number,
    numHeads: py.num_heads as number,
    numClasses: py.num_classes as number,
    learnSigma: (py.learn_sigma ?? true) as boolean,
    ...(py.block !== undefined ? { block: py.block as DiTConfig["block"] } : {}),
    ...extra,
  });
}

/**
 * Compares every `__grads__.<name>` tensor of the fixture with the gradient of the model's parameter of
 * that name (relative error < `tol`); at least `min` must be checked.
 */
export async function assertGradsMatch(
  f: SafetensorsFile,
  params: Map<string, Tensor>,
  tol: number,
  what: string,
  min: number,
): Promise<void> {
  let checked = 0;
  for (const k of f.names()) {
    if (!k.startsWith("__grads__.")) continue;
    const pname = k.slice("__grads__.".length);
    const p = params.get(pname);
    assert(p, `no parameter ${pname}`);
    assert(p.grad, `no gradient for ${pname}`);
    assertClose(await p.grad.data(), f.getF32(k), tol, `${what} d/d ${pname}`);
    checked++;
  }
  assert(checked >= min, `only ${checked} gradients checked`);
}
