/**
 * The `report` kind on fake upstream artifacts (train outputs with loss.csv, sample outputs with tiny
 * grid.png files, fid metrics): rows joined by matrix point, the table, the findings' verdicts on
 * constructed numbers (holds, holds partly, does not hold), valid PNG charts, results.json/csv, publish;
 * the finding grammar's errors; and a scaling sweep through the engine (metrics reach the report through
 * `InputArtifact.metrics`, and a malformed finding is rejected when the pipeline is loaded).
 */
import { assert, assertEquals, assertRejects, assertThrows } from "../helpers/assert.ts";
import { runIn, Sandbox } from "../pipeline/helpers.ts";
import { reportKind } from "../../lib/stages/report.ts";
import { checkFinding, parseFinding, ranks, spearman } from "../../lib/report/findings.ts";
import { fmtValue, joinRows, type Row } from "../../lib/report/rows.ts";
import { decodePng, encodePng } from "../../lib/data/png.ts";
import { defineKind, type InputArtifact } from "../../lib/pipeline/stage.ts";
import { registerKind } from "../../lib/pipeline/registry.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import type { Scalar } from "../../lib/pipeline/yaml_source.ts";

type Ctx = Parameters<typeof reportKind.run>[0];
type Params = Ctx["params"];

const DEFAULTS: Params = {
  title: "test report",
  notes: "",
  publish: "",
  findings: [],
  loss_smooth: 0.9,
  loss_log: "auto",
};

/** A context for calling the kind's run() directly. */
function context(out: string, params: Partial<Params>, inputs: Record<string, InputArtifact[]>) {
  const logs: string[] = [];
  const metrics: Record<string, unknown> = {};
  const ctx = {
    name: "report",
    kind: "report",
    key: "0123456789abcdef".repeat(4),
    params: { ...DEFAULTS, ...params },
    inputs,
    outputs: { report: out },
    seed: 0,
    point: {},
    checkpointDir: `${out}/../ckpt`,
    signal: new AbortController().signal,
    log: (...p: unknown[]) => logs.push(p.join(" ")),
    progress: () => {},
    metrics: (v: Record<string, unknown>) => Object.assign(metrics, v),
    setAdapter: () => {},
  } as unknown as Ctx;
  return { ctx, logs, metrics };
}

function pointName(base: string, point: Record<string, Scalar>): string {
  const e = Object.entries(point);
  return e.length ? `${base}[${e.map(([k, v]) => `${k}=${v}`).join(",")}]` : base;
}

let serial = 0;
/** A fake upstream artifact: a directory with optional files, and its metrics. */
async function artifact(
  root: string,
  base: string,
  point: Record<string, Scalar>,
  metrics: Record<string, unknown>,
  files: Record<string, string | Uint8Array> = {},
): Promise<InputArtifact> {
  const dir = `${root}/a${serial++}`;
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === "string") await Deno.writeTextFile(`${dir}/${name}`, content);
    else await Deno.writeFile(`${dir}/${name}`, content);
  }
  return {
    dir,
    stage: pointName(base, point),
    output: "out",
    key: `k${serial}`,
    digest: "d",
    point,
    metrics,
  };
}

/** A tiny gray PNG (w × h) of one shade. */
function tinyPng(shade: number, w = 12, h = 8): Uint8Array {
  return encodePng({ width: w, height: h, channels: 1, data: new Uint8Array(w * h).fill(shade) });
}

/** A loss log falling from `from` to `to` over `steps` steps (with a little deterministic wiggle). */
function lossCsv(from: number, to: number, steps = 120): string {
  const lines = ["step,loss,mse,vb"];
  for (let s = 1; s <= steps; s++) {
    const l = from * Math.pow(to / from, (s - 1) / (steps - 1)) * (1 + 0.05 * Math.sin(s));
    lines.push(`${s},${l},${l},`);
  }
  return lines.join("\n") + "\n";
}

async function assertPng(path: string): Promise<{ width: number; height: number }> {
  const img = decodePng(await Deno.readFile(path), path);
  assert(img.width > 50 && img.height > 50, `${path}: ${img.width}×${img.height}`);
  return img;
}

