/**
 * Plots for reports: line charts (loss curves) and scatter/line charts with log axes (FID vs GFLOPs),
 * drawn as SVG and rasterised to PNG with sharp (librsvg). Both files are written atomically.
 * @module
 */

import sharp from "sharp";
import { writeFileAtomic } from "../data/atomic_write.ts";

/** One series of points. */
export interface Series {
  label: string;
  points: [number, number][];
  /** Draw markers at the points (default: only when there are ≤ 30 points). */
  markers?: boolean;
  /** Connect the points (default true). */
  line?: boolean;
}

/** Chart options. */
export interface ChartOptions {
  title?: string;
  xlabel?: string;
  ylabel?: string;
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  /** Smooth each series with an exponential moving average of this weight (0 = none) for display. */
  smooth?: number;
}

const COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const span = hi - lo;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / n)));
  const step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= n) ?? step0 * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12 * span; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/**
 * Ticks of a log axis spanning log10 values [lo, hi], as log10 values: 1-2-5 per decade; over less than
 * about a decade (fewer than three of those), round numbers spaced linearly between the ends (40, 50, 60,
 * ... rather than 10^1.6, 10^1.7).
 */
function logTicks(lo: number, hi: number): number[] {
  const t: number[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const k of [1, 2, 5]) {
      const v = Math.log10(k) + e;
      if (v >= lo - 1e-9 && v <= hi + 1e-9) t.push(v);
    }
  }
  if (t.length >= 3) return t;
  const lin = niceTicks(10 ** lo, 10 ** hi).filter((v) => v > 0).map(Math.log10);
  return lin.length >= 2 ? lin : t.length ? t : [lo];
}

function fmtTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

function ema(points: [number, number][], w: number): [number, number][] {
  if (!w) return points;
  let s = points[0]?.[1] ?? 0;
  return points.map(([x, y]) => {
    s = w * s + (1 - w) * y;
    return [x, s];
  });
}

/** Renders a chart as an SVG string. */
export function chartSvg(series: Series[], o: ChartOptions = {}): string {
  const W = o.width ?? 720;
  const H = o.height ?? 440;
  const m = { l: 70, r: 20 + (series.length > 1 ? 150 : 0), t: o.title ? 40 : 20, b: 55 };
  const tx = (v: number) => (o.logX ? Math.log10(v) : v);
  const ty = (v: number) => (o.logY ? Math.log10(v) : v);
  const pts = series.map((s) =>
    ema(s.points, o.smooth ?? 0).filter(([x, y]) => Number.isFinite(tx(x)) && Number.isFinite(ty(y)))
  );
  const xs = pts.flat().map((p) => tx(p[0]));
  const ys = pts.flat().map((p) => ty(p[1]));
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x0 === x1) [x0, x1] = [x0 - 0.5, x1 + 0.5];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const padY = (y1 - y0) * 0.05;
  y0 -= padY;
  y1 += padY;
  const px = (v: number) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  if (o.title) {
    parts.push(`<text x="${W / 2}" y="24" font-size="16" text-anchor="middle">${esc(o.title)}</text>`);
  }
  // ticks and grid
  const ticks = (lo: number, hi: number, log: boolean) => (log ? logTicks(lo, hi) : niceTicks(lo, hi));
  for (const v of ticks(x0, x1, !!o.logX)) {
    const x = px(v);
    parts.push(`<line x1="${x}" y1="${m.t}" x2="${x}" y2="${H - m.b}" stroke="#e5e5e5"/>`);
    parts.push(
      `<text x="${x}" y="${H - m.b + 18}" font-size="12" text-anchor="middle">${
        fmtTick(o.logX ? 10 ** v : v)
      }</text>`,
    );
  }
  for (const v of ticks(y0, y1, !!o.logY)) {
    const y = py(v);
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(
      `<text x="${m.l - 8}" y="${y + 4}" font-size="12" text-anchor="end">${
        fmtTick(o.logY ? 10 ** v : v)
      }</text>`,
    );
  }
  parts.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${
      H - m.t - m.b
    }" fill="none" stroke="#333"/>`,
  );
  if (o.xlabel) {
    parts.push(
      `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" font-size="13" text-anchor="middle">${
        esc(o.xlabel)
      }</text>`,
    );
  }
  if (o.ylabel) {
    parts.push(
      `<text x="16" y="${(m.t + H - m.b) / 2}" font-size="13" text-anchor="middle" transform="rotate(-90 16 ${
        (m.t + H - m.b) / 2
      })">${esc(o.ylabel)}</text>`,
    );
  }
  pts.forEach((p, i) => {
    const s = series[i];
    const c = COLORS[i % COLORS.length];
    // Past the palette, series repeat its colours dashed, with hollow markers, so that none look alike.
    const alt = Math.floor(i / COLORS.length) % 2 === 1;
    const dash = alt ? ` stroke-dasharray="6 3"` : "";
    const coords = p.map(([x, y]) => `${px(tx(x)).toFixed(1)},${py(ty(y)).toFixed(1)}`);
    if (s.line !== false && coords.length > 1) {
      parts.push(
        `<polyline points="${coords.join(" ")}" fill="none" stroke="${c}" stroke-width="1.8"${dash}/>`,
      );
    }
    if (s.markers ?? p.length <= 30) {
      const fill = alt ? `fill="#ffffff" stroke="${c}" stroke-width="1.5"` : `fill="${c}"`;
      for (const xy of coords) {
        const [x, y] = xy.split(",");
        parts.push(`<circle cx="${x}" cy="${y}" r="3.5" ${fill}/>`);
      }
    }
    if (series.length > 1) {
      const ly = m.t + 16 + i * 20;
      const lx = W - m.r + 12;
      parts.push(
        `<line x1="${lx}" y1="${ly - 7}" x2="${lx + 18}" y2="${
          ly - 7
        }" stroke="${c}" stroke-width="3"${dash}/>`,
      );
      parts.push(`<text x="${W - m.r + 36}" y="${ly - 3}" font-size="12">${esc(s.label)}</text>`);
    }
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** Writes a chart as `path` (PNG) and the same name with `.svg`. */
export async function writeChart(path: string, series: Series[], o: ChartOptions = {}): Promise<void> {
  const svg = chartSvg(series, o);
  await writeFileAtomic(path.replace(/\.png$/, ".svg"), new TextEncoder().encode(svg));
  const png = await sharp(new TextEncoder().encode(svg)).png().toBuffer();
  await writeFileAtomic(path, new Uint8Array(png));
}

/** A loss curve (linear step axis, log loss axis, lightly smoothed when long). */
export async function writeLossCurve(path: string, series: Series[], o: ChartOptions = {}): Promise<void> {
  const long = series.some((s) => s.points.length > 200);
  await writeChart(path, series.map((s) => ({ ...s, markers: false })), {
    xlabel: "step",
    ylabel: "loss",
    logY: true,
    smooth: long ? 0.9 : 0,
    ...o,
  });
}
