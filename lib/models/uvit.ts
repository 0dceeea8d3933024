/**
 * U-ViT ("All are Worth Words: A ViT Backbone for Diffusion Models", Bao et al. 2023), read like
 * `libs/uvit.py` of baofff/U-ViT: every input is a token (the time token, the label token and the patch
 * tokens), plain pre-LN transformer blocks, and long skips: the ⌊depth/2⌋ `in_blocks` feed the ⌊depth/2⌋
 * `out_blocks` in reverse order through `skip_linear` = Linear(2D, D) on concat(h_deep, h_shallow), with a
 * `mid_block` between them (so a depth-d U-ViT has 2⌊d/2⌋ + 1 blocks). The output is ε only (no learned
 * variance), decoded by `decoder_pred` and refined by a 3×3 convolution `final_layer`.
 *
 * State-dict keys, in the official order (the official ImageNet-latent settings: qkv without bias, no
 * time MLP (`time_embed` = Identity), a final convolution):
 *   pos_embed [1, 2 + T, D] (learned), patch_embed.proj.{weight [D, C, p, p], bias},
 *   label_emb.weight [classes (+1 null class), D],
 *   {in_blocks.i, mid_block, out_blocks.i}.{norm1, attn.qkv.weight, attn.proj, norm2, mlp.fc1, mlp.fc2},
 *   out_blocks.i.skip_linear, norm, decoder_pred [p·p·C, D], final_layer [C, C, 3, 3]
 * Token order: [label, time, patches]. The time token is the D-wide sinusoidal embedding of t
 * ({@link UViT.timestepDim} = D).
 *
 * One deviation: timm's Mlp uses the exact (erf) GELU; ditflow has the tanh form only (DiT's), so U-ViT
 * here uses the tanh form (and so does tools/uvit_reference.py); the two differ by < 1e-3 per activation.
 * Initialisation as the official `_init_weights`: Linear weights and pos_embed N(0, 0.02²) (timm's
 * trunc_normal_ at ±2, i.e. ±100σ: no truncation in practice), biases 0, LayerNorms 1/0, the label table
 * N(0, 1) (nn.Embedding's default), convolutions PyTorch's default U(±1/√fan_in); drawn in state-dict order.
 * @module
 */

import { type DiTConfig, validateConfig } from "./config.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { linear } from "../tensor/ops/matmul.ts";
import { attention, mergeHeads, splitHeads } from "../tensor/ops/attention.ts";
import { layerNorm } from "../tensor/ops/layernorm.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { concat, narrow, reshape, unpatchify } from "../tensor/ops/layout.ts";
import { conv2d } from "../tensor/ops/conv.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { HostTensor, InitRng } from "./host_tensor.ts";
import { applyLinear, checkInput, Mlp, PatchEmbed } from "./dit.ts";
import {
  Conv2dParams,
  fanIn,
  Linear,
  Model,
  Module,
  normal,
  NormParams,
  type Parameter,
  type ParamInfo,
  zeros,
} from "./module.ts";

/** PyTorch's LayerNorm epsilon (U-ViT keeps nn.LayerNorm's default). */
const UVIT_LN_EPS = 1e-5;

/** `_init_weights` of a Linear: N(0, 0.02²) weight, zero bias. */
const tn = (_i: number, _o: number) => ({ weight: normal(0.02), bias: zeros });

/** nn.LayerNorm with its affine parameters. */
class LayerNorm extends NormParams {
  apply(x: Tensor): Tensor {
    return add(mul(layerNorm(x, { eps: UVIT_LN_EPS }), this.weight.value), this.bias.value);
  }
}

/** U-ViT's Attention: qkv without bias, proj with bias. */
class UAttention extends Module {
  readonly qkv: Parameter;
  readonly proj: Linear;
  constructor(parent: Module, name: string, D: number, readonly heads: number) {
    super(parent, name);
    this.qkv = new QkvNoBias(this, "qkv", D).weight;
    this.proj = new Linear(this, "proj", D, D, tn(D, D));
  }

  forward(h: Tensor): Tensor {
    const { q, k, v } = splitHeads(linear(h, this.qkv.value), this.heads);
    return applyLinear(this.proj, mergeHeads(attention(q, k, v)));
  }
}

/** nn.Linear(D, 3D, bias=False). */
class QkvNoBias extends Module {
  readonly weight: Parameter;
  constructor(parent: Module, name: string, D: number) {
    super(parent, name);
    this.weight = this.param("weight", [3 * D, D], normal(0.02));
  }
}

/** U-ViT's Block: optional skip_linear, then x + attn(norm1(x)), x + mlp(norm2(x)). */
export class UViTBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: UAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly skipLinear: Linear | null;
  constructor(parent: Module, name: string, D: number, heads: number, mlpHidden: number, skip: boolean) {
    super(parent, name);
    this.norm1 = new LayerNorm(this, "norm1", D);
    this.attn = new UAttention(this, "attn", D, heads);
    this.norm2 = new LayerNorm(this, "norm2", D);
    this.mlp = new Mlp(this, "mlp", D, mlpHidden, tn);
    this.skipLinear = skip ? new Linear(this, "skip_linear", 2 * D, D, tn(2 * D, D)) : null;
  }

  /** One block; `skip` is the matching in_block's output (out_blocks only). */
  forward(x: Tensor, skip: Tensor | null = null): Tensor {
    if (this.skipLinear) x = applyLinear(this.skipLinear, concat([x, skip!], 2));
    x = add(x, this.attn.forward(this.norm1.apply(x)));
    return add(x, this.mlp.forward(this.norm2.apply(x)));
  }
}

