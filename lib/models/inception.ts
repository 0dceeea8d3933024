/**
 * The FID Inception-v3, read like pytorch-fid's `src/pytorch_fid/inception.py` (`fid_inception_v3()` and
 * `InceptionV3` with output block 3): torchvision's `Inception3(num_classes=1008, aux_logits=False)` with
 * Mixed_5b/5c/5d → FIDInceptionA, Mixed_6b–6e → FIDInceptionC, Mixed_7b → FIDInceptionE_1, Mixed_7c →
 * FIDInceptionE_2. In A, C and E_1 the pool branch is avg_pool2d(3, stride 1, pad 1, count_include_pad=False);
 * in E_2 it is max_pool2d(3, 1, 1) (see shared/spec/fid.md). State-dict names are torchvision's
 * (`Conv2d_1a_3x3.conv.weight`, `Conv2d_1a_3x3.bn.running_mean`, `Mixed_5b.branch1x1.conv.weight`, ...,
 * `fc.weight`, `fc.bias`), so pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, converted to
 * safetensors by tools/convert_inception_checkpoint.py, loads unchanged.
 *
 * BasicConv2d is conv (no bias) → BatchNorm (eps 1e-3, running statistics) → ReLU; the BatchNorm is folded
 * into the convolution at load time, in float64: w' = w·γ/√(var + ε), b' = β − mean·γ/√(var + ε).
 *
 * Features ({@link inceptionFeatures}): images → (1 channel: replicated to 3) → bilinear resize to 299×299
 * (align_corners=False, as F.interpolate) → [0, 1] inputs are mapped to 2x − 1 (pytorch-fid's order: resize,
 * then normalise; [-1, 1] inputs, ditflow's convention, are used as they are: the same thing, since bilinear
 * weights sum to 1) → the network → adaptive average pool: pool3, 2048-d. Optionally the logits of the
 * 1008-class `fc` (with bias, as torchvision's `fc`) or the "unbiased" logits pool3 · fc.weightᵀ that the
 * original TF Inception Score and torch-fidelity use (see lib/metrics/inception_score.ts).
 * @module
 */

import { conv2d } from "../tensor/ops/conv.ts";
import { linear } from "../tensor/ops/matmul.ts";
import { avgPool2d, maxPool2d, relu } from "../tensor/ops/pool.ts";
import { concat, narrow } from "../tensor/ops/layout.ts";
import { mean } from "../tensor/ops/reduce.ts";
import { affine } from "../tensor/ops/elementwise.ts";
import { resizeBilinear } from "../tensor/ops/resize.ts";
import { fmtShape, ShapeError, type Tensor, tensor, tidy } from "../tensor/tensor.ts";
import { noGrad } from "../tensor/autograd.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { rt } from "../gpu/runtime.ts";
import type { HostTensor } from "./host_tensor.ts";
import { checkStateDict } from "./module.ts";

/** Width of the pool3 features. */
export const INCEPTION_POOL3_DIM = 2048;
/** Classes of the 2015 TF Inception's `fc` (1000 ImageNet classes + 8 unused). */
export const INCEPTION_FID_CLASSES = 1008;
/** The input side of the network (pytorch-fid resizes every image to this). */
export const INCEPTION_INPUT_SIZE = 299;
/** Smallest input side the network accepts (the feature map must survive the strided convs and pools). */
export const INCEPTION_MIN_SIZE = 75;
/** BatchNorm epsilon of torchvision's BasicConv2d. */
export const INCEPTION_BN_EPS = 1e-3;
/** Where pytorch-fid's FID weights are published (the user downloads them; nothing is fetched here). */
export const FID_WEIGHTS_URL =
  "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";
/** The default location of the converted weights, relative to the project (or pipeline) directory. */
export const DEFAULT_INCEPTION_WEIGHTS = "weights/pt_inception-2015-12-05-6726825d.safetensors";
/** `feature_extractor` name of the real FID weights (the converter writes it into the metadata). */
export const INCEPTION_FID_NAME = "inception-v3-fid";

/** One BasicConv2d: its module name and geometry. */
export interface BasicConvSpec {
  /** Module name, e.g. `Mixed_5b.branch5x5_2`. */
  name: string;
  inC: number;
  outC: number;
  kernel: [number, number];
  stride: number;
  padding: [number, number];
}

