/**
 * AutoencoderKL, the Stable Diffusion VAE, read like diffusers' `AutoencoderKL`
 * (src/diffusers/models/autoencoders/autoencoder_kl.py, vae.py `Encoder`/`Decoder`/
 * `DiagonalGaussianDistribution`, resnet.py `ResnetBlock2D`/`Downsample2D`/`Upsample2D`,
 * unet_2d_blocks.py `DownEncoderBlock2D`/`UpDecoderBlock2D`/`UNetMidBlock2D`, attention_processor.py
 * `Attention` with one head): the same modules and state-dict names, so `sd-vae-ft-ema`-style
 * safetensors load unchanged.
 *
 * State-dict keys (C_i = blockOutChannels[i], L = latentChannels, R = layersPerBlock):
 *   encoder.conv_in (3×3, in → C_0)
 *   encoder.down_blocks.{i}.resnets.{j}.{norm1, conv1, norm2, conv2[, conv_shortcut (1×1)]}, j < R
 *   encoder.down_blocks.{i}.downsamplers.0.conv (3×3 stride 2 after padding (0, 1, 0, 1)), i < last
 *   encoder.mid_block.resnets.{0,1}, encoder.mid_block.attentions.0.{group_norm, to_q, to_k, to_v, to_out.0}
 *   encoder.conv_norm_out, encoder.conv_out (3×3, C_last → 2L)
 *   quant_conv (1×1, 2L → 2L), post_quant_conv (1×1, L → L)
 *   decoder.conv_in (3×3, L → C_last), decoder.mid_block (as the encoder's)
 *   decoder.up_blocks.{i}.resnets.{j}, j ≤ R (channels reversed), decoder.up_blocks.{i}.upsamplers.0.conv
 *   (nearest 2× then 3×3), i < last
 *   decoder.conv_norm_out, decoder.conv_out (3×3, C_0 → out)
 * Older checkpoints name the attention weights `query`/`key`/`value`/`proj_attn` (sometimes as 1×1 conv
 * weights [C, C, 1, 1]); {@link AutoencoderKL.fromHost} maps them to the new names.
 * @module
 */

import { abs, add, addScalar, exp, mul, scale, silu, sub } from "../tensor/ops/elementwise.ts";
import { linear, matmul } from "../tensor/ops/matmul.ts";
import { attention, ATTENTION_MAX_HEAD_DIM } from "../tensor/ops/attention.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { chunk, permute, reshape } from "../tensor/ops/layout.ts";
import { conv2d, upsampleNearest } from "../tensor/ops/conv.ts";
import { groupNorm } from "../tensor/ops/groupnorm.ts";
import { fmtShape, type Tensor } from "../tensor/tensor.ts";
import type { HostTensor, InitRng } from "./host_tensor.ts";
import { Conv2dParams, fanIn, Linear, Model, Module, NormParams, type ParamInfo } from "./module.ts";

/** The configuration of an AutoencoderKL (diffusers' config names in camelCase). */
export interface AutoencoderKLConfig {
  name: string;
  inChannels: number;
  outChannels: number;
  /** Output channels of each resolution level; the encoder halves the resolution between levels. */
  blockOutChannels: number[];
  /** ResNet blocks per encoder level (the decoder has one more per level). */
  layersPerBlock: number;
  latentChannels: number;
  /** GroupNorm groups; must divide every channel count. */
  normNumGroups: number;
  /** Latents are multiplied by this before diffusion (SD: 0.18215). */
  scalingFactor: number;
}

/** The Stable Diffusion VAE (`stabilityai/sd-vae-ft-ema`): 8× downsampling, 4 latent channels. */
export const SD_VAE: AutoencoderKLConfig = {
  name: "sd-vae",
  inChannels: 3,
  outChannels: 3,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  latentChannels: 4,
  normNumGroups: 32,
  scalingFactor: 0.18215,
};

/** ditflow's small VAE of the same architecture: 32×32×3 images ↔ 8×8×4 latents (4× downsampling). */
export const SMALL_VAE: AutoencoderKLConfig = {
  name: "vae-small",
  inChannels: 3,
  outChannels: 3,
  blockOutChannels: [32, 64, 64],
  layersPerBlock: 2,
  latentChannels: 4,
  normNumGroups: 16,
  scalingFactor: 0.18215,
};

