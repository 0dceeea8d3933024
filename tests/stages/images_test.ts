/**
 * The `images` kind: an image folder (class sub-folders, or flat) as a dataset artifact, run through the
 * engine on a temporary folder of tiny PNGs; its cache key follows the folder's content; missing, empty
 * and unset folders are explained at plan time with file:line:col and what to set.
 */
import sharp from "sharp";
import { assert, assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { runIn, Sandbox, statusOf } from "../pipeline/helpers.ts";
import "../../lib/stages/mod.ts";
import { readDataArtifact } from "../../lib/data/artifact.ts";
import { unitValue } from "../../lib/data/convert.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import { getKind } from "../../lib/pipeline/registry.ts";

/** Writes a `w × h` PNG of one colour. */
async function png(path: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set(rgb, i * 3);
  const buf = await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
  await Deno.writeFile(path, new Uint8Array(buf));
}

/** cat/{a,b}.png (red, green), dog/c.png (blue, 12 wide: cropped), and a text file that is ignored. */
async function classFolder(root: string): Promise<void> {
  await png(`${root}/cat/a.png`, 10, 10, [255, 0, 0]);
  await png(`${root}/cat/b.png`, 10, 14, [0, 255, 0]);
  await png(`${root}/dog/c.png`, 12, 10, [0, 0, 255]);
  await Deno.writeTextFile(`${root}/dog/notes.txt`, "not an image");
}

function pipeline(dir: string, extra = ""): string {
  return `name: imgs
vars:
  image_dir: "${dir}"
stages:
  digits:
    uses: images
    with: { dir: "\${{ vars.image_dir }}", size: 8${extra} }
`;
}

function outDir(sb: Sandbox, r: Awaited<ReturnType<typeof runIn>>, name = "digits"): string {
  const key = r.report.stages.find((s) => s.name === name)!.key!;
  return sb.store.outputDir(key, "dataset");
}

Deno.test("images: registered; class sub-folders become sorted labels, pixels in [-1, 1] NCHW", async () => {
  assert(getKind("images"), "images kind is registered by lib/stages/mod.ts");
  using sb = new Sandbox();
  await classFolder(`${sb.dir}/imgs`);
  const f = sb.write("p.yaml", pipeline(`${sb.dir}/imgs`));
  const r = await runIn(sb, f);
  assertEquals(r.failed, [], JSON.stringify(r.report.stages));
  const dir = outDir(sb, r);
  const d = await readDataArtifact(dir);
  assertEquals(d.shape, [3, 8, 8]);
  assertEquals(d.count, 3);
  assertEquals([...d.y], [0, 0, 1]);
  assertEquals(d.classNames, ["cat", "dog"]);
  assertEquals(d.numClasses, 2);
  assertEquals(d.space, "pixels");
  const px = (i: number) => [0, 1, 2].map((c) => d.x[i * 192 + c * 64 + 27]);
  assertEquals(px(0), [1, -1, -1]); // red
  assertEquals(px(1), [-1, 1, -1]); // green
  assertEquals(px(2), [-1, -1, 1]); // blue
  assert(d.x.every((v) => v >= -1 && v <= 1));
  assertEquals(d.info.layout, "classes");
  const preview = await sharp(`${dir}/preview.png`).metadata();
  assertEquals([preview.width, preview.height], [3 * 8 + 4 * 2, 8 + 2 * 2]); // torchvision make_grid
  const csv = (await Deno.readTextFile(`${dir}/files.csv`)).trim().split("\n");
  assertEquals(csv, [
    "index,label,class,file",
    '0,0,"cat","cat/a.png"',
    '1,0,"cat","cat/b.png"',
    '2,1,"dog","dog/c.png"',
  ]);
  assertEquals(r.report.stages[0].metrics?.count, 3);
  assertEquals(r.report.stages[0].metrics?.num_classes, 2);
});

Deno.test("images: a flat folder is one class 0; limit and channels: 1 (PIL luma)", async () => {
  using sb = new Sandbox();
  await png(`${sb.dir}/flat/x1.png`, 9, 9, [255, 0, 0]);
  await png(`${sb.dir}/flat/x2.PNG`, 9, 9, [0, 0, 255]);
  await png(`${sb.dir}/flat/x3.png`, 9, 9, [255, 255, 255]);
  const f = sb.write("p.yaml", pipeline(`${sb.dir}/flat`, ", limit: 2, channels: 1"));
  const r = await runIn(sb, f);
  assertEquals(r.failed, [], JSON.stringify(r.report.stages));
  const d = await readDataArtifact(outDir(sb, r));
  assertEquals(d.shape, [1, 8, 8]);
  assertEquals(d.count, 2);
  assertEquals([...d.y], [0, 0]);
  assertEquals(d.classNames, ["flat"]);
  assertEquals(d.info.layout, "flat");
  // PIL convert("L"): red → 76, blue → 29; as floats the way ToTensor + Normalize(0.5, 0.5) map bytes.
  assertEquals(d.x[0], unitValue(76));
  assertEquals(d.x[64], unitValue(29));
});

Deno.test("images: the cache key follows the folder's content (not mtimes)", async () => {
  using sb = new Sandbox();
  const root = `${sb.dir}/imgs`;
  await classFolder(root);
  const f = sb.write("p.yaml", pipeline(root));
  const first = await runIn(sb, f);
  assertEquals(first.ran, ["digits"]);
  // Touching a file (same bytes, new mtime) keeps the key.
  const later = new Date(Date.now() + 60_000);
  await Deno.utime(`${root}/cat/a.png`, later, later);
  assertEquals((await runIn(sb, f)).cached, ["digits"]);
  // Editing an image reruns, and status says which file changed.
  await png(`${root}/cat/a.png`, 10, 10, [250, 0, 0]);
  const st = await statusOf(sb, f);
  assertEquals(st.digits.action, "run");
  assert(
    st.digits.reasons.some((x: string) => x.includes(`file ${root} changed`)),
    st.digits.reasons.join("; "),
  );
  const again = await runIn(sb, f);
  assertEquals(again.ran, ["digits"]);
  // Adding a file (even one the stage ignores) changes the folder digest, too.
  await Deno.writeTextFile(`${root}/cat/README`, "hello");
  assertEquals((await statusOf(sb, f)).digits.action, "run");
});

Deno.test("images: missing, unset and empty folders are plan-time errors that say what to set", async () => {
  using sb = new Sandbox();
  const check = async (dir: string, fragment: string) => {
    const f = sb.write("p.yaml", pipeline(dir));
    const l = await loadPipeline(f);
    assert(!l.plan);
    const d = l.diagnostics.find((x) => x.message.includes(fragment));
    assert(d, `expected "${fragment}"\n${l.diagnostics.map((x) => x.message).join("\n")}`);
    assertEquals([d.pos.line, d.pos.col], [7, 18]); // the `dir:` value in the stage
    return d.message;
  };
  const help = "a folder of .jpg/.png images, one sub-folder per class (ImageNet layout)";
  assertEquals(
    await check(`${sb.dir}/x/y`, "does not exist"),
    `image folder ${sb.dir}/x/y does not exist; set vars.image_dir to ${help}`,
  );
  assertEquals(
    await check("", "not set"),
    `image folder not set (parameter \`digits.dir\` is empty); set vars.image_dir to ${help}`,
  );
  await Deno.mkdir(`${sb.dir}/empty`);
  await Deno.writeTextFile(`${sb.dir}/empty/.DS_Store`, "");
  assertEquals(
    await check(`${sb.dir}/empty`, "is empty"),
    `image folder ${sb.dir}/empty is empty; set vars.image_dir to ${help}`,
  );
  // Written directly (no variable), the message names the parameter.
  const g = sb.write(
    "q.yaml",
    `name: q\nstages:\n  digits:\n    uses: images\n    with: { dir: nowhere, size: 8 }\n`,
  );
  const l = await loadPipeline(g);
  assertEquals(
    l.diagnostics.map((x) => x.message),
    [`image folder ${sb.dir}/nowhere does not exist; set \`digits.dir\` to ${help}`],
  );
});

Deno.test("images: a folder without images fails the stage with a message that says what is expected", async () => {
  using sb = new Sandbox();
  await Deno.mkdir(`${sb.dir}/docs`);
  await Deno.writeTextFile(`${sb.dir}/docs/a.txt`, "text");
  const r = await runIn(sb, sb.write("p.yaml", pipeline(`${sb.dir}/docs`)));
  assertEquals(r.failed, ["digits"]);
  const err = r.report.stages[0].error ?? "";
  assertStringIncludes(err, `image folder ${sb.dir}/docs contains no images`);
  assertStringIncludes(err, "one sub-folder per class (ImageNet layout)");
  // A class folder without images is named.
  await png(`${sb.dir}/cls/a/1.png`, 8, 8, [1, 2, 3]);
  await Deno.mkdir(`${sb.dir}/cls/b`);
  await Deno.writeTextFile(`${sb.dir}/cls/b/x.txt`, "");
  const r2 = await runIn(sb, sb.write("q.yaml", pipeline(`${sb.dir}/cls`)));
  assertEquals(r2.failed, ["digits"]);
  assertStringIncludes(r2.report.stages[0].error ?? "", `class folder(s) ${sb.dir}/cls/b`);
});

Deno.test("images: a profile swaps the dataset stage for an image folder", async () => {
  using sb = new Sandbox();
  await classFolder(`${sb.dir}/imgs`);
  const f = sb.write(
    "p.yaml",
    `name: swap
vars: { n: 8 }
profiles:
  paper:
    vars: { image_dir: "" }
    stages:
      digits:
        uses: images
        with: { dir: "\${{ vars.image_dir }}", size: "\${{ vars.n }}" }
stages:
  digits:
    uses: mnist
    with: { limit: 10 }
`,
  );
  // Selected without setting the folder: the message names the variable and points into the profile.
  const l = await loadPipeline(f, { sets: ["profile=paper"] });
  assertEquals(l.diagnostics.length, 1);
  assertStringIncludes(l.diagnostics[0].message, "image folder not set");
  assertStringIncludes(l.diagnostics[0].message, "set vars.image_dir to");
  assertEquals([l.diagnostics[0].pos.line, l.diagnostics[0].pos.col], [9, 22]);
  const r = await runIn(sb, f, { sets: ["profile=paper", `vars.image_dir=${sb.dir}/imgs`] });
  assertEquals(r.failed, []);
  assertEquals(r.report.stages.map((s) => s.kind), ["images"]);
  assertEquals((await readDataArtifact(outDir(sb, r))).count, 3);
});
