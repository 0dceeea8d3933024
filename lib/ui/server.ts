/**
 * The HTTP server of `ditflow ui` (Deno.serve, 127.0.0.1 by default). It serves:
 *
 * - `/` and the page's own static files (`lib/ui/static/`: index.html, app.js, app.css), by a fixed list;
 * - `/api/...` JSON: `runs` (query: filter, sort, desc, only_changed, columns, drop, limit), `run/KEY`,
 *   `curve/KEY`, `pipelines`, `live`, `reports`, `diff?a=KEY&b=KEY`, `stamp`;
 * - `/files/KEY/OUTPUT/PATH`: a file of a complete artifact in the cache;
 * - `/reports/NAME/FILE`: a file of a report folder (a sub-folder of the reports directory).
 *
 * Requests whose Host header names another host get 403 (DNS rebinding). Nothing else is served: any other path, and any path whose decoded segments hold `..`, `.`, a slash, a backslash or
 * a NUL, or that resolves (symlinks followed) outside the artifact or report folder, gets 404.
 * @module
 */

import { diffRuns, diffText } from "../runs/diff.ts";
import { rowOf, type RunRow } from "../runs/model.ts";
import type { Plan } from "../pipeline/plan.ts";
import type { Store } from "../pipeline/store.ts";
import { apiLive, apiPipelines, apiReports, apiRun, apiRuns, cacheStamp, queryOf, readCurve } from "./api.ts";

/** Options of {@link createHandler}. */
export interface UiOptions {
  store: Store;
  /** Pipelines whose DAG is shown (and whose runs are listed, when `onlyPlans`). */
  plans: Plan[];
  /** Restrict the runs to the plans' pipelines (when FILEs were given). */
  onlyPlans?: boolean;
  /** The folder of report folders (default `experiments/`). */
  reports: string;
  /**
   * Host names the server answers to (the Host header of a request). Default: 127.0.0.1, localhost, ::1 —
   * a page elsewhere that rebinds its own domain name to 127.0.0.1 cannot read the cache through a browser.
   */
  hosts?: string[];
}

const STATIC: Record<string, [string, string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/index.html": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/app.css": ["app.css", "text/css; charset=utf-8"],
};

const TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  svg: "image/svg+xml",
  gif: "image/gif",
  webp: "image/webp",
  csv: "text/csv; charset=utf-8",
  json: "application/json; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  txt: "text/plain; charset=utf-8",
};

function notFound(): Response {
  return new Response("not found\n", { status: 404, headers: { "content-type": "text/plain" } });
}