/**
 * GFLOPs of one image through the network at `size`×`size` (2 × the multiply-adds of the convolutions and
 * the fc layer; pools, concatenations and ReLUs left out): 11.43 at 299, i.e. the 5.71 G multiply-adds that
 * torchvision lists as Inception-v3's "GFLOPS".
 */
export function inceptionGflops(size = INCEPTION_INPUT_SIZE): number {
  const out = (n: number, k: number, s: number, p: number) => Math.floor((n + 2 * p - k) / s) + 1;
  const pool = (n: number) => out(n, 3, 2, 0);
  const s1 = out(size, 3, 2, 0);
  const s2 = out(s1, 3, 1, 0);
  const s4 = out(pool(s2), 3, 1, 0);
  const s5 = pool(s4);
  const s6 = out(s5, 3, 2, 0);
  const s7 = out(s6, 3, 2, 0);
  const inputSide: [string, number][] = [
    ["Conv2d_1a", size],
    ["Conv2d_2a", s1],
    ["Conv2d_2b", s2],
    ["Conv2d_3b", pool(s2)],
    ["Conv2d_4a", pool(s2)],
    ["Mixed_5", s5],
    ["Mixed_6a", s5],
    ["Mixed_6", s6],
    ["Mixed_7a", s6],
    ["Mixed_7", s7],
  ];
  let flops = 2 * INCEPTION_POOL3_DIM * INCEPTION_FID_CLASSES;
  for (const c of inceptionConvSpecs()) {
    const n = inputSide.find(([p]) => c.name.startsWith(p))![1];
    const ho = out(n, c.kernel[0], c.stride, c.padding[0]);
    const wo = out(n, c.kernel[1], c.stride, c.padding[1]);
    flops += 2 * c.outC * c.inC * c.kernel[0] * c.kernel[1] * ho * wo;
  }
  return flops / 1e9;
}

/** One tensor of the state dict. */
export interface InceptionParamSpec {
  name: string;
  shape: number[];
}

type Builder = (name: string, inC: number, outC: number, k: number | [number, number], o?: {
  stride?: number;
  padding?: number | [number, number];
}) => void;

