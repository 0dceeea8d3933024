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
import { fmtShape, type Tensor, tensor } from "../tensor/tensor.ts";
import { type HostTensor, type InitRng, StateDictError } from "./host_tensor.ts";

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

/** One parameter of the layout: name, shape, and PyTorch's default initialisation kind. */
export interface VaeParamSpec {
  name: string;
  shape: number[];
  /** `fanin`: U(±1/√fan_in) (PyTorch's default for Conv2d/Linear weights and biases); `ones`/`zeros`: norms. */
  init: "fanin" | "ones" | "zeros";
  fanIn: number;
}

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
  checkVaeConfig(cfg);
  const specs: VaeParamSpec[] = [];
  const conv = (name: string, out: number, inp: number, k: number) => {
    const fanIn = inp * k * k;
    specs.push({ name: `${name}.weight`, shape: [out, inp, k, k], init: "fanin", fanIn });
    specs.push({ name: `${name}.bias`, shape: [out], init: "fanin", fanIn });
  };
  const lin = (name: string, out: number, inp: number) => {
    specs.push({ name: `${name}.weight`, shape: [out, inp], init: "fanin", fanIn: inp });
    specs.push({ name: `${name}.bias`, shape: [out], init: "fanin", fanIn: inp });
  };
  const norm = (name: string, c: number) => {
    specs.push({ name: `${name}.weight`, shape: [c], init: "ones", fanIn: 0 });
    specs.push({ name: `${name}.bias`, shape: [c], init: "zeros", fanIn: 0 });
  };
  const resnet = (name: string, inp: number, out: number) => {
    norm(`${name}.norm1`, inp);
    conv(`${name}.conv1`, out, inp, 3);
    norm(`${name}.norm2`, out);
    conv(`${name}.conv2`, out, out, 3);
    if (inp !== out) conv(`${name}.conv_shortcut`, out, inp, 1);
  };
  const mid = (name: string, c: number) => {
    resnet(`${name}.resnets.0`, c, c);
    const a = `${name}.attentions.0`;
    norm(`${a}.group_norm`, c);
    lin(`${a}.to_q`, c, c);
    lin(`${a}.to_k`, c, c);
    lin(`${a}.to_v`, c, c);
    lin(`${a}.to_out.0`, c, c);
    resnet(`${name}.resnets.1`, c, c);
  };
  const chans = cfg.blockOutChannels;
  const last = chans[chans.length - 1];
  const L = cfg.latentChannels;
  const R = cfg.layersPerBlock;
  // Encoder
  conv("encoder.conv_in", chans[0], cfg.inChannels, 3);
  let out = chans[0];
  chans.forEach((c, i) => {
    const inp = out;
    out = c;
    for (let j = 0; j < R; j++) resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? inp : out, out);
    if (i < chans.length - 1) conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  });
  mid("encoder.mid_block", last);
  norm("encoder.conv_norm_out", last);
  conv("encoder.conv_out", 2 * L, last, 3);
  // Decoder
  conv("decoder.conv_in", last, L, 3);
  mid("decoder.mid_block", last);
  const rev = [...chans].reverse();
  out = rev[0];
  rev.forEach((c, i) => {
    const prev = out;
    out = c;
    for (let j = 0; j <= R; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : out, out);
    if (i < rev.length - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  });
  norm("decoder.conv_norm_out", chans[0]);
  conv("decoder.conv_out", cfg.outChannels, chans[0], 3);
  conv("quant_conv", 2 * L, 2 * L, 1);
  conv("post_quant_conv", L, L, 1);
  return specs;
}

