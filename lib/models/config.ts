/**
 * DiT model configurations by name (`DiT-XL/2`) or custom, with parameter counts and GFLOPs computed from
 * the configuration. GFLOPs follow the paper's convention: multiply-adds of one forward pass at one
 * sample, in units of 1e9.
 *
 * The four conditioning blocks of the paper (section 3.2):
 * - `adaLN-Zero`: shift, scale and gate regressed from c = t_emb + y_emb, zero-initialised (the default).
 * - `adaLN`: shift and scale only (no gates).
 * - `cross-attention`: an extra multi-head cross-attention over the 2-token [t_emb, y_emb] sequence.
 * - `in-context`: t_emb and y_emb appended as two extra tokens, dropped after the last block.
 *
 * The paper does not spell out the final layer of the three ablation variants. Table 4's parameter
 * counts pin it down: 449M (in-context) and 598M (cross-attention) are met only if those two variants end
 * with a plain LayerNorm and Linear (no adaLN modulation there), while adaLN's 600M keeps the final
 * layer's shift/scale modulation. We follow that.
 * @module
 */

/** The conditioning block of a DiT. */
export type ConditioningBlock = "adaLN-Zero" | "adaLN" | "cross-attention" | "in-context";

/** All conditioning blocks. */
export const CONDITIONING_BLOCKS: readonly ConditioningBlock[] = [
  "in-context",
  "cross-attention",
  "adaLN",
  "adaLN-Zero",
];

/**
 * The backbone: `dit` (the default), `uvit` (U-ViT: in-context t and y tokens, long skips; ε output
 * only, so learnSigma must be false) or `mdt` (MDTv2: an adaLN-Zero DiT with relative position bias, an
 * encoder/decoder with long skips, trained with masked tokens and a side-interpolator).
 */
export type Arch = "dit" | "uvit" | "mdt";

/** All backbones. */
export const ARCHS: readonly Arch[] = ["dit", "uvit", "mdt"];

/** A complete DiT configuration. */
export interface DiTConfig {
  /** Display name, e.g. `DiT-XL/2`, or `custom`. */
  name: string;
  /** Latent side length (32 for 256px images with the SD VAE). */
  inputSize: number;
  patchSize: number;
  inChannels: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** Number of classes; the label table has one more row, the null class. */
  numClasses: number;
  classDropoutProb: number;
  /** Predict the variance too: output channels are 2·inChannels. */
  learnSigma: boolean;
  block: ConditioningBlock;
  /**
   * U-ViT's long skips on a DiT: the first ⌊depth/2⌋ blocks feed the last ⌊depth/2⌋ in reverse order
   * through `blocks.{i}.skip_linear` = Linear(2D, D) on concat(h_deep, h_shallow). Absent means false.
   */
  skips?: boolean;
  /** The backbone (absent: `dit`). U-ViT reads the sizes as its embed_dim, depth, num_heads, mlp_ratio. */
  arch?: Arch;
  /** MDT: blocks of the decoder (`de_blocks`); the encoder has ⌊(depth − decodeLayers)/2⌋ in and out. */
  decodeLayers?: number;
  /** MDT: the training mask ratio r (each batch masks r + 0.2·u of the tokens, u ~ U[0, 1)). */
  maskRatio?: number;
}

/** The paper's model sizes. */
export const DIT_SIZES: Readonly<Record<string, { depth: number; hiddenSize: number; numHeads: number }>> = {
  S: { depth: 12, hiddenSize: 384, numHeads: 6 },
  B: { depth: 12, hiddenSize: 768, numHeads: 12 },
  L: { depth: 24, hiddenSize: 1024, numHeads: 16 },
  XL: { depth: 28, hiddenSize: 1152, numHeads: 16 },
};

/**
 * Model families: the paper's sizes, and `mini`, a scaled-down family for CPU-only machines (software
 * WebGPU) that keeps the paper's ratios of per-token compute between sizes: transformer GFLOPs per token
 * relative to S are 1 : 4 : 14.2 : 21.3 in the paper (S, B, L, XL) and 1 : 4 : 14.2 : 22.5 here.
 * Widths are 1/8 of the paper's, depths 1/6 (rounded), heads of 24 or 32 channels.
 */