/** The BasicConv2d modules of the FID Inception in torchvision's registration (state-dict) order. */
export function inceptionConvSpecs(): BasicConvSpec[] {
  const out: BasicConvSpec[] = [];
  const conv: Builder = (name, inC, outC, k, o = {}) => {
    const kernel: [number, number] = typeof k === "number" ? [k, k] : k;
    const p = o.padding ?? 0;
    out.push({ name, inC, outC, kernel, stride: o.stride ?? 1, padding: typeof p === "number" ? [p, p] : p });
  };
  conv("Conv2d_1a_3x3", 3, 32, 3, { stride: 2 });
  conv("Conv2d_2a_3x3", 32, 32, 3);
  conv("Conv2d_2b_3x3", 32, 64, 3, { padding: 1 });
  conv("Conv2d_3b_1x1", 64, 80, 1);
  conv("Conv2d_4a_3x3", 80, 192, 3);
  const blockA = (m: string, inC: number, poolFeatures: number) => {
    conv(`${m}.branch1x1`, inC, 64, 1);
    conv(`${m}.branch5x5_1`, inC, 48, 1);
    conv(`${m}.branch5x5_2`, 48, 64, 5, { padding: 2 });
    conv(`${m}.branch3x3dbl_1`, inC, 64, 1);
    conv(`${m}.branch3x3dbl_2`, 64, 96, 3, { padding: 1 });
    conv(`${m}.branch3x3dbl_3`, 96, 96, 3, { padding: 1 });
    conv(`${m}.branch_pool`, inC, poolFeatures, 1);
  };
  const blockB = (m: string, inC: number) => {
    conv(`${m}.branch3x3`, inC, 384, 3, { stride: 2 });
    conv(`${m}.branch3x3dbl_1`, inC, 64, 1);
    conv(`${m}.branch3x3dbl_2`, 64, 96, 3, { padding: 1 });
    conv(`${m}.branch3x3dbl_3`, 96, 96, 3, { stride: 2 });
  };
  const blockC = (m: string, inC: number, c7: number) => {
    conv(`${m}.branch1x1`, inC, 192, 1);
    conv(`${m}.branch7x7_1`, inC, c7, 1);
    conv(`${m}.branch7x7_2`, c7, c7, [1, 7], { padding: [0, 3] });
    conv(`${m}.branch7x7_3`, c7, 192, [7, 1], { padding: [3, 0] });
    conv(`${m}.branch7x7dbl_1`, inC, c7, 1);
    conv(`${m}.branch7x7dbl_2`, c7, c7, [7, 1], { padding: [3, 0] });
    conv(`${m}.branch7x7dbl_3`, c7, c7, [1, 7], { padding: [0, 3] });
    conv(`${m}.branch7x7dbl_4`, c7, c7, [7, 1], { padding: [3, 0] });
    conv(`${m}.branch7x7dbl_5`, c7, 192, [1, 7], { padding: [0, 3] });
    conv(`${m}.branch_pool`, inC, 192, 1);
  };
  const blockD = (m: string, inC: number) => {
    conv(`${m}.branch3x3_1`, inC, 192, 1);
    conv(`${m}.branch3x3_2`, 192, 320, 3, { stride: 2 });
    conv(`${m}.branch7x7x3_1`, inC, 192, 1);
    conv(`${m}.branch7x7x3_2`, 192, 192, [1, 7], { padding: [0, 3] });
    conv(`${m}.branch7x7x3_3`, 192, 192, [7, 1], { padding: [3, 0] });
    conv(`${m}.branch7x7x3_4`, 192, 192, 3, { stride: 2 });
  };
  const blockE = (m: string, inC: number) => {
    conv(`${m}.branch1x1`, inC, 320, 1);
    conv(`${m}.branch3x3_1`, inC, 384, 1);
    conv(`${m}.branch3x3_2a`, 384, 384, [1, 3], { padding: [0, 1] });
    conv(`${m}.branch3x3_2b`, 384, 384, [3, 1], { padding: [1, 0] });
    conv(`${m}.branch3x3dbl_1`, inC, 448, 1);
    conv(`${m}.branch3x3dbl_2`, 448, 384, 3, { padding: 1 });
    conv(`${m}.branch3x3dbl_3a`, 384, 384, [1, 3], { padding: [0, 1] });
    conv(`${m}.branch3x3dbl_3b`, 384, 384, [3, 1], { padding: [1, 0] });
    conv(`${m}.branch_pool`, inC, 192, 1);
  };
  blockA("Mixed_5b", 192, 32);
  blockA("Mixed_5c", 256, 64);
  blockA("Mixed_5d", 288, 64);
  blockB("Mixed_6a", 288);
  blockC("Mixed_6b", 768, 128);
  blockC("Mixed_6c", 768, 160);
  blockC("Mixed_6d", 768, 160);
  blockC("Mixed_6e", 768, 192);
  blockD("Mixed_7a", 768);
  blockE("Mixed_7b", 1280);
  blockE("Mixed_7c", 2048);
  return out;
}

/**
 * The state-dict tensors in torchvision's order (`num_batches_tracked` left out: it does not affect
 * inference, and the loader ignores it when present).
 */
export function inceptionParamSpecs(): InceptionParamSpec[] {
  const specs: InceptionParamSpec[] = [];
  for (const c of inceptionConvSpecs()) {
    specs.push({ name: `${c.name}.conv.weight`, shape: [c.outC, c.inC, c.kernel[0], c.kernel[1]] });
    for (const s of ["weight", "bias", "running_mean", "running_var"]) {
      specs.push({ name: `${c.name}.bn.${s}`, shape: [c.outC] });
    }
  }
  specs.push({ name: "fc.weight", shape: [INCEPTION_FID_CLASSES, INCEPTION_POOL3_DIM] });
  specs.push({ name: "fc.bias", shape: [INCEPTION_FID_CLASSES] });
  return specs;
}

/** A folded BasicConv2d on the GPU. */
interface FoldedConv {
  spec: BasicConvSpec;
  weight: Tensor;
  bias: Tensor;
}

/** Folds a BasicConv2d's BatchNorm into its convolution (float64, rounded once to f32). */
function foldBatchNorm(
  spec: BasicConvSpec,
  w: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  runMean: Float32Array,
  runVar: Float32Array,
): { w: Float32Array; b: Float32Array } {
  const per = w.length / spec.outC;
  const fw = new Float32Array(w.length);
  const fb = new Float32Array(spec.outC);
  for (let o = 0; o < spec.outC; o++) {
    const s = gamma[o] / Math.sqrt(runVar[o] + INCEPTION_BN_EPS);
    for (let i = o * per; i < (o + 1) * per; i++) fw[i] = w[i] * s;
    fb[o] = beta[o] - runMean[o] * s;
  }
  return { w: fw, b: fb };
}

