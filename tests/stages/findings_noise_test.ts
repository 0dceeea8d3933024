/**
 * Findings judged against uncertainty (lib/report/findings.ts): a step or a win counts only beyond the
 * intervals (a row's `Y_low`/`Y_high`, or the [min, max] spread of rows that differ only in `seed`);
 * otherwise the verdict is "within noise". Also the `rho <= v` strength of a trend.
 */
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";
import { checkFinding, parseFinding } from "../../lib/report/findings.ts";
import type { Row } from "../../lib/report/rows.ts";

function row(point: Record<string, string | number>, metrics: Record<string, unknown>): Row {
  const label = Object.entries(point).map(([k, v]) => `${k}=${v}`).join(", ");
  return { label, point, metrics, sources: [] };
}

const check = (finding: Record<string, string>, rows: Row[]) => checkFinding(parseFinding(finding, 1), rows);

Deno.test("findings: monotone steps beyond the intervals hold; overlapping ones are within noise", () => {
  const rows = [
    row({ patch: 8 }, { fid: 90, fid_low: 85, fid_high: 96 }),
    row({ patch: 4 }, { fid: 70, fid_low: 66, fid_high: 75 }),
    row({ patch: 2 }, { fid: 50, fid_low: 46, fid_high: 55 }),
  ];
  assertEquals(check({ monotone: "fid falls as patch falls" }, rows).verdict, "holds");
  rows[2] = row({ patch: 2 }, { fid: 68, fid_low: 63, fid_high: 73 }); // overlaps patch 4's interval
  const r = check({ monotone: "fid falls as patch falls" }, rows);
  assertEquals([r.status, r.verdict], ["noise", "within noise"]);
  assert(r.evidence[0].includes("4: 70.00 [66.00, 75.00] ✓ → 2: 68.00 [63.00, 73.00] ~"), r.evidence[0]);
  rows[2] = row({ patch: 2 }, { fid: 72, fid_low: 67, fid_high: 77 }); // wrong direction
  assertEquals(check({ monotone: "fid falls as patch falls" }, rows).status, "fails");
});

Deno.test("findings: best pools seeds as mean and [min, max]; a win inside the spread is within noise", () => {
  const rows: Row[] = [];
  const fids: Record<string, number[]> = { a: [40, 42, 41], b: [45, 47, 46], c: [41.5, 50, 44] };
  for (const [block, vs] of Object.entries(fids)) {
    vs.forEach((fid, seed) => rows.push(row({ block, seed }, { fid })));
  }
  const r = check({ best: "fid lowest at block=a" }, rows);
  // a: mean 41 [40, 42]; c: mean 45.17 [41.5, 50] overlaps a: within noise.
  assertEquals(r.status, "noise");
  assert(r.evidence[0].includes("a is best, but within the intervals of c"), r.evidence[0]);
  assert(r.evidence[0].includes("1. a 41.00 [40.00, 42.00] (3 rows)"), r.evidence[0]);
  fids.c.splice(0, 3, 48, 50, 49);
  const rows2: Row[] = [];
  for (const [block, vs] of Object.entries(fids)) {
    vs.forEach((fid, seed) => rows2.push(row({ block, seed }, { fid })));
  }
  assertEquals(check({ best: "fid lowest at block=a" }, rows2).verdict, "holds");
  assertEquals(check({ best: "fid lowest at block=c" }, rows2).verdict, "does not hold");
});

Deno.test("findings: a trend's required strength (rho <= -0.9)", () => {
  const rows = [1, 2, 3, 4, 5].map((g, i) => row({ m: i }, { gflops: g, fid: [90, 80, 85, 50, 60][i] }));
  const weak = check({ trend: "fid falls as gflops rises, rho <= -0.9" }, rows);
  assert(weak.status === "partly", weak.verdict);
  assert(weak.summary.includes("required pooled ρ ≤ -0.9: not met"), weak.summary);
  const strong = check({ trend: "fid falls as gflops rises, rho <= -0.8" }, rows);
  assertEquals(strong.verdict, "holds");
  assertThrows(
    () => parseFinding({ monotone: "fid falls as gflops rises, rho <= -0.9" }, 1),
    "belongs to a trend finding",
  );
});

Deno.test("report notes: {{ ROW.METRIC }} is filled from the rows; unknown names fail", async () => {
  const { fillNotes } = await import("../../lib/report/notes.ts");
  const rows: Row[] = [
    {
      label: "model=B/2",
      point: { model: "B/2" },
      metrics: { fid: 14.32, recall: 0.61 },
      sources: ["fid[model=B/2]"],
    },
    { label: "real_fid", point: {}, metrics: { fid: 19.1 }, sources: ["real_fid"] },
  ];
  assertEquals(
    fillNotes("FID {{ fid.fid }} vs {{ real_fid.fid }}; recall {{model=B/2.recall}}.", rows),
    "FID 14.32 vs 19.10; recall 0.610.",
  );
  assertThrows(() => fillNotes("{{ nope.fid }}", rows), "not among model=B/2, real_fid");
  assertThrows(() => fillNotes("{{ real_fid.kid }}", rows), "lacks");
});