function json(v: unknown): Response {
  return new Response(JSON.stringify(v), {
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

/** Decodes path segments; undefined when any is empty, `.`, `..`, or holds `/`, `\` or NUL once decoded. */
export function safeSegments(parts: string[]): string[] | undefined {
  const out: string[] = [];
  for (const p of parts) {
    let d: string;
    try {
      d = decodeURIComponent(p);
    } catch {
      return undefined;
    }
    if (d === "" || d === "." || d === ".." || /[\/\\\0]/.test(d)) return undefined;
    out.push(d);
  }
  return out;
}

/** Serves `root/rel...` when it is a file that resolves inside `root` (symlinks followed). */
async function serveInside(root: string, rel: string[], req: Request): Promise<Response> {
  let realRoot: string, real: string;
  try {
    realRoot = await Deno.realPath(root);
    real = await Deno.realPath(`${root}/${rel.join("/")}`);
  } catch {
    return notFound();
  }
  if (!real.startsWith(realRoot + "/")) return notFound();
  let file: Deno.FsFile;
  try {
    const st = await Deno.stat(real);
    if (!st.isFile) return notFound();
    file = await Deno.open(real, { read: true });
  } catch {
    return notFound();
  }
  const ext = real.slice(real.lastIndexOf(".") + 1).toLowerCase();
  const headers: Record<string, string> = { "content-type": TYPES[ext] ?? "application/octet-stream" };
  if (req.method === "HEAD") {
    file.close();
    return new Response(null, { headers });
  }
  return new Response(file.readable, { headers });
}

/** The request handler (exported for tests). */
export function createHandler(opts: UiOptions): (req: Request) => Promise<Response> {
  const { store } = opts;
  const pipelines = opts.onlyPlans ? opts.plans.map((p) => p.name) : undefined;
  const staticDir = new URL("./static/", import.meta.url);
  const rowCache = new Map<string, RunRow>();
  const hosts = new Set(opts.hosts ?? ["127.0.0.1", "localhost", "[::1]"]);
  return async (req: Request): Promise<Response> => {
    if (req.method !== "GET" && req.method !== "HEAD") return notFound();
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      return notFound();
    }
    if (!hosts.has(url.hostname)) return new Response("forbidden host\n", { status: 403 });
    const raw = url.pathname;
    const st = STATIC[raw];
    if (st) {
      const body = await Deno.readFile(new URL(st[0], staticDir));
      return new Response(req.method === "HEAD" ? null : body, {
        headers: { "content-type": st[1], "cache-control": "no-store" },
      });
    }
    const seg = safeSegments(raw.split("/").slice(1));
    if (!seg) return notFound();
    const [top, ...rest] = seg;
    try {
      if (top === "api") return await api(rest, url.searchParams);
      if (top === "files" && rest.length >= 3 && /^[0-9a-f]{64}$/.test(rest[0]) && store.has(rest[0])) {
        return await serveInside(`${store.objectDir(rest[0])}/out`, rest.slice(1), req);
      }
      if (top === "reports" && rest.length >= 2) {
        if (!apiReports(opts.reports).some((r) => r.name === rest[0])) return notFound();
        return await serveInside(`${opts.reports}/${rest[0]}`, rest.slice(1), req);
      }
    } catch (e) {
      return new Response(`error: ${(e as Error).message}\n`, { status: 500 });
    }
    return notFound();
  };

  async function api(path: string[], q: URLSearchParams): Promise<Response> {
    const [what, arg] = path;
    if (path.length === 1) {
      switch (what) {
        case "runs": {
          const query = queryOf(q);
          try {
            return json(apiRuns(store, query, pipelines, query.limit, rowCache));
          } catch (e) {
            return new Response(JSON.stringify({ error: (e as Error).message }), { status: 400 });
          }
        }
        case "pipelines":
          return json(await apiPipelines(store, opts.plans));
        case "live":
          return json(apiLive(store));
        case "reports":
          return json(apiReports(opts.reports));
        case "stamp":
          return json({ stamp: cacheStamp(store), live: apiLive(store) });
        case "diff": {
          const a = store.readMeta(q.get("a") ?? ""), b = store.readMeta(q.get("b") ?? "");
          if (!a || !b) return notFound();
          const d = diffRuns(store, a, b);
          return json({ ...d, text: diffText(d) });
        }
      }
    }
    if (path.length === 2 && /^[0-9a-f]{64}$/.test(arg)) {
      const meta = store.readMeta(arg);
      if (!meta) return notFound();
      if (what === "run") {
        const r = store.readRefs();
        const current = r.some((x) => Object.values(x.stages).includes(arg));
        return json({ row: apiRun(store, rowOf(meta, current)), meta });
      }
      if (what === "curve") {
        const row = apiRun(store, rowOf(meta));
        const c = row.curve && readCurve(store, row.curve, row.curve.name);
        return c ? json({ ...c, for: arg }) : notFound();
      }
    }
    return notFound();
  }
}

/** Options of {@link serveUi}. */
export interface ServeOptions extends UiOptions {
  port: number;
  hostname: string;
  signal?: AbortSignal;
  onListen?: (addr: { hostname: string; port: number }) => void;
}

/** Starts the server. */
export function serveUi(opts: ServeOptions): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    port: opts.port,
    hostname: opts.hostname,
    signal: opts.signal,
    onListen: opts.onListen ?? (() => {}),
  }, createHandler(opts));
}
