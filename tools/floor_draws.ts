/**
 * How much a real-data FID floor moves between draws: FID (LeNet features, against the `ref` stage's 1,000
 * held-out digits) of every disjoint draw of N training digits, and the bias-corrected bootstrap interval of
 * the first draw. Reads the `data`, `classifier` and `ref` artifacts of the newest cached run in the store.
 *
 *   deno run -A tools/floor_draws.ts [N=300] [--cache .ditflow]
 *
 * Measured (2026-12-07, main job's cache): N = 300: 30 draws, mean 6.37, sd 3.11, min 3.42, max 19.07 (the
 * first draw, the old `real` floor); N = 1000: 9 draws, mean 2.49, sd 0.98.
 * @module
 */
import { parseArgs } from "node:util";
import { getRuntime } from "../lib/gpu/runtime.ts";
import { readDataArtifact } from "../lib/data/artifact.ts";
import { CLASSIFIER_FILE, lenetFeatures, readLeNet } from "../lib/models/lenet.ts";
import { readStats } from "../lib/stages/fid.ts";
import { bootstrapFid, drawSpread } from "../lib/metrics/intervals.ts";
import { Store } from "../lib/pipeline/store.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { cache: { type: "string", default: Deno.env.get("DITFLOW_CACHE") ?? ".ditflow" } },
  allowPositionals: true,
});
const N = Number(positionals[0] ?? 300);
const store = new Store(values.cache!);
/** The newest cached artifact of the stage named `name` (its first output's directory). */
function newest(name: string, output: string): string {
  let best: { dir: string; t: string } | undefined;
  for (const key of store.listKeys()) {
    const m = store.readMeta(key);
    if (m?.name !== name) continue;
    const t = String(m.timings?.started ?? "");
    if (!best || t > best.t) best = { dir: store.outputDir(key, output), t };
  }
  if (!best) throw new Error(`no cached stage ${name} in ${values.cache}`);
  return best.dir;
}
await getRuntime();
const data = await readDataArtifact(newest("data", "dataset"));
const { net } = await readLeNet(`${newest("classifier", "classifier")}/${CLASSIFIER_FILE}`);
const { stats: ref } = await readStats(`${newest("ref", "ref")}/stats.safetensors`);
const feats = await lenetFeatures(net, data.x, data.count);
const d = ref.dim;
const r = drawSpread(ref, feats, data.count, d, N);
console.log(
  `N=${N}: ${r.draws.length} disjoint draws: mean ${r.value.toFixed(2)} sd ${r.std.toFixed(2)} ` +
    `min ${Math.min(...r.draws).toFixed(2)} max ${Math.max(...r.draws).toFixed(2)} (first draw ${
      r.draws[0].toFixed(2)
    })`,
);
const b = bootstrapFid(ref, feats.subarray(0, N * d), N, d, { reps: 200 });
console.log(
  `first draw: FID ${b.value.toFixed(2)}, bias-corrected bootstrap interval [${b.low.toFixed(2)}, ${
    b.high.toFixed(2)
  }] (bias ${b.bias.toFixed(2)})`,
);
net.dispose();
