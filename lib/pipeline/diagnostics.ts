/**
 * Diagnostics: every problem found in a pipeline is a {@link Diagnostic} with a file, line and column.
 * They are collected (never thrown one at a time) so that the user sees all of them at once, printed as
 * `file:line:col: error: message`, followed by the source line and a caret.
 * @module
 */

/** A position in a source file; `line` and `col` are 1-based. */
export interface Pos {
  /** The file as the user named it (or `<command line>` for `--set` overrides). */
  file: string;
  line: number;
  col: number;
  /** Length of the offending token, for the caret underline (default 1). */
  len?: number;
}

/** One problem in a pipeline definition. */
export interface Diagnostic {
  pos: Pos;
  message: string;
  /** A suggestion, printed as `help: ...`. */
  hint?: string;
}

/** Thrown when a pipeline is invalid; carries every diagnostic that was found. */
export class PipelineInvalidError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(`pipeline is invalid (${diagnostics.length} error${diagnostics.length === 1 ? "" : "s"})`);
    this.name = "PipelineInvalidError";
  }
}

/** A position for things that have no better place (e.g. the whole file). */
export function filePos(file: string): Pos {
  return { file, line: 1, col: 1 };
}

/** Edit distance between two strings (insertions, deletions, substitutions and adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate closest to `word` by edit distance (case-insensitive), if it is close enough to be a
 * plausible typo (distance at most a third of the word's length, at least 1, at most 3).
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  return bestD <= limit ? best : undefined;
}

/** `did you mean `x`?` for the closest candidate, or a list of what is allowed when nothing is close. */
export function suggestion(word: string, candidates: Iterable<string>, what = "allowed"): string | undefined {
  const list = [...candidates];
  const c = closest(word, list);
  if (c !== undefined) return `did you mean \`${c}\`?`;
  if (list.length === 0) return undefined;
  const shown = list.slice(0, 12).map((s) => `\`${s}\``).join(", ");
  return `${what}: ${shown}${list.length > 12 ? ", ..." : ""}`;
}

/** Options for {@link formatDiagnostics}. */
export interface FormatOptions {
  /** Source text per file, to show the offending line; read from disk when missing. */
  sources?: Map<string, string>;
  /** At most this many diagnostics are printed (the rest are counted), to keep it to one screen. */
  max?: number;
  /** Use ANSI colours. */
  color?: boolean;
}

function readSource(file: string, sources?: Map<string, string>): string | undefined {
  const s = sources?.get(file);
  if (s !== undefined) return s;
  try {
    return Deno.readTextFileSync(file);
  } catch {
    return undefined;
  }
}

/** Sorts diagnostics by file, line and column and drops exact duplicates. */
export function sortDiagnostics(diags: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const d of diags) {
    const k = `${d.pos.file}:${d.pos.line}:${d.pos.col}:${d.message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(d);
  }
  return out.sort((a, b) =>
    a.pos.file < b.pos.file
      ? -1
      : a.pos.file > b.pos.file
      ? 1
      : a.pos.line - b.pos.line || a.pos.col - b.pos.col
  );
}

/**
 * Renders diagnostics as
 * ```
 * file.yaml:12:7: error: unknown parameter `lerning_rate` of kind `train`
 *    12 |       lerning_rate: 1e-4
 *       |       ^^^^^^^^^^^^
 *       = help: did you mean `learning_rate`?
 * ```
 */
export function formatDiagnostics(diags: Diagnostic[], opts: FormatOptions = {}): string {
  const max = opts.max ?? 12;
  const red = (s: string) => opts.color ? `\x1b[1;31m${s}\x1b[0m` : s;
  const bold = (s: string) => opts.color ? `\x1b[1m${s}\x1b[0m` : s;
  const cyan = (s: string) => opts.color ? `\x1b[36m${s}\x1b[0m` : s;
  const sorted = sortDiagnostics(diags);
  const lines: string[] = [];
  for (const d of sorted.slice(0, max)) {
    const { file, line, col } = d.pos;
    lines.push(`${bold(`${file}:${line}:${col}:`)} ${red("error:")} ${d.message}`);
    const src = readSource(file, opts.sources);
    const text = src?.split(/\r?\n/)[line - 1];
    const gutter = String(line).length + 1;
    if (text !== undefined) {
      const shown = text.replace(/\t/g, "→");
      lines.push(`${" ".repeat(gutter - String(line).length)}${line} | ${shown}`);
      const len = Math.max(1, Math.min(d.pos.len ?? 1, Math.max(1, shown.length - col + 1)));
      lines.push(`${" ".repeat(gutter)} | ${" ".repeat(Math.max(0, col - 1))}${red("^".repeat(len))}`);
    }
    if (d.hint) lines.push(`${" ".repeat(gutter)} = ${cyan("help:")} ${d.hint}`);
  }
  if (sorted.length > max) lines.push(`... and ${sorted.length - max} more error(s)`);
  lines.push(
    `${sorted.length} error${sorted.length === 1 ? "" : "s"}; nothing was run and the cache was not touched.`,
  );
  return lines.join("\n");
}