export const DIT_FAMILIES: Readonly<
  Record<string, Readonly<Record<string, { depth: number; hiddenSize: number; numHeads: number }>>>
> = {
  paper: DIT_SIZES,
  mini: {
    S: { depth: 2, hiddenSize: 48, numHeads: 2 },
    B: { depth: 2, hiddenSize: 96, numHeads: 4 },
    L: { depth: 4, hiddenSize: 128, numHeads: 4 },
    XL: { depth: 5, hiddenSize: 144, numHeads: 6 },
  },
};

/** The paper's patch sizes. */
export const DIT_PATCHES: readonly number[] = [2, 4, 8];

/** Every named model: DiT-S/2 ... DiT-XL/8. */
export const DIT_MODEL_NAMES: readonly string[] = Object.keys(DIT_SIZES).flatMap((s) =>
  DIT_PATCHES.map((p) => `DiT-${s}/${p}`)
);

/** Thrown for an unknown model name; lists the valid ones. */
export class UnknownModelError extends Error {
  constructor(name: string) {
    super(
      `unknown model "${name}"; valid names: ${DIT_MODEL_NAMES.join(", ")} ` +
        `(or a custom config with depth, hidden_size, num_heads, patch_size)`,
    );
    this.name = "UnknownModelError";
  }
}

/** The official defaults for the fields a name does not fix. */
export const DIT_DEFAULTS = {
  inputSize: 32,
  inChannels: 4,
  mlpRatio: 4,
  numClasses: 1000,
  classDropoutProb: 0.1,
  learnSigma: true,
  block: "adaLN-Zero" as ConditioningBlock,
};

/**
 * Builds the config of a named model (`DiT-XL/2`, also `XL/2`), with optional overrides. `family` picks
 * the sizes (`paper`, the default, or `mini`; see {@link DIT_FAMILIES}); a non-paper family's name is
 * suffixed, e.g. `DiT-XL/2-mini`, so its checkpoints never pass for the paper's models.
 */
export function ditConfig(name: string, overrides: Partial<DiTConfig> = {}, family = "paper"): DiTConfig {
  const m = /^(?:DiT-)?(S|B|L|XL)\/(\d+)$/.exec(name.trim());
  const sizes = DIT_FAMILIES[family];
  if (!sizes) {
    throw new Error(
      `unknown model family "${family}"; valid families: ${Object.keys(DIT_FAMILIES).join(", ")}`,
    );
  }
  if (!m || !sizes[m[1]]) throw new UnknownModelError(name);
  const size = sizes[m[1]];
  const cfg: DiTConfig = {
    name: `DiT-${m[1]}/${m[2]}${family === "paper" ? "" : `-${family}`}`,
    ...DIT_DEFAULTS,
    patchSize: Number(m[2]),
    ...size,
    ...overrides,
  };
  validateConfig(cfg);
  return cfg;
}

/** Builds a custom config from fields (the defaults fill the rest). */
export function customConfig(
  fields: Partial<DiTConfig> & Pick<DiTConfig, "depth" | "hiddenSize" | "numHeads" | "patchSize">,
): DiTConfig {
  const cfg: DiTConfig = { name: "custom", ...DIT_DEFAULTS, ...fields };
  validateConfig(cfg);
  return cfg;
}