/** Options of {@link InceptionV3.forward}. */
export interface InceptionForwardOptions {
  /** Side the images are resized to (default 299, the FID standard; at least 75). */
  size?: number;
  /** Range of the input pixels (default "[-1,1]", ditflow's convention; pytorch-fid takes "[0,1]"). */
  inputRange?: "[0,1]" | "[-1,1]";
}

/** The FID Inception-v3 on the GPU (inference only): folded convolutions and the fc layer. */
export class InceptionV3 {
  readonly #convs: Map<string, FoldedConv>;
  readonly #fcWeight: Tensor;
  readonly #fcBias: Tensor;

  private constructor(convs: Map<string, FoldedConv>, fcWeight: Tensor, fcBias: Tensor) {
    this.#convs = convs;
    this.#fcWeight = fcWeight;
    this.#fcBias = fcBias;
  }

  /**
   * A network from a torchvision/pytorch-fid state dict (host tensors), checked against
   * {@link inceptionParamSpecs}: throws {@link StateDictError} naming missing, unexpected and misshapen
   * keys (`*.num_batches_tracked` is ignored). The BatchNorms are folded into the convolutions.
   */
  static fromState(state: Map<string, HostTensor> | Record<string, HostTensor>): InceptionV3 {
    const map = state instanceof Map ? state : new Map(Object.entries(state));
    const specs = inceptionParamSpecs();
    checkStateDict(
      "the FID Inception-v3 (1008 classes, no aux logits)",
      specs,
      map,
      (k) => k.endsWith(".num_batches_tracked"),
    );
    const convs = new Map<string, FoldedConv>();
    const get = (n: string) => map.get(n)!.data;
    for (const spec of inceptionConvSpecs()) {
      const n = spec.name;
      const f = foldBatchNorm(
        spec,
        get(`${n}.conv.weight`),
        get(`${n}.bn.weight`),
        get(`${n}.bn.bias`),
        get(`${n}.bn.running_mean`),
        get(`${n}.bn.running_var`),
      );
      const shape = [spec.outC, spec.inC, spec.kernel[0], spec.kernel[1]];
      convs.set(n, {
        spec,
        weight: tensor(f.w, shape, "f32", `${n}.weight (folded)`).keep(),
        bias: tensor(f.b, [spec.outC], "f32", `${n}.bias (folded)`).keep(),
      });
    }
    const fcW = tensor(get("fc.weight"), [INCEPTION_FID_CLASSES, INCEPTION_POOL3_DIM], "f32", "fc.weight")
      .keep();
    const fcB = tensor(get("fc.bias"), [INCEPTION_FID_CLASSES], "f32", "fc.bias").keep();
    return new InceptionV3(convs, fcW, fcB);
  }