/** Spatial downsampling factor of a config (2^(levels − 1)). */
export function downsampleFactor(cfg: AutoencoderKLConfig): number {
  return 2 ** (cfg.blockOutChannels.length - 1);
}

const EPS = 1e-6;

/** Name, shape and trainability of one parameter, in diffusers' module order. */
export type VaeParamSpec = ParamInfo;

/** Checks a config; throws naming the problem. */
export function checkVaeConfig(cfg: AutoencoderKLConfig): void {
  const chans = [...cfg.blockOutChannels];
  if (chans.length < 1) throw new Error(`${cfg.name}: blockOutChannels is empty`);
  for (const c of chans) {
    if (c % cfg.normNumGroups !== 0) {
      throw new Error(`${cfg.name}: normNumGroups ${cfg.normNumGroups} does not divide ${c} channels`);
    }
  }
  if (cfg.layersPerBlock < 1) throw new Error(`${cfg.name}: layersPerBlock must be ≥ 1`);
}

/** The parameter layout of a config, in diffusers' module order. */
export function vaeParamSpecs(cfg: AutoencoderKLConfig): VaeParamSpec[] {
  return new AutoencoderKL(cfg).specs;
}

/** Initial host values: PyTorch's default initialisation (U(±1/√fan_in) for convs and linears). */
export function initVaeParams(cfg: AutoencoderKLConfig, rng: InitRng): Map<string, HostTensor> {
  return new AutoencoderKL(cfg).initHost(rng);
}

/** PyTorch's default Conv2d init: weight and bias U(±1/√(in·k·k)). */
class Conv extends Conv2dParams {
  constructor(parent: Module, name: string, out: number, inp: number, k: number) {
    const f = fanIn(inp * k * k);
    super(parent, name, inp, out, k, { weight: f, bias: f });
  }

  apply(x: Tensor, padding: 0 | 1 | [number, number, number, number] = 1, stride = 1): Tensor {
    return conv2d(x, this.weight.value, this.bias.value, stride === 1 ? { padding } : { stride, padding });
  }
}

/** A GroupNorm with affine parameters. */
class GroupNorm extends NormParams {
  constructor(parent: Module, name: string, c: number, readonly groups: number) {
    super(parent, name, c);
  }

  apply(x: Tensor): Tensor {
    return groupNorm(x, this.groups, this.weight.value, this.bias.value, EPS);
  }
}

/** `ResnetBlock2D` without time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))). */
class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv;
  readonly norm2: GroupNorm;
  readonly conv2: Conv;
  readonly convShortcut: Conv | null;
  constructor(parent: Module, name: string, inp: number, out: number, groups: number) {
    super(parent, name);
    this.norm1 = new GroupNorm(this, "norm1", inp, groups);
    this.conv1 = new Conv(this, "conv1", out, inp, 3);
    this.norm2 = new GroupNorm(this, "norm2", out, groups);
    this.conv2 = new Conv(this, "conv2", out, out, 3);
    this.convShortcut = inp !== out ? new Conv(this, "conv_shortcut", out, inp, 1) : null;
  }

  forward(x: Tensor): Tensor {
    let h = this.conv1.apply(silu(this.norm1.apply(x)));
    h = this.conv2.apply(silu(this.norm2.apply(h)));
    const shortcut = this.convShortcut ? this.convShortcut.apply(x, 0) : x;
    return add(shortcut, h);
  }
}

/** diffusers' `Attention` with one head over the h·w positions, GroupNorm first, with a residual. */
class SpatialAttention extends Module {
  readonly groupNorm: GroupNorm;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;
  constructor(parent: Module, name: string, c: number, groups: number) {
    super(parent, name);
    const f = { weight: fanIn(c), bias: fanIn(c) };
    this.groupNorm = new GroupNorm(this, "group_norm", c, groups);
    this.toQ = new Linear(this, "to_q", c, c, f);
    this.toK = new Linear(this, "to_k", c, c, f);
    this.toV = new Linear(this, "to_v", c, c, f);
    this.toOut = new Linear(this, "to_out.0", c, c, f);
  }

