/**
 * The Masked Diffusion Transformer (MDTv2: Gao et al., "Masked Diffusion Transformer is a Strong Image
 * Synthesizer", ICCV 2023 and its v2 revision), read like `masked_diffusion/models.py` of sail-sg/MDT, with
 * its state-dict names. An adaLN-Zero DiT whose attention adds a learned relative position bias (BEiT's),
 * split into an encoder (⌊(depth − decode_layers)/2⌋ `en_inblocks` feeding as many `en_outblocks` through
 * long skips) and a decoder (`decode_layers` `de_blocks`, each mixing in the embedded input through its own
 * `skip_linear`). In training a share of the patch tokens is masked (per sample, ratio mask_ratio + 0.2·u):
 * the encoder sees only the kept tokens, the side-interpolator (`sideblocks`: one block over the kept tokens
 * and learned `mask_token`s at the masked positions, plus `decoder_pos_embed`) predicts the masked ones,
 * and a masked shortcut keeps the encoder's output at the kept positions. Sampling runs the full model
 * without masks (encoder on every token, then `decoder_pos_embed`, no side-interpolator).
 *
 * State-dict keys, in the official order: pos_embed, decoder_pos_embed, mask_token (learned; the two
 * position tables start as DiT's sin-cos), x_embedder, t_embedder, y_embedder (as DiT),
 * {en_inblocks.i, en_outblocks.i, de_blocks.i, sideblocks.0}.{attn.qkv, attn.proj,
 * attn.rel_pos_bias.relative_position_bias_table [(2g − 1)² + 3, H], mlp.fc1, mlp.fc2, adaLN_modulation.1
 * [, skip_linear]}, final_layer.{linear, adaLN_modulation.1}. The official `relative_position_index` buffers
 * (int64, computed from the grid) are not stored here; the loader ignores them when a checkpoint has them.
 * @module
 */

import { derived, type DiTConfig, validateConfig } from "./config.ts";
import { add, broadcastTo, mul, scale, silu } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { mergeHeads, splitHeads } from "../tensor/ops/attention.ts";
import { addGated, layerNormModulate } from "../tensor/ops/layernorm.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import { chunk, concat, gatherRows, permute, reshape, unpatchify } from "../tensor/ops/layout.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import type { HostTensor, InitRng } from "./host_tensor.ts";
import {
  applyLinear,
  checkInput,
  FinalLayer,
  LabelEmbedder,
  LN_EPS,
  Mlp,
  PatchEmbed,
  sincosPosEmbed,
  TimestepEmbedder,
} from "./dit.ts";
import { fixed, Linear, Model, Module, normal, type Parameter, xavier, zeros } from "./module.ts";

/** MDT's default mask ratio (the official training script's 0.3; the ratio drawn is this + 0.2·u). */
export const MDT_MASK_RATIO = 0.3;

/** A training mask for a batch: which tokens each sample keeps, in MDT's shuffled order. */
export interface MdtMask {
  /** Tokens per sample. */
  tokens: number;
  /** Kept tokens per sample. */
  keep: number;
  /** ids_keep: per sample, the kept token indices in shuffled order, [N · keep]. */
  idsKeep: Uint32Array;
  /** ids_restore: per sample, the position of token j in the shuffled order, [N · tokens]. */
  idsRestore: Uint32Array;
  /** 1 where masked, 0 where kept, [N · tokens]. */
  mask: Float32Array;
}

/**
 * MDT's `random_masking` from uniform draws: `ratioU` ~ U[0, 1) gives the ratio maskRatio + 0.2·ratioU
 * (one per batch) and `noise` [N · L] the per-sample shuffle (argsort ascending; ties by index).
 */
