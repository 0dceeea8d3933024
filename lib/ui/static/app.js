// ditflow ui: the page. Plain browser JavaScript, no build step, no network beyond this server.
// Tests read `window.ditflow` (state and the data each chart drew).
"use strict";

const $ = (s) => document.querySelector(s);
const esc = (s) =>
  String(s ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
const COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#7f7f7f",
  "#bcbd22",
];

const state = {
  tab: "runs",
  table: { columns: [], rows: [], total: 0, all: 0 },
  sort: "",
  desc: false,
  selected: [], // keys, in selection order
  curves: new Map(), // key -> curve | null
  pipelines: [],
  reports: [],
  stamp: "",
  liveKeys: "",
};
const ditflow = { state, charts: {}, loads: 0 };
globalThis.ditflow = ditflow;

async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

function fmt(v) {
  if (v === undefined || v === null) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (/^[0-9a-f]{64}$/.test(v)) return v.slice(0, 12);
  return String(v);
}

function val(row, id) {
  const i = id.indexOf(".");
  if (i > 0) {
    const ns = id.slice(0, i);
    if (["point", "params", "metrics", "up"].includes(ns)) return row[ns]?.[id.slice(i + 1)];
  }
  return row[id];
}

function colorOf(key) {
  const i = state.selected.indexOf(key);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll("#tabs button")) {
    b.classList.toggle("active", b.dataset.tab === name);
  }
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${name}`;
  if (name === "sweeps") drawSweep();
  if (name === "samples") renderSamples();
  if (name === "reports") loadReports();
  if (name === "dag") loadPipelines();
}

// ---------------------------------------------------------------- runs table

let loadSeq = 0;
async function loadRuns() {
  const q = new URLSearchParams();
  const f = $("#filter").value.trim();
  if (f) q.set("filter", f);
  if ($("#columns").value.trim()) q.set("columns", $("#columns").value.trim());
  if ($("#drop").value.trim()) q.set("drop", $("#drop").value.trim());
  if ($("#only-changed").checked) q.set("only_changed", "1");
  if (state.sort) q.set("sort", state.sort);
  if (state.desc) q.set("desc", "1");
  const seq = ++loadSeq;
  let t;
  try {
    t = await getJson(`/api/runs?${q}`);
    $("#runs-error").textContent = "";
  } catch (e) {
    $("#runs-error").textContent = e.message.replace(/^[^:]*: \d+ /, "");
    return;
  }
  if (seq !== loadSeq) return;
  state.table = t;
  renderTable();
  ditflow.loads++;
  document.body.dataset.loaded = String(ditflow.loads);
  if (state.tab === "sweeps") drawSweep();
  if (state.tab === "samples") renderSamples();
}

function renderTable() {
  const { columns, rows, total, all } = state.table;
  const short = columns.map((c) => c.replace(/^(point|params|metrics)\./, ""));
  const dup = (s) => short.filter((x) => x === s).length > 1;
  const head = columns.map((c, i) => {
    const cls = state.sort === c ? (state.desc ? "sorted-desc" : "sorted-asc") : "";
    return `<th data-col="${esc(c)}" class="${cls}" title="${esc(c)}">${
      esc(dup(short[i]) ? c : short[i])
    }</th>`;
  });
  $("#runs-table thead").innerHTML = `<tr><th></th>${head.join("")}</tr>`;
  const numeric = columns.map((c) => rows.some((r) => typeof val(r, c) === "number"));
  $("#runs-table tbody").innerHTML = rows.map((r) => {
    const sel = state.selected.includes(r.key);
    const cells = columns.map((c, i) => {
      const v = val(r, c);
      const cls = [numeric[i] ? "num" : "", c === "key" ? "key" : ""].join(" ").trim();
      return `<td${cls ? ` class="${cls}"` : ""} title="${esc(v)}">${esc(fmt(v))}</td>`;
    });
    const sw = sel ? `<span class="swatch" style="background:${colorOf(r.key)}"></span>` : "";
    return `<tr data-key="${r.key}"${
      sel ? ' class="selected"' : ""
    }><td>${sw}<input type="checkbox" class="row-select" data-key="${r.key}"${sel ? " checked" : ""}></td>${
      cells.join("")
    }</tr>`;
  }).join("");
  $("#count").textContent = `${rows.length < total ? `${rows.length} shown of ` : ""}${total} of ${all} runs`;
}

function toggleSelect(key) {
  const i = state.selected.indexOf(key);
  if (i >= 0) state.selected.splice(i, 1);
  else state.selected.push(key);
  renderTable();
  onSelection();
}

async function onSelection() {
  await drawCurves();
  await drawDiff();
  if (state.tab === "samples") renderSamples();
}

// ---------------------------------------------------------------- charts (SVG)

function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of hi / lo > 1000 ? [1] : hi / lo > 20 ? [1, 3] : [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out.length >= 2 ? out : [lo, hi];
}

/**
 * Draws line series into an SVG: series = [{id, label, color, x, y, raw?}] (raw: unsmoothed y, drawn
 * faintly). Records what it drew in window.ditflow.charts[svg.id].
 */
function lineChart(svg, series, opt = {}) {
  const W = Number(svg.getAttribute("width")), H = Number(svg.getAttribute("height"));
  const m = { l: 56, r: 12, t: 10, b: 34 };
  const ok = (v, log) => Number.isFinite(v) && (!log || v > 0);
  const xs = [], ys = [];
  for (const s of series) {
    s.x.forEach((x, i) => {
      if (ok(x, opt.logX) && ok(s.y[i], opt.logY)) {
        xs.push(x);
        ys.push(s.y[i]);
        if (s.raw && ok(s.raw[i], opt.logY)) ys.push(s.raw[i]);
        for (const b of [s.lo?.[i], s.hi?.[i]]) if (ok(b, opt.logY)) ys.push(b);
      }
    });
  }
  ditflow.charts[svg.id] = {
    logX: !!opt.logX,
    logY: !!opt.logY,
    series: series.map((s) => ({
      id: s.id,
      label: s.label,
      color: s.color,
      n: s.x.length,
      x: s.x,
      y: s.y,
      ...(s.lo ? { lo: s.lo, hi: s.hi } : {}),
    })),
  };
  svg.dataset.series = String(series.length);
  if (!xs.length) {
    svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">${
      esc(opt.empty ?? "nothing to plot")
    }</text>`;
    return;
  }
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x0 === x1) {
    x0 = opt.logX ? x0 / 2 : x0 - 1;
    x1 = opt.logX ? x1 * 2 : x1 + 1;
  }
  if (y0 === y1) {
    y0 = opt.logY ? y0 / 2 : y0 - 1;
    y1 = opt.logY ? y1 * 2 : y1 + 1;
  }
  if (opt.markers && !opt.logX) {
    const pad = (x1 - x0) * 0.04;
    x0 -= pad;
    x1 += pad;
  }
  if (!opt.logY) {
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  const tx = (v) => opt.logX ? Math.log10(v) : v, ty = (v) => opt.logY ? Math.log10(v) : v;
  const px = (v) => m.l + (tx(v) - tx(x0)) / (tx(x1) - tx(x0)) * (W - m.l - m.r);
  const py = (v) => H - m.b - (ty(v) - ty(y0)) / (ty(y1) - ty(y0)) * (H - m.t - m.b);
  const parts = [];
  for (const t of opt.logX ? logTicks(x0, x1) : niceTicks(x0, x1)) {
    parts.push(
      `<line class="grid" x1="${px(t)}" x2="${px(t)}" y1="${m.t}" y2="${H - m.b}"/>`,
      `<text x="${px(t)}" y="${H - m.b + 14}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  for (const t of opt.logY ? logTicks(y0, y1) : niceTicks(y0, y1)) {
    parts.push(
      `<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${py(t)}" y2="${py(t)}"/>`,
      `<text x="${m.l - 4}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}"/>`,
    `<line class="axis" x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}"/>`,
  );
  if (opt.xLabel) {
    parts.push(`<text x="${(W + m.l) / 2}" y="${H - 4}" text-anchor="middle">${esc(opt.xLabel)}</text>`);
  }
  if (opt.yLabel) {
    parts.push(
      `<text transform="translate(12 ${(H - m.b) / 2}) rotate(-90)" text-anchor="middle">${
        esc(opt.yLabel)
      }</text>`,
    );
  }
  const path = (x, y) => {
    let d = "", pen = false;
    x.forEach((xv, i) => {
      if (!ok(xv, opt.logX) || !ok(y[i], opt.logY)) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${px(xv).toFixed(1)},${py(y[i]).toFixed(1)}`;
      pen = true;
    });
    return d;
  };
  for (const s of series) {
    if (s.raw) parts.push(`<path class="raw" stroke="${s.color}" d="${path(s.x, s.raw)}"/>`);
    parts.push(
      `<path class="series" data-id="${esc(s.id)}" data-points="${s.x.length}" stroke="${s.color}" d="${
        path(s.x, s.y)
      }"><title>${esc(s.label)}</title></path>`,
    );
    if (opt.markers) {
      s.x.forEach((xv, i) => {
        const lo = s.lo?.[i], hi = s.hi?.[i];
        if (ok(xv, opt.logX) && ok(lo, opt.logY) && ok(hi, opt.logY)) {
          // Interval (e.g. fid_low..fid_high, class_accuracy_low..high) as an error bar.
          const X = px(xv);
          parts.push(
            `<path class="errbar" stroke="${s.color}" d="M${X},${py(lo)}V${py(hi)}M${X - 4},${py(lo)}h8M${
              X - 4
            },${py(hi)}h8"/>`,
          );
        }
        if (ok(xv, opt.logX) && ok(s.y[i], opt.logY)) {
          parts.push(
            `<circle cx="${px(xv)}" cy="${py(s.y[i])}" r="3.5" fill="${s.color}"><title>${esc(s.label)}: ${
              fmt(xv)
            }, ${fmt(s.y[i])}</title></circle>`,
          );
        }
      });
    }
  }
  svg.innerHTML = parts.join("");
}

function legend(el, series) {
  el.innerHTML = series.map((s) =>
    `<span><span class="swatch" style="background:${s.color}"></span>${esc(s.label)}${
      s.stats ? ` <span class="hint">${esc(s.stats)}</span>` : ""
    }</span>`
  ).join("");
}

function ema(y, w) {
  const out = [];
  let s;
  for (const v of y) {
    s = s === undefined ? v : w * s + (1 - w) * v;
    out.push(s);
  }
  return out;
}

async function curveOf(key) {
  if (!state.curves.has(key)) {
    try {
      state.curves.set(key, await getJson(`/api/curve/${key}`));
    } catch {
      state.curves.set(key, null);
    }
  }
  return state.curves.get(key);
}

async function drawCurves() {
  const w = Number($("#smooth").value);
  $("#smooth-value").textContent = w.toFixed(2);
  const series = [];
  const drawn = new Set();
  for (const key of state.selected) {
    const c = await curveOf(key);
    if (!c || drawn.has(c.key)) continue; // several selected runs may lead to the same upstream curve
    drawn.add(c.key);
    const row = state.table.rows.find((r) => r.key === key);
    const label = c.key === key ? c.name : `${row?.name ?? key.slice(0, 12)} (via ${c.name})`;
    series.push({
      id: key,
      curveKey: c.key,
      label,
      color: colorOf(key),
      x: c.steps,
      y: w > 0 ? ema(c.loss, w) : c.loss,
      raw: w > 0 ? c.loss : undefined,
      stats: c.loss.length
        ? `min ${fmt(Math.min(...c.loss))} · max ${fmt(Math.max(...c.loss))} · last ${fmt(c.loss.at(-1))}`
        : "",
    });
  }
  lineChart($("#curves-chart"), series, {
    logX: $("#log-x").checked,
    logY: $("#log-y").checked,
    xLabel: "step",
    yLabel: "loss",
    empty: state.selected.length
      ? "no loss curve for the selected runs"
      : "select runs to see their loss curves",
  });
  legend($("#curves-legend"), series);
}

async function drawDiff() {
  const [a, b] = state.selected;
  if (!a || !b) {
    $("#diff-text").textContent = "select two runs";
    return;
  }
  try {
    const d = await getJson(`/api/diff?a=${a}&b=${b}`);
    $("#diff-text").textContent = d.text;
  } catch (e) {
    $("#diff-text").textContent = e.message;
  }
}

// ---------------------------------------------------------------- sweeps

function numericIds(rows) {
  const ids = new Set();
  for (const r of rows) {
    for (const ns of ["point", "metrics", "params", "up"]) {
      for (const [k, v] of Object.entries(r[ns] ?? {})) if (typeof v === "number") ids.add(`${ns}.${k}`);
    }
  }
  return [...ids];
}

function fillSelect(sel, options, preferred) {
  const cur = sel.options.length ? sel.value : undefined;
  sel.innerHTML = options.map((o) => `<option value="${esc(o.value)}">${esc(o.label)}</option>`).join("");
  const pick = options.some((o) => o.value === cur)
    ? cur
    : preferred.find((p) => options.some((o) => o.value === p)) ?? options[0]?.value;
  if (pick !== undefined) sel.value = pick;
}

function drawSweep() {
  const rows = state.table.rows.filter((r) => r.current || !$("#sweep-current").checked);
  const ids = numericIds(rows);
  const label = (id) =>
    id.replace(/^metrics\./, "").replace(/^up\./, "upstream ").replace(/^point\./, "").replace(
      /^params\./,
      "param ",
    );
  const yIds = ids.filter((i) => i.startsWith("metrics.") || i.startsWith("up."));
  fillSelect($("#sweep-y"), yIds.map((i) => ({ value: i, label: label(i) })), [
    "metrics.fid",
    "metrics.class_accuracy",
    "metrics.final_loss",
  ]);
  fillSelect($("#sweep-x"), ids.map((i) => ({ value: i, label: label(i) })), [
    "point.steps",
    "up.gflops",
    "metrics.gflops",
    "point.cfg_scale",
  ]);
  const axes = [...new Set(rows.flatMap((r) => Object.keys(r.point)))];
  fillSelect($("#sweep-group"), [
    { value: "", label: "(one line)" },
    ...axes.map((a) => ({ value: `point.${a}`, label: a })),
  ], axes.map((a) => `point.${a}`).filter((a) => a !== $("#sweep-x").value));
  const y = $("#sweep-y").value, x = $("#sweep-x").value, g = $("#sweep-group").value;
  const groups = new Map();
  for (const r of rows) {
    const xv = val(r, x), yv = val(r, y);
    if (typeof xv !== "number" || typeof yv !== "number") continue;
    const gk = g ? `${g.replace(/^point\./, "")}=${fmt(val(r, g))}` : label(y);
    if (!groups.has(gk)) groups.set(gk, []);
    const lo = val(r, `${y}_low`), hi = val(r, `${y}_high`);
    groups.get(gk).push([
      xv,
      yv,
      typeof lo === "number" ? lo : undefined,
      typeof hi === "number" ? hi : undefined,
    ]);
  }
  const ordered = [...groups.entries()].sort((a, b) =>
    a[0].localeCompare(b[0], undefined, { numeric: true })
  );
  const series = ordered.map(([k, pts], i) => {
    pts.sort((a, b) => a[0] - b[0]);
    return {
      id: k,
      label: k,
      color: COLORS[i % COLORS.length],
      x: pts.map((p) => p[0]),
      y: pts.map((p) => p[1]),
      ...(pts.some((p) => p[2] !== undefined)
        ? { lo: pts.map((p) => p[2] ?? NaN), hi: pts.map((p) => p[3] ?? NaN) }
        : {}),
    };
  });
  lineChart($("#sweep-chart"), series, {
    markers: true,
    logX: $("#sweep-log-x").checked,
    xLabel: label(x),
    yLabel: label(y),
    empty: "no runs have both values (filter the table, e.g. kind=fid)",
  });
  legend($("#sweep-legend"), series);
}

// ---------------------------------------------------------------- samples

function gridRuns() {
  const seen = new Set(), out = [];
  const rows = [
    ...state.selected.map((k) => state.table.rows.find((r) => r.key === k)).filter(Boolean),
    ...state.table.rows,
  ];
  for (const r of rows) {
    if (!r.grid || seen.has(r.grid.key)) continue;
    seen.add(r.grid.key);
    out.push({ value: `${r.grid.key}/${r.grid.file}`, label: r.grid.name, run: r });
  }
  return out;
}

function renderSamples() {
  const runs = gridRuns();
  fillSelect($("#sample-a"), runs, runs.slice(0, 1).map((r) => r.value));
  fillSelect($("#sample-b"), runs, runs.slice(1, 2).map((r) => r.value));
  showSamples();
}

/** Display width of a grid: the zoom slider's factor, or (0, "fit") about 560 px, integer factors when enlarging. */
function gridWidth(img) {
  const z = Number($("#sample-zoom").value);
  if (z > 0) return img.naturalWidth * z;
  const f = 560 / img.naturalWidth;
  return Math.round(img.naturalWidth * (f >= 1 ? Math.floor(f) : f));
}

function showSamples() {
  for (const side of ["a", "b"]) {
    const v = $(`#sample-${side}`).value;
    const opt = [...$(`#sample-${side}`).options].find((o) => o.value === v);
    const url = v ? `/files/${v}` : "";
    for (const id of [`#grid-${side}`, `#compare-${side}`]) {
      const img = $(id);
      if (url && img.getAttribute("src") !== url) img.src = url;
      img.onload = () => {
        img.width = gridWidth(img);
        if (id.startsWith("#compare")) updateCompare();
      };
      if (img.complete && img.naturalWidth) img.width = gridWidth(img);
    }
    $(`#link-${side}`).href = url;
    $(`#caption-${side}`).textContent = `${side.toUpperCase()}: ${opt?.textContent ?? "(none)"}`;
  }
  updateCompare();
}

function updateCompare() {
  const p = Number($("#compare-slider").value);
  $("#compare-b").style.clipPath = `inset(0 0 0 ${p}%)`;
  $("#compare-line").style.left = `calc(${p}% - 1px)`;
  $("#compare-slider").style.width = `${$("#compare-a").width || 200}px`;
}

// ---------------------------------------------------------------- reports (simple markdown)

function inline(s, base) {
  const link = (u) => /^[a-z]+:|^\/|^#/.test(u) ? u : `${base}/${u}`;
  return esc(s)
    .replace(/!\[([^\]]*)\]\(([^)\s]+)\)/g, (_, alt, u) => `<img alt="${alt}" src="${link(u)}">`)
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_, t, u) => `<a href="${link(u)}" target="_blank">${t}</a>`)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
}