  /**
   * BasicConv2d: the folded convolution and ReLU. The matmul under conv2d runs its vector kernels only when
   * the output plane Ho·Wo is a multiple of 4, which Inception's odd sizes (149, 147, 73, 71, 35, 17) never
   * are; so the input gets extra zero padding on the right until it is, and the extra output columns are
   * cut off again. The kept outputs read exactly the same taps: the result is unchanged (~8× faster on
   * llvmpipe than the scalar kernel).
   */
  #conv(name: string, x: Tensor): Tensor {
    const c = this.#convs.get(name);
    if (!c) throw new Error(`internal: no convolution ${name}`);
    const { stride: s, padding: [ph, pw], kernel: [kh, kw] } = c.spec;
    const ho = Math.floor((x.shape[2] + 2 * ph - kh) / s) + 1;
    const wo = Math.floor((x.shape[3] + 2 * pw - kw) / s) + 1;
    let extra = 0;
    while ((ho * (wo + extra)) % 4 !== 0) extra++;
    const y = conv2d(x, c.weight, c.bias, { stride: s, padding: [ph, ph, pw, pw + extra * s] });
    const cut = extra === 0 ? y : narrow(y, 3, 0, wo);
    const out = relu(cut);
    // Under noGrad (inference) nothing refers to the intermediates: release them now, not at the end of
    // the enclosing tidy, so that the pool reuses their buffers (flat memory through the network).
    if (!out.node) { for (const t of new Set([y, cut])) t.dispose(); }
    return out;
  }

  /** `f(x)`, releasing x right away when nothing recorded refers to it (inference). */
  #then(x: Tensor, f: (x: Tensor) => Tensor): Tensor {
    const y = f(x);
    if (!y.node) x.dispose();
    return y;
  }

  /** Channel concatenation of branch outputs, which are released right away in inference. */
  #cat(parts: Tensor[]): Tensor {
    const y = concat(parts, 1);
    if (!y.node) { for (const t of parts) t.dispose(); }
    return y;
  }

  /** BasicConv2ds applied in sequence to x; the intermediates (not x) are released in inference. */
  #chain(x: Tensor, names: string[]): Tensor {
    let h = this.#conv(names[0], x);
    for (const n of names.slice(1)) h = this.#then(h, (t) => this.#conv(n, t));
    return h;
  }

  /** The pool branch of A, C and E_1: TF's average pool (padding not counted), then the 1×1 conv. */
  #avgPoolBranch(m: string, x: Tensor): Tensor {
    const pooled = avgPool2d(x, 3, { stride: 1, padding: 1, countIncludePad: false });
    return this.#then(pooled, (p) => this.#conv(`${m}.branch_pool`, p));
  }

  /** FIDInceptionA (Mixed_5b/5c/5d). */
  #blockA(m: string, x: Tensor): Tensor {
    const b1 = this.#conv(`${m}.branch1x1`, x);
    const b5 = this.#chain(x, [`${m}.branch5x5_1`, `${m}.branch5x5_2`]);
    const b3 = this.#chain(x, [`${m}.branch3x3dbl_1`, `${m}.branch3x3dbl_2`, `${m}.branch3x3dbl_3`]);
    return this.#cat([b1, b5, b3, this.#avgPoolBranch(m, x)]);
  }

  /** InceptionB (Mixed_6a, unchanged from torchvision). */
  #blockB(m: string, x: Tensor): Tensor {
    const b3 = this.#conv(`${m}.branch3x3`, x);
    const bd = this.#chain(x, [`${m}.branch3x3dbl_1`, `${m}.branch3x3dbl_2`, `${m}.branch3x3dbl_3`]);
    return this.#cat([b3, bd, maxPool2d(x, 3, { stride: 2 })]);
  }

  /** FIDInceptionC (Mixed_6b–6e). */
  #blockC(m: string, x: Tensor): Tensor {
    const b1 = this.#conv(`${m}.branch1x1`, x);
    const b7 = this.#chain(x, [1, 2, 3].map((k) => `${m}.branch7x7_${k}`));
    const bd = this.#chain(x, [1, 2, 3, 4, 5].map((k) => `${m}.branch7x7dbl_${k}`));
    return this.#cat([b1, b7, bd, this.#avgPoolBranch(m, x)]);
  }

  /** InceptionD (Mixed_7a, unchanged from torchvision). */
  #blockD(m: string, x: Tensor): Tensor {
    const b3 = this.#chain(x, [`${m}.branch3x3_1`, `${m}.branch3x3_2`]);
    const b7 = this.#chain(x, [1, 2, 3, 4].map((k) => `${m}.branch7x7x3_${k}`));
    return this.#cat([b3, b7, maxPool2d(x, 3, { stride: 2 })]);
  }

  /** FIDInceptionE_1 (Mixed_7b, `pool: "avg"`) and FIDInceptionE_2 (Mixed_7c, `pool: "max"`). */
  #blockE(m: string, x: Tensor, pool: "avg" | "max"): Tensor {
    const b1 = this.#conv(`${m}.branch1x1`, x);
    const s3 = this.#conv(`${m}.branch3x3_1`, x);
    const b3 = this.#then(
      s3,
      (t) => this.#cat([this.#conv(`${m}.branch3x3_2a`, t), this.#conv(`${m}.branch3x3_2b`, t)]),
    );
    const sd = this.#chain(x, [`${m}.branch3x3dbl_1`, `${m}.branch3x3dbl_2`]);
    const bd = this.#then(
      sd,
      (t) => this.#cat([this.#conv(`${m}.branch3x3dbl_3a`, t), this.#conv(`${m}.branch3x3dbl_3b`, t)]),
    );
    const bp = pool === "avg"
      ? this.#avgPoolBranch(m, x)
      : this.#then(maxPool2d(x, 3, { stride: 1, padding: 1 }), (p) => this.#conv(`${m}.branch_pool`, p));
    return this.#cat([b1, b3, bd, bp]);
  }

  /**
   * The network from its input (x [N, 3, S, S] in [-1, 1], S ≥ 75, already resized) to pool3: the
   * adaptive average pool of Mixed_7c, [N, 2048]. pytorch-fid's blocks 0–3.
   */
  pool3(x: Tensor): Tensor {
    if (
      x.ndim !== 4 || x.shape[1] !== 3 || x.shape[2] < INCEPTION_MIN_SIZE || x.shape[3] < INCEPTION_MIN_SIZE
    ) {
      throw new ShapeError(
        "InceptionV3",
        `input ${fmtShape(x.shape)} must be [N, 3, H, W] with H, W ≥ ${INCEPTION_MIN_SIZE}`,
      );
    }
    const pool = (t: Tensor) => maxPool2d(t, 3, { stride: 2 });
    let h = this.#chain(x, ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"]);
    h = this.#then(h, pool);
    h = this.#then(h, (t) => this.#chain(t, ["Conv2d_3b_1x1", "Conv2d_4a_3x3"]));
    h = this.#then(h, pool);
    for (const m of ["Mixed_5b", "Mixed_5c", "Mixed_5d"]) h = this.#then(h, (t) => this.#blockA(m, t));
    h = this.#then(h, (t) => this.#blockB("Mixed_6a", t));
    for (const m of ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"]) {
      h = this.#then(h, (t) => this.#blockC(m, t));
    }
    h = this.#then(h, (t) => this.#blockD("Mixed_7a", t));
    h = this.#then(h, (t) => this.#blockE("Mixed_7b", t, "avg"));
    h = this.#then(h, (t) => this.#blockE("Mixed_7c", t, "max"));
    return this.#then(h, (t) => mean(t, [2, 3]));
  }

  /**
   * Logits of pool3 features [N, 2048]: torchvision's `fc` (with its bias) by default, or with
   * `bias: false` the "unbiased" logits pool3 · fc.weightᵀ of the original TF Inception Score. [N, 1008]
   */
  logits(pool3: Tensor, opts: { bias?: boolean } = {}): Tensor {
    return linear(pool3, this.#fcWeight, (opts.bias ?? true) ? this.#fcBias : null);
  }

  /**
   * Images [N, C, H, W] (C = 1 or 3; 1 is replicated to 3) → resize to `size` (when H, W differ from it) →
   * [-1, 1] → pool3 [N, 2048].
   */
  forward(images: Tensor, opts: InceptionForwardOptions = {}): Tensor {
    const size = opts.size ?? INCEPTION_INPUT_SIZE;
    if (images.ndim !== 4 || (images.shape[1] !== 1 && images.shape[1] !== 3)) {
      throw new ShapeError("InceptionV3", `images ${fmtShape(images.shape)} must be [N, 1 or 3, H, W]`);
    }
    if (!Number.isInteger(size) || size < INCEPTION_MIN_SIZE) {
      throw new ShapeError("InceptionV3", `size ${size} must be an integer ≥ ${INCEPTION_MIN_SIZE}`);
    }
    let x = images.shape[1] === 1 ? concat([images, images, images], 1) : images;
    if (x.shape[2] !== size || x.shape[3] !== size) x = resizeBilinear(x, size, size);
    if ((opts.inputRange ?? "[-1,1]") === "[0,1]") x = affine(x, 2, -1);
    return this.pool3(x);
  }

  /** Releases the weights. */
  dispose(): void {
    for (const c of this.#convs.values()) {
      c.weight.dispose();
      c.bias.dispose();
    }
    this.#fcWeight.dispose();
    this.#fcBias.dispose();
  }
}

