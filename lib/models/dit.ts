/**
 * Diffusion Transformers (DiT), read like the official `models.py` (facebookresearch/DiT): the same
 * modules, the same state-dict names and shapes, the same initialisation, so checkpoints move between
 * PyTorch and ditflow. All four conditioning blocks of the paper are here (see `config.ts`).
 *
 * State-dict keys of the official adaLN-Zero model, in the official order:
 *   pos_embed [1, T, D]
 *   x_embedder.proj.{weight [D, C, p, p], bias}
 *   t_embedder.mlp.0.{weight [D, 256], bias}, t_embedder.mlp.2.{weight [D, D], bias}
 *   y_embedder.embedding_table.weight [classes + 1, D]
 *   blocks.{i}.attn.qkv, blocks.{i}.attn.proj, blocks.{i}.mlp.fc1, blocks.{i}.mlp.fc2,
 *   blocks.{i}.adaLN_modulation.1 (Linear D → 6D)
 *   final_layer.linear (D → p·p·out), final_layer.adaLN_modulation.1 (D → 2D)
 * Variants: `adaLN` has a D → 4D modulation (no gates); `cross-attention` adds
 * blocks.{i}.cross_attn.{q, kv, proj} and has no modulation; `in-context` has neither. With `skips`
 * (U-ViT's long skips, not in the official DiT), the last ⌊depth/2⌋ blocks add blocks.{i}.skip_linear
 * (2D → D) after their adaLN_modulation. Layers declare their parameters where they are built (module.ts);
 * the registration order is the state-dict order and the order of the initialisation draws.
 * @module
 */

import { derived, type DiTConfig } from "./config.ts";
import { add, gelu, silu } from "../tensor/ops/elementwise.ts";
import { linear } from "../tensor/ops/matmul.ts";
import { attention, mergeHeads, splitHeads } from "../tensor/ops/attention.ts";
import { addGated, layerNorm, layerNormModulate } from "../tensor/ops/layernorm.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { chunk, concat, narrow, patchify, permute, reshape, unpatchify } from "../tensor/ops/layout.ts";
import { fmtShape, type Tensor } from "../tensor/tensor.ts";
import type { HostTensor, InitRng } from "./host_tensor.ts";
import {
  Conv2dParams,
  fixed,
  type Init,
  Linear,
  Model,
  Module,
  normal,
  type Parameter,
  type ParamInfo,
  xavier,
  zeros,
} from "./module.ts";

// The shared types live in the leaf module host_tensor.ts; re-exported here for existing importers.
export { type HostTensor, type InitRng, StateDictError } from "./host_tensor.ts";

/** LayerNorm epsilon of every DiT norm. */
export const LN_EPS = 1e-6;

/**
 * The fixed 2-D sin-cos positional embedding of the official code (`get_2d_sincos_pos_embed`), computed
 * in float64: the grid comes from meshgrid(w, h), so the first D/2 dims encode the column (x) and the
 * second D/2 the row (y); each half is [sin | cos] with omega_i = 1/10000^(i/(D/4)).
 */
export function sincosPosEmbed(D: number, gridSize: number): Float32Array {
  const out = new Float32Array(gridSize * gridSize * D);
  const half = D / 2;
  const quarter = half / 2;
  const omega = Float64Array.from({ length: quarter }, (_, i) => 1 / Math.pow(10000, i / quarter));
  for (let h = 0; h < gridSize; h++) {
    for (let w = 0; w < gridSize; w++) {
      const m = h * gridSize + w;
      const row = out.subarray(m * D, (m + 1) * D);
      for (let i = 0; i < quarter; i++) {
        row[i] = Math.sin(w * omega[i]);
        row[quarter + i] = Math.cos(w * omega[i]);
        row[half + i] = Math.sin(h * omega[i]);
        row[half + quarter + i] = Math.cos(h * omega[i]);
      }
    }
  }
  return out;
}

/**
 * The sinusoidal timestep embedding of the official `TimestepEmbedder.timestep_embedding` (dim 256,
 * max period 10000, output [cos | sin]), computed as the official code does in float32.
 * `t` may be fractional (respaced or SiT timesteps).
 */
