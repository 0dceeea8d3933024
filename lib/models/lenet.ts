/**
 * A LeNet-5-style classifier for small images (MNIST padded to 32×32), the feature extractor of the
 * "lenet-mnist" FID (a Fréchet LeNet Distance, see shared/spec/fid.md): conv 5×5 (c1) → ReLU → max pool
 * 2×2 → conv 5×5 (c2) → ReLU → max pool 2×2 → fc 120 → ReLU → fc 84 → ReLU → fc classes.
 * {@link LeNet.features} are the penultimate activations (84-d, after the ReLU); {@link LeNet.logits} the
 * last layer. Parameters are initialised like PyTorch's defaults (`kaiming_uniform_(a=√5)` for weights,
 * U(−1/√fan_in, 1/√fan_in) for biases, which is the same bound) from a seeded {@link Generator}, in
 * parameter order. Key names follow an `nn.Module` with attributes conv1, conv2, fc1, fc2, fc3.
 * @module
 */

import { conv2d } from "../tensor/ops/conv.ts";
import { linear } from "../tensor/ops/matmul.ts";
import { maxPool2d, relu } from "../tensor/ops/pool.ts";
import { reshape } from "../tensor/ops/layout.ts";
import { fmtShape, ShapeError, type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { noGrad } from "../tensor/autograd.ts";
import { Generator } from "../tensor/rng.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";

/** The file a `train-classifier` stage writes its LeNet to (and `fid-ref`/`fid` read). */
export const CLASSIFIER_FILE = "classifier.safetensors";

/** The architecture of a {@link LeNet}. */
export interface LeNetConfig {
  /** Input channels. */
  inChannels: number;
  /** Input side (square images); must leave ≥ 1 pixel after the two conv/pool stages (≥ 16). */
  inputSize: number;
  /** Channels of the first convolution (LeNet-5: 6). */
  c1: number;
  /** Channels of the second convolution (LeNet-5: 16). */
  c2: number;
  /** Number of classes. */
  numClasses: number;
}

/** LeNet-5's widths for 32×32 grey images and 10 classes. */
export const LENET_DEFAULTS: LeNetConfig = { inChannels: 1, inputSize: 32, c1: 6, c2: 16, numClasses: 10 };

/** Width of the feature layer (the penultimate activations). */
export const LENET_FEATURE_DIM = 84;

/** Side of the last pooled feature map. */
function finalSide(cfg: LeNetConfig): number {
  const a = Math.floor((cfg.inputSize - 4) / 2);
  return Math.floor((a - 4) / 2);
}

/** Names and shapes of the parameters, in order. */
export function lenetParamShapes(cfg: LeNetConfig): { name: string; shape: number[] }[] {
  const s = finalSide(cfg);
  if (s < 1) throw new Error(`LeNet: input size ${cfg.inputSize} is too small (at least 16)`);
  const flat = cfg.c2 * s * s;
  return [
    { name: "conv1.weight", shape: [cfg.c1, cfg.inChannels, 5, 5] },
    { name: "conv1.bias", shape: [cfg.c1] },
    { name: "conv2.weight", shape: [cfg.c2, cfg.c1, 5, 5] },
    { name: "conv2.bias", shape: [cfg.c2] },
    { name: "fc1.weight", shape: [120, flat] },
    { name: "fc1.bias", shape: [120] },
    { name: "fc2.weight", shape: [LENET_FEATURE_DIM, 120] },
    { name: "fc2.bias", shape: [LENET_FEATURE_DIM] },
    { name: "fc3.weight", shape: [cfg.numClasses, LENET_FEATURE_DIM] },
    { name: "fc3.bias", shape: [cfg.numClasses] },
  ];
}

/** A LeNet on the GPU; its parameters are kept tensors (call {@link LeNet.dispose}). */
export class LeNet {
  /** Parameters by name, in {@link lenetParamShapes} order. */
  readonly params: Map<string, Tensor>;

  private constructor(readonly cfg: LeNetConfig, host: Map<string, Float32Array>) {
    this.params = new Map();
    for (const { name, shape } of lenetParamShapes(cfg)) {
      const d = host.get(name);
      if (!d) throw new Error(`LeNet: parameter ${name} is missing`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (d.length !== n) throw new Error(`LeNet: ${name} has ${d.length} values, expected [${shape}]`);
      const t = tensor(d, shape, "f32", name).keep();
      t.requiresGrad = true;
      this.params.set(name, t);
    }
  }

  /** A freshly initialised LeNet (PyTorch's default init, drawn from `new Generator(seed)`). */
  static init(cfg: LeNetConfig, seed: number): LeNet {
    const gen = new Generator(seed);
    const host = new Map<string, Float32Array>();
    const specs = lenetParamShapes(cfg);
    for (let i = 0; i < specs.length; i += 2) {
      const w = specs[i];
      const fanIn = w.shape.slice(1).reduce((a, b) => a * b, 1);
      const bound = 1 / Math.sqrt(fanIn);
      for (const s of [w, specs[i + 1]]) {
        const n = s.shape.reduce((a, b) => a * b, 1);
        const u = gen.uniformCpu(n);
        host.set(s.name, u.map((v) => (2 * v - 1) * bound));
      }
    }
    return new LeNet(cfg, host);
  }

  /** A LeNet from host weights (e.g. {@link readLeNet}). */
  static fromState(cfg: LeNetConfig, state: Map<string, Float32Array>): LeNet {
    return new LeNet(cfg, state);
  }

  #p(name: string): Tensor {
    return this.params.get(name)!;
  }

  /** The penultimate activations relu(fc2(...)) of x [N, C, H, W]: [N, 84]. */
  features(x: Tensor): Tensor {
    const c = this.cfg;
    if (
      x.ndim !== 4 || x.shape[1] !== c.inChannels || x.shape[2] !== c.inputSize || x.shape[3] !== c.inputSize
    ) {
      throw new ShapeError(
        "LeNet",
        `input ${fmtShape(x.shape)} does not fit [N, ${c.inChannels}, ${c.inputSize}, ${c.inputSize}]`,
      );
    }
    let h = maxPool2d(relu(conv2d(x, this.#p("conv1.weight"), this.#p("conv1.bias"))), 2);
    h = maxPool2d(relu(conv2d(h, this.#p("conv2.weight"), this.#p("conv2.bias"))), 2);
    h = reshape(h, [x.shape[0], h.size / x.shape[0]]);
    h = relu(linear(h, this.#p("fc1.weight"), this.#p("fc1.bias")));
    return relu(linear(h, this.#p("fc2.weight"), this.#p("fc2.bias")));
  }

  /** Class logits of x [N, C, H, W]: [N, classes]. */
  logits(x: Tensor): Tensor {
    return this.logitsFromFeatures(this.features(x));
  }

  /** The last layer applied to {@link features}. */
  logitsFromFeatures(f: Tensor): Tensor {
    return linear(f, this.#p("fc3.weight"), this.#p("fc3.bias"));
  }

  /** The weights read back to the host. */
  async stateDict(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [k, t] of this.params) out.set(k, await t.data());
    return out;
  }

  /** Releases the parameters (and their gradients). */
  dispose(): void {
    for (const t of this.params.values()) t.dispose();
  }
}

/** Writes a LeNet's weights as F32 safetensors with the config (and any extra metadata) in the metadata. */
export async function writeLeNet(
  path: string,
  net: LeNet,
  metadata: Record<string, string> = {},
): Promise<void> {
  const tensors: Record<string, TensorInput> = {};
  const state = await net.stateDict();
  for (const { name, shape } of lenetParamShapes(net.cfg)) {
    tensors[name] = { dtype: "F32", shape, data: state.get(name)! };
  }
  await writeSafetensors(path, tensors, { ...metadata, lenet_config: JSON.stringify(net.cfg) });
}

/** Reads a file written by {@link writeLeNet}: the model on the GPU and the file's metadata. */
export async function readLeNet(path: string): Promise<{ net: LeNet; metadata: Record<string, string> }> {
  const f = await readSafetensors(path);
  const md = f.metadata ?? {};
  if (!md.lenet_config) throw new Error(`${path} is not a LeNet classifier file (no lenet_config metadata)`);
  const cfg = JSON.parse(md.lenet_config) as LeNetConfig;
  const state = new Map<string, Float32Array>();
  for (const { name } of lenetParamShapes(cfg)) state.set(name, f.getF32(name));
  return { net: LeNet.fromState(cfg, state), metadata: md };
}

/**
 * Runs `fn` on `count` images of `x` (NCHW, flat, [C, H, W] each) in batches of `batch`, without
 * gradients, and concatenates the rows it returns (`dim` values per image) on the host.
 */
async function batched(
  x: Float32Array,
  count: number,
  chw: readonly [number, number, number],
  dim: number,
  batch: number,
  fn: (xb: Tensor) => Tensor,
): Promise<Float32Array> {
  const per = chw[0] * chw[1] * chw[2];
  if (x.length < count * per) throw new Error(`LeNet: ${x.length} values are fewer than ${count}×[${chw}]`);
  const out = new Float32Array(count * dim);
  for (let s = 0; s < count; s += batch) {
    const n = Math.min(batch, count - s);
    const r = noGrad(() => tidy(() => fn(tensor(x.subarray(s * per, (s + n) * per), [n, ...chw]))));
    out.set(await r.data(), s * dim);
    r.dispose();
  }
  return out;
}

/** The {@link LeNet.features} of `count` images (flat NCHW), as [count, 84] rows on the host. */
export function lenetFeatures(
  net: LeNet,
  x: Float32Array,
  count: number,
  batch = 500,
): Promise<Float32Array> {
  const c = net.cfg;
  return batched(
    x,
    count,
    [c.inChannels, c.inputSize, c.inputSize],
    LENET_FEATURE_DIM,
    batch,
    (xb) => net.features(xb),
  );
}

/** The {@link LeNet.logits} of `count` images (flat NCHW), as [count, classes] rows on the host. */
export function lenetLogits(net: LeNet, x: Float32Array, count: number, batch = 500): Promise<Float32Array> {
  const c = net.cfg;
  return batched(
    x,
    count,
    [c.inChannels, c.inputSize, c.inputSize],
    c.numClasses,
    batch,
    (xb) => net.logits(xb),
  );
}

/** Fraction of `count` images whose arg-max logit equals the label. */
export async function lenetAccuracy(
  net: LeNet,
  x: Float32Array,
  y: Uint32Array,
  count: number,
): Promise<number> {
  const k = net.cfg.numClasses;
  const logits = await lenetLogits(net, x, count);
  let right = 0;
  for (let i = 0; i < count; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
    if (best === y[i]) right++;
  }
  return right / count;
}
