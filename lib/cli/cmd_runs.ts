/**
 * `ditflow runs [FILE]` (a table of cached stage runs) and `ditflow diff A B` (two runs compared).
 * @module
 */

import { diffRuns, diffText, findRuns } from "../runs/diff.ts";
import { type Format, formatRuns, FORMATS } from "../runs/format.ts";
import { loadRuns, queryRuns } from "../runs/model.ts";
import { loadRowsIndexed } from "../runs/index.ts";
import type { ArtifactMeta, Store } from "../pipeline/store.ts";
import { CliExit, loadOrExit, many, openStore, out, parse } from "./common.ts";
import { EXIT, registerCommand } from "./commands.ts";

const RUNS_USAGE = "runs [FILE] [--pipeline NAME] [--kind KIND]... [--current] [--filter k=v]... " +
  "[--sort-by COLUMN] [--desc] [--only-changed] [--columns GLOB,...] [--drop GLOB,...] " +
  "[--format table|csv|json|md] [--no-index] [--cache DIR]";

registerCommand({
  name: "runs",
  summary: "table of cached stage runs: point, params, metrics, time, key (filter, sort, csv/json/md)",
  usage: RUNS_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      pipeline: { type: "string", short: "p", multiple: true },
      kind: { type: "string", multiple: true },
      current: { type: "boolean" },
      filter: { type: "string", short: "f", multiple: true },
      "sort-by": { type: "string", short: "s" },
      desc: { type: "boolean" },
      "only-changed": { type: "boolean" },
      columns: { type: "string", short: "c", multiple: true },
      drop: { type: "string", multiple: true },
      format: { type: "string", default: "table" },
      "no-index": { type: "boolean" },
      cache: { type: "string" },
    }, RUNS_USAGE);
    if (!FORMATS.includes(values.format as Format)) {
      throw new CliExit(EXIT.invalid, `unknown --format ${values.format} (${FORMATS.join(", ")})`);
    }
    const pipelines = many(values.pipeline);
    for (const file of positionals) {
      const { plan } = await loadOrExit(file, [], RUNS_USAGE);
      pipelines.push(plan!.name);
    }
    const store = openStore(values.cache);
    let rows = loadRuns(store, {
      pipelines: pipelines.length ? pipelines : undefined,
      kinds: values.kind?.length ? many(values.kind) : undefined,
      base: values["no-index"] ? undefined : loadRowsIndexed(store).rows,
    });
    if (values.current) rows = rows.filter((r) => r.current);
    let table;
    try {
      table = queryRuns(rows, {
        filters: values.filter ?? [],
        include: many(values.columns),
        exclude: many(values.drop),
        onlyChanged: values["only-changed"],
        sortBy: values["sort-by"],
        desc: values.desc,
      });
    } catch (e) {
      throw new CliExit(EXIT.invalid, (e as Error).message);
    }
    out(formatRuns(table, values.format as Format));
    return EXIT.ok;
  },
});

const DIFF_USAGE = "diff A B [--pipeline NAME] [--json] [--cache DIR]   (A, B: stage names or key prefixes)";

function one(store: Store, what: string, pipeline?: string): ArtifactMeta {
  const found = findRuns(store, what, pipeline);
  if (found.length === 0) {
    throw new CliExit(EXIT.stageFailed, `no cached run matches \`${what}\` in ${store.root}`);
  }
  if (found.length > 1) {
    throw new CliExit(
      EXIT.invalid,
      `\`${what}\` matches ${found.length} runs; name one:\n${
        found.map((m) => `  ${m.name}  (${m.pipeline})  ${m.key.slice(0, 12)}`).join("\n")
      }`,
    );
  }
  return found[0];
}

registerCommand({
  name: "diff",
  summary: "compare two stage runs: params, inputs (recursively upstream), metric moves",
  usage: DIFF_USAGE,
  // deno-lint-ignore require-await
  async run(args) {
    const { values, positionals } = parse(args, {
      pipeline: { type: "string", short: "p" },
      json: { type: "boolean" },
      cache: { type: "string" },
    }, DIFF_USAGE);
    if (positionals.length !== 2) {
      throw new CliExit(EXIT.invalid, `diff takes two runs\nusage: ditflow ${DIFF_USAGE}`);
    }
    const store = openStore(values.cache);
    const a = one(store, positionals[0], values.pipeline);
    const b = one(store, positionals[1], values.pipeline);
    const d = diffRuns(store, a, b);
    out(values.json ? JSON.stringify(d, null, 1) : diffText(d));
    return EXIT.ok;
  },
});