export function maskFromUniforms(
  N: number,
  L: number,
  maskRatio: number,
  ratioU: number,
  noise: ArrayLike<number>,
): MdtMask {
  const ratio = maskRatio + 0.2 * ratioU;
  const keep = Math.max(1, Math.floor(L * (1 - ratio)));
  const idsKeep = new Uint32Array(N * keep);
  const idsRestore = new Uint32Array(N * L);
  const mask = new Float32Array(N * L);
  for (let n = 0; n < N; n++) {
    const order = Array.from({ length: L }, (_, j) => j);
    order.sort((a, b) => noise[n * L + a] - noise[n * L + b] || a - b);
    order.forEach((tok, pos) => {
      idsRestore[n * L + tok] = pos;
      if (pos < keep) idsKeep[n * keep + pos] = tok;
      else mask[n * L + tok] = 1;
    });
  }
  return { tokens: L, keep, idsKeep, idsRestore, mask };
}

/** BEiT's relative position index of a g×g grid: index[i, j] for tokens i, j in row-major order. */
export function relativePositionIndex(g: number): Uint32Array {
  const T = g * g;
  const out = new Uint32Array(T * T);
  for (let i = 0; i < T; i++) {
    const hi = Math.floor(i / g), wi = i % g;
    for (let j = 0; j < T; j++) {
      const hj = Math.floor(j / g), wj = j % g;
      out[i * T + j] = (hi - hj + g - 1) * (2 * g - 1) + (wi - wj + g - 1);
    }
  }
  return out;
}

/** `RelativePositionBias`: a table [(2g − 1)² + 3, heads], N(0, 0.02²). */
class RelativePositionBias extends Module {
  readonly table: Parameter;
  readonly index: Uint32Array;
  constructor(parent: Module, name: string, readonly g: number, heads: number) {
    super(parent, name);
    this.table = this.param("relative_position_bias_table", [(2 * g - 1) ** 2 + 3, heads], normal(0.02));
    this.index = relativePositionIndex(g);
  }

  /** The bias [N or 1, H, L, L] for all tokens, or for each sample's kept tokens. */
  forward(mask: MdtMask | null, N: number): Tensor {
    const T = this.g * this.g;
    const H = this.table.shape[1];
    if (!mask) {
      const b = embedding(this.table.value, tensor(this.index, [T * T], "u32")); // [T·T, H]
      return permute(reshape(b, [1, T, T, H]), [0, 3, 1, 2]);
    }
    const K = mask.keep;
    const idx = new Uint32Array(N * K * K);
    for (let n = 0; n < N; n++) {
      for (let a = 0; a < K; a++) {
        const i = mask.idsKeep[n * K + a];
        for (let b = 0; b < K; b++) idx[(n * K + a) * K + b] = this.index[i * T + mask.idsKeep[n * K + b]];
      }
    }
    const b = embedding(this.table.value, tensor(idx, [N * K * K], "u32"));
    return permute(reshape(b, [N, K, K, H]), [0, 3, 1, 2]);
  }
}

/** MDT's Attention: qkv with bias, softmax(q·kᵀ/√d + relative position bias)·v, proj. */
class MdtAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly relPosBias: RelativePositionBias;
  constructor(parent: Module, name: string, D: number, readonly heads: number, g: number) {
    super(parent, name);
    this.qkv = new Linear(this, "qkv", D, 3 * D, { weight: xavier(D, 3 * D), bias: zeros });
    this.proj = new Linear(this, "proj", D, D, { weight: xavier(D, D), bias: zeros });
    this.relPosBias = new RelativePositionBias(this, "rel_pos_bias", g, heads);
  }

  forward(h: Tensor, mask: MdtMask | null): Tensor {
    const [N, , D] = h.shape;
    const { q, k, v } = splitHeads(applyLinear(this.qkv, h), this.heads); // [N, H, L, Dh]
    const scores = scale(matmul(q, k, { transB: true }), 1 / Math.sqrt(D / this.heads));
    const p = softmax(add(scores, this.relPosBias.forward(mask, N)));
    return applyLinear(this.proj, mergeHeads(matmul(p, v)));
  }
}