/** Checks the config's internal consistency; throws naming the offending fields. */
export function validateConfig(c: DiTConfig): void {
  const problems: string[] = [];
  for (
    const k of [
      "inputSize",
      "patchSize",
      "inChannels",
      "hiddenSize",
      "depth",
      "numHeads",
      "numClasses",
    ] as const
  ) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) problems.push(`${k} must be a positive integer (got ${c[k]})`);
  }
  if (c.inputSize % c.patchSize !== 0) {
    problems.push(`inputSize ${c.inputSize} is not divisible by patchSize ${c.patchSize}`);
  }
  if (c.hiddenSize % c.numHeads !== 0) {
    problems.push(`hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`);
  }
  if (c.hiddenSize % 4 !== 0) {
    problems.push(`hiddenSize ${c.hiddenSize} must be divisible by 4 (2-D sin-cos embedding)`);
  }
  if (!(c.mlpRatio > 0)) problems.push(`mlpRatio must be positive (got ${c.mlpRatio})`);
  if (!(c.classDropoutProb >= 0 && c.classDropoutProb < 1)) {
    problems.push(`classDropoutProb must be in [0, 1) (got ${c.classDropoutProb})`);
  }
  if (!CONDITIONING_BLOCKS.includes(c.block)) {
    problems.push(`block must be one of ${CONDITIONING_BLOCKS.join(", ")} (got ${c.block})`);
  }
  if (c.arch !== undefined && !ARCHS.includes(c.arch)) {
    problems.push(`arch must be one of ${ARCHS.join(", ")} (got ${c.arch})`);
  }
  if (c.arch === "uvit" && c.learnSigma) problems.push("a U-ViT predicts ε only: learnSigma must be false");
  if (c.arch === "uvit" && c.depth < 2) problems.push("a U-ViT needs depth ≥ 2");
  if (c.arch === "uvit" && c.skips) {
    problems.push("skips is a DiT option (a U-ViT always has its long skips)");
  }
  if (problems.length) throw new Error(`invalid DiT config ${c.name}: ${problems.join("; ")}`);
}

/** Derived sizes. */
export function derived(
  c: DiTConfig,
): { tokens: number; outChannels: number; headDim: number; mlpHidden: number } {
  const g = c.inputSize / c.patchSize;
  return {
    tokens: g * g,
    outChannels: c.learnSigma ? 2 * c.inChannels : c.inChannels,
    headDim: c.hiddenSize / c.numHeads,
    mlpHidden: Math.floor(c.hiddenSize * c.mlpRatio),
  };
}

const lin = (i: number, o: number, bias = true) => i * o + (bias ? o : 0);

/**
 * Parameter counts by top-level module, in the official state-dict's grouping. `pos_embed` is counted
 * (it is saved with the model), as in the paper's 675,129,632 for DiT-XL/2.
 */
export function paramCounts(c: DiTConfig): Record<string, number> & { total: number } {
  if (c.arch === "uvit") return uvitParamCounts(c);
  if (c.arch === "mdt") return mdtParamCounts(c);
  const D = c.hiddenSize;
  const { tokens, outChannels, mlpHidden } = derived(c);
  const p = c.patchSize;
  const perBlockBase = lin(D, 3 * D) + lin(D, D) + lin(D, mlpHidden) + lin(mlpHidden, D);
  let perBlockCond = 0;
  let finalCond = 0;
  switch (c.block) {
    case "adaLN-Zero":
      perBlockCond = lin(D, 6 * D);
      finalCond = lin(D, 2 * D);
      break;
    case "adaLN":
      perBlockCond = lin(D, 4 * D);
      finalCond = lin(D, 2 * D);
      break;
    case "cross-attention":
      // q, k, v and output projections of the cross-attention.
      perBlockCond = lin(D, D) + lin(D, 2 * D) + lin(D, D);
      break;
    case "in-context":
      break;
  }
  const counts = {
    x_embedder: D * c.inChannels * p * p + D,
    pos_embed: tokens * D,
    t_embedder: lin(256, D) + lin(D, D),
    y_embedder: (c.numClasses + (c.classDropoutProb > 0 ? 1 : 0)) * D,
    blocks: c.depth * (perBlockBase + perBlockCond) + (c.skips ? Math.floor(c.depth / 2) * lin(2 * D, D) : 0),
    final_layer: finalCond + lin(D, p * p * outChannels),
  };
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return { ...counts, total };
}