  forward(x: Tensor): Tensor {
    const [N, C, H, W] = x.shape;
    const T = H * W;
    const hs = permute(reshape(this.groupNorm.apply(x), [N, C, T]), [0, 2, 1]); // [N, T, C]
    const lin = (l: Linear, t: Tensor) => linear(t, l.weight.value, l.bias.value);
    const q = lin(this.toQ, hs);
    const k = lin(this.toK, hs);
    const v = lin(this.toV, hs);
    let o: Tensor;
    if (C <= ATTENTION_MAX_HEAD_DIM) {
      const heads = (t: Tensor) => reshape(t, [N, 1, T, C]);
      o = reshape(attention(heads(q), heads(k), heads(v)), [N, T, C]);
    } else {
      // Head dims beyond the fused kernel's limit (SD: 512): scores, softmax and the weighted sum.
      const scores = scale(matmul(q, k, { transB: true }), 1 / Math.sqrt(C)); // [N, T, T]
      o = matmul(softmax(scores), v);
    }
    const out = permute(lin(this.toOut, o), [0, 2, 1]); // [N, C, T]
    return add(reshape(out, [N, C, H, W]), x);
  }
}

/** `UNetMidBlock2D`: resnet, attention, resnet. */
class MidBlock extends Module {
  readonly resnet0: ResnetBlock2D;
  readonly attention: SpatialAttention;
  readonly resnet1: ResnetBlock2D;
  constructor(parent: Module, name: string, c: number, groups: number) {
    super(parent, name);
    this.resnet0 = new ResnetBlock2D(this, "resnets.0", c, c, groups);
    this.attention = new SpatialAttention(this, "attentions.0", c, groups);
    this.resnet1 = new ResnetBlock2D(this, "resnets.1", c, c, groups);
  }

  forward(x: Tensor): Tensor {
    return this.resnet1.forward(this.attention.forward(this.resnet0.forward(x)));
  }
}

/** One resolution level: resnets, then a down- or upsampler (all but the last level). */
class Level extends Module {
  readonly resnets: ResnetBlock2D[];
  readonly sampler: Conv | null;
  constructor(
    parent: Module,
    name: string,
    inp: number,
    out: number,
    layers: number,
    groups: number,
    sampler: "downsamplers" | "upsamplers" | null,
  ) {
    super(parent, name);
    this.resnets = Array.from(
      { length: layers },
      (_, j) => new ResnetBlock2D(this, `resnets.${j}`, j === 0 ? inp : out, out, groups),
    );
    this.sampler = sampler ? new Conv(this, `${sampler}.0.conv`, out, out, 3) : null;
  }
}

/** diffusers' `Encoder`. */
class Encoder extends Module {
  readonly convIn: Conv;
  readonly downBlocks: Level[];
  readonly midBlock: MidBlock;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv;
  constructor(parent: Module, cfg: AutoencoderKLConfig) {
    super(parent, "encoder");
    const chans = cfg.blockOutChannels;
    const last = chans[chans.length - 1];
    const G = cfg.normNumGroups;
    this.convIn = new Conv(this, "conv_in", chans[0], cfg.inChannels, 3);
    let out = chans[0];
    this.downBlocks = chans.map((c, i) => {
      const inp = out;
      out = c;
      return new Level(
        this,
        `down_blocks.${i}`,
        inp,
        out,
        cfg.layersPerBlock,
        G,
        i < chans.length - 1 ? "downsamplers" : null,
      );
    });
    this.midBlock = new MidBlock(this, "mid_block", last, G);
    this.convNormOut = new GroupNorm(this, "conv_norm_out", last, G);
    this.convOut = new Conv(this, "conv_out", 2 * cfg.latentChannels, last, 3);
  }

  forward(x: Tensor): Tensor {
    let h = this.convIn.apply(x);
    for (const level of this.downBlocks) {
      for (const r of level.resnets) h = r.forward(h);
      // Downsample2D(padding=0): pad right and bottom by one, then a stride-2 3×3 conv.
      if (level.sampler) h = level.sampler.apply(h, [0, 1, 0, 1], 2);
    }
    h = this.midBlock.forward(h);
    h = silu(this.convNormOut.apply(h));
    return this.convOut.apply(h);
  }
}