/** `MDTBlock`: an adaLN-Zero DiT block with MDT's attention and an optional skip_linear. */
class MDTBlock extends Module {
  readonly attn: MdtAttention;
  readonly mlp: Mlp;
  readonly adaLN: Linear;
  readonly skipLinear: Linear | null;
  constructor(parent: Module, name: string, cfg: DiTConfig, g: number, skip: boolean) {
    super(parent, name);
    const D = cfg.hiddenSize;
    this.attn = new MdtAttention(this, "attn", D, cfg.numHeads, g);
    this.mlp = new Mlp(this, "mlp", D, derived(cfg).mlpHidden);
    this.adaLN = new Linear(this, "adaLN_modulation.1", D, 6 * D, { weight: zeros, bias: zeros });
    this.skipLinear = skip
      ? new Linear(this, "skip_linear", 2 * D, D, { weight: xavier(2 * D, D), bias: zeros })
      : null;
  }

  forward(x: Tensor, sc: Tensor, skip: Tensor | null, mask: MdtMask | null): Tensor {
    if (this.skipLinear) x = applyLinear(this.skipLinear, concat([x, skip!], 2));
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = chunk(
      applyLinear(this.adaLN, sc),
      6,
      1,
    );
    x = addGated(
      x,
      this.attn.forward(layerNormModulate(x, shiftMsa, scaleMsa, { eps: LN_EPS }), mask),
      gateMsa,
    );
    return addGated(x, this.mlp.forward(layerNormModulate(x, shiftMlp, scaleMlp, { eps: LN_EPS })), gateMlp);
  }
}

/** Encoder and decoder block counts of a config: half = ⌊(depth − decodeLayers)/2⌋. */
export function mdtLayout(cfg: DiTConfig): { half: number; decode: number } {
  const decode = cfg.decodeLayers ?? 0;
  return { half: Math.floor((cfg.depth - decode) / 2), decode };
}

/** Checks that a config can be an MDT. */
export function checkMdtConfig(cfg: DiTConfig): void {
  validateConfig(cfg);
  const { half, decode } = mdtLayout(cfg);
  if (half < 1) {
    throw new Error(`${cfg.name}: MDT needs depth − decode_layers ≥ 2 (got depth ${cfg.depth}, ${decode})`);
  }
  if (cfg.block !== "adaLN-Zero") throw new Error(`${cfg.name}: MDT uses adaLN-Zero blocks only`);
}

/** An MDT on the GPU. */
export class MDT extends Model {
  readonly cfg: DiTConfig;
  readonly posEmbed: Parameter;
  readonly decoderPosEmbed: Parameter;
  readonly maskToken: Parameter;
  readonly xEmbedder: PatchEmbed;
  readonly tEmbedder: TimestepEmbedder;
  readonly yEmbedder: LabelEmbedder;
  readonly enInblocks: MDTBlock[];
  readonly enOutblocks: MDTBlock[];
  readonly deBlocks: MDTBlock[];
  readonly sideblocks: MDTBlock[];
  readonly finalLayer: FinalLayer;
  /** Width of the timestep frequency embedding the forward takes. */
  readonly timestepDim = 256;

  /** The module tree of a config, parameters registered but not loaded (see {@link MDT.init}). */
  constructor(cfg: DiTConfig) {
    super(cfg.name);
    checkMdtConfig(cfg);
    this.cfg = cfg;
    const D = cfg.hiddenSize;
    const { tokens, outChannels } = derived(cfg);
    const g = Math.round(Math.sqrt(tokens));
    const sincos = fixed(() => sincosPosEmbed(D, g));
    this.posEmbed = this.param("pos_embed", [1, tokens, D], sincos);
    this.decoderPosEmbed = this.param("decoder_pos_embed", [1, tokens, D], sincos);
    this.maskToken = this.param("mask_token", [1, 1, D], normal(0.02));
    this.xEmbedder = new PatchEmbed(this, "x_embedder", cfg.inChannels, D, cfg.patchSize);
    this.tEmbedder = new TimestepEmbedder(this, "t_embedder", D);
    this.yEmbedder = new LabelEmbedder(
      this,
      "y_embedder",
      cfg.numClasses + (cfg.classDropoutProb > 0 ? 1 : 0),
      D,
    );
    const { half, decode } = mdtLayout(cfg);
    const blocks = (prefix: string, n: number, skip: boolean) =>
      Array.from({ length: n }, (_, i) => new MDTBlock(this, `${prefix}.${i}`, cfg, g, skip));
    this.enInblocks = blocks("en_inblocks", half, false);
    this.enOutblocks = blocks("en_outblocks", half, true);
    this.deBlocks = blocks("de_blocks", decode, true);
    this.sideblocks = blocks("sideblocks", 1, false);
    this.finalLayer = new FinalLayer(this, "final_layer", D, cfg.patchSize ** 2 * outChannels, true, true);
  }

