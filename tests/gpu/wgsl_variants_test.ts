/**
 * The f32/vec4 variant blocks of the kernels (lib/gpu/wgsl_variants.ts): the syntax, and that every
 * declaration a block generates is, token for token (comments and whitespace aside), the hand-written
 * declaration it replaced, with the same binding groups for launch().
 *
 * The hand-written declarations are kept in tests/fixtures/wgsl_variants/declarations.json, as token
 * strings, captured from the last commit with the hand-written copies by running this file:
 * `deno run -A tests/gpu/wgsl_variants_test.ts REV [FILE...]` (REV a commit, or `.` for the working tree:
 * after an intended change to a block, that re-captures what the blocks now generate; FILEs: capture only
 * those kernel files, e.g. the ones whose hand-written twins just became a block, and keep the others). The blocks of elementwise.wgsl
 * and optim.wgsl added vec4 kernels beside renamed f32 ones, and attention.wgsl's `join_qkv` pair is new: their
 * declarations were captured from `.` when they were written.
 */

import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { expandVariants, variantNames } from "../../lib/gpu/wgsl_variants.ts";
import { wgsl } from "../../lib/gpu/runtime.ts";
import { bindingGroup, wgslLayout } from "../../lib/gpu/wgsl_layout.ts";
import { tokenizeWgsl } from "../../lib/pipeline/fingerprint.ts";

const ROOT = new URL("../../", import.meta.url);
const FIXTURE = new URL("../fixtures/wgsl_variants/declarations.json", import.meta.url);

/** The fixture: per kernel file, the hand-written declarations by name and the binding groups they form. */
interface Fixture {
  base: string;
  files: Record<string, { base?: string; declarations: Record<string, string>; groups: string[][] }>;
}

/** A WGSL source's module-scope declarations by name, each as its tokens joined by spaces. */
function declarations(source: string): Map<string, string> {
  const out = new Map<string, string>();
  let cur: string[] = [];
  let depth = 0;
  for (const t of tokenizeWgsl(source)) {
    cur.push(t);
    if (t === "{") depth++;
    if (t === "}") depth--;
    if (depth > 0 || (t !== ";" && t !== "}")) continue;
    let j = cur.findIndex((x) => /^(fn|struct|alias|override|const|var)$/.test(x)) + 1;
    if (cur[j] === "<") j = cur.indexOf(">", j) + 1;
    assert(!out.has(cur[j]), `${cur[j]} is declared twice`);
    out.set(cur[j], cur.join(" "));
    cur = [];
  }
  return out;
}