/** Total parameter count. */
export function paramCount(c: DiTConfig): number {
  return paramCounts(c).total;
}

/**
 * Forward-pass multiply-adds of one sample, in GFLOPs as the paper counts them: every Linear and
 * the patch-embedding convolution (per token), attention's two matrix products (T²·D each), and the
 * per-sample conditioning MLPs. Normalisations, activations and softmax are not counted (they are a
 * fraction of a percent here).
 */
export function gflops(c: DiTConfig): number {
  if (c.arch === "uvit") return uvitGflops(c);
  if (c.arch === "mdt") return mdtGflops(c);
  const D = c.hiddenSize;
  const { tokens, outChannels, mlpHidden } = derived(c);
  const p = c.patchSize;
  const T = c.block === "in-context" ? tokens + 2 : tokens;
  let macs = 0;
  macs += tokens * D * c.inChannels * p * p; // patch embedding
  macs += 256 * D + D * D; // timestep MLP (per sample)
  const perBlock = T * (3 * D * D + D * D + 2 * D * mlpHidden) + 2 * T * T * D;
  let perBlockCond = 0;
  let finalCond = 0;
  switch (c.block) {
    case "adaLN-Zero":
      perBlockCond = 6 * D * D;
      finalCond = 2 * D * D;
      break;
    case "adaLN":
      perBlockCond = 4 * D * D;
      finalCond = 2 * D * D;
      break;
    case "cross-attention":
      // q and output projections per token, k and v over the 2 condition tokens, attention over 2 keys.
      perBlockCond = T * 2 * D * D + 2 * 2 * D * D + 2 * T * 2 * D;
      break;
    case "in-context":
      break;
  }
  macs += c.depth * (perBlock + perBlockCond);
  if (c.skips) macs += Math.floor(c.depth / 2) * T * 2 * D * D; // skip_linear
  macs += finalCond + tokens * D * p * p * outChannels;
  return macs / 1e9;
}

