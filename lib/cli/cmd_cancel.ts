/**
 * `ditflow cancel FILE`: cancels the queued and running Slurm jobs of a pipeline's stages (the latest job of
 * each stage, as recorded in the cache by `run --executor slurm`, detached or not). Other jobs are never
 * touched.
 * @module
 */

import { cancelPipeline } from "../pipeline/slurm/status.ts";
import { CliExit, loadOrExit, openStore, out, parse } from "./common.ts";
import { EXIT, registerCommand } from "./commands.ts";

const CANCEL_USAGE = "cancel FILE [--set k=v]... [--set profile=NAME] [--json] [--cache DIR]";

registerCommand({
  name: "cancel",
  summary: "cancel a pipeline's queued and running Slurm jobs",
  usage: CANCEL_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      set: { type: "string", multiple: true },
      json: { type: "boolean" },
      cache: { type: "string" },
    }, CANCEL_USAGE);
    const { plan } = await loadOrExit(positionals[0], values.set ?? [], CANCEL_USAGE);
    let cancelled;
    try {
      cancelled = await cancelPipeline(openStore(values.cache), plan!.name, plan!.stages.map((s) => s.name));
    } catch (e) {
      throw new CliExit(EXIT.stageFailed, `cancel: ${(e as Error).message}`);
    }
    if (values.json) out(JSON.stringify({ pipeline: plan!.name, cancelled }, null, 2));
    else if (cancelled.length === 0) out(`nothing of ${plan!.name} is queued or running on Slurm`);
    else {
      for (const c of cancelled) out(`cancelled job ${c.job}  ${c.stage}  (was ${c.state})`);
    }
    return EXIT.ok;
  },
});