export function timestepEmbedding(t: ArrayLike<number>, dim = 256, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // torch.exp(-math.log(max_period) * torch.arange(half, dtype=float32) / half), in float32 steps
    freqs[i] = Math.fround(Math.exp(Math.fround(Math.fround(-Math.log(maxPeriod) * i) / half)));
  }
  const out = new Float32Array(t.length * dim);
  for (let n = 0; n < t.length; n++) {
    const tn = Math.fround(t[n]);
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(tn * freqs[i]);
      out[n * dim + i] = Math.cos(arg);
      out[n * dim + half + i] = Math.sin(arg);
    }
    if (dim % 2) out[n * dim + dim - 1] = 0;
  }
  return out;
}

/** Name, shape and trainability of one parameter, in state-dict order. */
export type ParamSpec = ParamInfo;

/** The parameter layout of a config, in the official state-dict order. */
export function paramSpecs(cfg: DiTConfig): ParamSpec[] {
  return new DiT(cfg).specs;
}

/** Initial host values of every parameter, per the official initialisation (drawn in state-dict order). */
export function initParams(cfg: DiTConfig, rng: InitRng): Map<string, HostTensor> {
  return new DiT(cfg).initHost(rng);
}

/** DiT's `_basic_init`: xavier-uniform weights, zero biases. */
const basic = (inp: number, out: number): { weight: Init; bias: Init } => ({
  weight: xavier(inp, out),
  bias: zeros,
});
/** A zero-initialised Linear (adaLN-Zero modulations, the final linear). */
const zeroInit = { weight: zeros, bias: zeros };

/** `PatchEmbed` (timm): the p×p stride-p convolution `proj`, applied as a Linear on flattened patches. */
export class PatchEmbed extends Module {
  readonly proj: Conv2dParams;
  constructor(
    parent: Module,
    name: string,
    readonly inChannels: number,
    D: number,
    readonly p: number,
    init: { weight: Init; bias: Init } = { weight: xavier(inChannels * p * p, D), bias: zeros },
  ) {
    super(parent, name);
    this.proj = new Conv2dParams(this, "proj", inChannels, D, p, init);
  }

  /** [N, C, H, W] → [N, T, D]. */
  forward(x: Tensor): Tensor {
    const w = this.proj.weight.value;
    const patches = patchify(x, this.p); // [N, T, C·p·p]
    return linear(patches, reshape(w, [w.shape[0], this.inChannels * this.p * this.p]), this.proj.bias.value);
  }
}

/** `TimestepEmbedder`: mlp = Linear(256, D), SiLU, Linear(D, D), both N(0, 0.02²) with zero biases. */
export class TimestepEmbedder extends Module {
  readonly mlp0: Linear;
  readonly mlp2: Linear;
  constructor(parent: Module, name: string, D: number, freqDim = 256) {
    super(parent, name);
    this.mlp0 = new Linear(this, "mlp.0", freqDim, D, { weight: normal(0.02), bias: zeros });
    this.mlp2 = new Linear(this, "mlp.2", D, D, { weight: normal(0.02), bias: zeros });
  }

  /** The frequency embedding [N, 256] → [N, D]. */
  forward(tEmb: Tensor): Tensor {
    return linear(
      silu(linear(tEmb, this.mlp0.weight.value, this.mlp0.bias.value)),
      this.mlp2.weight.value,
      this.mlp2.bias.value,
    );
  }
}

/** `LabelEmbedder`: embedding_table [classes (+1 null class with dropout), D], N(0, 0.02²). */
export class LabelEmbedder extends Module {
  readonly table: Parameter;
  constructor(parent: Module, name: string, rows: number, D: number) {
    super(parent, name);
    this.table = new Embedding(this, "embedding_table", rows, D).weight;
  }

  /** Labels u32 [N] → [N, D]. */
  forward(y: Tensor): Tensor {
    return embedding(this.table.value, y);
  }
}

/** `nn.Embedding`: weight [rows, D], N(0, 0.02²) (DiT's init of its label table). */
class Embedding extends Module {
  readonly weight: Parameter;
  constructor(parent: Module, name: string, rows: number, D: number, init: Init = normal(0.02)) {
    super(parent, name);
    this.weight = this.param("weight", [rows, D], init);
  }
}