/** U-ViT's parameter counts by top-level module (see lib/models/uvit.ts). */
function uvitParamCounts(c: DiTConfig): Record<string, number> & { total: number } {
  const D = c.hiddenSize;
  const C = c.inChannels;
  const p = c.patchSize;
  const { tokens, mlpHidden } = derived(c);
  const half = Math.floor(c.depth / 2);
  const block = 2 * 2 * D + 3 * D * D + lin(D, D) + lin(D, mlpHidden) + lin(mlpHidden, D);
  const counts = {
    pos_embed: (2 + tokens) * D,
    patch_embed: D * C * p * p + D,
    label_emb: (c.numClasses + (c.classDropoutProb > 0 ? 1 : 0)) * D,
    in_blocks: half * block,
    mid_block: block,
    out_blocks: half * (block + lin(2 * D, D)),
    norm: 2 * D,
    decoder_pred: lin(D, p * p * C),
    final_layer: C * C * 9 + C,
  };
  return { ...counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
}

/** U-ViT's forward multiply-adds per sample, counted as {@link gflops} counts DiT's. */
function uvitGflops(c: DiTConfig): number {
  const D = c.hiddenSize;
  const C = c.inChannels;
  const p = c.patchSize;
  const { tokens, mlpHidden } = derived(c);
  const T = tokens + 2;
  const half = Math.floor(c.depth / 2);
  let macs = tokens * D * C * p * p; // patch embedding
  macs += (2 * half + 1) * (T * (3 * D * D + D * D + 2 * D * mlpHidden) + 2 * T * T * D);
  macs += half * T * 2 * D * D; // skip_linear
  macs += T * D * p * p * C; // decoder_pred
  macs += c.inputSize * c.inputSize * C * C * 9; // final 3×3 conv
  return macs / 1e9;
}

/** MDT's blocks: encoder in/out, decoder, side-interpolator. */
function mdtBlocks(c: DiTConfig): { half: number; decode: number } {
  const decode = c.decodeLayers ?? 0;
  return { half: Math.floor((c.depth - decode) / 2), decode };
}

/** MDT's parameter counts by top-level module (see lib/models/mdt.ts). */
function mdtParamCounts(c: DiTConfig): Record<string, number> & { total: number } {
  const D = c.hiddenSize;
  const p = c.patchSize;
  const { tokens, outChannels, mlpHidden } = derived(c);
  const g = Math.round(Math.sqrt(tokens));
  const { half, decode } = mdtBlocks(c);
  const block = lin(D, 3 * D) + lin(D, D) + ((2 * g - 1) ** 2 + 3) * c.numHeads + lin(D, mlpHidden) +
    lin(mlpHidden, D) + lin(D, 6 * D);
  const skip = lin(2 * D, D);
  const counts = {
    pos_embed: tokens * D,
    decoder_pos_embed: tokens * D,
    mask_token: D,
    x_embedder: D * c.inChannels * p * p + D,
    t_embedder: lin(256, D) + lin(D, D),
    y_embedder: (c.numClasses + (c.classDropoutProb > 0 ? 1 : 0)) * D,
    en_inblocks: half * block,
    en_outblocks: half * (block + skip),
    de_blocks: decode * (block + skip),
    sideblocks: block,
    final_layer: lin(D, 2 * D) + lin(D, p * p * outChannels),
  };
  return { ...counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
}

/** MDT's forward multiply-adds per sample at sampling (no mask, no side-interpolator). */
function mdtGflops(c: DiTConfig): number {
  const D = c.hiddenSize;
  const p = c.patchSize;
  const { tokens: T, outChannels, mlpHidden } = derived(c);
  const { half, decode } = mdtBlocks(c);
  const block = T * (3 * D * D + D * D + 2 * D * mlpHidden) + 2 * T * T * D + 6 * D * D;
  let macs = T * D * c.inChannels * p * p + 256 * D + D * D;
  macs += (2 * half + decode) * block + (half + decode) * T * 2 * D * D;
  macs += 2 * D * D + T * D * p * p * outChannels;
  return macs / 1e9;
}

/** The paper's Table 4 (params in millions, GFLOPs), for tests and reports. */
export const PAPER_TABLE4: Readonly<Record<string, { gflops: number; paramsM: number; fid: number }>> = {
  "DiT-S/8": { gflops: 0.36, paramsM: 33, fid: 153.60 },
  "DiT-S/4": { gflops: 1.41, paramsM: 33, fid: 100.41 },
  "DiT-S/2": { gflops: 6.06, paramsM: 33, fid: 68.40 },
  "DiT-B/8": { gflops: 1.42, paramsM: 131, fid: 122.74 },
  "DiT-B/4": { gflops: 5.56, paramsM: 130, fid: 68.38 },
  "DiT-B/2": { gflops: 23.01, paramsM: 130, fid: 43.47 },
  "DiT-L/8": { gflops: 5.01, paramsM: 459, fid: 118.87 },
  "DiT-L/4": { gflops: 19.70, paramsM: 458, fid: 45.64 },
  "DiT-L/2": { gflops: 80.71, paramsM: 458, fid: 23.33 },
  "DiT-XL/8": { gflops: 7.39, paramsM: 676, fid: 106.41 },
  "DiT-XL/4": { gflops: 29.05, paramsM: 675, fid: 43.01 },
  "DiT-XL/2": { gflops: 118.64, paramsM: 675, fid: 19.47 },
};

/** The paper's conditioning ablation at XL/2 (Table 4 / section 3.2). */
export const PAPER_CONDITIONING: Readonly<
  Record<ConditioningBlock, { gflops: number; paramsM: number; fid: number }>
> = {
  "in-context": { gflops: 119.37, paramsM: 449, fid: 35.24 },
  "cross-attention": { gflops: 137.62, paramsM: 598, fid: 26.14 },
  "adaLN": { gflops: 118.56, paramsM: 600, fid: 25.21 },
  "adaLN-Zero": { gflops: 118.64, paramsM: 675, fid: 19.47 },
};
