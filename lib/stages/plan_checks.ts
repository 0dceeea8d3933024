/**
 * Small plan-time checks shared by the stage kinds' `validate` hooks (see `StageKind.validate`): the
 * data space of an input (pixels vs latents) where the upstream kind declares it.
 * @module
 */

import type { Diagnostic } from "../pipeline/diagnostics.ts";
import type { ValidateContext } from "../pipeline/stage.ts";

/** Reports every artifact bound to `input` whose declared space is not `space`. */
export function expectSpace(
  ctx: ValidateContext,
  input: string,
  space: "pixels" | "latents",
  kind: string,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const up of ctx.input(input)) {
    if (up.space !== undefined && up.space !== space) {
      out.push({
        pos: ctx.inputAt(input),
        message: `input \`${input}\` of ${kind} stage \`${ctx.stage}\` needs ${
          space === "pixels" ? "a pixel-space dataset" : "latents"
        }, but \`${up.stage}\` (kind \`${up.kind}\`) produces ${up.space}`,
        hint: space === "pixels"
          ? "decode latents to images first (a `decode` stage), or bind the pixel dataset"
          : "encode images to latents first (an `encode` stage), or bind a latents dataset",
      });
    }
  }
  return out;
}

/** The one artifact bound to `input` (single inputs), if any. */
export function single(ctx: ValidateContext, input: string) {
  return ctx.input(input)[0];
}