/** A loaded weight file: the network, its metadata and the name of its feature space. */
export interface LoadedInception {
  net: InceptionV3;
  metadata: Record<string, string>;
  /** `feature_extractor` of the metadata (the converter writes "inception-v3-fid" for the real weights). */
  name: string;
}

/**
 * Reads FID Inception weights from a safetensors file (tools/convert_inception_checkpoint.py). A missing
 * file is an error that says what was expected, where, and how to get it.
 */
export async function loadInception(path: string): Promise<LoadedInception> {
  let f;
  try {
    f = await readSafetensors(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `FID Inception weights not found at ${path}: expected pytorch-fid's ` +
          `pt_inception-2015-12-05-6726825d.pth converted to safetensors. Download the .pth from ` +
          `${FID_WEIGHTS_URL} and run: /usr/bin/python3 tools/convert_inception_checkpoint.py ` +
          `pt_inception-2015-12-05-6726825d.pth ${path}  (default location: ${DEFAULT_INCEPTION_WEIGHTS})`,
      );
    }
    throw e;
  }
  const state = new Map<string, HostTensor>();
  for (const name of f.names()) {
    if (name.endsWith(".num_batches_tracked")) continue;
    state.set(name, { shape: [...f.info(name).shape], data: f.getF32(name) });
  }
  const md = { ...(f.metadata ?? {}) };
  const name = md.feature_extractor ??
    `inception-v3-fid-architecture (unnamed weights: ${path.split("/").pop()})`;
  return { net: InceptionV3.fromState(state), metadata: md, name };
}

