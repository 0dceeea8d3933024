/**
 * f32 and vec4 variants of a kernel from one source. A WGSL file writes such a pair once, as a block that
 * is expanded when the file is loaded ({@link KernelFile.source} in `runtime.ts`; the code fingerprints hash
 * the expanded text too):
 *
 * ```wgsl
 * //#variants f32 vec4
 * @group(0) @binding(1) var<storage, read> x$4: array<$T>;
 * fn total$4(...) -> f32 { var s = $T(0.0); ...; return $hsum(s); }
 * //#end
 * ```
 *
 * The block's text is emitted twice, first the f32 instance, then the vec4 instance:
 *
 * | in a block    | f32 instance | vec4 instance                          |
 * | ------------- | ------------ | -------------------------------------- |
 * | `$T`          | `f32`        | `vec4f`                                |
 * | `$4`          | nothing      | `4` (`x$4` is `x`, then `x4`)          |
 * | `$T(e)`       | `e`          | `vec4f(e)` (a splat)                   |
 * | `$hsum(e)`    | `e`          | `hsum(e)` (the file's horizontal sum)  |
 * | `$pick(a, b)` | `a`          | `b` (as written; either may be empty)  |
 *
 * Where the f32 instance drops a call (`$T(e)`, `$hsum(e)`), `e` stands bare if it is one operand (`s`,
 * `x[i]`, `f(a, b)`) or the call is a whole expression (after `(`, `,` or an assignment's `=`, before `)`,
 * `,` or `;`), and in parentheses otherwise, so that dropping a call never changes precedence. Line
 * comments are copied as they are, the directive lines are dropped, text outside blocks is kept as it is.
 * An unclosed or nested block, another `//#` line, or an unknown `$` name throws.
 * @module
 */

const OPEN = "variants f32 vec4";

/**
 * The vec4 instance's name of every name a block spells with `$4` (`fx$4` → `fx4`, `f$4x` → `f4x`,
 * `total$4` → `total4`), keyed by the f32 instance's name: entry points, bindings, helpers. `launch(...,
 * { vec4: true })` renames an entry point and its bindings through it, so call sites name the f32 forms.
 * Comments are skipped; a name that two blocks map differently throws.
 */
export function variantNames(source: string, file = "WGSL source"): Map<string, string> {
  const names = new Map<string, string>();
  let inBlock = false;
  for (const line of source.split("\n")) {
    const directive = /^\s*\/\/#(.*)$/.exec(line)?.[1].trim();
    if (directive !== undefined) {
      inBlock = directive === OPEN;
      continue;
    }
    if (!inBlock) continue;
    const code = line.replace(/\/\/.*$/, "");
    for (const m of code.matchAll(/[A-Za-z_][A-Za-z0-9_]*(?:\$4[A-Za-z0-9_]*)+|\$4[A-Za-z0-9_]+/g)) {
      const f32 = m[0].replaceAll("$4", "");
      const vec4 = m[0].replaceAll("$4", "4");
      const had = names.get(f32);
      if (had !== undefined && had !== vec4) {
        throw new Error(`${file}: "${f32}" is "${had}" in one variant block and "${vec4}" in another`);
      }
      names.set(f32, vec4);
    }
  }
  return names;
}

/**
 * Expands the `//#variants f32 vec4` ... `//#end` blocks of a WGSL source (see the module doc). A source
 * without blocks is returned unchanged. `file` names the source in errors.
 */
export function expandVariants(source: string, file = "WGSL source"): string {
  if (!source.includes("//#")) return source;
  const out: string[] = [];
  let block: string[] | null = null;
  let opened = 0;
  const lines = source.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const directive = /^\s*\/\/#(.*)$/.exec(lines[i])?.[1].trim();
    if (directive === undefined) (block ?? out).push(lines[i]);
    else if (directive === OPEN && !block) {
      block = [];
      opened = i + 2;
    } else if (directive === "end" && block) {
      const text = block.join("\n");
      out.push(instantiate(text, false, file, opened), instantiate(text, true, file, opened));
      block = null;
    } else {
      throw new Error(
        `${file}:${i + 1}: unexpected "//#${directive}" (blocks: //#${OPEN} ... //#end, not nested)`,
      );
    }
  }
  if (block) throw new Error(`${file}:${opened - 1}: //#${OPEN} without //#end`);
  return out.join("\n");
}