/** The names of the declarations that the source's variant blocks generate. */
function generated(source: string): string[] {
  const blocks = source.match(/^\/\/#variants f32 vec4\n[^]*?^\/\/#end$/gm) ?? [];
  return blocks.flatMap((b) => [...declarations(expandVariants(b)).keys()]);
}

/** The binding groups (names in binding order, from one binding 0 to the next) that hold any of `names`. */
function groupsOf(source: string, names: string[]): string[][] {
  const layout = wgslLayout(source);
  const groups: string[][] = [];
  for (const b of layout.bindings) {
    if (b.binding === 0) groups.push([]);
    groups[groups.length - 1].push(b.name);
  }
  return groups.filter((g) => g.some((n) => names.includes(n)));
}

function kernelFiles(): string[] {
  return [...Deno.readDirSync(new URL("kernels/", ROOT))].map((e) => `kernels/${e.name}`)
    .filter((f) => f.endsWith(".wgsl")).sort();
}

Deno.test("expandVariants: a block becomes its f32 instance, then its vec4 instance", () => {
  const src = [
    "const A = 1u;",
    "//#variants f32 vec4",
    "@group(0) @binding(1) var<storage, read> x$4: array<$T>; // $4 in a comment stays",
    "fn total$4(n: u32) -> f32 { var s = $T(0.0); s += x$4[$pick(n, n / 4u)]; return $hsum(s); }",
    "//#end",
    "const B = 2u;",
  ].join("\n");
  assertEquals(
    expandVariants(src).split("\n"),
    [
      "const A = 1u;",
      "@group(0) @binding(1) var<storage, read> x: array<f32>; // $4 in a comment stays",
      "fn total(n: u32) -> f32 { var s = 0.0; s += x[n]; return s; }",
      "@group(0) @binding(1) var<storage, read> x4: array<vec4f>; // $4 in a comment stays",
      "fn total4(n: u32) -> f32 { var s = vec4f(0.0); s += x4[n / 4u]; return hsum(s); }",
      "const B = 2u;",
    ],
  );
});

Deno.test("expandVariants: the f32 instance keeps parentheses where dropping a call would change precedence", () => {
  const f32 = (body: string) => expandVariants(`//#variants f32 vec4\n${body}\n//#end`).split("\n")[0];
  assertEquals(f32("let y = $hsum(a + b) * c;"), "let y = (a + b) * c;");
  assertEquals(f32("let y = c * $T(a[i] + b);"), "let y = c * (a[i] + b);");
  assertEquals(f32("let y = $T(a + b);"), "let y = a + b;");
  assertEquals(f32("y += f(k, $hsum(a - b));"), "y += f(k, a - b);");
  assertEquals(f32("let y = $hsum(a.x) * $T(f(a, b)[2]);"), "let y = a.x * f(a, b)[2];");
  assertEquals(f32("let t = y == $T(a + b);"), "let t = y == (a + b);");
});

Deno.test("expandVariants: malformed blocks throw, naming the line", () => {
  assertThrows(
    () => expandVariants("//#variants f32 vec4\nfn f() {}\n", "k.wgsl"),
    "k.wgsl:1",
    "without //#end",
  );
  assertThrows(
    () => expandVariants("//#variants f32 vec4\n//#variants f32 vec4\n//#end"),
    ":2",
    "unexpected",
  );
  assertThrows(() => expandVariants("//#end"), "unexpected");
  assertThrows(() => expandVariants("//#variants f32\n//#end"), "unexpected");
  assertThrows(
    () => expandVariants("//#variants f32 vec4\nlet a = 1;\nlet b = $x;\n//#end", "k"),
    "k:3",
    '"$x',
  );
  assertThrows(() => expandVariants("//#variants f32 vec4\nlet b = $Tx;\n//#end"), "unknown placeholder");
  assertThrows(() => expandVariants("//#variants f32 vec4\nlet b = $pick(a);\n//#end"), "takes 2");
  assertThrows(() => expandVariants("//#variants f32 vec4\nlet b = $hsum;\n//#end"), "needs arguments");
  assertThrows(() => expandVariants("//#variants f32 vec4\nlet b = $T(a;\n//#end"), "not closed");
});

Deno.test("variantNames: each $4 name of a block, f32 name → vec4 name; comments and text outside blocks skipped", () => {
  const src = [
    "@group(0) @binding(0) var<storage, read> shared: array<f32>;",
    "//#variants f32 vec4",
    "@group(0) @binding(1) var<storage, read> f$4x: array<$T>; // not$4me",
    "@group(0) @binding(2) var<storage, read_write> out$4: array<$T>;",
    "fn total$4() { out$4[0] = f$4x[0] + $T(shared[0]); }",
    "//#end",
    "fn plain$4_not_in_a_block() {}",
  ].join("\n");
  const names = variantNames(src);
  assertEquals([...names].sort(), [["fx", "f4x"], ["out", "out4"], ["total", "total4"]]);
  const clash = "//#variants f32 vec4\nfn a$4b() {}\n//#end\n//#variants f32 vec4\nfn ab$4() {}\n//#end";
  assertThrows(() => variantNames(clash), "in one variant block");
});

Deno.test("every kernel file's vec4 names are declared in its expanded source (launch's vec4 renaming resolves)", () => {
  for (const f of kernelFiles()) {
    const k = wgsl(new URL(f, ROOT));
    for (const [f32, vec4] of k.vec4Names) {
      for (const name of [f32, vec4]) {
        assert(new RegExp(`\\b${name}\\b`).test(k.source), `${f}: ${name} is not in the expanded source`);
      }
    }
  }
});

Deno.test("every kernel file loads with its blocks expanded and no placeholder left; one without blocks as written", () => {
  for (const f of kernelFiles()) {
    const raw = Deno.readTextFileSync(new URL(f, ROOT));
    const source = wgsl(new URL(f, ROOT)).source;
    if (!raw.includes("//#")) assertEquals(source === raw, true, f);
    else assert(source !== raw && !/^\s*\/\/#/m.test(source), f);
    assertEquals(tokenizeWgsl(source).filter((t) => t === "$"), [], f);
  }
});

Deno.test("kernel variants: each generated declaration is the hand-written one it replaced, token for token", () => {
  const fixture: Fixture = JSON.parse(Deno.readTextFileSync(FIXTURE));
  const withBlocks = kernelFiles().filter((f) =>
    Deno.readTextFileSync(new URL(f, ROOT)).includes("//#variants")
  );
  assertEquals(Object.keys(fixture.files).sort(), withBlocks, "kernel files with blocks");
  for (const [f, { base, declarations: old, groups }] of Object.entries(fixture.files)) {
    const source = wgsl(new URL(f, ROOT)).source; // what launch() and the pipelines see
    const raw = Deno.readTextFileSync(new URL(f, ROOT));
    const names = generated(raw);
    assertEquals(names.slice().sort(), Object.keys(old).sort(), `${f}: the declarations its blocks generate`);
    const now = declarations(source);
    for (const n of names) {
      assert(
        now.get(n) === old[n],
        `${f}: ${n} differs from the hand-written text (git show ${base ?? fixture.base}:${f})`,
      );
    }
    // launch() resolves bindings from the expanded source: the same groups (in any order, and their names
    // in any order: a block emits its f32 kernels, then its vec4 ones; bindings the two share are declared
    // outside the block), and each resolves in full; a group whose f32 and vec4 bindings alias the same
    // numbers (conv's bias kernels) resolves as each instance's names: the f32 ones, and their vec4 names.
    const sorted = (gs: string[][]) => gs.map((g) => [...g].sort().join(" ")).sort();
    assertEquals(sorted(groupsOf(source, names)), sorted(groups), `${f}: binding groups`);
    const layout = wgslLayout(source);
    const vec4Names = variantNames(raw, f);
    const vec4Values = new Set(vec4Names.values());
    const numberOf = (n: string) => layout.bindings.find((b) => b.name === n)?.binding;
    for (const g of groups) {
      const aliased = new Set(g.map(numberOf)).size < g.length;
      const instances = aliased
        ? [g.filter((n) => !vec4Values.has(n)), g.filter((n) => !vec4Names.has(n))]
        : [g];
      for (const names of instances) {
        const got = bindingGroup(layout, names, f).map((b) => b.name);
        assertEquals(got.slice().sort(), names.slice().sort(), `${f}: group of ${names[0]}`);
      }
    }
  }
});

/** Captures the fixture from `rev`, of every kernel file with blocks or of `only` (see the module doc). */
function capture(rev: string, only: string[]): void {
  let base = rev;
  if (rev !== ".") {
    const p = new Deno.Command("git", { args: ["rev-parse", rev], cwd: ROOT, stdout: "piped" }).outputSync();
    base = new TextDecoder().decode(p.stdout).trim();
  }
  const fixture: Fixture = only.length ? JSON.parse(Deno.readTextFileSync(FIXTURE)) : { base, files: {} };
  for (const f of only.length ? only : kernelFiles()) {
    const raw = Deno.readTextFileSync(new URL(f, ROOT));
    if (!raw.includes("//#variants")) continue;
    const names = generated(raw);
    const old = rev === "." ? expandVariants(raw) : new TextDecoder().decode(
      new Deno.Command("git", { args: ["show", `${rev}:${f}`], cwd: ROOT, stdout: "piped" }).outputSync()
        .stdout,
    );
    const decls = declarations(old);
    fixture.files[f] = {
      ...(only.length ? { base } : {}),
      declarations: Object.fromEntries(names.map((n) => [n, decls.get(n) ?? "missing"])),
      groups: groupsOf(old, names),
    };
  }
  Deno.writeTextFileSync(FIXTURE, JSON.stringify(fixture, null, 1) + "\n");
  console.log(`wrote ${FIXTURE.pathname} from ${base}`);
}

if (import.meta.main) capture(Deno.args[0] ?? ".", Deno.args.slice(1));