/** diffusers' `Decoder`. */
class Decoder extends Module {
  readonly convIn: Conv;
  readonly midBlock: MidBlock;
  readonly upBlocks: Level[];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv;
  constructor(parent: Module, cfg: AutoencoderKLConfig) {
    super(parent, "decoder");
    const chans = cfg.blockOutChannels;
    const last = chans[chans.length - 1];
    const G = cfg.normNumGroups;
    this.convIn = new Conv(this, "conv_in", last, cfg.latentChannels, 3);
    this.midBlock = new MidBlock(this, "mid_block", last, G);
    const rev = [...chans].reverse();
    let out = rev[0];
    this.upBlocks = rev.map((c, i) => {
      const prev = out;
      out = c;
      return new Level(
        this,
        `up_blocks.${i}`,
        prev,
        out,
        cfg.layersPerBlock + 1,
        G,
        i < rev.length - 1 ? "upsamplers" : null,
      );
    });
    this.convNormOut = new GroupNorm(this, "conv_norm_out", chans[0], G);
    this.convOut = new Conv(this, "conv_out", cfg.outChannels, chans[0], 3);
  }

  forward(z: Tensor): Tensor {
    let h = this.convIn.apply(z);
    h = this.midBlock.forward(h);
    for (const level of this.upBlocks) {
      for (const r of level.resnets) h = r.forward(h);
      if (level.sampler) h = level.sampler.apply(upsampleNearest(h, 2));
    }
    h = silu(this.convNormOut.apply(h));
    return this.convOut.apply(h);
  }
}

const OLD_ATTENTION_NAMES: [RegExp, string][] = [
  [/\.attentions\.0\.query\./, ".attentions.0.to_q."],
  [/\.attentions\.0\.key\./, ".attentions.0.to_k."],
  [/\.attentions\.0\.value\./, ".attentions.0.to_v."],
  [/\.attentions\.0\.proj_attn\./, ".attentions.0.to_out.0."],
];

/** Maps old diffusers attention names (query/key/value/proj_attn, 1×1-conv shaped) to the new ones. */
function modernise(name: string, h: HostTensor): [string, HostTensor] {
  for (const [re, rep] of OLD_ATTENTION_NAMES) {
    if (re.test(name)) {
      const n = name.replace(re, rep);
      const shape = h.shape.length === 4 && h.shape[2] === 1 && h.shape[3] === 1
        ? h.shape.slice(0, 2)
        : h.shape;
      return [n, { shape, data: h.data }];
    }
  }
  return [name, h];
}

/** The diagonal Gaussian posterior q(z | x) of the encoder (diffusers' `DiagonalGaussianDistribution`). */
export class DiagonalGaussianDistribution {
  /** [N, L, h, w] */
  readonly mean: Tensor;
  /** log σ², clamped to [−30, 20]. [N, L, h, w] */
  readonly logvar: Tensor;
  /** σ = exp(logvar / 2). */
  readonly std: Tensor;

  /** From the quant_conv output [N, 2L, h, w] (mean first, then logvar, along channels). */
  constructor(moments: Tensor) {
    const [mean, logvar] = chunk(moments, 2, 1);
    this.mean = mean;
    this.logvar = clamp(logvar, -30, 20);
    this.std = exp(scale(this.logvar, 0.5));
  }

  /** mean + std · noise, with `noise` a standard normal tensor of the mean's shape. */
  sample(noise: Tensor): Tensor {
    return add(this.mean, mul(this.std, noise));
  }

  /** The mode (the mean). */
  mode(): Tensor {
    return this.mean;
  }

  /** KL(q ‖ N(0, I)) per sample, [N]: 0.5 Σ (mean² + var − 1 − logvar) over (L, h, w). */
  kl(): Tensor {
    const var_ = exp(this.logvar);
    const t = sub(addScalar(add(mul(this.mean, this.mean), var_), -1), this.logvar);
    return scale(sum(t, [1, 2, 3]), 0.5);
  }
}

/** relu(d) = (d + |d|) / 2: exactly 0 for d ≤ 0. */
function relu(d: Tensor): Tensor {
  return scale(add(d, abs(d)), 0.5);
}