/** Checks that a config can be a U-ViT (ε output only, an even split of the blocks). */
export function checkUViTConfig(cfg: DiTConfig): void {
  validateConfig(cfg);
  if (cfg.learnSigma) throw new Error(`${cfg.name}: U-ViT predicts ε only (learnSigma must be false)`);
  if (cfg.depth < 2) throw new Error(`${cfg.name}: U-ViT needs depth ≥ 2 (in_blocks and out_blocks)`);
}

/** A U-ViT on the GPU. */
export class UViT extends Model {
  readonly cfg: DiTConfig;
  readonly posEmbed: Parameter;
  readonly patchEmbed: PatchEmbed;
  readonly labelEmb: Parameter;
  readonly inBlocks: UViTBlock[];
  readonly midBlock: UViTBlock;
  readonly outBlocks: UViTBlock[];
  readonly norm: LayerNorm;
  readonly decoderPred: Linear;
  readonly finalLayer: Conv2dParams;
  /** The time token is the D-wide sinusoidal embedding (`time_embed` is the identity). */
  readonly timestepDim: number;
  /** The extra tokens before the patches: label and time. */
  static readonly EXTRAS = 2;

  /** The module tree of a config, parameters registered but not loaded (see {@link UViT.init}). */
  constructor(cfg: DiTConfig) {
    super(cfg.name);
    checkUViTConfig(cfg);
    this.cfg = cfg;
    const D = cfg.hiddenSize;
    const C = cfg.inChannels;
    const p = cfg.patchSize;
    const T = (cfg.inputSize / p) ** 2;
    const mlpHidden = Math.floor(D * cfg.mlpRatio);
    this.timestepDim = D;
    this.posEmbed = this.param("pos_embed", [1, UViT.EXTRAS + T, D], normal(0.02));
    this.patchEmbed = new PatchEmbedDefault(this, "patch_embed", C, D, p);
    const rows = cfg.numClasses + (cfg.classDropoutProb > 0 ? 1 : 0);
    this.labelEmb = new EmbeddingN01(this, "label_emb", rows, D).weight;
    const half = Math.floor(cfg.depth / 2);
    const block = (name: string, skip: boolean) =>
      new UViTBlock(this, name, D, cfg.numHeads, mlpHidden, skip);
    this.inBlocks = Array.from({ length: half }, (_, i) => block(`in_blocks.${i}`, false));
    this.midBlock = block("mid_block", false);
    this.outBlocks = Array.from({ length: half }, (_, i) => block(`out_blocks.${i}`, true));
    this.norm = new LayerNorm(this, "norm", D);
    this.decoderPred = new Linear(this, "decoder_pred", D, p * p * C, tn(D, p * p * C));
    const f = fanIn(C * 9);
    this.finalLayer = new Conv2dParams(this, "final_layer", C, C, 3, { weight: f, bias: f });
  }

  /** A freshly initialised model. */
  static init(cfg: DiTConfig, rng: InitRng): UViT {
    const m = new UViT(cfg);
    return m.load(m.initHost(rng));
  }

  /** A model from host tensors (a state dict), checked against the config's layout. */
  static fromHost(cfg: DiTConfig, state: Map<string, HostTensor> | Record<string, HostTensor>): UViT {
    return new UViT(cfg).load(state);
  }

  /**
   * Forward pass: `x` [N, C, H, W], `tEmb` the D-wide timestep embedding [N, D], `y` labels u32 [N].
   * Returns ε̂ [N, C, H, W]. Call inside `tidy`.
   */
  forward(x: Tensor, tEmb: Tensor, y: Tensor): Tensor {
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const [N] = x.shape;
    checkInput(cfg, x, tEmb, y);
    if (tEmb.shape[1] !== D) throw new Error(`${cfg.name}: the time embedding must be [N, ${D}]`);
    const h0 = this.patchEmbed.forward(x); // [N, T, D]
    const T = h0.shape[1];
    const timeToken = reshape(tEmb, [N, 1, D]);
    const labelToken = reshape(embedding(this.labelEmb.value, y), [N, 1, D]);
    let h = add(concat([labelToken, timeToken, h0], 1), this.posEmbed.value);
    const skips: Tensor[] = [];
    for (const b of this.inBlocks) {
      h = b.forward(h);
      skips.push(h);
    }
    h = this.midBlock.forward(h);
    for (const b of this.outBlocks) h = b.forward(h, skips.pop()!);
    h = applyLinear(this.decoderPred, this.norm.apply(h));
    h = narrow(h, 1, UViT.EXTRAS, T);
    const img = unpatchify(h, cfg.patchSize, cfg.inChannels);
    return conv2d(img, this.finalLayer.weight.value, this.finalLayer.bias.value, { padding: 1 });
  }
}

/** The patch embedding with PyTorch's default Conv2d init (U-ViT leaves it to PyTorch). */
class PatchEmbedDefault extends PatchEmbed {
  constructor(parent: Module, name: string, C: number, D: number, p: number) {
    super(parent, name, C, D, p, { weight: fanIn(C * p * p), bias: fanIn(C * p * p) });
  }
}

/** nn.Embedding with its default N(0, 1) init. */
class EmbeddingN01 extends Module {
  readonly weight: Parameter;
  constructor(parent: Module, name: string, rows: number, D: number) {
    super(parent, name);
    this.weight = this.param("weight", [rows, D], normal(1));
  }
}

/** Name, shape and trainability of one U-ViT parameter, in state-dict order. */
export function uvitParamSpecs(cfg: DiTConfig): ParamInfo[] {
  return new UViT(cfg).specs;
}