/** timm's `Attention`: qkv = Linear(D, 3D), multi-head softmax attention, proj = Linear(D, D). */
export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(parent: Module, name: string, D: number, readonly heads: number, init = basic) {
    super(parent, name);
    this.qkv = new Linear(this, "qkv", D, 3 * D, init(D, 3 * D));
    this.proj = new Linear(this, "proj", D, D, init(D, D));
  }

  /** [N, T, D] → [N, T, D]. */
  forward(h: Tensor): Tensor {
    const { q, k, v } = splitHeads(linear(h, this.qkv.weight.value, this.qkv.bias.value), this.heads);
    return linear(mergeHeads(attention(q, k, v)), this.proj.weight.value, this.proj.bias.value);
  }
}

/** The cross-attention of the cross-attention block: q from the tokens, kv from the [t, y] sequence. */
export class CrossAttention extends Module {
  readonly q: Linear;
  readonly kv: Linear;
  readonly proj: Linear;
  constructor(parent: Module, name: string, D: number, readonly heads: number) {
    super(parent, name);
    this.q = new Linear(this, "q", D, D, basic(D, D));
    this.kv = new Linear(this, "kv", D, 2 * D, basic(D, 2 * D));
    this.proj = new Linear(this, "proj", D, D, basic(D, D));
  }

  /** Tokens [N, T, D] attend to `cond` [N, L, D]. */
  forward(h: Tensor, cond: Tensor): Tensor {
    const H = this.heads;
    const [N, T, D] = h.shape;
    const Dh = D / H;
    // [N, L, D] → [N, H, L, Dh], the layout of timm's Attention.
    const heads = (t: Tensor, L: number) => permute(reshape(t, [N, L, H, Dh]), [0, 2, 1, 3]);
    // Queries from the image tokens; keys and values from the 2-token [t, y] condition sequence, with
    // kv's output split as [k | v] along the feature dim.
    const [k, v] = chunk(linear(cond, this.kv.weight.value, this.kv.bias.value), 2, 2);
    const o = attention(
      heads(linear(h, this.q.weight.value, this.q.bias.value), T),
      heads(k, cond.shape[1]),
      heads(v, cond.shape[1]),
    );
    return linear(mergeHeads(o), this.proj.weight.value, this.proj.bias.value);
  }
}

/** timm's `Mlp`: fc1 = Linear(D, hidden), GELU (tanh approximation), fc2 = Linear(hidden, D). */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(parent: Module, name: string, D: number, hidden: number, init = basic) {
    super(parent, name);
    this.fc1 = new Linear(this, "fc1", D, hidden, init(D, hidden));
    this.fc2 = new Linear(this, "fc2", hidden, D, init(hidden, D));
  }

  /** [N, T, D] → [N, T, D]. */
  forward(h: Tensor): Tensor {
    return linear(
      gelu(linear(h, this.fc1.weight.value, this.fc1.bias.value)),
      this.fc2.weight.value,
      this.fc2.bias.value,
    );
  }
}

/** Applies a Linear module. */
export function applyLinear(l: Linear, x: Tensor): Tensor {
  return linear(x, l.weight.value, l.bias.value);
}

/**
 * `DiTBlock` of the four conditioning variants; with `skip`, U-ViT's long-skip input layer
 * `skip_linear = Linear(2D, D)` applied to concat(h, h_skip) before the block.
 */
export class DiTBlock extends Module {
  readonly attn: Attention;
  readonly crossAttn: CrossAttention | null;
  readonly mlp: Mlp;
  readonly adaLN: Linear | null;
  readonly skipLinear: Linear | null;
  constructor(parent: Module, name: string, readonly cfg: DiTConfig, skip: boolean) {
    super(parent, name);
    const D = cfg.hiddenSize;
    this.attn = new Attention(this, "attn", D, cfg.numHeads);
    this.crossAttn = cfg.block === "cross-attention"
      ? new CrossAttention(this, "cross_attn", D, cfg.numHeads)
      : null;
    this.mlp = new Mlp(this, "mlp", D, derived(cfg).mlpHidden);
    const mod = cfg.block === "adaLN-Zero" ? 6 : cfg.block === "adaLN" ? 4 : 0;
    this.adaLN = mod
      ? new Linear(
        this,
        "adaLN_modulation.1",
        D,
        mod * D,
        cfg.block === "adaLN-Zero" ? zeroInit : basic(D, mod * D),
      )
      : null;
    this.skipLinear = skip ? new Linear(this, "skip_linear", 2 * D, D, basic(2 * D, D)) : null;
  }