/**
 * clamp(x, lo, hi) = y − relu(y − hi) with y = x + relu(lo − x): exactly x inside [lo, hi] (the relu
 * terms are exactly 0 there), gradient 1 inside and 0 outside.
 */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  const y = add(x, relu(addScalar(scale(x, -1), lo)));
  return sub(y, relu(addScalar(y, -hi)));
}

/** An AutoencoderKL on the GPU. */
export class AutoencoderKL extends Model {
  readonly cfg: AutoencoderKLConfig;
  readonly encoderNet: Encoder;
  readonly decoderNet: Decoder;
  readonly quantConv: Conv;
  readonly postQuantConv: Conv;

  /** The module tree of a config, parameters registered but not loaded (see {@link AutoencoderKL.init}). */
  constructor(cfg: AutoencoderKLConfig) {
    super(cfg.name);
    checkVaeConfig(cfg);
    this.cfg = cfg;
    const L = cfg.latentChannels;
    this.encoderNet = new Encoder(this, cfg);
    this.decoderNet = new Decoder(this, cfg);
    this.quantConv = new Conv(this, "quant_conv", 2 * L, 2 * L, 1);
    this.postQuantConv = new Conv(this, "post_quant_conv", L, L, 1);
  }

  /** A freshly initialised model (PyTorch's default initialisation). */
  static init(cfg: AutoencoderKLConfig, rng: InitRng): AutoencoderKL {
    const m = new AutoencoderKL(cfg);
    return m.load(m.initHost(rng));
  }

  /**
   * A model from host tensors (a diffusers state dict), checked against the config's layout; old
   * attention names are mapped. Throws {@link StateDictError} naming missing, unexpected and misshapen keys.
   */
  static fromHost(
    cfg: AutoencoderKLConfig,
    state: Map<string, HostTensor> | Record<string, HostTensor>,
  ): AutoencoderKL {
    const raw = state instanceof Map ? state : new Map(Object.entries(state));
    const map = new Map<string, HostTensor>();
    for (const [k, v] of raw) {
      const [n, h] = modernise(k, v);
      map.set(n, h);
    }
    return new AutoencoderKL(cfg).load(map);
  }

  /** The encoder: images [N, in, H, W] → [N, 2L, H/f, W/f] (before quant_conv). */
  encoder(x: Tensor): Tensor {
    const cfg = this.cfg;
    if (x.ndim !== 4 || x.shape[1] !== cfg.inChannels) {
      throw new Error(
        `${cfg.name}: encoder input has shape ${fmtShape(x.shape)}, expected [N, ${cfg.inChannels}, H, W]`,
      );
    }
    const f = downsampleFactor(cfg);
    if (x.shape[2] % f !== 0 || x.shape[3] % f !== 0) {
      throw new Error(`${cfg.name}: image size ${x.shape[2]}×${x.shape[3]} is not a multiple of ${f}`);
    }
    return this.encoderNet.forward(x);
  }

  /** The decoder: latents [N, L, h, w] (after post_quant_conv) → images [N, out, h·f, w·f]. */
  decoder(z: Tensor): Tensor {
    return this.decoderNet.forward(z);
  }

  /** `AutoencoderKL.encode`: the posterior q(z | x) from images [N, in, H, W] (in [-1, 1]). */
  encode(x: Tensor): DiagonalGaussianDistribution {
    return new DiagonalGaussianDistribution(this.quantConv.apply(this.encoder(x), 0));
  }

  /** `AutoencoderKL.decode`: images from latents z [N, L, h, w] (unscaled: divide by scalingFactor first). */
  decode(z: Tensor): Tensor {
    const cfg = this.cfg;
    if (z.ndim !== 4 || z.shape[1] !== cfg.latentChannels) {
      throw new Error(
        `${cfg.name}: latents have shape ${fmtShape(z.shape)}, expected [N, ${cfg.latentChannels}, h, w]`,
      );
    }
    return this.decoder(this.postQuantConv.apply(z, 0));
  }

  /** Reconstruction through the posterior: decode(sample(noise)) or decode(mode()) without noise. */
  forward(x: Tensor, noise?: Tensor): { recon: Tensor; posterior: DiagonalGaussianDistribution } {
    const posterior = this.encode(x);
    const z = noise ? posterior.sample(noise) : posterior.mode();
    return { recon: this.decode(z), posterior };
  }
}
