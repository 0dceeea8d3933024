/**
 * `ditflow ui [--port N] [FILE...]`: serves the local web view of the cache (runs table, loss curves, sweep
 * plots, sample grids, reports, the DAG with stage states, live progress) on 127.0.0.1. Without FILEs it
 * shows every run in the cache and the DAGs of the pipelines in the cache's refs whose files exist.
 * @module
 */

import type { Plan } from "../pipeline/plan.ts";
import { loadPipeline } from "../pipeline/load.ts";
import { serveUi } from "../ui/server.ts";
import {
  CliExit,
  err,
  intOption,
  loadExtraKindModules,
  loadOrExit,
  openStore,
  out,
  parse,
} from "./common.ts";
import { EXIT, registerCommand } from "./commands.ts";

const UI_USAGE = "ui [FILE...] [--port N] [--host ADDR] [--reports DIR] [--cache DIR]";

registerCommand({
  name: "ui",
  summary: "serve a local web view of runs, curves, samples, reports, the DAG and live progress",
  usage: UI_USAGE,
  async run(args) {
    const { values, positionals } = parse(args, {
      port: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      reports: { type: "string", default: "experiments" },
      cache: { type: "string" },
    }, UI_USAGE);
    const port = values.port === "0" ? 0 : intOption(values.port, "port", 8765);
    const store = openStore(values.cache);
    const plans: Plan[] = [];
    for (const f of positionals) plans.push((await loadOrExit(f, [], UI_USAGE)).plan!);
    if (!positionals.length) {
      await loadExtraKindModules();
      for (const r of store.readRefs()) {
        try {
          const l = await loadPipeline(r.file, {});
          if (l.plan) plans.push(l.plan);
        } catch { /* the file moved or needs other kinds: show its runs without a DAG */ }
      }
    }
    const ac = new AbortController();
    const stop = () => ac.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    let server;
    try {
      server = serveUi({
        store,
        plans,
        onlyPlans: positionals.length > 0,
        reports: values.reports,
        hosts: [
          "127.0.0.1",
          "localhost",
          "[::1]",
          values.host.includes(":") ? `[${values.host}]` : values.host,
        ],
        port,
        hostname: values.host,
        signal: ac.signal,
        onListen: ({ hostname, port }) => out(`ditflow ui: http://${hostname}:${port}/  (Ctrl-C to stop)`),
      });
    } catch (e) {
      throw new CliExit(EXIT.invalid, `cannot listen on ${values.host}:${port}: ${(e as Error).message}`);
    }
    if (values.host !== "127.0.0.1" && values.host !== "localhost") {
      err(`warning: serving on ${values.host}; anyone who can reach it can read the cache`);
    }
    await server.finished;
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    return EXIT.ok;
  },
});