  /** One block; `sc` is silu(c) [N, D], `condSeq` the [t, y] sequence (cross-attention), `skip` the long skip. */
  forward(x: Tensor, sc: Tensor, condSeq: Tensor | null, skip: Tensor | null = null): Tensor {
    if (this.skipLinear) x = applyLinear(this.skipLinear, concat([x, skip!], 2));
    switch (this.cfg.block) {
      case "adaLN-Zero": {
        const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = chunk(
          applyLinear(this.adaLN!, sc),
          6,
          1,
        );
        x = addGated(
          x,
          this.attn.forward(layerNormModulate(x, shiftMsa, scaleMsa, { eps: LN_EPS })),
          gateMsa,
        );
        return addGated(
          x,
          this.mlp.forward(layerNormModulate(x, shiftMlp, scaleMlp, { eps: LN_EPS })),
          gateMlp,
        );
      }
      case "adaLN": {
        const [shiftMsa, scaleMsa, shiftMlp, scaleMlp] = chunk(applyLinear(this.adaLN!, sc), 4, 1);
        x = add(x, this.attn.forward(layerNormModulate(x, shiftMsa, scaleMsa, { eps: LN_EPS })));
        return add(x, this.mlp.forward(layerNormModulate(x, shiftMlp, scaleMlp, { eps: LN_EPS })));
      }
      case "cross-attention": {
        x = add(x, this.attn.forward(layerNorm(x, { eps: LN_EPS })));
        x = add(x, this.crossAttn!.forward(layerNorm(x, { eps: LN_EPS }), condSeq!));
        return add(x, this.mlp.forward(layerNorm(x, { eps: LN_EPS })));
      }
      case "in-context": {
        x = add(x, this.attn.forward(layerNorm(x, { eps: LN_EPS })));
        return add(x, this.mlp.forward(layerNorm(x, { eps: LN_EPS })));
      }
    }
  }
}

/** `FinalLayer`: LayerNorm (adaLN-modulated in the adaLN variants), then a zero-initialised Linear. */
export class FinalLayer extends Module {
  readonly linear: Linear;
  readonly adaLN: Linear | null;
  constructor(parent: Module, name: string, D: number, out: number, modulated: boolean, modZero: boolean) {
    super(parent, name);
    // The official init zeroes the final linear so that the model starts by predicting zeros.
    this.linear = new Linear(this, "linear", D, out, zeroInit);
    this.adaLN = modulated
      ? new Linear(this, "adaLN_modulation.1", D, 2 * D, modZero ? zeroInit : basic(D, 2 * D))
      : null;
  }

  /** [N, T, D] → [N, T, p·p·out]; `sc` = silu(c) for the modulated variants. */
  forward(h: Tensor, sc: Tensor | null): Tensor {
    if (this.adaLN) {
      const [shift, scale] = chunk(applyLinear(this.adaLN, sc!), 2, 1);
      return applyLinear(this.linear, layerNormModulate(h, shift, scale, { eps: LN_EPS }));
    }
    return applyLinear(this.linear, layerNorm(h, { eps: LN_EPS }));
  }
}

/**
 * Which blocks take part in the long skips of a `depth`-block stack: the first ⌊depth/2⌋ push their
 * output, the last ⌊depth/2⌋ pop in reverse order (U-ViT's in_blocks / out_blocks; an odd middle block is
 * U-ViT's mid_block).
 */
export function skipRoles(depth: number): ("push" | "pop" | "none")[] {
  const half = Math.floor(depth / 2);
  return Array.from({ length: depth }, (_, i) => i < half ? "push" : i >= depth - half ? "pop" : "none");
}

/** A DiT on the GPU. */
export class DiT extends Model {
  readonly cfg: DiTConfig;
  readonly posEmbed: Parameter;
  readonly xEmbedder: PatchEmbed;
  readonly tEmbedder: TimestepEmbedder;
  readonly yEmbedder: LabelEmbedder;
  readonly blocks: DiTBlock[];
  readonly finalLayer: FinalLayer;
  readonly #roles: ("push" | "pop" | "none")[];
  /** Width of the timestep frequency embedding the forward takes. */
  readonly timestepDim = 256;