/** One instance of a block's text (`vec4`: the vec4 instance, else the f32 one); `line`: its first line. */
function instantiate(text: string, vec4: boolean, file: string, line: number): string {
  const err = (i: number, msg: string) =>
    new Error(`${file}:${line + (text.slice(0, i).match(/\n/g)?.length ?? 0)}: ${msg}`);
  let out = "";
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("//", i)) {
      const end = text.indexOf("\n", i);
      out += text.slice(i, end < 0 ? text.length : end);
      i = end < 0 ? text.length : end;
      continue;
    }
    if (text[i] !== "$") {
      out += text[i++];
      continue;
    }
    if (text[i + 1] === "4") {
      out += vec4 ? "4" : "";
      i += 2;
      continue;
    }
    const name = /^\$(T|hsum|pick)\b/.exec(text.slice(i, i + 6))?.[1];
    if (!name) {
      const known = "$T, $4, $T(e), $hsum(e), $pick(a, b)";
      throw err(i, `unknown placeholder "${text.slice(i, i + 8)}..." (known: ${known})`);
    }
    const open = i + 1 + name.length;
    if (text[open] !== "(") {
      if (name !== "T") throw err(i, `$${name} needs arguments: $${name}(...)`);
      out += vec4 ? "vec4f" : "f32";
      i = open;
      continue;
    }
    const close = closing(text, open);
    if (close === null) throw err(i, `$${name}( is not closed`);
    const args = splitArgs(text.slice(open + 1, close)).map((a) => instantiate(a, vec4, file, line).trim());
    if (args.length !== (name === "pick" ? 2 : 1)) {
      throw err(i, `$${name} takes ${name === "pick" ? 2 : 1} argument(s)`);
    }
    const [a, b] = args;
    if (name === "pick") out += vec4 ? b : a;
    else if (vec4) out += `${name === "T" ? "vec4f" : "hsum"}(${a})`;
    else {
      // The f32 instance drops the call: e keeps parentheses unless it is one operand or a whole expression.
      const whole = /(?:[(,]|(?:^|[^=!<>])=)$/.test(out.trimEnd()) &&
        /^[),;]/.test(text.slice(close + 1).trimStart());
      out += whole || isOperand(a) ? a : `(${a})`;
    }
    i = close + 1;
  }
  return out;
}

/** The index of the `)` that closes the `(` at `open`, or null. */
function closing(text: string, open: number): number | null {
  let depth = 0;
  for (let j = open; j < text.length; j++) {
    if (text[j] === "(" || text[j] === "[") depth++;
    else if ((text[j] === ")" || text[j] === "]") && --depth === 0) return j;
  }
  return null;
}

/** Splits a call's argument text at its top-level commas. */
function splitArgs(text: string): string[] {
  const args = [""];
  let depth = 0;
  for (const ch of text) {
    if (ch === "(" || ch === "[") depth++;
    if (ch === ")" || ch === "]") depth--;
    if (ch === "," && depth === 0) args.push("");
    else args[args.length - 1] += ch;
  }
  return args;
}

/** True for one operand: a name, a literal, a member, an index or a call (`fw[c0 + ch]`, `f(a, b)`). */
function isOperand(e: string): boolean {
  let depth = 0;
  for (const ch of e) {
    if (ch === "(" || ch === "[") depth++;
    else if (ch === ")" || ch === "]") depth--;
    else if (depth === 0 && !/[\w.]/.test(ch)) return false;
  }
  return e.length > 0;
}