// The scaling study's constructed numbers: FID falls with GFLOPs within every patch size; within each
// model FID falls as the patch shrinks, except for L (45 at patch 4 → 48 at patch 2).
const MODELS = {
  S: { params: 1.2e6, gflops: 0.1 },
  B: { params: 4.8e6, gflops: 0.4 },
  L: { params: 19e6, gflops: 1.6 },
};
const PATCH_FACTOR: Record<number, number> = { 8: 1, 4: 4, 2: 16 };
const FID: Record<string, number> = {
  "S/8": 90,
  "S/4": 70,
  "S/2": 50,
  "B/8": 75,
  "B/4": 55,
  "B/2": 40,
  "L/8": 60,
  "L/4": 45,
  "L/2": 48,
};

async function scalingInputs(root: string) {
  const models: InputArtifact[] = [], samples: InputArtifact[] = [], metrics: InputArtifact[] = [];
  let shade = 20;
  for (const [m, info] of Object.entries(MODELS)) {
    for (const patch of [8, 4, 2]) {
      const point = { model: m, patch };
      const gflops = info.gflops * PATCH_FACTOR[patch];
      models.push(
        await artifact(root, "train", point, {
          model: `DiT-${m}/${patch}`,
          block: "adaLN-Zero",
          params: info.params,
          gflops,
          final_loss: 0.05 + 0.01 / gflops,
          train_seconds: 100 * gflops,
          img_per_s: 500 / gflops,
          resumed_from: 0,
        }, { "loss.csv": lossCsv(1, 0.05 + 0.01 / gflops) }),
      );
      samples.push(
        await artifact(root, "sample", point, { samples: 64, seconds: 2, cfg_scale: 1.5 }, {
          "grid.png": tinyPng(shade += 20),
        }),
      );
      const fid = FID[`${m}/${patch}`];
      metrics.push(
        await artifact(root, "fid", point, {
          fid,
          precision: 1 - fid / 100,
          recall: 0.3 + gflops / 100,
          n: 250,
          n_ref: 1000,
          k: 3,
          feature_extractor: "lenet-mnist",
          // a name train also records: must not overwrite the model's
          model: "lenet",
        }),
      );
    }
  }
  return { models, samples, metrics };
}

