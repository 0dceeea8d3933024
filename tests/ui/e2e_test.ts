/**
 * End-to-end tests of `ditflow ui` in a real browser: Debian's chromium, driven headless by playwright-core
 * (never `playwright install`). Skipped, with a message, when /usr/bin/chromium (or $CHROMIUM) is absent;
 * `tools/ui_e2e.sh` installs it and runs them. Screenshots go to $UI_E2E_OUT (default tests/ui/out/).
 * @module
 */

import { chromium, type Page } from "playwright-core";
import { assert, assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { CLI } from "../pipeline/helpers.ts";
import { buildFixture, UI_KINDS } from "./fixture.ts";
import { serveUi } from "../../lib/ui/server.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const HAVE = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!HAVE) {
  console.warn(
    `tests/ui/e2e_test.ts: SKIPPED, no chromium at ${CHROMIUM} (apt-get install -y chromium, or run tools/ui_e2e.sh)`,
  );
}
const OUT = Deno.env.get("UI_E2E_OUT") ?? new URL("./out", import.meta.url).pathname;

interface ChartData {
  logX: boolean;
  logY: boolean;
  series: { id: string; label: string; n: number; x: number[]; y: number[] }[];
}

// deno-lint-ignore no-explicit-any
type Win = any;

function chart(page: Page, id: string): Promise<ChartData | undefined> {
  return page.evaluate((id) => (globalThis as Win).ditflow.charts[id], id);
}

function tableRows(
  page: Page,
): Promise<{ key: string; name: string; kind: string; metrics: Record<string, unknown> }[]> {
  return page.evaluate(() => (globalThis as Win).ditflow.state.table.rows);
}

async function until<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const t0 = Date.now();
  let v = await f();
  while (!ok(v)) {
    if (Date.now() - t0 > ms) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)?.slice(0, 400)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
    v = await f();
  }
  return v;
}