  /** The module tree of a config, parameters registered but not loaded (see {@link DiT.init}). */
  constructor(cfg: DiTConfig) {
    super(cfg.name);
    this.cfg = cfg;
    const D = cfg.hiddenSize;
    const { tokens, outChannels } = derived(cfg);
    this.posEmbed = this.param(
      "pos_embed",
      [1, tokens, D],
      fixed(() => sincosPosEmbed(D, Math.round(Math.sqrt(tokens)))),
      false,
    );
    this.xEmbedder = new PatchEmbed(this, "x_embedder", cfg.inChannels, D, cfg.patchSize);
    this.tEmbedder = new TimestepEmbedder(this, "t_embedder", D);
    this.yEmbedder = new LabelEmbedder(
      this,
      "y_embedder",
      cfg.numClasses + (cfg.classDropoutProb > 0 ? 1 : 0),
      D,
    );
    this.#roles = cfg.skips ? skipRoles(cfg.depth) : Array(cfg.depth).fill("none");
    this.blocks = this.#roles.map((r, i) => new DiTBlock(this, `blocks.${i}`, cfg, r === "pop"));
    const modulated = cfg.block === "adaLN-Zero" || cfg.block === "adaLN";
    this.finalLayer = new FinalLayer(
      this,
      "final_layer",
      D,
      cfg.patchSize * cfg.patchSize * outChannels,
      modulated,
      cfg.block === "adaLN-Zero",
    );
  }

  /** A freshly initialised model. */
  static init(cfg: DiTConfig, rng: InitRng): DiT {
    const m = new DiT(cfg);
    return m.load(m.initHost(rng));
  }

  /** A model from host tensors (a state dict), checked against the config's layout. */
  static fromHost(cfg: DiTConfig, state: Map<string, HostTensor> | Record<string, HostTensor>): DiT {
    return new DiT(cfg).load(state);
  }

  /**
   * Forward pass. `x` [N, C, H, W] latents; `tEmb` the timestep frequency embedding [N, 256] (see
   * {@link timestepEmbedding}); `y` class labels as a u32 tensor [N] (the null class is `numClasses`).
   * Returns [N, outChannels, H, W]. Call inside `tidy`.
   */
  forward(x: Tensor, tEmb: Tensor, y: Tensor): Tensor {
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const [N] = x.shape;
    checkInput(cfg, x, tEmb, y);
    const { tokens, outChannels } = derived(cfg);

    let h = add(this.xEmbedder.forward(x), this.posEmbed.value); // [N, T, D]
    // t_embedder and y_embedder; c = t + y.
    const te = this.tEmbedder.forward(tEmb); // [N, D]
    const ye = this.yEmbedder.forward(y); // [N, D]
    const c = add(te, ye);

    if (cfg.block === "in-context") {
      // Two extra tokens [t, y] appended to the sequence, dropped after the last block.
      const condTokens = concat([reshape(te, [N, 1, D]), reshape(ye, [N, 1, D])], 1);
      h = concat([h, condTokens], 1); // [N, T + 2, D]
    }
    const sc = silu(c); // SiLU inside every adaLN_modulation, computed once
    const condSeq = cfg.block === "cross-attention"
      ? concat([reshape(te, [N, 1, D]), reshape(ye, [N, 1, D])], 1)
      : null;

    const skips: Tensor[] = [];
    this.blocks.forEach((b, i) => {
      h = b.forward(h, sc, condSeq, this.#roles[i] === "pop" ? skips.pop()! : null);
      if (this.#roles[i] === "push") skips.push(h);
    });

    if (cfg.block === "in-context") h = narrow(h, 1, 0, tokens);
    const out = this.finalLayer.forward(h, cfg.block === "adaLN-Zero" || cfg.block === "adaLN" ? sc : null);
    return unpatchify(out, cfg.patchSize, outChannels); // [N, outC, H, W]
  }
}

/** Checks the shapes of a forward pass's inputs against a config. */
export function checkInput(cfg: DiTConfig, x: Tensor, tEmb: Tensor, y: Tensor): void {
  const [N, C, H, W] = x.shape;
  if (x.ndim !== 4 || C !== cfg.inChannels || H !== cfg.inputSize || W !== cfg.inputSize) {
    throw new Error(
      `${cfg.name}: input has shape ${
        fmtShape(x.shape)
      }, expected [N, ${cfg.inChannels}, ${cfg.inputSize}, ${cfg.inputSize}]`,
    );
  }
  if (tEmb.shape[0] !== N || y.shape[0] !== N) {
    throw new Error(`${cfg.name}: batch sizes differ: x ${N}, t ${tEmb.shape[0]}, y ${y.shape[0]}`);
  }
}