Deno.test("report: a model × patch scaling study joins 27 artifacts into 9 rows, with table, findings, charts, json, csv", async () => {
  const root = await Deno.makeTempDir({ prefix: "ditflow-report-" });
  try {
    const inputs = await scalingInputs(root);
    const out = `${root}/out`, pub = `${root}/published/scaling`;
    await Deno.mkdir(out);
    const { ctx, metrics } = context(out, {
      title: "DiT scaling",
      notes: "Constructed numbers.",
      publish: pub,
      sort: "gflops",
      plots: [
        { x: "gflops", y: "fid", series: "patch", log: "xy" },
        { x: "gflops", y: "fid", series: "model", log: "xy", file: "fid_by_model" },
        { x: "gflops", y: "precision,recall", log: "x" },
      ],
      findings: [
        { trend: "fid falls as gflops rises, per patch" },
        { monotone: "fid falls as patch falls, per model" },
        { trend: "fid rises as gflops rises" },
        { best: "fid lowest at model=L" },
      ],
      loss_series: "model",
    }, inputs);
    await reportKind.run(ctx);
    const readme = await Deno.readTextFile(`${out}/README.md`);

    // The table: one row per point, sorted by GFLOPs, FID header names the extractor, values formatted.
    const table = readme.split("\n").filter((l) => l.startsWith("| "));
    assertEquals(
      table[0],
      "| run | model | block | patch | params | GFLOPs | final loss | FID (lenet-mnist) | precision | recall | train s | img/s |",
    );
    assertEquals(table.length, 2 + 9);
    assertEquals(
      table[2],
      "| model=S, patch=8 | DiT-S/8 | adaLN-Zero | 8 | 1.20M | 0.1 | 0.15 | 90.00 | 0.100 | 0.301 | 10.0 | 5,000 |",
    );
    assertEquals(table[10].split(" | ")[0], "| model=L, patch=2");
    assert(
      readme.includes("*FID: lenet-mnist features, 250 samples vs 1000 real; comparable only at the same N"),
    );
    assert(readme.includes("Constructed numbers."));

    // Findings: verdicts and evidence.
    assert(readme.includes("## Findings"));
    assertEquals(metrics.finding_1, "holds");
    assertEquals(metrics.finding_2, "holds partly (2 of 3 groups)");
    assertEquals(metrics.finding_3, "does not hold");
    assertEquals(metrics.finding_4, "does not hold"); // B/2 (FID 40) is the best row
    assertEquals(metrics.finding_1_claim, "trend: fid falls as gflops rises, per patch");
    assertEquals([metrics.findings, metrics.findings_hold, metrics.rows], [4, 1, 9]);
    assert(readme.includes("patch=2: ρ = −0.50 (n = 3) ✓"), readme);
    assert(readme.includes("model=L: no: patch 8: 60.00 → 4: 45.00 ✓ → 2: 48.00 ✗"), readme);
    assert(readme.includes("model=S: yes: patch 8: 90.00 → 4: 70.00 ✓ → 2: 50.00 ✓"), readme);

    // results.json: the rows with their points and merged metrics (train's model kept, fid's prefixed).
    const res = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    assertEquals(res.rows.length, 9);
    const s2 = res.rows.find((r: { label: string }) => r.label === "model=S, patch=2");
    assertEquals(s2.point, { model: "S", patch: 2 });
    assertEquals(s2.metrics.model, "DiT-S/2");
    assertEquals(s2.metrics["fid.model"], "lenet");
    assertEquals([s2.metrics.fid, s2.metrics.gflops, s2.metrics.samples], [50, 1.6, 64]);
    assertEquals(s2.sources, ["train[model=S,patch=2]", "fid[model=S,patch=2]", "sample[model=S,patch=2]"]);
    assertEquals(res.findings.map((f: { status: string }) => f.status), [
      "holds",
      "partly",
      "fails",
      "fails",
    ]);
    assertEquals(res.findings[0].data.groups["patch=8"], -1);

    // results.csv: a header with the axes then the metrics, one line per row.
    const csv = (await Deno.readTextFile(`${out}/results.csv`)).trim().split("\n");
    assertEquals(csv.length, 10);
    const head = csv[0].split(",");
    assertEquals(head.slice(0, 3), ["run", "axis.model", "patch"]);
    const fidCol = head.indexOf("fid");
    assert(fidCol > 0);
    assertEquals(csv[1].split('"')[1], "model=S, patch=8");
    assertEquals(csv[1].split('"')[2].split(",")[fidCol], "90");

    // Charts and loss curves are valid PNGs; one loss chart per model; the sample grids are copied.
    for (
      const f of [
        "fid_vs_gflops_by_patch.png",
        "fid_by_model.png",
        "precision_recall_vs_gflops.png",
        "loss_model_s.png",
        "loss_model_b.png",
        "loss_model_l.png",
        "samples.png",
      ]
    ) {
      await assertPng(`${out}/${f}`);
      assert(readme.includes(`](${f})`), `README links ${f}`);
    }
    const svg = await Deno.readTextFile(`${out}/fid_vs_gflops_by_patch.svg`);
    for (const l of ["patch=8", "patch=4", "patch=2"]) assert(svg.includes(`>${l}</text>`), l);
    assertEquals(res.charts.map((c: { file: string }) => c.file), [
      "fid_vs_gflops_by_patch.png",
      "fid_by_model.png",
      "precision_recall_vs_gflops.png",
    ]);
    const grid = decodePng(await Deno.readFile(`${out}/samples_model_s_patch_2.png`));
    assertEquals([grid.width, grid.height], [12, 8]);
    assert(readme.includes("### model=S, patch=2"));
    const montage = await assertPng(`${out}/samples.png`);
    // 3 columns (the values of the last axis, patch) × 3 rows of 160-px cells (the 12-px grids enlarged).
    assertEquals(montage.width, 12 + 3 * (160 + 12));
    assert(montage.height > 3 * (107 + 22), `montage ${montage.width}×${montage.height}`);
    assert(readme.includes("exponential moving average (weight 0.9"));
    const lossCsvOut = (await Deno.readTextFile(`${out}/loss_curves.csv`)).trim().split("\n");
    assertEquals(lossCsvOut.length, 1 + 9 * 120);

    // Published: the same files.
    for await (const e of Deno.readDir(out)) {
      assertEquals(await Deno.readFile(`${pub}/${e.name}`), await Deno.readFile(`${out}/${e.name}`));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: a conditioning ablation over block; best holds for adaLN-Zero, fails for in-context", async () => {
  const root = await Deno.makeTempDir({ prefix: "ditflow-report-" });
  try {
    const fids: Record<string, number> = { "adaLN-Zero": 41.5, "cross-attention": 47.25, "in-context": 52 };
    const models: InputArtifact[] = [], metrics: InputArtifact[] = [];
    for (const [block, fid] of Object.entries(fids)) {
      models.push(
        await artifact(root, "train", { block }, {
          model: "DiT-S/4",
          block,
          params: 1e6,
          gflops: 0.3,
          final_loss: fid / 1000,
        }, { "loss.csv": lossCsv(1, 0.1) }),
      );
      metrics.push(
        await artifact(root, "fid", { block }, {
          fid,
          precision: 0.5,
          recall: 0.5,
          n: 500,
          n_ref: 2000,
          k: 3,
          feature_extractor: "lenet-mnist",
        }),
      );
    }
    const out = `${root}/out`;
    await Deno.mkdir(out);
    const { ctx, metrics: m } = context(out, {
      columns: ["block", "fid", "final_loss"],
      findings: [
        { best: "fid lowest at block=adaLN-Zero" },
        { best: "fid lowest at block=in-context" },
        { best: "final_loss highest at block=in-context" },
      ],
    }, { models, metrics });
    await reportKind.run(ctx);
    const readme = await Deno.readTextFile(`${out}/README.md`);
    const table = readme.split("\n").filter((l) => l.startsWith("| "));
    assertEquals(table, [
      "| run | block | FID (lenet-mnist) | final loss |",
      "| --- | ---: | ---: | ---: |",
      "| block=adaLN-Zero | adaLN-Zero | 41.50 | 0.0415 |",
      "| block=cross-attention | cross-attention | 47.25 | 0.04725 |",
      "| block=in-context | in-context | 52.00 | 0.052 |",
    ]);
    assertEquals([m.finding_1, m.finding_2, m.finding_3], ["holds", "does not hold", "holds"]);
    assert(
      readme.includes(
        "✓ best is adaLN-Zero, beyond every other's interval: 1. adaLN-Zero 41.50, 2. cross-attention 47.25, 3. in-context 52.00",
      ),
      readme,
    );
    assert(readme.includes("✗ in-context is beaten beyond the intervals"));
    assert(readme.includes("FID: lenet-mnist features, 500 samples vs 2000 real"));
    // No plots given, and no GFLOPs spread: no chart section; the loss chart is there (one curve per row).
    assert(!readme.includes("## Charts"));
    await assertPng(`${out}/loss.png`);
    const svg = await Deno.readTextFile(`${out}/loss.svg`);
    for (const b of Object.keys(fids)) assert(svg.includes(`>block=${b}</text>`), b);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: a guidance sweep over cfg_scale (x is an axis; two y metrics on one chart; a model outside the matrix)", async () => {
  const root = await Deno.makeTempDir({ prefix: "ditflow-report-" });
  try {
    const model = await artifact(root, "train", {}, { model: "DiT-S/4", block: "adaLN-Zero", gflops: 0.3 }, {
      "loss.csv": lossCsv(1, 0.1),
    });
    const samples: InputArtifact[] = [], metrics: InputArtifact[] = [];
    // FID is U-shaped in the scale; precision rises, recall falls.
    const table: [number, number, number, number][] = [[1, 60, 0.4, 0.7], [2, 40, 0.6, 0.6], [
      4,
      45,
      0.8,
      0.4,
    ], [
      8,
      70,
      0.9,
      0.2,
    ]];
    for (const [cfg_scale, fid, precision, recall] of table) {
      samples.push(
        await artifact(root, "decode", { cfg_scale }, { images: 100, seconds: 3 }, {
          "grid.png": tinyPng(100),
        }),
      );
      metrics.push(
        await artifact(root, "fid", { cfg_scale }, {
          fid,
          precision,
          recall,
          n: 100,
          n_ref: 1000,
          feature_extractor: "lenet-mnist",
        }),
      );
    }
    const out = `${root}/out`;
    await Deno.mkdir(out);
    const { ctx, metrics: m } = context(out, {
      columns: ["fid", "precision", "recall"],
      plots: [
        { x: "cfg_scale", y: "fid", log: "none" },
        { x: "cfg_scale", y: "precision,recall", log: "none", title: "precision and recall vs guidance" },
      ],
      findings: [
        { monotone: "precision rises as cfg_scale rises" },
        { trend: "recall falls as cfg_scale rises" },
        { monotone: "fid falls as cfg_scale rises" },
        { best: "fid lowest at cfg_scale=2" },
      ],
    }, { models: [model], samples, metrics });
    await reportKind.run(ctx);
    const readme = await Deno.readTextFile(`${out}/README.md`);
    assertEquals([m.finding_1, m.finding_2, m.finding_3, m.finding_4], [
      "holds",
      "holds",
      "does not hold",
      "holds",
    ]);
    assertEquals(m.finding_2_rho, -1);
    assertEquals(m.rows, 5); // the model's own row + 4 scales
    const rows = readme.split("\n").filter((l) => l.startsWith("| "));
    assertEquals(rows.length, 2 + 4); // the train row has none of the columns
    assertEquals(rows[2], "| cfg_scale=1 | 60.00 | 0.400 | 0.700 |");
    const svg = await Deno.readTextFile(`${out}/precision_recall_vs_cfg_scale.svg`);
    assert(svg.includes(">precision</text>") && svg.includes(">recall</text>"));
    assert(svg.includes("precision and recall vs guidance"));
    await assertPng(`${out}/fid_vs_cfg_scale.png`);
    await assertPng(`${out}/loss.png`);
    assert(readme.includes("### cfg_scale=8"));
    assertEquals(readme.match(/\]\(samples_cfg_scale_\d\.png\)/g)?.length, 4);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: strict errors: bad finding grammar, unknown names, non-numeric x", async () => {
  assertThrows(
    () => parseFinding({ trend: "fid goes down with gflops" }, 1),
    "findings[0]",
    "trend: Y falls|rises",
  );
  assertThrows(
    () => parseFinding({ trend: "fid falls as gflops rises", best: "x lowest at a=b" }, 2),
    "exactly one",
  );
  assertThrows(() => parseFinding("trend: fid falls as gflops rises", 1), "one-key mapping");
  assertThrows(
    () => parseFinding({ best: "fid lowest at block" }, 1),
    "best: Y lowest|highest at AXIS=VALUE",
  );
  const t = parseFinding({ trend: "fid decreases as gflops increases within patch" }, 1);
  assertEquals(t, {
    kind: "trend",
    claim: "trend: fid decreases as gflops increases within patch",
    y: "fid",
    yUp: false,
    x: "gflops",
    xUp: true,
    per: "patch",
  });
  assertEquals(parseFinding({ best: "fid lowest at model=DiT-S/2, per block" }, 1), {
    kind: "best",
    claim: "best: fid lowest at model=DiT-S/2, per block",
    y: "fid",
    lowest: true,
    at: "model",
    value: "DiT-S/2",
    per: "block",
  });

  const rows: Row[] = [
    { label: "block=a", point: { block: "a" }, metrics: { fid: 3 }, sources: [] },
    { label: "block=b", point: { block: "b" }, metrics: { fid: 2 }, sources: [] },
  ];
  assertThrows(
    () => checkFinding(parseFinding({ trend: "fdi falls as block rises" }, 1), rows),
    "no row has",
    "`fdi`",
    "fid",
  );
  assertThrows(
    () => checkFinding(parseFinding({ best: "fid lowest at block=c" }, 1), rows),
    "no row has block=c",
    "a, b",
  );

  const root = await Deno.makeTempDir({ prefix: "ditflow-report-" });
  try {
    const metrics = [
      await artifact(root, "fid", { block: "a" }, { fid: 3 }),
      await artifact(root, "fid", { block: "b" }, { fid: 2 }),
    ];
    const run = (params: Partial<Params>) => reportKind.run(context(root, params, { metrics }).ctx);
    await assertRejects(
      () => run({ plots: [{ x: "block", y: "fid", log: "none" }] }),
      "x `block` must be numeric",
    );
    await assertRejects(
      () => run({ plots: [{ x: "fid", y: "nope", log: "none" }] }),
      "plots[0]",
      "no row has `nope`",
    );
    await assertRejects(() => run({ columns: ["fid", "gflops"] }), "columns", "`gflops`");
    await assertRejects(() => run({ findings: [{ trend: "fid falls" }] }), "findings[0]");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: rows join by point in any axis order; stages outside a matrix make their own rows", () => {
  const a = (
    stage: string,
    point: Record<string, Scalar>,
    metrics: Record<string, unknown>,
  ): InputArtifact => ({
    dir: "/x",
    stage,
    output: "o",
    key: "k",
    digest: "d",
    point,
    metrics,
  });
  const rows = joinRows([
    {
      role: "models",
      artifacts: [a("train[m=S,p=2]", { m: "S", p: 2 }, { seconds: 1 }), a("train", {}, { x: 1 })],
    },
    { role: "metrics", artifacts: [a("fid[p=2,m=S]", { p: 2, m: "S" }, { fid: 5, seconds: 9 })] },
    {
      role: "samples",
      artifacts: [a("sample", {}, { y: 2 }), a("decode[m=S,p=2]", { m: "S", p: 2 }, { seconds: 4 })],
    },
  ]);
  assertEquals(rows.map((r) => r.label), ["m=S, p=2", "train", "sample"]);
  assertEquals(rows[0].metrics, { seconds: 1, fid: 5, "fid.seconds": 9, "decode.seconds": 4 });
  assertEquals(rows[0].modelDir, "/x");
  assertEquals(rows[2].gridDir, "/x");
});

Deno.test("report: Spearman ρ with ties, and number formatting", () => {
  assertEquals(ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1]);
  assertEquals(spearman([1, 2, 3], [3, 1, 2]), -0.5);
  assertEquals(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
  assert(Math.abs(spearman([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-12);
  assertEquals(fmtValue("params", 33_000_000), "33.00M");
  assertEquals(fmtValue("fid", 7.123), "7.12");
  assertEquals(fmtValue("gflops", 0.11888), "0.1189");
  assertEquals(fmtValue("gflops", 118.8), "118.8");
  assertEquals(fmtValue("img_per_s", 12345.6), "12,346");
  assertEquals(fmtValue("train_seconds", 1234.5), "1,235");
  assertEquals(fmtValue("block", "adaLN-Zero"), "adaLN-Zero");
});

// Through the engine: fake train/sample/fid kinds over a model × patch matrix; the report gets their
// metrics from the store (InputArtifact.metrics) and checks the findings.
const TEST_FID: Record<string, number> = { "S/4": 80, "S/2": 60, "B/4": 50, "B/2": 65 };
registerKind(defineKind({
  name: "rt-train",
  module: import.meta.url,
  gpu: false,
  params: { model: { type: "string" }, patch: { type: "int" } },
  inputs: {},
  outputs: { model: {} },
  async run(ctx) {
    // Outputs must differ per point: downstream cache keys are made of input digests, not metrics.
    const g = (ctx.params.model === "S" ? 1 : 4) * (ctx.params.patch === 2 ? 4 : 1);
    await Deno.writeTextFile(`${ctx.outputs.model}/loss.csv`, lossCsv(1, 0.1 / g, 30));
    await Deno.writeTextFile(`${ctx.outputs.model}/which.txt`, `${ctx.params.model}/${ctx.params.patch}`);
    ctx.metrics({ model: `DiT-${ctx.params.model}/${ctx.params.patch}`, gflops: g, params: g * 1e6 });
  },
}));
registerKind(defineKind({
  name: "rt-sample",
  module: import.meta.url,
  gpu: false,
  params: {},
  inputs: { model: {} },
  outputs: { samples: {} },
  async run(ctx) {
    await Deno.copyFile(`${ctx.inputs.model.dir}/which.txt`, `${ctx.outputs.samples}/which.txt`);
    await Deno.writeFile(`${ctx.outputs.samples}/grid.png`, tinyPng(200));
    ctx.metrics({ samples: 16 });
  },
}));
registerKind(defineKind({
  name: "rt-fid",
  module: import.meta.url,
  gpu: false,
  params: {},
  inputs: { samples: {} },
  outputs: { fid: {} },
  run(ctx) {
    const p = ctx.inputs.samples.point;
    ctx.metrics({
      fid: TEST_FID[`${p.model}/${p.patch}`],
      n: 16,
      n_ref: 64,
      feature_extractor: "lenet-mnist",
    });
    return Promise.resolve();
  },
}));

const SWEEP = `
name: scaling-test
stages:
  train:
    uses: rt-train
    matrix:
      model: [S, B]
      patch: [4, 2]
    with:
      model: \${{ matrix.model }}
      patch: \${{ matrix.patch }}
  sample:
    uses: rt-sample
    inputs: { model: train.model }
  fid:
    uses: rt-fid
    inputs: { samples: sample.samples }
  report:
    uses: report
    inputs: { models: train.model, samples: sample.samples, metrics: fid.fid }
    with:
      title: scaling test
      sort: gflops
      plots:
        - { x: gflops, y: fid, series: patch, log: xy }
      findings:
        - trend: fid falls as gflops rises, per patch
        - monotone: fid falls as patch falls, per model
`;

Deno.test("report through the engine: metrics reach the report by InputArtifact.metrics; findings land in meta", async () => {
  using sb = new Sandbox();
  const file = sb.write("p.yaml", SWEEP);
  const r = await runIn(sb, file);
  assertEquals(r.failed, []);
  const rep = r.report.stages.find((s) => s.name === "report")!;
  assertEquals(rep.result, "ran");
  assertEquals(rep.metrics?.finding_1, "holds partly (1 of 2 groups)");
  assertEquals(rep.metrics?.finding_2, "holds partly (1 of 2 groups)");
  const out = sb.store.outputDir(rep.key!, "report");
  const res = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
  assertEquals(
    res.rows.map((
      x: { label: string; metrics: { fid: number; gflops: number } },
    ) => [x.label, x.metrics.gflops, x.metrics.fid]),
    [["model=S, patch=4", 1, 80], ["model=S, patch=2", 4, 60], ["model=B, patch=4", 4, 50], [
      "model=B, patch=2",
      16,
      65,
    ]],
  );
  await assertPng(`${out}/fid_vs_gflops_by_patch.png`);
  await assertPng(`${out}/samples.png`);
  const readme = await Deno.readTextFile(`${out}/README.md`);
  assert(readme.includes("| model=B, patch=2 | DiT-B/2 | 2 | 16.00M | 16 | 65.00 |"), readme);
  // A second run is cached.
  const again = await runIn(sb, file);
  assert(again.cached.includes("report"));
});

Deno.test("report: malformed findings and plots are rejected when the pipeline is loaded", async () => {
  using sb = new Sandbox();
  const bad = SWEEP
    .replace("- trend: fid falls as gflops rises, per patch", "- trend: fid goes down as gflops rises")
    .replace("- monotone:", "- monotonic:")
    .replace("log: xy", "log: both");
  const l = await loadPipeline(sb.write("bad.yaml", bad));
  assertEquals(l.plan, undefined);
  const msgs = l.diagnostics.map((d) => `${d.message} ${d.hint ?? ""}`);
  assert(
    msgs.some((m) => m.includes("report.findings[0].trend") && m.includes("does not match")),
    msgs.join("\n"),
  );
  assert(
    msgs.some((m) => m.includes("unknown parameter `monotonic`") && m.includes("monotone")),
    msgs.join("\n"),
  );
  assert(msgs.some((m) => m.includes("report.plots[0].log")), msgs.join("\n"));
});