Deno.test({
  name:
    "ui e2e (chromium): sort and filter the table, overlay two curves, diff, grids and slider, report, DAG, live progress",
  ignore: !HAVE,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    using fx = await buildFixture();
    Deno.mkdirSync(OUT, { recursive: true });
    const plans = [];
    for (const f of [fx.pipeline, fx.slowPipeline]) plans.push((await loadPipeline(f, {})).plan!);
    const ac = new AbortController();
    let port = 0;
    const server = serveUi({
      store: fx.store,
      plans,
      reports: fx.reports,
      port: 0,
      hostname: "127.0.0.1",
      signal: ac.signal,
      onListen: (a) => port = a.port,
    });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-background-networking"],
    });
    let slow: Deno.ChildProcess | undefined;
    try {
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      // Nothing but this server: any other request would fail the page (no CDN, works offline).
      const foreign: string[] = [];
      page.on("request", (r) => !r.url().startsWith(`http://127.0.0.1:${port}/`) && foreign.push(r.url()));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForSelector("body[data-loaded]");
      assertEquals((await tableRows(page)).length, fx.store.listKeys().length);

      // Filter.
      await page.fill("#filter", "kind=ui_train current=true");
      const trains = await until("filtered rows", () => tableRows(page), (r) => r.length === 4);
      assert(trains.every((r) => r.kind === "ui_train"));
      assertEquals(await page.locator("#runs-table tbody tr").count(), 4);
      // Sort by clicking a header: ascending, then descending.
      await page.click('#runs-table th[data-col="metrics.final_loss"]');
      const losses = (rows: { metrics: Record<string, unknown> }[]) =>
        rows.map((r) => r.metrics.final_loss as number);
      const asc = await until("ascending", () => tableRows(page), (r) => {
        const l = losses(r);
        return l.every((v, i) => i === 0 || l[i - 1] <= v) && l[0] < l[3];
      });
      await page.click('#runs-table th[data-col="metrics.final_loss"]');
      const desc = await until("descending", () => tableRows(page), (r) => losses(r)[0] > losses(r)[3]);
      assertEquals(losses(desc), [...losses(asc)].reverse());
      assert(await page.locator('th[data-col="metrics.final_loss"].sorted-desc').count() === 1);
      // Only changed columns: kind and model are the same on every row.
      await page.check("#only-changed");
      await until("only-changed columns", () => page.locator('th[data-col="kind"]').count(), (n) => n === 0);
      assert(await page.locator('th[data-col="point.lr"]').count() === 1);
      await page.uncheck("#only-changed");
      await until("all columns", () => page.locator('th[data-col="kind"]').count(), (n) => n === 1);

      // Select two runs: both loss curves drawn, with every point of their loss.csv.
      const rows = page.locator("#runs-table tbody tr");
      await rows.nth(0).locator("input.row-select").check();
      await rows.nth(3).locator("input.row-select").check();
      const selected = [desc[0].key, desc[3].key];
      const c = await until("two curves", () => chart(page, "curves-chart"), (c) => c?.series.length === 2);
      assertEquals(c!.series.map((s) => s.id), selected);
      for (const s of c!.series) {
        const csv = Deno.readTextFileSync(`${fx.store.outputDir(s.id, "model")}/loss.csv`).trim().split("\n");
        assertEquals(s.n, csv.length - 1);
        assertEquals(s.x, csv.slice(1).map((l) => Number(l.split(",")[0])));
      }
      assertEquals(c!.logY, true);
      const paths = page.locator("#curves-chart path.series");
      assertEquals(await paths.count(), 2);
      for (let i = 0; i < 2; i++) {
        const d = (await paths.nth(i).getAttribute("d"))!;
        assertEquals(d.split(/[ML]/).filter(Boolean).length, c!.series[i].n);
      }
      // Smoothing off: the drawn y are the raw losses; log x on.
      await page.locator("#smooth").fill("0");
      await page.check("#log-x");
      const raw = await until("raw, log x", () => chart(page, "curves-chart"), (c) => !!c?.logX);
      const csv0 = Deno.readTextFileSync(`${fx.store.outputDir(selected[0], "model")}/loss.csv`).trim().split(
        "\n",
      );
      assertEquals(raw!.series[0].y, csv0.slice(1).map((l) => Number(l.split(",")[1])));
      const diff = await page.textContent("#diff-text") ?? "";
      assertStringIncludes(diff, `A  ${desc[0].name}`);
      assertStringIncludes(diff, `B  ${desc[3].name}`);
      assertStringIncludes(diff, "final_loss");
      await page.screenshot({ path: `${OUT}/runs.png`, fullPage: true });

      // fid runs: their curves and grids are found upstream.
      await page.click("#clear-selection");
      await page.fill("#filter", "kind=ui_fid current=true");
      await until(
        "fid rows",
        () => tableRows(page),
        (r) => r.length === 4 && r.every((x) => x.kind === "ui_fid"),
      );
      await page.locator("#runs-table tbody tr").nth(0).locator("input.row-select").check();
      await page.locator("#runs-table tbody tr").nth(1).locator("input.row-select").check();
      await until("fid curves (upstream)", () => chart(page, "curves-chart"), (c) => c?.series.length === 2);

      // Sweeps: fid against steps, one line per lr.
      await page.click('nav button[data-tab="sweeps"]');
      const sw = await until(
        "sweep chart",
        () => chart(page, "sweep-chart"),
        (c) => (c?.series.length ?? 0) === 2,
      );
      assertEquals(sw!.series.map((s) => s.n), [2, 2]);
      assert(sw!.series.every((s) => s.x.join() === "60,200"), JSON.stringify(sw));
      // FID's interval (fid_low..fid_high) drawn as error bars.
      const withBars = sw!.series as unknown as { y: number[]; lo: number[]; hi: number[] }[];
      assert(withBars.every((s) => s.lo.every((l, i) => l < s.y[i] && s.y[i] < s.hi[i])));
      assertEquals(await page.locator("#sweep-chart path.errbar").count(), 4);
      await page.screenshot({ path: `${OUT}/sweeps.png`, fullPage: true });
      await page.selectOption("#sweep-y", "metrics.class_accuracy");
      await until(
        "class accuracy",
        () => chart(page, "sweep-chart"),
        (c) => c!.series.every((s) => s.y.every((v) => v > 0.4 && v < 1)),
      );
      await page.selectOption("#sweep-x", "up.gflops");
      await until(
        "gflops axis",
        () => chart(page, "sweep-chart"),
        (c) => c!.series.every((s) => s.x[0] === 0.0039),
      );

      // Samples: the two selected runs' grids side by side, the compare slider, one grid opened.
      await page.click('nav button[data-tab="samples"]');
      for (const id of ["#grid-a", "#grid-b", "#compare-a", "#compare-b"]) {
        await until(
          `${id} loaded`,
          () => page.$eval(id, (e) => (e as Win).naturalWidth),
          (w) => w === 66,
        );
      }
      const srcA = await page.getAttribute("#grid-a", "src"),
        srcB = await page.getAttribute("#grid-b", "src");
      assert(srcA !== srcB && srcA!.endsWith("/samples/grid.png"), `${srcA} ${srcB}`);
      await page.locator("#compare-slider").fill("30");
      assertEquals(
        await page.$eval("#compare-b", (e) => (e as Win).style.clipPath),
        "inset(0px 0px 0px 30%)",
      );
      await page.screenshot({ path: `${OUT}/samples.png`, fullPage: true });
      const [popup] = await Promise.all([context.waitForEvent("page"), page.click("#link-a")]);
      await popup.waitForLoadState();
      assert(popup.url().endsWith(srcA!), popup.url());
      assertEquals(await popup.evaluate(() => (globalThis as Win).document.images[0]?.naturalWidth), 66);
      await popup.close();

      // Reports: the pipeline's README rendered, with its image.
      await page.click('nav button[data-tab="reports"]');
      await page.waitForSelector("#report-body h1");
      assertEquals(await page.textContent("#report-body h1"), "uitest: a cheap sweep");
      assertEquals(await page.locator("#report-body table tr").count(), 3);
      await until(
        "report image",
        () => page.$eval("#report-body img", (e) => (e as Win).naturalWidth),
        (w) => w === 66,
      );

      // DAG: edges drawn between stages, with their states.
      await page.click('nav button[data-tab="dag"]');
      await page.waitForSelector('svg.dag-svg[data-pipeline="uitest"]');
      assertEquals(await page.getAttribute('svg[data-pipeline="uitest"]', "data-edges"), "12");
      assertEquals(await page.locator('svg[data-pipeline="uitest"] path.edge').count(), 12);
      assertEquals(await page.locator('svg[data-pipeline="uitest"] g.node[data-state="cached"]').count(), 13);
      assertEquals(
        await page.locator('svg[data-pipeline="uitest"] path.edge[data-from="data"]').count(),
        4,
      );
      await page.screenshot({ path: `${OUT}/dag.png`, fullPage: true });

      // Live progress: a running stage appears and its step advances, without reloading the page.
      slow = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "run", fx.slowPipeline, "--cache", fx.cache],
        env: { DITFLOW_STAGE_MODULES: UI_KINDS, DITFLOW_PLAIN: "1" },
        stdout: "null",
        stderr: "null",
      }).spawn();
      await page.evaluate(() => (globalThis as Win).__noReload = true);
      const step = () =>
        page.evaluate(() =>
          Number(
            (globalThis as Win).document.querySelector("#live .live-row")?.getAttribute("data-step") ?? -1,
          )
        );
      const s1 = await until("live row", step, (s) => s > 0, 30_000);
      await until("step advances", step, (s) => s > s1, 10_000);
      assertStringIncludes(await page.textContent("#live") ?? "", "ETA");
      await until(
        "running node",
        () => page.locator('g.node[data-name="slow"][data-state="running"]').count(),
        (n) => n === 1,
      );
      assert(await page.evaluate(() => (globalThis as Win).__noReload === true), "the page reloaded");
      await page.screenshot({ path: `${OUT}/live.png`, fullPage: true });
      slow.kill("SIGINT");
      await slow.status;
      slow = undefined;
      await until("live gone", () => page.isHidden("#live"), (h) => h, 10_000);

      // One click from a DAG node to its runs (current and older).
      await page.click('svg[data-pipeline="uitest"] g.node[data-name="train[lr=0.001,steps=60]"]');
      const runsOf = await until(
        "node's runs",
        () => tableRows(page),
        (r) => r.length === 2 && r.every((x) => x.name === "train[lr=0.001,steps=60]"),
      );
      assertEquals(runsOf.length, 2);
      assert(await page.isVisible("#tab-runs"));

      assertEquals(errors, []);
      assertEquals(foreign, []);
    } finally {
      if (slow) {
        slow.kill("SIGKILL");
        await slow.status;
      }
      await browser.close();
      ac.abort();
      await server.finished;
    }
  },
});