/** Renders the markdown the report stage writes: headings, paragraphs, tables, lists, images, code. */
function markdown(text, base) {
  const lines = text.split("\n"), out = [];
  for (let i = 0; i < lines.length;) {
    const l = lines[i];
    if (/^```/.test(l)) {
      const body = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) body.push(lines[i]);
      i++;
      out.push(`<pre><code>${esc(body.join("\n"))}</code></pre>`);
    } else if (/^#{1,6} /.test(l)) {
      const n = l.match(/^#+/)[0].length;
      out.push(`<h${n}>${inline(l.slice(n + 1), base)}</h${n}>`);
      i++;
    } else if (/^\|/.test(l)) {
      const rows = [];
      for (; i < lines.length && /^\|/.test(lines[i]); i++) rows.push(lines[i]);
      const cells = (r) => r.replace(/^\||\|\s*$/g, "").split(/(?<!\\)\|/).map((c) => c.trim());
      const body = rows.filter((r, j) => !(j === 1 && /^\|[\s:|-]+$/.test(r)));
      out.push(
        `<table>${
          body.map((r, j) =>
            `<tr>${
              cells(r).map((c) => j === 0 ? `<th>${inline(c, base)}</th>` : `<td>${inline(c, base)}</td>`)
                .join("")
            }</tr>`
          ).join("")
        }</table>`,
      );
    } else if (/^\s*[-*] /.test(l)) {
      const items = [];
      for (; i < lines.length && /^\s*[-*] /.test(lines[i]); i++) {
        items.push(lines[i].replace(/^\s*[-*] /, ""));
      }
      out.push(`<ul>${items.map((t) => `<li>${inline(t, base)}</li>`).join("")}</ul>`);
    } else if (l.trim() === "") {
      i++;
    } else {
      const para = [];
      for (; i < lines.length && lines[i].trim() !== "" && !/^(#|\||```|\s*[-*] )/.test(lines[i]); i++) {
        para.push(lines[i]);
      }
      out.push(`<p>${inline(para.join(" "), base)}</p>`);
    }
  }
  return out.join("\n");
}

