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
 * blocks.{i}.cross_attn.{q, kv, proj} and has no modulation; `in-context` has neither.
 * @module
 */

import { derived, type DiTConfig } from "./config.ts";
import { add, gelu, silu } from "../tensor/ops/elementwise.ts";
import { linear } from "../tensor/ops/matmul.ts";
import { attention, mergeHeads, splitHeads } from "../tensor/ops/attention.ts";
import { addGated, layerNorm, layerNormModulate } from "../tensor/ops/layernorm.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { chunk, concat, narrow, patchify, permute, reshape, unpatchify } from "../tensor/ops/layout.ts";
import { fmtShape, type Tensor, tensor } from "../tensor/tensor.ts";
import { type HostTensor, type InitRng, StateDictError } from "./host_tensor.ts";

// The shared types live in the leaf module host_tensor.ts; re-exported here for existing importers.
export { type HostTensor, type InitRng, StateDictError } from "./host_tensor.ts";

/** One entry of a model's parameter layout: name, shape, and how it is initialised. */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: "xavier" | "zeros" | "normal0.02" | "pos_embed";
  /** Fan-in/fan-out for xavier on a non-2-D weight (the patch embedding). */
  fan?: [number, number];
  /** Trained by the optimizer (pos_embed is fixed but saved). */
  trainable: boolean;
}

const LN_EPS = 1e-6;