/** Initial host values: PyTorch's default initialisation (U(±1/√fan_in) for convs and linears). */
export function initVaeParams(cfg: AutoencoderKLConfig, rng: InitRng): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const s of vaeParamSpecs(cfg)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (s.init === "ones") data = new Float32Array(n).fill(1);
    else if (s.init === "zeros") data = new Float32Array(n);
    else {
      const bound = 1 / Math.sqrt(s.fanIn);
      data = Float32Array.from(rng.uniform(n), (u) => (2 * u - 1) * bound);
    }
    out.set(s.name, { shape: [...s.shape], data });
  }
  return out;
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
export class AutoencoderKL {
  readonly cfg: AutoencoderKLConfig;
  /** Every parameter by diffusers name, in module order. */
  readonly params: Map<string, Tensor>;
  readonly specs: VaeParamSpec[];

  private constructor(cfg: AutoencoderKLConfig, params: Map<string, Tensor>) {
    this.cfg = cfg;
    this.params = params;
    this.specs = vaeParamSpecs(cfg);
  }

  /** A freshly initialised model (PyTorch's default initialisation). */
  static init(cfg: AutoencoderKLConfig, rng: InitRng): AutoencoderKL {
    return AutoencoderKL.fromHost(cfg, initVaeParams(cfg, rng));
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
    const specs = vaeParamSpecs(cfg);
    const problems: string[] = [];
    for (const s of specs) {
      const h = map.get(s.name);
      if (!h) problems.push(`missing key ${s.name} ${fmtShape(s.shape)}`);
      else if (h.shape.length !== s.shape.length || h.shape.some((d, i) => d !== s.shape[i])) {
        problems.push(
          `${s.name}: checkpoint has shape ${fmtShape(h.shape)}, model expects ${fmtShape(s.shape)}`,
        );
      }
    }
    const known = new Set(specs.map((s) => s.name));
    for (const k of map.keys()) if (!known.has(k)) problems.push(`unexpected key ${k}`);
    if (problems.length) throw new StateDictError(cfg.name, problems);
    const params = new Map<string, Tensor>();
    for (const s of specs) {
      const t = tensor(map.get(s.name)!.data, s.shape, "f32", s.name).keep();
      t.requiresGrad = true;
      params.set(s.name, t);
    }
    return new AutoencoderKL(cfg, params);
  }

  /** The trainable parameters, in module order. */
  trainable(): Tensor[] {
    return this.specs.map((s) => this.params.get(s.name)!);
  }

  /** Reads every parameter back to the host. */
  async stateDict(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const s of this.specs) out.set(s.name, { shape: [...s.shape], data: await this.#p(s.name).data() });
    return out;
  }

  /** Releases the parameters. */
  dispose(): void {
    for (const t of this.params.values()) t.dispose();
  }

  #p(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`internal: no parameter ${name}`);
    return t;
  }

  #conv(name: string, x: Tensor, padding: 0 | 1 = 1): Tensor {
    return conv2d(x, this.#p(`${name}.weight`), this.#p(`${name}.bias`), { padding });
  }

  #norm(name: string, x: Tensor): Tensor {
    return groupNorm(x, this.cfg.normNumGroups, this.#p(`${name}.weight`), this.#p(`${name}.bias`), EPS);
  }