  /** A freshly initialised model (MDT's initialize_weights, drawn in state-dict order). */
  static init(cfg: DiTConfig, rng: InitRng): MDT {
    const m = new MDT(cfg);
    return m.load(m.initHost(rng));
  }

  /** A model from host tensors (a state dict); the official `relative_position_index` buffers are ignored. */
  static fromHost(cfg: DiTConfig, state: Map<string, HostTensor> | Record<string, HostTensor>): MDT {
    return new MDT(cfg).load(state, (k) => k.endsWith(".relative_position_index"));
  }

  /**
   * Forward pass as the official `forward(x, t, y, enable_mask)`: without `mask` the full model (sampling);
   * with `mask` the training branch (kept tokens through the encoder, the side-interpolator, the decoder).
   * `tEmb` [N, 256] as DiT's. Returns [N, outChannels, H, W]. Call inside `tidy`.
   */
  forward(x: Tensor, tEmb: Tensor, y: Tensor, mask: MdtMask | null = null): Tensor {
    const cfg = this.cfg;
    checkInput(cfg, x, tEmb, y);
    const [N] = x.shape;
    const D = cfg.hiddenSize;
    const { tokens: T, outChannels } = derived(cfg);
    let h = add(this.xEmbedder.forward(x), this.posEmbed.value); // [N, T, D]
    const c = add(this.tEmbedder.forward(tEmb), this.yEmbedder.forward(y));
    const sc = silu(c);
    const inputSkip = h;
    if (mask) {
      const rows = new Uint32Array(N * mask.keep);
      for (let n = 0; n < N; n++) {
        for (let a = 0; a < mask.keep; a++) rows[n * mask.keep + a] = n * T + mask.idsKeep[n * mask.keep + a];
      }
      h = reshape(gatherRows(reshape(h, [N * T, D]), tensor(rows, [rows.length], "u32")), [N, mask.keep, D]);
    }
    const skips: Tensor[] = [];
    for (const b of this.enInblocks) {
      h = b.forward(h, sc, null, mask);
      skips.push(h);
    }
    for (const b of this.enOutblocks) h = b.forward(h, sc, skips.pop()!, mask);
    if (mask) h = this.#sideInterpolator(h, sc, mask);
    else h = add(h, this.decoderPosEmbed.value);
    for (const b of this.deBlocks) h = b.forward(h, sc, inputSkip, null);
    return unpatchify(this.finalLayer.forward(h, sc), cfg.patchSize, outChannels);
  }

  /** `forward_side_interpolater`: mask tokens in, unshuffle, decoder_pos_embed, side block, masked shortcut. */
  #sideInterpolator(h: Tensor, sc: Tensor, mask: MdtMask): Tensor {
    const [N, K, D] = h.shape;
    const T = mask.tokens;
    const tokens = broadcastTo(this.maskToken.value, [N, T - K, D]);
    const full = reshape(concat([h, tokens], 1), [N * T, D]);
    const rows = new Uint32Array(N * T);
    for (let n = 0; n < N; n++) {
      for (let j = 0; j < T; j++) rows[n * T + j] = n * T + mask.idsRestore[n * T + j];
    }
    let x = add(
      reshape(gatherRows(full, tensor(rows, [N * T], "u32")), [N, T, D]),
      this.decoderPosEmbed.value,
    );
    const before = x;
    for (const b of this.sideblocks) x = b.forward(x, sc, null, null);
    const m = tensor(mask.mask, [N, T, 1]);
    const keep = tensor(Float32Array.from(mask.mask, (v) => 1 - v), [N, T, 1]);
    return add(mul(x, m), mul(keep, before)); // the masked shortcut: x·mask + (1 − mask)·x_before
  }
}