/**
 * Writes an Inception state dict (e.g. {@link syntheticInceptionState}) as F32 safetensors in the layout of
 * tools/convert_inception_checkpoint.py; `metadata.feature_extractor` names the feature space.
 */
export async function writeInceptionWeights(
  path: string,
  state: Map<string, HostTensor>,
  metadata: Record<string, string>,
): Promise<void> {
  const tensors: Record<string, TensorInput> = {};
  for (const { name, shape } of inceptionParamSpecs()) {
    const h = state.get(name);
    if (!h) throw new Error(`writeInceptionWeights: ${name} is missing`);
    tensors[name] = { dtype: "F32", shape, data: h.data };
  }
  await writeSafetensors(path, tensors, { format: "ditflow-inception-v3-fid", ...metadata });
}

/** Images on the host for {@link inceptionFeatures}: NCHW float32. */
export interface InceptionImages {
  data: Float32Array;
  /** [N, C, H, W] with C = 1 or 3. */
  shape: readonly [number, number, number, number];
}

/** Options of {@link inceptionFeatures}. */
export interface InceptionFeatureOptions extends InceptionForwardOptions {
  /**
   * Images per forward pass (default {@link inceptionMaxBatch}: as many as the largest im2col buffer allows,
   * at most 16). Memory is flat in the number of images.
   */
  batch?: number;
  /**
   * Round the pixels to uint8 first, as the images would be stored in PNG files (pytorch-fid) or the ADM
   * evaluator's uint8 `.npz`: [-1, 1] inputs as `clamp(127.5x + 128, 0, 255)` truncated (DiT's
   * `sample_ddp.py`, lib/metrics/npz.ts), [0, 1] inputs as `clamp(255x + 0.5, 0, 255)` truncated; the
   * network then sees u / 255 in [0, 1]. Default false.
   */
  quantize?: boolean;
  /** Also return logits: `fc` (torchvision's fc, with bias) or `unbiased` (pool3 · fc.weightᵀ). */
  logits?: "fc" | "unbiased";
  /** Called after each batch with the images done and the total. */
  onBatch?: (done: number, total: number) => void;
}

/** What {@link inceptionFeatures} returns: [N, 2048] pool3 rows and optionally [N, 1008] logits. */
export interface InceptionFeatures {
  pool3: Float32Array;
  logits?: Float32Array;
}

/** u / 255 of pixels rounded to uint8 (see {@link InceptionFeatureOptions.quantize}). */
export function quantizeU8(x: Float32Array, range: "[0,1]" | "[-1,1]"): Float32Array {
  const out = new Float32Array(x.length);
  const [a, b] = range === "[-1,1]" ? [127.5, 128] : [255, 0.5];
  for (let i = 0; i < x.length; i++) {
    const v = a * x[i] + b;
    out[i] = (v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v)) / 255;
  }
  return out;
}

/**
 * The largest batch whose biggest im2col buffer (Conv2d_2b_3x3: 288 rows × the padded 147×148 plane at
 * 299×299) fits the adapter's storage-binding limit, at most 16 (llvmpipe's 128 MiB: 5 at 299).
 */
export function inceptionMaxBatch(size = INCEPTION_INPUT_SIZE): number {
  const s2 = Math.floor((size - 3) / 2) + 1 - 2;
  const colsBytes = 288 * s2 * (s2 + 3) * 4;
  const limit = rt().adapter.limits.maxStorageBufferBindingSize;
  return Math.max(1, Math.min(16, Math.floor(limit / colsBytes)));
}

/**
 * pool3 features (and optionally logits) of host images, in batches without gradients, each batch in its
 * own tidy scope (GPU memory stays flat); one read-back per batch.
 */