async function loadReports() {
  state.reports = await getJson("/api/reports");
  $("#report-list").innerHTML = state.reports.length
    ? state.reports.map((r) => `<button data-report="${esc(r.name)}">${esc(r.name)}</button>`).join("")
    : `<span class="hint">no report folders (README.md under the reports folder)</span>`;
  if (state.reports.length && !$("#report-body").dataset.name) openReport(state.reports[0].name);
}

async function openReport(name) {
  const base = `/reports/${encodeURIComponent(name)}`;
  const r = await fetch(`${base}/README.md`);
  $("#report-body").innerHTML = r.ok
    ? markdown(await r.text(), base)
    : `<p class="error">cannot read ${esc(name)}/README.md</p>`;
  $("#report-body").dataset.name = name;
}

// ---------------------------------------------------------------- DAG

function dagSvg(p) {
  const depth = new Map();
  for (const s of p.stages) {
    depth.set(
      s.name,
      s.deps.length ? 1 + Math.max(...s.deps.map((d) => depth.get(d) ?? 0)) : 0,
    );
  }
  const cols = new Map();
  for (const s of p.stages) {
    const d = depth.get(s.name);
    if (!cols.has(d)) cols.set(d, []);
    cols.get(d).push(s);
  }
  const NW = 176, NH = 36, GX = 56, GY = 14;
  const pos = new Map();
  let maxRows = 0;
  for (const [d, list] of cols) {
    maxRows = Math.max(maxRows, list.length);
    list.forEach((s, i) => pos.set(s.name, { x: 10 + d * (NW + GX), y: 10 + i * (NH + GY) }));
  }
  const W = 20 + cols.size * (NW + GX) - GX, H = 20 + maxRows * (NH + GY) - GY;
  const parts = [];
  let edges = 0;
  for (const s of p.stages) {
    const to = pos.get(s.name);
    const seen = new Set();
    for (const e of s.edges) {
      if (seen.has(e.from)) continue;
      seen.add(e.from);
      const from = pos.get(e.from);
      if (!from) continue;
      const x0 = from.x + NW, y0 = from.y + NH / 2, x1 = to.x, y1 = to.y + NH / 2, mx = (x0 + x1) / 2;
      const ins = s.edges.filter((x) => x.from === e.from).map((x) => `${x.from}.${x.output} → ${x.input}`)
        .join(", ");
      parts.push(
        `<path class="edge" data-from="${esc(e.from)}" data-to="${
          esc(s.name)
        }" d="M${x0},${y0} C${mx},${y0} ${mx},${y1} ${x1 - 4},${y1}" marker-end="url(#arrow)"><title>${
          esc(ins)
        }</title></path>`,
      );
      edges++;
    }
  }
  for (const s of p.stages) {
    const { x, y } = pos.get(s.name);
    const cls = s.state === "to run" ? "torun" : s.state;
    let sub = `${s.kind}${s.gpu ? " · gpu" : ""} · ${s.state}`;
    if (s.live?.update) {
      const u = s.live.update;
      sub = `${u.step}${u.total ? `/${u.total}` : ""}${
        s.live.etaSec !== undefined ? ` · ETA ${dur(s.live.etaSec)}` : ""
      }`;
    }
    const name = s.name.length > 27 ? s.name.slice(0, 26) + "…" : s.name;
    const tip = [s.name, s.key ? `key ${s.key.slice(0, 12)}` : "", ...s.reasons].filter(Boolean).join("\n");
    parts.push(
      `<g class="node ${cls}" data-name="${esc(s.name)}" data-state="${
        esc(s.state)
      }" transform="translate(${x},${y})"><title>${
        esc(tip)
      }</title><rect width="${NW}" height="${NH}" rx="4"/><text x="6" y="14">${
        esc(name)
      }</text><text x="6" y="29" class="hint">${esc(sub)}</text></g>`,
    );
  }
  return `<svg class="dag-svg" data-pipeline="${
    esc(p.name)
  }" data-edges="${edges}" width="${W}" height="${H}"><defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8a93a6"/></marker></defs>${
    parts.join("")
  }</svg>`;
}