/** The parameter layout of a config, in the official state-dict order. */
export function paramSpecs(cfg: DiTConfig): ParamSpec[] {
  const D = cfg.hiddenSize;
  const C = cfg.inChannels;
  const p = cfg.patchSize;
  const { tokens, outChannels, mlpHidden } = derived(cfg);
  const specs: ParamSpec[] = [];
  const lin = (
    name: string,
    out: number,
    inp: number,
    init: "xavier" | "zeros" | "normal0.02" = "xavier",
  ) => {
    specs.push({ name: `${name}.weight`, shape: [out, inp], init, trainable: true });
    specs.push({ name: `${name}.bias`, shape: [out], init: "zeros", trainable: true });
  };
  specs.push({ name: "pos_embed", shape: [1, tokens, D], init: "pos_embed", trainable: false });
  specs.push({
    name: "x_embedder.proj.weight",
    shape: [D, C, p, p],
    init: "xavier",
    fan: [C * p * p, D],
    trainable: true,
  });
  specs.push({ name: "x_embedder.proj.bias", shape: [D], init: "zeros", trainable: true });
  lin("t_embedder.mlp.0", D, 256, "normal0.02");
  lin("t_embedder.mlp.2", D, D, "normal0.02");
  const tableRows = cfg.numClasses + (cfg.classDropoutProb > 0 ? 1 : 0);
  specs.push({
    name: "y_embedder.embedding_table.weight",
    shape: [tableRows, D],
    init: "normal0.02",
    trainable: true,
  });
  const zeroMod = cfg.block === "adaLN-Zero" ? "zeros" : "xavier";
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}`;
    lin(`${b}.attn.qkv`, 3 * D, D);
    lin(`${b}.attn.proj`, D, D);
    if (cfg.block === "cross-attention") {
      lin(`${b}.cross_attn.q`, D, D);
      lin(`${b}.cross_attn.kv`, 2 * D, D);
      lin(`${b}.cross_attn.proj`, D, D);
    }
    lin(`${b}.mlp.fc1`, mlpHidden, D);
    lin(`${b}.mlp.fc2`, D, mlpHidden);
    if (cfg.block === "adaLN-Zero") lin(`${b}.adaLN_modulation.1`, 6 * D, D, zeroMod);
    if (cfg.block === "adaLN") lin(`${b}.adaLN_modulation.1`, 4 * D, D, zeroMod);
  }
  // The official init zeroes the final linear so that the model starts by predicting zeros.
  lin("final_layer.linear", p * p * outChannels, D, "zeros");
  if (cfg.block === "adaLN-Zero" || cfg.block === "adaLN") {
    lin("final_layer.adaLN_modulation.1", 2 * D, D, zeroMod);
  }
  return specs;
}

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

/** Initial host values of every parameter, per the official initialisation. */
export function initParams(cfg: DiTConfig, rng: InitRng): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const { tokens } = derived(cfg);
  for (const s of paramSpecs(cfg)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    switch (s.init) {
      case "zeros":
        data = new Float32Array(n);
        break;
      case "normal0.02": {
        const z = rng.normal(n);
        data = Float32Array.from(z, (v) => 0.02 * v);
        break;
      }
      case "xavier": {
        const [fanIn, fanOut] = s.fan ?? [s.shape[1], s.shape[0]];
        const bound = Math.sqrt(6 / (fanIn + fanOut));
        const u = rng.uniform(n);
        data = Float32Array.from(u, (v) => (2 * v - 1) * bound);
        break;
      }
      case "pos_embed":
        data = sincosPosEmbed(cfg.hiddenSize, Math.round(Math.sqrt(tokens)));
        break;
    }
    out.set(s.name, { shape: s.shape, data });
  }
  return out;
}

/** Linear layer parameters. */
interface Lin {
  weight: Tensor;
  bias: Tensor;
}

/** A DiT on the GPU. */
export class DiT {
  readonly cfg: DiTConfig;
  /** Every parameter by official name, in state-dict order. */
  readonly params: Map<string, Tensor>;
  readonly specs: ParamSpec[];

  private constructor(cfg: DiTConfig, params: Map<string, Tensor>) {
    this.cfg = cfg;
    this.params = params;
    this.specs = paramSpecs(cfg);
  }

  /** A freshly initialised model. */
  static init(cfg: DiTConfig, rng: InitRng): DiT {
    return DiT.fromHost(cfg, initParams(cfg, rng));
  }

  /** A model from host tensors (a state dict), checked against the config's layout. */
  static fromHost(cfg: DiTConfig, state: Map<string, HostTensor> | Record<string, HostTensor>): DiT {
    const map = state instanceof Map ? state : new Map(Object.entries(state));
    const specs = paramSpecs(cfg);
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
      const h = map.get(s.name)!;
      const t = tensor(h.data, s.shape, "f32", s.name).keep();
      t.requiresGrad = s.trainable;
      params.set(s.name, t);
    }
    return new DiT(cfg, params);
  }

  /** The trainable parameters, in state-dict order. */
  trainable(): Tensor[] {
    return this.specs.filter((s) => s.trainable).map((s) => this.params.get(s.name)!);
  }

  /** Reads every parameter back to the host, in state-dict order. */
  async stateDict(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const s of this.specs) {
      out.set(s.name, { shape: [...s.shape], data: await this.params.get(s.name)!.data() });
    }
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

  #lin(prefix: string): Lin {
    return { weight: this.#p(`${prefix}.weight`), bias: this.#p(`${prefix}.bias`) };
  }

  /**
   * Forward pass. `x` [N, C, H, W] latents; `tEmb` the timestep frequency embedding [N, 256] (see
   * {@link timestepEmbedding}); `y` class labels as a u32 tensor [N] (the null class is `numClasses`).
   * Returns [N, outChannels, H, W]. Call inside `tidy`.
   */
  forward(x: Tensor, tEmb: Tensor, y: Tensor): Tensor {
    const cfg = this.cfg;
    const D = cfg.hiddenSize;
    const p = cfg.patchSize;
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
    const { tokens, outChannels } = derived(cfg);

    // x_embedder: the p×p stride-p convolution is a Linear on (c, i, j)-flattened patches.
    const patches = patchify(x, p); // [N, T, C·p·p]
    const wx = reshape(this.#p("x_embedder.proj.weight"), [D, C * p * p]);
    let h = add(linear(patches, wx, this.#p("x_embedder.proj.bias")), this.#p("pos_embed")); // [N, T, D]

    // t_embedder and y_embedder; c = t + y.
    const t0 = this.#lin("t_embedder.mlp.0");
    const t2 = this.#lin("t_embedder.mlp.2");
    const te = linear(silu(linear(tEmb, t0.weight, t0.bias)), t2.weight, t2.bias); // [N, D]
    const ye = embedding(this.#p("y_embedder.embedding_table.weight"), y); // [N, D]
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

    for (let i = 0; i < cfg.depth; i++) h = this.#block(i, h, sc, condSeq);

    if (cfg.block === "in-context") h = narrow(h, 1, 0, tokens);
    // final_layer
    let out: Tensor;
    const fl = this.#lin("final_layer.linear");
    if (cfg.block === "adaLN-Zero" || cfg.block === "adaLN") {
      const m = this.#lin("final_layer.adaLN_modulation.1");
      const [shift, scale] = chunk(linear(sc, m.weight, m.bias), 2, 1);
      out = linear(layerNormModulate(h, shift, scale, { eps: LN_EPS }), fl.weight, fl.bias);
    } else {
      out = linear(layerNorm(h, { eps: LN_EPS }), fl.weight, fl.bias);
    }
    return unpatchify(out, p, outChannels); // [N, outC, H, W]
  }

  #attn(prefix: string, h: Tensor): Tensor {
    const qkv = this.#lin(`${prefix}.qkv`);
    const proj = this.#lin(`${prefix}.proj`);
    const { q, k, v } = splitHeads(linear(h, qkv.weight, qkv.bias), this.cfg.numHeads);
    return linear(mergeHeads(attention(q, k, v)), proj.weight, proj.bias);
  }

  #crossAttn(prefix: string, h: Tensor, cond: Tensor): Tensor {
    const H = this.cfg.numHeads;
    const [N, T, D] = h.shape;
    const Dh = D / H;
    const q = this.#lin(`${prefix}.q`);
    const kv = this.#lin(`${prefix}.kv`);
    const proj = this.#lin(`${prefix}.proj`);
    // [N, L, D] → [N, H, L, Dh], the layout of timm's Attention.
    const heads = (t: Tensor, L: number) => permute(reshape(t, [N, L, H, Dh]), [0, 2, 1, 3]);
    // Queries from the image tokens; keys and values from the 2-token [t, y] condition sequence, with
    // kv's output split as [k | v] along the feature dim.
    const [k, v] = chunk(linear(cond, kv.weight, kv.bias), 2, 2);
    const o = attention(
      heads(linear(h, q.weight, q.bias), T),
      heads(k, cond.shape[1]),
      heads(v, cond.shape[1]),
    );
    return linear(mergeHeads(o), proj.weight, proj.bias);
  }

  #mlp(prefix: string, h: Tensor): Tensor {
    const fc1 = this.#lin(`${prefix}.fc1`);
    const fc2 = this.#lin(`${prefix}.fc2`);
    return linear(gelu(linear(h, fc1.weight, fc1.bias)), fc2.weight, fc2.bias);
  }

  #block(i: number, x: Tensor, sc: Tensor, condSeq: Tensor | null): Tensor {
    const b = `blocks.${i}`;
    switch (this.cfg.block) {
      case "adaLN-Zero": {
        const m = this.#lin(`${b}.adaLN_modulation.1`);
        const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = chunk(
          linear(sc, m.weight, m.bias),
          6,
          1,
        );
        x = addGated(
          x,
          this.#attn(`${b}.attn`, layerNormModulate(x, shiftMsa, scaleMsa, { eps: LN_EPS })),
          gateMsa,
        );
        return addGated(
          x,
          this.#mlp(`${b}.mlp`, layerNormModulate(x, shiftMlp, scaleMlp, { eps: LN_EPS })),
          gateMlp,
        );
      }
      case "adaLN": {
        const m = this.#lin(`${b}.adaLN_modulation.1`);
        const [shiftMsa, scaleMsa, shiftMlp, scaleMlp] = chunk(linear(sc, m.weight, m.bias), 4, 1);
        x = add(x, this.#attn(`${b}.attn`, layerNormModulate(x, shiftMsa, scaleMsa, { eps: LN_EPS })));
        return add(x, this.#mlp(`${b}.mlp`, layerNormModulate(x, shiftMlp, scaleMlp, { eps: LN_EPS })));
      }
      case "cross-attention": {
        x = add(x, this.#attn(`${b}.attn`, layerNorm(x, { eps: LN_EPS })));
        x = add(x, this.#crossAttn(`${b}.cross_attn`, layerNorm(x, { eps: LN_EPS }), condSeq!));
        return add(x, this.#mlp(`${b}.mlp`, layerNorm(x, { eps: LN_EPS })));
      }
      case "in-context": {
        x = add(x, this.#attn(`${b}.attn`, layerNorm(x, { eps: LN_EPS })));
        return add(x, this.#mlp(`${b}.mlp`, layerNorm(x, { eps: LN_EPS })));
      }
    }
  }
}
