/**
 * `PIL.Image.resize` for 8-bit images, reimplemented to give the same bytes as Pillow (checked against
 * Pillow 9.4 by `tests/data/resample_test.ts`; the algorithm in `libImaging/Resample.c` has been unchanged
 * since Pillow 4.3/5.x).
 *
 * How Pillow resamples (and so how this module does):
 * - Separable convolution: a horizontal pass into an 8-bit temporary image (only the rows the vertical
 *   pass will read), then a vertical pass. A pass is skipped when its dimension does not change, and a
 *   resize to the same size returns a copy (`Image.resize` short-circuits before reaching C).
 * - For output index `i` the filter is centred at `center = (i + 0.5) · scale`, `scale = in / out`. When
 *   downscaling (`scale > 1`) the filter is stretched: `support = filter.support · scale`, and it is
 *   evaluated at `(j - center + 0.5) / scale` for input pixels `j ∈ [trunc(center - support + 0.5),
 *   trunc(center + support + 0.5))` clipped to the image. Weights are normalised to sum to 1 (doubles).
 * - Weights are then turned into fixed point with `PRECISION_BITS = 32 - 8 - 2 = 22` fractional bits,
 *   rounding half away from zero; each output value is `clip8((2^21 + Σ pixel · weight) >> 22)`, i.e. the
 *   sum is rounded half up and clamped to [0, 255].
 * - Filters (support before scaling): BOX 0.5 (`-0.5 < x ≤ 0.5`), BILINEAR 1 (triangle), HAMMING 1,
 *   BICUBIC 2 (Keys cubic with a = -0.5), LANCZOS 3 (sinc · sinc(x/3)).
 *
 * Arithmetic: the double-precision steps are the same IEEE operations as Pillow's C, so BOX, BILINEAR and
 * BICUBIC weights are bit-identical; HAMMING and LANCZOS call `sin`/`cos`, whose last bit may differ
 * between libm and V8, which could only matter where a weight lands within 1e-16 of a rounding boundary
 * of the 22-bit fixed point. The sums are int32 as in Pillow (`| 0`; they never overflow for bytes).
 * @module
 */

import { DataError } from "./errors.ts";
import { checkRawImage, type RawImage } from "./raw_image.ts";

/** Pillow's resampling filters that use convolution (NEAREST is a different algorithm, not offered). */
export type PilFilter = "box" | "bilinear" | "hamming" | "bicubic" | "lanczos";

interface Filter {
  fn: (x: number) => number;
  support: number;
}

const F32_054 = Math.fround(0.54);
const F32_046 = Math.fround(0.46);

function sinc(x: number): number {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

const FILTERS: Record<PilFilter, Filter> = {
  box: { fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0), support: 0.5 },
  bilinear: {
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
    support: 1,
  },
  hamming: {
    fn: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      // Pillow: sin(x) / x * (0.54f + 0.46f * cos(x)); the float constants are promoted to double.
      return Math.sin(x) / x * (F32_054 + F32_046 * Math.cos(x));
    },
    support: 1,
  },
  bicubic: {
    fn: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
    support: 2,
  },
  lanczos: { fn: (x) => (-3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0), support: 3 },
};

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Fixed-point weights of one 1-D pass: output `i` reads `len[i]` inputs from `start[i]` with `w[i*ksize+k]`. */
interface Coeffs {
  ksize: number;
  start: Int32Array;
  len: Int32Array;
  w: Int32Array;
}

const coeffCache = new Map<string, Coeffs>();

/** {@link computeCoeffs}, memoised (a few sizes recur: a dataset resizes many images alike). */
function coeffs(inSize: number, outSize: number, filter: PilFilter): Coeffs {
  const key = `${filter}:${inSize}:${outSize}`;
  let c = coeffCache.get(key);
  if (!c) {
    if (coeffCache.size >= 256) coeffCache.clear();
    c = computeCoeffs(inSize, outSize, FILTERS[filter]);
    coeffCache.set(key, c);
  }
  return c;
}

function computeCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const len = new Int32Array(outSize);
  const w = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const v = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x] / ww : k[x];
      w[i * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[i] = xmin;
    len[i] = xmax;
  }
  return { ksize, start, len, w };
}

/** Pillow's `clip8`: the 22-bit fixed-point sum (an int32, as in C) shifted down and clamped to a byte. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows `[y0, y0 + rows)` of `src`. */
function horizontal(src: RawImage, y0: number, rows: number, outW: number, c: Coeffs): RawImage {
  const ch = src.channels;
  const out = new Uint8Array(outW * rows * ch);
  const sd = src.data;
  const { start, len, w, ksize } = c;
  for (let y = 0; y < rows; y++) {
    const rowOff = (y + y0) * src.width * ch;
    for (let x = 0; x < outW; x++) {
      const n = len[x], wo = x * ksize, o = (y * outW + x) * ch;
      let p = rowOff + start[x] * ch;
      if (ch === 1) {
        let a = HALF;
        for (let j = 0; j < n; j++) a = (a + sd[p + j] * w[wo + j]) | 0;
        out[o] = clip8(a);
      } else if (ch === 3) {
        let a0 = HALF, a1 = HALF, a2 = HALF;
        for (let j = 0; j < n; j++, p += 3) {
          const wt = w[wo + j];
          a0 = (a0 + sd[p] * wt) | 0;
          a1 = (a1 + sd[p + 1] * wt) | 0;
          a2 = (a2 + sd[p + 2] * wt) | 0;
        }
        out[o] = clip8(a0);
        out[o + 1] = clip8(a1);
        out[o + 2] = clip8(a2);
      } else {
        for (let b = 0; b < ch; b++) {
          let a = HALF;
          for (let j = 0; j < n; j++) a = (a + sd[p + j * ch + b] * w[wo + j]) | 0;
          out[o + b] = clip8(a);
        }
      }
    }
  }
  return { width: outW, height: rows, channels: ch, data: out };
}

/** Vertical pass; `c.start` is relative to row `yShift` of the full input (rows of `src` start there). */
function vertical(src: RawImage, outH: number, c: Coeffs, yShift: number): RawImage {
  const rowLen = src.width * src.channels;
  const out = new Uint8Array(rowLen * outH);
  const sd = src.data;
  const acc = new Int32Array(rowLen);
  for (let y = 0; y < outH; y++) {
    const s = c.start[y] - yShift, n = c.len[y], wo = y * c.ksize;
    acc.fill(HALF);
    for (let j = 0; j < n; j++) {
      const wt = c.w[wo + j], base = (s + j) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += sd[base + i] * wt;
    }
    const o = y * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]);
  }
  return { width: src.width, height: outH, channels: src.channels, data: out };
}

/**
 * `PIL.Image.resize((width, height), resample=filter)` on an 8-bit image with 1–4 channels (as PIL's
 * "L", "LA", "RGB", "RGBA"/"RGBX" modes; note that PIL premultiplies alpha for "LA"/"RGBA" before
 * resampling, which this function does not — pass images without alpha for exact parity).
 */
export function pilResize(img: RawImage, width: number, height: number, filter: PilFilter): RawImage {
  checkRawImage(img, "pilResize input");
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new DataError(`pilResize: target size must be positive integers, got ${width}×${height}`);
  }
  if (!Object.hasOwn(FILTERS, filter)) {
    throw new DataError(`pilResize: unknown filter ${JSON.stringify(filter)}`);
  }
  if (width === img.width && height === img.height) {
    return { width, height, channels: img.channels, data: img.data.slice() };
  }
  const needH = width !== img.width;
  const needV = height !== img.height;
  const cv = coeffs(img.height, height, filter);
  let cur = img;
  let yShift = 0;
  if (needH) {
    const first = cv.start[0];
    const last = cv.start[height - 1] + cv.len[height - 1];
    cur = horizontal(img, first, last - first, width, coeffs(img.width, width, filter));
    yShift = first;
  }
  if (needV) cur = vertical(cur, height, cv, yShift);
  return cur;
}