  /** ResnetBlock2D without time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))). */
  #resnet(name: string, x: Tensor): Tensor {
    let h = this.#conv(`${name}.conv1`, silu(this.#norm(`${name}.norm1`, x)));
    h = this.#conv(`${name}.conv2`, silu(this.#norm(`${name}.norm2`, h)));
    const shortcut = this.params.has(`${name}.conv_shortcut.weight`)
      ? this.#conv(`${name}.conv_shortcut`, x, 0)
      : x;
    return add(shortcut, h);
  }

  /** Single-head self-attention over the h·w positions, GroupNorm first, with a residual. */
  #attention(name: string, x: Tensor): Tensor {
    const [N, C, H, W] = x.shape;
    const T = H * W;
    const hs = permute(reshape(this.#norm(`${name}.group_norm`, x), [N, C, T]), [0, 2, 1]); // [N, T, C]
    const lin = (k: string, t: Tensor) =>
      linear(t, this.#p(`${name}.${k}.weight`), this.#p(`${name}.${k}.bias`));
    const q = lin("to_q", hs);
    const k = lin("to_k", hs);
    const v = lin("to_v", hs);
    let o: Tensor;
    if (C <= ATTENTION_MAX_HEAD_DIM) {
      const heads = (t: Tensor) => reshape(t, [N, 1, T, C]);
      o = reshape(attention(heads(q), heads(k), heads(v)), [N, T, C]);
    } else {
      // Head dims beyond the fused kernel's limit (SD: 512): scores, softmax and the weighted sum.
      const scores = scale(matmul(q, k, { transB: true }), 1 / Math.sqrt(C)); // [N, T, T]
      o = matmul(softmax(scores), v);
    }
    const out = permute(lin("to_out.0", o), [0, 2, 1]); // [N, C, T]
    return add(reshape(out, [N, C, H, W]), x);
  }

  #mid(name: string, x: Tensor): Tensor {
    const h = this.#resnet(`${name}.resnets.0`, x);
    return this.#resnet(`${name}.resnets.1`, this.#attention(`${name}.attentions.0`, h));
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
    let h = this.#conv("encoder.conv_in", x);
    const levels = cfg.blockOutChannels.length;
    for (let i = 0; i < levels; i++) {
      for (let j = 0; j < cfg.layersPerBlock; j++) {
        h = this.#resnet(`encoder.down_blocks.${i}.resnets.${j}`, h);
      }
      if (i < levels - 1) {
        // Downsample2D(padding=0): pad right and bottom by one, then a stride-2 3×3 conv.
        const c = `encoder.down_blocks.${i}.downsamplers.0.conv`;
        h = conv2d(h, this.#p(`${c}.weight`), this.#p(`${c}.bias`), { stride: 2, padding: [0, 1, 0, 1] });
      }
    }
    h = this.#mid("encoder.mid_block", h);
    h = silu(this.#norm("encoder.conv_norm_out", h));
    return this.#conv("encoder.conv_out", h);
  }

  /** The decoder: latents [N, L, h, w] (after post_quant_conv) → images [N, out, h·f, w·f]. */
  decoder(z: Tensor): Tensor {
    const cfg = this.cfg;
    let h = this.#conv("decoder.conv_in", z);
    h = this.#mid("decoder.mid_block", h);
    const levels = cfg.blockOutChannels.length;
    for (let i = 0; i < levels; i++) {
      for (let j = 0; j <= cfg.layersPerBlock; j++) {
        h = this.#resnet(`decoder.up_blocks.${i}.resnets.${j}`, h);
      }
      if (i < levels - 1) h = this.#conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, upsampleNearest(h, 2));
    }
    h = silu(this.#norm("decoder.conv_norm_out", h));
    return this.#conv("decoder.conv_out", h);
  }

  /** `AutoencoderKL.encode`: the posterior q(z | x) from images [N, in, H, W] (in [-1, 1]). */
  encode(x: Tensor): DiagonalGaussianDistribution {
    return new DiagonalGaussianDistribution(this.#conv("quant_conv", this.encoder(x), 0));
  }

  /** `AutoencoderKL.decode`: images from latents z [N, L, h, w] (unscaled: divide by scalingFactor first). */
  decode(z: Tensor): Tensor {
    const cfg = this.cfg;
    if (z.ndim !== 4 || z.shape[1] !== cfg.latentChannels) {
      throw new Error(
        `${cfg.name}: latents have shape ${fmtShape(z.shape)}, expected [N, ${cfg.latentChannels}, h, w]`,
      );
    }
    return this.decoder(this.#conv("post_quant_conv", z, 0));
  }

  /** Reconstruction through the posterior: decode(sample(noise)) or decode(mode()) without noise. */
  forward(x: Tensor, noise?: Tensor): { recon: Tensor; posterior: DiagonalGaussianDistribution } {
    const posterior = this.encode(x);
    const z = noise ? posterior.sample(noise) : posterior.mode();
    return { recon: this.decode(z), posterior };
  }
}