Deno.test("findings: beats compares two sets of rows pooled over seeds, against their spreads", () => {
  const rows: Row[] = [];
  const fids: Record<string, number[]> = {
    dit: [180, 183, 181],
    uvit: [159, 167, 166],
    skips: [178, 181, 180],
  };
  for (const [arch, vs] of Object.entries(fids)) {
    vs.forEach((fid, seed) => rows.push(row({ arch, objective: "ddpm", seed }, { fid })));
  }
  rows.push(row({ arch: "dit", objective: "sit", seed: 0 }, { fid: 120 }));
  const uvit = check({ beats: "fid lower at arch=uvit than at arch=dit, objective=ddpm" }, rows);
  assertEquals([uvit.status, uvit.verdict], ["holds", "holds"]);
  assert(uvit.summary.includes("164.00 [159.00, 167.00] (3 rows)"), uvit.summary);
  assert(uvit.summary.includes("181.33 [180.00, 183.00] (3 rows)"), uvit.summary); // the SiT row is not pooled
  assertEquals(
    check({ beats: "fid lower at arch=skips than at arch=dit, objective=ddpm" }, rows).status,
    "noise",
  );
  assertEquals(
    check({ beats: "fid higher at arch=uvit than at arch=dit, objective=ddpm" }, rows).status,
    "fails",
  );
  assertEquals(check({ beats: "fid lower at arch=mdt than at arch=dit" }, rows).status, "untestable");
  assertThrows(() => check({ beats: "fid lower at archh=uvit than at arch=dit" }, rows), "archh");
  assertThrows(() => parseFinding({ beats: "fid lower at arch=uvit" }, 1), "does not read");
});

Deno.test("findings: a required ρ comes with an interval over the rows' own intervals", () => {
  const fids = [90, 80, 85, 50, 60];
  const at = (half: number) =>
    fids.map((fid, i) => row({ m: i }, { gflops: i + 1, fid, fid_low: fid - half, fid_high: fid + half }));
  // Tight intervals: ρ = −0.8 misses −0.9 beyond the noise, the interval is reproducible.
  const tight = check({ trend: "fid falls as gflops rises, rho <= -0.9" }, at(0.5));
  assert(tight.verdict.includes("misses -0.9, beyond the noise"), tight.verdict);
  assertEquals([tight.data.rho_low, tight.data.rho_high], [-0.8, -0.8]);
  // Wide intervals: the same point estimate, but a reordering is within the rows' noise.
  const wide = check({ trend: "fid falls as gflops rises, rho <= -0.9" }, at(12));
  assert(wide.verdict.includes("misses -0.9, within the noise"), wide.verdict);
  const [lo, hi] = [wide.data.rho_low as number, wide.data.rho_high as number];
  assert(lo <= -0.9 && hi > -0.8, `${lo} ${hi}`);
  assertEquals(check({ trend: "fid falls as gflops rises, rho <= -0.9" }, at(12)).data.rho_low, lo);
  // A pass whose interval stays past the threshold is beyond the noise.
  const strong = check({ trend: "fid falls as gflops rises, rho <= -0.7" }, at(0.5));
  assert(strong.summary.includes("met (95% interval"), strong.summary);
  assert(strong.summary.includes("beyond the noise"), strong.summary);
  // Rows without intervals: the point alone, no interval claim.
  const bare = check(
    { trend: "fid falls as gflops rises, rho <= -0.9" },
    fids.map((fid, i) => row({ m: i }, { gflops: i + 1, fid })),
  );
  assert(!bare.summary.includes("interval"), bare.summary);
});

Deno.test("findings: groups are ordered part by part, as they first appear, numbers out of order sorted", () => {
  const rows: Row[] = [];
  for (const step of [1200, 300, 600]) {
    for (const model of ["S", "B", "XL"]) {
      for (const patch of [4, 2]) {
        rows.push(row({ model, patch, step }, { fid: 100 / step + patch }));
      }
    }
  }
  const r = check({ monotone: "fid falls as patch falls, per model+step" }, rows);
  assertEquals(r.evidence.map((e) => e.split(":")[0]), [
    "model+step=S/300",
    "model+step=S/600",
    "model+step=S/1200",
    "model+step=B/300",
    "model+step=B/600",
    "model+step=B/1200",
    "model+step=XL/300",
    "model+step=XL/600",
    "model+step=XL/1200",
  ]);
  // Numbers that first appear in a monotone order keep it (patches 4, 2).
  const p = check({ monotone: "fid falls as step rises, per patch" }, rows);
  assertEquals(p.evidence.map((e) => e.split(":")[0]), ["patch=4", "patch=2"]);
});
