/**
 * Image figures for reports: a montage of labelled PNGs (the sample grids of every row of a sweep in one
 * figure), composed with sharp and written atomically.
 * @module
 */

import { Buffer } from "node:buffer";
import sharp, { type OverlayOptions } from "sharp";
import { writeFileAtomic } from "../data/atomic_write.ts";

/** One labelled image of a montage. */
export interface MontageItem {
  label: string;
  /** A PNG file. */
  file: string;
}

/** Options of {@link writeMontage}. */
export interface MontageOptions {
  /** Images per row (default: up to 4). */
  cols?: number;
  /** Width every image is scaled to, in pixels (default: the widest image's, within [160, 330]). */
  cell?: number;
  /** A title drawn above the montage. */
  title?: string;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Writes the images side by side, `cols` per row, each under its label, as one PNG. */
export async function writeMontage(
  path: string,
  items: MontageItem[],
  o: MontageOptions = {},
): Promise<void> {
  if (!items.length) throw new Error("writeMontage: no images");
  const widths = await Promise.all(items.map(async (it) => (await sharp(it.file).metadata()).width ?? 0));
  const cell = o.cell ?? Math.min(330, Math.max(160, ...widths));
  const cols = Math.max(1, Math.min(o.cols ?? 4, items.length));
  const pad = 12, labelH = 22, titleH = o.title ? 34 : 0;
  const imgs = await Promise.all(items.map(async (it, i) => {
    const buf = await sharp(await Deno.readFile(it.file))
      // pixels stay crisp when enlarged; shrinking averages (nearest would alias the grids' fine lines)
      .resize({ width: cell, kernel: widths[i] < cell ? "nearest" : "lanczos3" })
      .flatten({ background: "#ffffff" })
      .png()
      .toBuffer({ resolveWithObject: true });
    return { label: it.label, data: buf.data, height: buf.info.height };
  }));
  const nrows = Math.ceil(imgs.length / cols);
  const rowH = Array.from(
    { length: nrows },
    (_, r) => Math.max(...imgs.slice(r * cols, (r + 1) * cols).map((i) => i.height)) + labelH,
  );
  const W = pad + cols * (cell + pad);
  const H = titleH + pad + rowH.reduce((a, b) => a + b + pad, 0);
  const texts: string[] = [];
  const layers: OverlayOptions[] = [];
  let y = titleH + pad;
  for (let r = 0; r < nrows; r++) {
    for (let c = 0; c < cols; c++) {
      const im = imgs[r * cols + c];
      if (!im) break;
      const x = pad + c * (cell + pad);
      texts.push(
        `<text x="${x + cell / 2}" y="${y + 15}" font-size="13" text-anchor="middle">${esc(im.label)}</text>`,
      );
      layers.push({ input: im.data, left: x, top: y + labelH });
    }
    y += rowH[r] + pad;
  }
  if (o.title) {
    texts.push(`<text x="${W / 2}" y="24" font-size="16" text-anchor="middle">${esc(o.title)}</text>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `font-family="DejaVu Sans, sans-serif">${texts.join("")}</svg>`;
  layers.push({ input: Buffer.from(svg), left: 0, top: 0 });
  const png = await sharp({ create: { width: W, height: H, channels: 3, background: "#ffffff" } })
    .composite(layers)
    .png()
    .toBuffer();
  await writeFileAtomic(path, new Uint8Array(png));
}
