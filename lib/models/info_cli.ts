/**
 * `deno task info MODEL [--block B] [--arch dit|uvit|mdt] [--skips] [--family paper|mini] [--json]`:
 * parameter count and GFLOPs of a DiT (or U-ViT, DiT + long skips, MDT) from its config, beside the
 * paper's Table 4 numbers where the model is one of the paper's. `all` lists every model.
 * @module
 */

import { parseArgs } from "node:util";
import {
  type Arch,
  ARCHS,
  CONDITIONING_BLOCKS,
  type ConditioningBlock,
  DIT_FAMILIES,
  DIT_MODEL_NAMES,
  ditConfig,
  gflops,
  PAPER_CONDITIONING,
  PAPER_TABLE4,
  paramCounts,
} from "./config.ts";

/** Runs the command; returns the exit code. */
export function infoMain(args: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        block: { type: "string" },
        arch: { type: "string" },
        skips: { type: "boolean", default: false },
        family: { type: "string" },
        "decode-layers": { type: "string" },
        "input-size": { type: "string" },
        "num-classes": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`info: ${(e as Error).message}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    console.log(
      "usage: deno task info MODEL|all [--block adaLN-Zero|adaLN|cross-attention|in-context] " +
        `[--arch ${ARCHS.join("|")}] [--skips] [--family ${Object.keys(DIT_FAMILIES).join("|")}] ` +
        "[--decode-layers N (mdt)] [--input-size N] [--num-classes N] [--json]",
    );
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  const names = positionals[0] === "all" ? [...DIT_MODEL_NAMES] : positionals;
  const block = values.block as ConditioningBlock | undefined;
  if (block && !CONDITIONING_BLOCKS.includes(block)) {
    console.error(`info: unknown block "${block}"; valid: ${CONDITIONING_BLOCKS.join(", ")}`);
    return 2;
  }
  const arch = (values.arch ?? "dit") as Arch;
  if (!ARCHS.includes(arch)) {
    console.error(`info: unknown arch "${arch}"; valid: ${ARCHS.join(", ")}`);
    return 2;
  }
  const rows = [];
  for (const name of names) {
    let cfg;
    try {
      cfg = ditConfig(name, {
        ...(block ? { block } : {}),
        ...(values["input-size"] ? { inputSize: Number(values["input-size"]) } : {}),
        ...(values["num-classes"] ? { numClasses: Number(values["num-classes"]) } : {}),
        ...(arch !== "dit" ? { arch } : {}),
        ...(arch === "uvit" ? { learnSigma: false } : {}),
        ...(values.skips ? { skips: true } : {}),
        ...(values["decode-layers"] ? { decodeLayers: Number(values["decode-layers"]) } : {}),
      }, values.family ?? "paper");
      const prefix = arch === "uvit" ? "U-ViT-" : arch === "mdt" ? "MDT-" : "DiT-";
      cfg = { ...cfg, name: cfg.name.replace(/^DiT-/, prefix) + (values.skips ? "+skips" : "") };
    } catch (e) {
      console.error(`info: ${(e as Error).message}`);
      return 2;
    }
    const counts = paramCounts(cfg);
    const isPaperShape = cfg.inputSize === 32 && cfg.numClasses === 1000 && arch === "dit" && !cfg.skips &&
      (values.family ?? "paper") === "paper";
    const paper = !isPaperShape
      ? undefined
      : cfg.block === "adaLN-Zero"
      ? PAPER_TABLE4[cfg.name]
      : cfg.name === "DiT-XL/2"
      ? PAPER_CONDITIONING[cfg.block]
      : undefined;
    rows.push({
      model: cfg.name,
      block: arch === "uvit" ? "in-context+skips" : cfg.block,
      params: counts.total,
      gflops: Number(gflops(cfg) < 1 ? gflops(cfg).toPrecision(4) : gflops(cfg).toFixed(4)),
      paper_params_m: paper?.paramsM,
      paper_gflops: paper?.gflops,
      param_breakdown: counts,
      config: cfg,
    });
  }
  if (values.json) {
    for (const r of rows) console.log(JSON.stringify(r));
    return 0;
  }
  console.log(
    `${"model".padEnd(18)} ${"block".padEnd(16)} ${"params".padStart(13)} ${
      "GFLOPs".padStart(9)
    }   paper (params M, GFLOPs)`,
  );
  for (const r of rows) {
    const paper = r.paper_params_m ? `${r.paper_params_m}M, ${r.paper_gflops}` : "-";
    console.log(
      `${r.model.padEnd(18)} ${r.block.padEnd(16)} ${r.params.toLocaleString("en-US").padStart(13)} ${
        (r.gflops < 0.1 ? r.gflops.toPrecision(3) : r.gflops.toFixed(2)).padStart(9)
      }   ${paper}`,
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(infoMain(Deno.args));
