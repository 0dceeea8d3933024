/**
 * The `ditflow` command line: `deno task run FILE` (= `ditflow run FILE`) and
 * `deno task ditflow <command>`. Exit codes: 0 success, 1 a stage failed, 2 invalid pipeline or usage,
 * 130 interrupted.
 *
 * Stage kinds come from `lib/stages/mod.ts`, plus modules named in `DITFLOW_STAGE_MODULES` (comma
 * separated) and a pipeline's `plugins:`.
 * @module
 */

import "../stages/mod.ts";
import "./cmd_run.ts";
import "./cmd_store.ts";
import "./cmd_fingerprint.ts";
import "./cmd_cancel.ts";
import "./cmd_runs.ts";
import "./cmd_ui.ts";
import { CliExit, err, out } from "./common.ts";
import { EXIT, getCommand, listCommands } from "./commands.ts";
import { PipelineInvalidError } from "../pipeline/diagnostics.ts";
import { shutdownRuntime } from "../gpu/runtime.ts";

function help(): string {
  const cmds = listCommands();
  const w = Math.max(...cmds.map((c) => c.name.length));
  return [
    "ditflow: declarative, cached experiment pipelines for Diffusion Transformers",
    "",
    "usage: deno task run FILE [options]        (same as: deno task ditflow run FILE)",
    "       deno task ditflow <command> [options]",
    "",
    "commands:",
    ...cmds.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    "",
    "`ditflow <command> --help` shows a command's options. Cache: .ditflow/ (or $DITFLOW_CACHE, --cache).",
  ].join("\n");
}

/** Runs the CLI with the given arguments; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    out(help());
    return name ? EXIT.ok : EXIT.invalid;
  }
  const cmd = getCommand(name);
  if (!cmd) {
    err(`unknown command \`${name}\`\n\n${help()}`);
    return EXIT.invalid;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    out(`usage: ditflow ${cmd.usage}\n\n${cmd.summary}`);
    return EXIT.ok;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof CliExit) {
      if (e.message) err(e.message);
      return e.code;
    }
    if (e instanceof PipelineInvalidError) return EXIT.invalid;
    throw e;
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  // Finish the GPU work and destroy the device in order before exiting (no-op when no stage used the
  // GPU in this process), rather than leaving the WebGPU teardown to the process exit.
  await shutdownRuntime();
  Deno.exit(code);
}