async function loadPipelines() {
  state.pipelines = await getJson("/api/pipelines");
  $("#dags").innerHTML = state.pipelines.length
    ? state.pipelines.map((p) =>
      `<div class="dag"><h3>${esc(p.name)} <span class="hint">${esc(p.file)}</span></h3>${dagSvg(p)}</div>`
    ).join("")
    : `<p class="hint">no pipelines: pass pipeline files to \`ditflow ui FILE...\`</p>`;
}

// ---------------------------------------------------------------- live progress

function dur(sec) {
  if (!Number.isFinite(sec)) return "?";
  if (sec < 60) return `${Math.round(sec)}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${String(Math.round(sec % 60)).padStart(2, "0")}s`;
  return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, "0")}m`;
}

function renderLive(live) {
  $("#live").hidden = live.length === 0;
  $("#live-list").innerHTML = live.map((p) => {
    const u = p.update ?? { step: 0 };
    const frac = u.total ? Math.min(1, u.step / u.total) : 0;
    const scalars = Object.entries(u).filter(([k, v]) =>
      k !== "step" && k !== "total" && typeof v === "number"
    ).map(([k, v]) => `${esc(k)}=${fmt(v)}`).join(" ");
    return `<div class="live-row" data-key="${p.key}" data-step="${u.step}"><strong>${
      esc(p.name)
    }</strong><span class="hint">${esc(p.pipeline)} · ${
      esc(p.kind)
    }</span><div class="bar"><div style="width:${
      (frac * 100).toFixed(1)
    }%"></div></div><span class="step">step ${u.step}${
      u.total ? `/${u.total}` : ""
    }</span><span>${scalars}</span><span class="eta">${
      p.etaSec !== undefined ? `ETA ${dur(p.etaSec)}` : ""
    }</span><span class="hint">${p.rate ? `${fmt(p.rate)} it/s` : ""}</span></div>`;
  }).join("");
}

async function poll() {
  try {
    const s = await getJson("/api/stamp");
    renderLive(s.live);
    const liveKeys = s.live.map((l) => `${l.key}:${l.update?.step ?? 0}`).join(",");
    const liveSet = s.live.map((l) => l.key).join(",");
    if (s.stamp !== state.stamp) {
      const first = state.stamp === "";
      state.stamp = s.stamp;
      if (!first) await loadRuns();
    }
    if (state.tab === "dag" && liveKeys !== state.liveKeys) await loadPipelines();
    if (liveSet !== state.liveSet) {
      state.liveSet = liveSet;
    }
    state.liveKeys = liveKeys;
    $("#status").textContent = `${s.live.length ? `${s.live.length} running · ` : ""}updated ${
      new Date().toLocaleTimeString()
    }`;
  } catch (e) {
    $("#status").textContent = `server unreachable (${e.message})`;
  }
}

// ---------------------------------------------------------------- wiring

let typing;
function debounced() {
  clearTimeout(typing);
  typing = setTimeout(loadRuns, 250);
}

function init() {
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => showTab(b.dataset.tab);
  for (const id of ["#filter", "#columns", "#drop"]) $(id).addEventListener("input", debounced);
  $("#only-changed").onchange = loadRuns;
  $("#runs-table thead").onclick = (e) => {
    const th = e.target.closest("th[data-col]");
    if (!th) return;
    const c = th.dataset.col;
    if (state.sort === c) state.desc = !state.desc;
    else {
      state.sort = c;
      state.desc = false;
    }
    loadRuns();
  };
  $("#runs-table tbody").onclick = (e) => {
    const tr = e.target.closest("tr[data-key]");
    if (tr) toggleSelect(tr.dataset.key);
  };
  $("#clear-selection").onclick = () => {
    state.selected = [];
    renderTable();
    onSelection();
  };
  for (const id of ["#log-x", "#log-y", "#smooth"]) $(id).addEventListener("input", drawCurves);
  for (const id of ["#sweep-y", "#sweep-x", "#sweep-group", "#sweep-log-x", "#sweep-current"]) {
    $(id).addEventListener("input", drawSweep);
  }
  for (const id of ["#sample-a", "#sample-b", "#sample-zoom"]) $(id).addEventListener("input", showSamples);
  $("#compare-slider").addEventListener("input", updateCompare);
  $("#dags").onclick = (e) => {
    const g = e.target.closest("g.node[data-name]");
    if (!g) return;
    $("#filter").value = `name=${g.dataset.name} pipeline=${g.closest("svg").dataset.pipeline}`;
    showTab("runs");
    loadRuns();
  };
  $("#report-list").onclick = (e) => {
    const b = e.target.closest("button[data-report]");
    if (b) openReport(b.dataset.report);
  };
  const h = location.hash.slice(1);
  if (h) showTab(h);
  loadRuns().then(() => {
    drawCurves();
    drawDiff();
  });
  poll();
  setInterval(poll, 1000);
}

init();
