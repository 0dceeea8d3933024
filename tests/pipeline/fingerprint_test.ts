/**
 * Precise code fingerprints: a kind covers exactly the modules (and WGSL files) its run can execute,
 * value imports only, hashed insensitive to comments and formatting.
 */

import { assert, assertEquals, assertNotEquals } from "./assert.ts";
import { Sandbox } from "./helpers.ts";
import {
  clearFingerprintCache,
  fingerprintModule,
  importChain,
  tokenizeTs,
  tokenizeWgsl,
} from "../../lib/pipeline/fingerprint.ts";
import { getKind } from "../../lib/pipeline/registry.ts";
import "../../lib/stages/mod.ts";

function filesOf(kind: string): string[] {
  const k = getKind(kind);
  assert(k, `kind ${kind} is not registered`);
  return Object.keys(fingerprintModule(k.module, k.extraFiles).files);
}

const DIT = "lib/models/dit.ts";
/** The DiT trainer (lib/train/trainer.ts before the training-loop refactor). */
const DIT_TRAINERS = ["lib/train/dit_trainer.ts", "lib/train/trainer.ts"];
const isDiffusion = (f: string) => f.startsWith("lib/diffusion/");

Deno.test("encode, decode, train-vae, fid, fid-ref, train-classifier cover neither the DiT, its trainer, nor the diffusion code", () => {
  for (const kind of ["encode", "decode", "train-vae", "fid", "fid-ref", "train-classifier"]) {
    const k = getKind(kind)!;
    const fp = fingerprintModule(k.module, k.extraFiles);
    const bad = Object.keys(fp.files).filter((f) => f === DIT || isDiffusion(f) || DIT_TRAINERS.includes(f));
    assertEquals(bad.map((f) => importChain(fp, f).join(" → ")), [], kind);
    const files = Object.keys(fp.files);
    // Nor another stage for a constant or a helper (fid → train_classifier, encode → decode).
    assertEquals(
      files.filter((f) =>
        f.startsWith("lib/stages/") && f !== k.module.replace(/^.*\/lib\//, "lib/") &&
        !["lib/stages/plan_checks.ts", "lib/stages/vae_source.ts"].includes(f)
      ),
      [],
      kind,
    );
  }
  // The leaf modules: the VAE and Inception models do not reach the DiT either.
  for (const m of ["autoencoder_kl.ts", "inception.ts"]) {
    const files = Object.keys(
      fingerprintModule(new URL(`../../lib/models/${m}`, import.meta.url).href).files,
    );
    assert(!files.includes(DIT), `${m} covers ${DIT}`);
  }
});

Deno.test("no stage that computes covers the report code: a chart's style never invalidates a model", () => {
  for (
    const kind of ["train", "train-vae", "train-classifier", "sample", "encode", "decode", "fid", "fid-ref"]
  ) {
    const k = getKind(kind)!;
    const fp = fingerprintModule(k.module, k.extraFiles);
    const bad = Object.keys(fp.files).filter((f) => f.startsWith("lib/report/"));
    assertEquals(bad.map((f) => importChain(fp, f).join(" → ")), [], kind);
  }
});

Deno.test("fingerprintModule skip: a module left out takes along what only it brings in", () => {
  const k = getKind("train")!;
  const all = Object.keys(fingerprintModule(k.module, k.extraFiles).files);
  assert(all.includes(DIT));
  const without = Object.keys(fingerprintModule(k.module, k.extraFiles, ["lib/train/dit_trainer.ts"]).files);
  assert(!without.includes("lib/train/dit_trainer.ts"));
});

Deno.test("train does not cover the VAE trainer; no kind covers a missing file", () => {
  assert(!filesOf("train").includes("lib/train/vae_trainer.ts"));
  for (
    const kind of ["mnist", "images", "train", "sample", "train-vae", "encode", "decode", "fid", "fid-ref"]
  ) {
    const k = getKind(kind)!;
    const fp = fingerprintModule(k.module, k.extraFiles);
    const missing = Object.entries(fp.files).filter(([, h]) => h === "missing").map(([f]) => f);
    assertEquals(missing, [], kind);
  }
});

Deno.test("type-only imports are not followed; value imports, re-exports and URL assets are; comments are not code", () => {
  using sb = new Sandbox();
  const w = (name: string, text: string) => Deno.writeTextFileSync(`${sb.dir}/${name}`, text);
  for (const n of ["b", "c", "d", "e", "f", "g", "h", "i"]) w(`${n}.ts`, `export const ${n} = 1;\n`);
  w("k.wgsl", "fn f() {}\n");
  w(
    "a.ts",
    `import type { B } from "./b.ts";
import { type C, type C2 } from "./c.ts";
export type { D } from "./d.ts";
import { e } from "./e.ts";
export { f } from "./f.ts";
import * as g from "./g.ts";
import h, { type H } from "./h.ts";
const later = () => import("./i.ts");
const K = new URL("./k.wgsl", import.meta.url);
// import { x } from "./x.ts";  and  new URL("../../kernels/x.wgsl", import.meta.url)
const s = "import { y } from './y.ts'";
/** Use \`wgsl(new URL("./z.wgsl", import.meta.url))\`. */
export const all = [e, g, h, later, K, s];
`,
  );
  const files = Object.keys(fingerprintModule(`file://${sb.dir}/a.ts`).files).map((f) =>
    f.replace(/^.*\//, "")
  )
    .sort();
  assertEquals(files, ["a.ts", "e.ts", "f.ts", "g.ts", "h.ts", "i.ts", "k.wgsl"]);
});

Deno.test("a comment-only or formatting-only edit changes no digest; a code edit does", () => {
  using sb = new Sandbox();
  // A temp copy of a real module (its relative imports resolve to nothing there, the same either way).
  const src = Deno.readTextFileSync(new URL("../../lib/models/dit.ts", import.meta.url));
  const path = `${sb.dir}/dit.ts`;
  const digest = (text: string) => {
    Deno.writeTextFileSync(path, text);
    clearFingerprintCache();
    return fingerprintModule(`file://${path}`).hash;
  };
  const base = digest(src);
  assertEquals(digest(`// a new comment\n${src}`), base);
  assertEquals(
    digest(src.replace("const LN_EPS = 1e-6;", "/* eps */ const   LN_EPS =\n  1e-6; // eps")),
    base,
  );
  assertEquals(digest(src.replaceAll("\n", "\n\n")), base);
  assertNotEquals(digest(src.replace("const LN_EPS = 1e-6;", "const LN_EPS = 1e-5;")), base);
  // WGSL: comments and whitespace do not count either.
  const k = Deno.readTextFileSync(new URL("../../kernels/matmul.wgsl", import.meta.url));
  assertEquals(tokenizeWgsl(`/* a /* nested */ comment */\n${k}\n// end`), tokenizeWgsl(k));
  assertNotEquals(tokenizeWgsl(k.replace(/\b16u\b/, "8u")).join(" "), tokenizeWgsl(k).join(" "));
  clearFingerprintCache();
});

Deno.test("a WGSL file is hashed as its variant blocks expand: the directive lines count, other comments do not", () => {
  using sb = new Sandbox();
  Deno.writeTextFileSync(`${sb.dir}/a.ts`, `export const K = new URL("./k.wgsl", import.meta.url);\n`);
  const digest = (wgsl: string) => {
    Deno.writeTextFileSync(`${sb.dir}/k.wgsl`, wgsl);
    clearFingerprintCache();
    const files = fingerprintModule(`file://${sb.dir}/a.ts`).files;
    return Object.entries(files).find(([f]) => f.endsWith("k.wgsl"))![1];
  };
  const two = "//#variants f32 vec4\nfn f$4(x: $T) {}\nfn g$4(x: $T) {}\n//#end\n";
  const base = digest(two);
  assertEquals(digest(`// a comment\n${two}`), base);
  // Moving //#end leaves the same tokens once comments are stripped, but g4 is no longer generated.
  assertNotEquals(digest(two.replace("fn g$4(x: $T) {}\n//#end", "//#end\nfn g$4(x: $T) {}")), base);
  // The expanded text is what is hashed.
  assertEquals(digest("fn f(x: f32) {}\nfn g(x: f32) {}\nfn f4(x: vec4f) {}\nfn g4(x: vec4f) {}\n"), base);
});

Deno.test("the tokenizer: template literals, regular expressions and strings are not comments", () => {
  const text = (s: string) => tokenizeTs(s).map((t) => t.text);
  const a =
    "const s = `a ${ {x: 1}.x } // not a comment ${`inner ${2}`}`; const r = /\\/\\/ x/g; const d = a / b / c;";
  const toks = text(a);
  assert(toks.includes("/\\/\\/ x/g"), toks.join(" | "));
  assert(toks.some((t) => t.includes("// not a comment")), toks.join(" | "));
  assertEquals(toks.filter((t) => t === "/").length, 2);
  assertNotEquals(text(a.replace("not a comment", "not a  comment")), toks);
  assertEquals(text(a.replace("const d", "/* c */ const\n d")), toks);
  // Quotes do not matter; the string's value does.
  assertEquals(text(`const q = 'x';`), text(`const q = "x";`));
  // A line break after return changes the meaning (ASI), so it counts.
  assertNotEquals(text("function f() { return\n1; }"), text("function f() { return 1; }"));
});

Deno.test("ditflow fingerprint KIND [--json] prints the digest and the covered files", async () => {
  using sb = new Sandbox();
  const { cli } = await import("./helpers.ts");
  const j = await cli(sb, ["fingerprint", "fid", "--json"]);
  assertEquals(j.code, 0, j.stderr);
  const parsed = JSON.parse(j.stdout);
  const k = getKind("fid")!;
  assertEquals(parsed.digest, fingerprintModule(k.module).hash);
  assert("lib/stages/fid.ts" in parsed.files && "lib/models/lenet.ts" in parsed.files);
  const t = await cli(sb, ["fingerprint", "fid"]);
  assertEquals(t.code, 0);
  assert(t.stdout.includes(`kind fid: code digest ${parsed.digest}`), t.stdout);
  assert(t.stdout.includes("lib/models/lenet.ts"), t.stdout);
  const bad = await cli(sb, ["fingerprint", "fdi"]);
  assertEquals(bad.code, 2);
  assert(bad.stderr.includes("did you mean `fid`?"), bad.stderr);
});
