import { assertEquals } from "../helpers/assert.ts";
import { chartSvg } from "../../lib/report/plots.ts";

Deno.test("chartSvg: series past the palette repeat its colours dashed, so no two look alike", () => {
  const series = Array.from({ length: 12 }, (_, i) => ({
    label: `s${i}`,
    points: [[1, i + 1], [2, i + 2]] as [number, number][],
  }));
  const svg = chartSvg(series);
  const lines = svg.split("\n").filter((l) => l.startsWith("<polyline"));
  assertEquals(lines.length, 12);
  assertEquals(lines.map((l) => l.includes("stroke-dasharray")), [...Array(10).fill(false), true, true]);
  const style = (l: string) => /stroke="([^"]+)"/.exec(l)![1] + (l.includes("dasharray") ? " dashed" : "");
  assertEquals(new Set(lines.map(style)).size, 12);
});