export async function inceptionFeatures(
  net: InceptionV3,
  images: InceptionImages,
  opts: InceptionFeatureOptions = {},
): Promise<InceptionFeatures> {
  const [N, C, H, W] = images.shape;
  const per = C * H * W;
  if (images.data.length < N * per) {
    throw new Error(`inceptionFeatures: ${images.data.length} values are fewer than [${images.shape}]`);
  }
  const size = opts.size ?? INCEPTION_INPUT_SIZE;
  const batch = Math.max(1, opts.batch ?? inceptionMaxBatch(size));
  const fwd: InceptionForwardOptions = opts.quantize
    ? { size, inputRange: "[0,1]" }
    : { size, inputRange: opts.inputRange };
  const D = INCEPTION_POOL3_DIM;
  const K = INCEPTION_FID_CLASSES;
  const withLogits = opts.logits !== undefined;
  const pool3 = new Float32Array(N * D);
  const logits = withLogits ? new Float32Array(N * K) : undefined;
  for (let s = 0; s < N; s += batch) {
    const n = Math.min(batch, N - s);
    const out = noGrad(() =>
      tidy(() => {
        const raw = images.data.subarray(s * per, (s + n) * per);
        const x = tensor(opts.quantize ? quantizeU8(raw, opts.inputRange ?? "[-1,1]") : raw, [n, C, H, W]);
        const p = net.forward(x, fwd);
        if (!withLogits) return p;
        // One read-back: [pool3 | logits] per row.
        return concat([p, net.logits(p, { bias: opts.logits === "fc" })], 1);
      })
    );
    const d = await out.data();
    out.dispose();
    if (!withLogits) pool3.set(d, s * D);
    else {
      for (let r = 0; r < n; r++) {
        pool3.set(d.subarray(r * (D + K), r * (D + K) + D), (s + r) * D);
        logits!.set(d.subarray(r * (D + K) + D, (r + 1) * (D + K)), (s + r) * K);
      }
    }
    opts.onBatch?.(s + n, N);
  }
  return logits ? { pool3, logits } : { pool3 };
}

// ---- deterministic synthetic weights (tests and benchmarks) ---------------------------------------------------

/** lowbias32 (C. Wellons), a 32-bit integer hash. */
function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a (32-bit) of a string's UTF-8 bytes. */
function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** Seed and gain of the synthetic weights that tools/golden_inception.py uses. */
export const SYNTHETIC_INCEPTION_SEED = 20261126;
const SYNTHETIC_GAIN = 0.95;

/**
 * A complete FID Inception state dict of deterministic pseudo-random weights, identical bit for bit to the
 * one tools/golden_inception.py builds in numpy (see that script for the recipe): counter-based uniforms
 * u = (h >> 8) / 2^24 from an integer hash of (tensor name, element index); He-uniform conv weights (scaled
 * by 0.95), BatchNorm γ ∈ [0.75, 1.25), β and running mean in ±0.1, running variance in [0.5, 1.5), fc
 * weights U(±√(3/2048)), fc bias ±0.5. For tests (architecture checks against torchvision) and benchmarks;
 * its features mean nothing.
 */
export function syntheticInceptionState(seed = SYNTHETIC_INCEPTION_SEED): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const { name, shape } of inceptionParamSpecs()) {
    const n = shape.reduce((a, b) => a * b, 1);
    const k = mix32((fnv1a32(name) ^ seed) >>> 0);
    const data = new Float32Array(n);
    let f: (u: number) => number;
    if (name.endsWith("conv.weight")) {
      const bound = SYNTHETIC_GAIN * Math.sqrt(6 / (shape[1] * shape[2] * shape[3]));
      f = (u) => (2 * u - 1) * bound;
    } else if (name.endsWith("bn.weight")) f = (u) => 0.75 + 0.5 * u;
    else if (name.endsWith("bn.bias") || name.endsWith("bn.running_mean")) f = (u) => 0.1 * (2 * u - 1);
    else if (name.endsWith("bn.running_var")) f = (u) => 0.5 + u;
    else if (name === "fc.weight") {
      const bound = Math.sqrt(3 / shape[1]);
      f = (u) => (2 * u - 1) * bound;
    } else f = (u) => 0.5 * (2 * u - 1); // fc.bias
    for (let i = 0; i < n; i++) {
      const h = mix32((mix32((i + k) >>> 0) ^ k) >>> 0);
      data[i] = f((h >>> 8) / 16777216);
    }
    out.set(name, { shape: [...shape], data });
  }
  return out;
}
