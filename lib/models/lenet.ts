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
import { Conv2dParams, fanIn, Linear, Model, type Module } from "./module.ts";
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
  return new LeNet(cfg).specs.map(({ name, shape }) => ({ name, shape }));
}

/** Conv2d parameters with PyTorch's default init: weight and bias U(±1/√fan_in). */
class Conv extends Conv2dParams {
  constructor(parent: Module, name: string, inp: number, out: number, k: number) {
    const f = fanIn(inp * k * k);
    super(parent, name, inp, out, k, { weight: f, bias: f });
  }
}

/** Linear parameters with PyTorch's default init: weight and bias U(±1/√fan_in). */
class Fc extends Linear {
  constructor(parent: Module, name: string, inp: number, out: number) {
    super(parent, name, inp, out, { weight: fanIn(inp), bias: fanIn(inp) });
  }
}

/** A LeNet on the GPU; its parameters are kept tensors (call {@link LeNet.dispose}). */
export class LeNet extends Model {
  readonly conv1: Conv;
  readonly conv2: Conv;
  readonly fc1: Fc;
  readonly fc2: Fc;
  readonly fc3: Fc;

  /** The module tree of a config, parameters registered but not loaded. */
  constructor(readonly cfg: LeNetConfig) {
    super("LeNet");
    const s = finalSide(cfg);
    if (s < 1) throw new Error(`LeNet: input size ${cfg.inputSize} is too small (at least 16)`);
    this.conv1 = new Conv(this, "conv1", cfg.inChannels, cfg.c1, 5);
    this.conv2 = new Conv(this, "conv2", cfg.c1, cfg.c2, 5);
    this.fc1 = new Fc(this, "fc1", cfg.c2 * s * s, 120);
    this.fc2 = new Fc(this, "fc2", 120, LENET_FEATURE_DIM);
    this.fc3 = new Fc(this, "fc3", LENET_FEATURE_DIM, cfg.numClasses);
  }

  /** A freshly initialised LeNet (PyTorch's default init, drawn from `new Generator(seed)`, in order). */
  static init(cfg: LeNetConfig, seed: number): LeNet {
    const gen = new Generator(seed);
    const rng = {
      uniform: (n: number) => Float64Array.from(gen.uniformCpu(n)),
      normal: (n: number) => Float64Array.from(gen.normalCpu(n)),
    };
    const net = new LeNet(cfg);
    return net.load(net.initHost(rng));
  }

  /** A LeNet from host weights (e.g. {@link readLeNet}). */
  static fromState(cfg: LeNetConfig, state: Map<string, Float32Array>): LeNet {
    const net = new LeNet(cfg);
    const shapes = new Map(net.specs.map((s) => [s.name, s.shape]));
    const host = new Map([...state].map(([k, data]) => [k, { shape: shapes.get(k) ?? [data.length], data }]));
    return net.load(host);
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
    let h = maxPool2d(relu(conv2d(x, this.conv1.weight.value, this.conv1.bias.value)), 2);
    h = maxPool2d(relu(conv2d(h, this.conv2.weight.value, this.conv2.bias.value)), 2);
    h = reshape(h, [x.shape[0], h.size / x.shape[0]]);
    h = relu(linear(h, this.fc1.weight.value, this.fc1.bias.value));
    return relu(linear(h, this.fc2.weight.value, this.fc2.bias.value));
  }

  /** Class logits of x [N, C, H, W]: [N, classes]. */
  logits(x: Tensor): Tensor {
    return this.logitsFromFeatures(this.features(x));
  }

  /** The last layer applied to {@link features}. */
  logitsFromFeatures(f: Tensor): Tensor {
    return linear(f, this.fc3.weight.value, this.fc3.bias.value);
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
    tensors[name] = { dtype: "F32", shape, data: state.get(name)!.data };
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
