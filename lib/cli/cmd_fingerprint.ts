/**
 * `ditflow fingerprint KIND [--json]`: a stage kind's code digest and the files it covers (each with its
 * token hash and the module that imports it), i.e. exactly what a code change must touch to rerun the
 * kind's stages.
 * @module
 */

import { suggestion } from "../pipeline/diagnostics.ts";
import { fingerprintModule } from "../pipeline/fingerprint.ts";
import { getKind, listKinds } from "../pipeline/registry.ts";
import { CliExit, loadExtraKindModules, out, parse } from "./common.ts";
import { EXIT, registerCommand } from "./commands.ts";

const USAGE = "fingerprint KIND [--json]";

registerCommand({
  name: "fingerprint",
  summary: "print a stage kind's code digest and the files it covers",
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parse(args, { json: { type: "boolean" } }, USAGE);
    const name = positionals[0];
    if (!name || positionals.length > 1) {
      throw new CliExit(EXIT.invalid, `name one KIND\nusage: ditflow ${USAGE}`);
    }
    await loadExtraKindModules();
    const kind = getKind(name);
    if (!kind) {
      const hint = suggestion(name, listKinds().map((k) => k.name), "known kinds");
      throw new CliExit(EXIT.invalid, `unknown stage kind \`${name}\`${hint ? `; ${hint}` : ""}`);
    }
    const fp = fingerprintModule(kind.module, kind.extraFiles);
    const files = Object.keys(fp.files).sort();
    if (values.json) {
      out(JSON.stringify(
        {
          kind: kind.name,
          module: kind.module,
          digest: fp.hash,
          files: fp.files,
          via: fp.via,
          external: fp.external,
        },
        null,
        2,
      ));
      return EXIT.ok;
    }
    const w = Math.max(...files.map((f) => f.length));
    const lines = [
      `kind ${kind.name}: code digest ${fp.hash}`,
      `${files.length} files (hashed as tokens: comments and formatting do not count):`,
      ...files.map((f) =>
        `  ${f.padEnd(w)}  ${fp.files[f].slice(0, 12)}${fp.via[f] ? `  ← ${fp.via[f]}` : ""}`
      ),
      `external: ${fp.external.length ? fp.external.join(", ") : "none"}`,
    ];
    out(lines.join("\n"));
    return EXIT.ok;
  },
});
