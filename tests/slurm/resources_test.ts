/**
 * `resources:` and the batch script, without a cluster: validation with file:line:col, merging of kind
 * defaults, the `#SBATCH` lines (GPU request for `gpu: true` kinds, configurable and omittable), the
 * profile's `executor:`.
 */

import { assert, assertEquals, assertStringIncludes } from "../pipeline/assert.ts";
import { plan, Sandbox } from "../pipeline/helpers.ts";
import { loadPipeline } from "../../lib/pipeline/load.ts";
import { batchScript, gpuPolicyFromEnv, resourceArgs } from "../../lib/pipeline/slurm/script.ts";
import { safeName } from "../../lib/pipeline/slurm/layout.ts";
import { JobMonitor } from "../../lib/pipeline/slurm/monitor.ts";

const PIPE = `
name: res
defaults:
  resources:
    tiny_train: {cpus: 8, mem: 64G, time: "1-00:00:00", partition: gpu, sbatch_args: ["--exclusive"]}
stages:
  enc:
    uses: tiny_encode
    with: {dataset: x}
    resources: {cpus: 2, mem: 4000, time: 30}
  train:
    uses: tiny_train
    inputs: {latents: enc.latents}
    with: {model: DiT-S/2}
    resources: {time: "12:00:00", account: lab, qos: high, constraint: a100}
  train_cpu:
    uses: tiny_train
    inputs: {latents: enc.latents}
    with: {model: DiT-B/2}
    resources: {gpus: 0}
  plain:
    uses: tiny_train
    inputs: {latents: enc.latents}
    with: {model: DiT-L/2}
profiles:
  cluster: {executor: slurm}
`;

Deno.test("resources: per stage over per-kind defaults, numbers as Slurm reads them, not in the key", async () => {
  using sb = new Sandbox();
  const f = sb.write("p.yaml", PIPE);
  const p = await plan(f);
  assertEquals(p.byName.get("enc")!.resources, { cpus: 2, mem: "4000", time: "30" });
  assertEquals(p.byName.get("train")!.resources, {
    cpus: 8,
    mem: "64G",
    time: "12:00:00",
    partition: "gpu",
    sbatch_args: ["--exclusive"],
    account: "lab",
    qos: "high",
    constraint: "a100",
  });
  assertEquals(p.executor, undefined);
  assertEquals((await plan(f, ["profile=cluster"])).executor, "slurm");
  // Resources never change a stage's key.
  const other = sb.write("q.yaml", PIPE.replace("cpus: 2, mem: 4000", "cpus: 4, mem: 8G"));
  const { analysePlan } = await import("../../lib/pipeline/engine.ts");
  const a = await analysePlan(p, sb.store);
  const b = await analysePlan(await plan(other), sb.store);
  assertEquals(a[0].key, b[0].key);
});

Deno.test("resources: errors at file:line:col with suggestions", async () => {
  using sb = new Sandbox();
  const f = sb.write(
    "bad.yaml",
    `name: bad
defaults:
  resources:
    tiny_trian: {cpus: 2}
    tiny_train: {gpu: 1}
stages:
  enc:
    uses: tiny_encode
    with: {dataset: x}
    resources: {cpus: 0, mem: lots, time: "an hour", sbatch_args: [exclusive]}
  t:
    uses: tiny_train
    inputs: {latents: enc.latents}
    with: {model: DiT-S/2}
    resources: [cpus]
profiles:
  p: {executor: slurn}
`,
  );
  const l = await loadPipeline(f);
  const got = l.diagnostics.map((d) =>
    `${d.pos.line}:${d.pos.col}: ${d.message}${d.hint ? ` (${d.hint})` : ""}`
  );
  const want = [
    "4:5: `defaults.resources` names unknown stage kind `tiny_trian`",
    "5:18: unknown key `gpu` in `defaults.resources.tiny_train`",
    "10:23: parameter `enc.resources.cpus` is 0, must be an integer >= 1",
    '10:31: parameter `enc.resources.mem` is "lots": write megabytes (16000) or a size with a unit',
    '10:43: parameter `enc.resources.time` is "an hour": write minutes (30), MM:SS, HH:MM:SS',
    '10:68: parameter `enc.resources.sbatch_args[0]` is "exclusive": each item is an sbatch option',
    "15:16: `t.resources` must be a mapping",
    "17:17: unknown executor `slurn` in profile `p`",
  ];
  for (const w of want) assert(got.some((g) => g.startsWith(w)), `missing ${w}\ngot:\n${got.join("\n")}`);
  assert(got.some((g) => g.includes("did you mean `tiny_train`")), got.join("\n"));
  assert(got.some((g) => g.includes("did you mean `gpus`")), got.join("\n"));
  assert(got.some((g) => g.includes("did you mean `slurm`")), got.join("\n"));
});

Deno.test("batch script: #SBATCH lines from resources; gpu: true kinds ask for a GPU unless told not to", async () => {
  using sb = new Sandbox();
  const p = await plan(sb.write("p.yaml", PIPE));
  const on = gpuPolicyFromEnv(undefined);
  const args = (name: string, policy = on) => {
    const s = p.byName.get(name)!;
    return resourceArgs(s.resources, s.gpu, policy);
  };
  assertEquals(args("enc"), ["--cpus-per-task=2", "--mem=4000", "--time=30"]);
  assertEquals(args("train"), [
    "--cpus-per-task=8",
    "--mem=64G",
    "--time=12:00:00",
    "--gpus=1",
    "--partition=gpu",
    "--account=lab",
    "--qos=high",
    "--constraint=a100",
    "--exclusive",
  ]);
  assertEquals(args("plain"), [
    "--cpus-per-task=8",
    "--mem=64G",
    "--time=1-00:00:00",
    "--gpus=1",
    "--partition=gpu",
    "--exclusive",
  ]);
  // resources.gpus overrides the kind; DITFLOW_SLURM_GPUS=0/none omits the request; a type passes through.
  assert(!args("train_cpu").some((a) => a.startsWith("--gpus")));
  assert(!args("plain", gpuPolicyFromEnv("0")).some((a) => a.startsWith("--gpus")));
  assert(!args("plain", gpuPolicyFromEnv("none")).some((a) => a.startsWith("--gpus")));
  assert(args("plain", gpuPolicyFromEnv("a100:1")).includes("--gpus=a100:1"));
  assert(args("plain", gpuPolicyFromEnv("--gres=gpu:1")).includes("--gres=gpu:1"));
  const text = batchScript({
    jobName: "ditflow:res:train",
    log: "/c/slurm/logs/res/train.log",
    resourceArgs: args("train"),
    cwd: "/checkout",
    cache: "/shared/cache",
    deno: "/opt/deno/bin/deno",
    main: "/checkout/lib/cli/main.ts",
    execArgs: ["/shared/cache/slurm/jobfiles/k.json"],
    exitDir: "/shared/cache/slurm/exit",
    comment: "stage train",
  });
  for (
    const l of [
      "#SBATCH --job-name=ditflow:res:train",
      "#SBATCH --output=/c/slurm/logs/res/train.log",
      "#SBATCH --open-mode=append",
      "#SBATCH --no-requeue",
      "#SBATCH --gpus=1",
      "#SBATCH --exclusive",
      "cd '/checkout' || exit 1",
      "export DITFLOW_CACHE='/shared/cache'",
      "'/opt/deno/bin/deno' run -A '/checkout/lib/cli/main.ts' exec-stage --cache '/shared/cache' --outcome-dir '/shared/cache/slurm/exit' '/shared/cache/slurm/jobfiles/k.json'",
    ]
  ) assertStringIncludes(text, l);
  // The exit status is written with a rename, after exec-stage returns.
  assert(/> "\$exit_dir\/\$SLURM_JOB_ID.tmp" && mv -f/.test(text), text);
});

Deno.test("file names of stages: escaped, no slash", () => {
  assertEquals(safeName("train[model=DiT-S/2,lr=0.0001]"), "train[model=DiT-S%2F2,lr=0.0001]");
  assertEquals(safeName("a b"), "a%20b");
});

Deno.test("monitor: one squeue per interval for all jobs, backing off while nothing changes", async () => {
  const calls: string[][] = [];
  let done = false;
  const m = new JobMonitor({
    minMs: 10,
    maxMs: 80,
    exitCode: () => undefined,
    query: (ids) => {
      calls.push(ids);
      return Promise.resolve(
        new Map(ids.map((id) => [id, { id, state: done ? "COMPLETED" : "RUNNING" }])),
      );
    },
  });
  const a = m.wait("1");
  const b = m.wait("2");
  await new Promise((r) => setTimeout(r, 400));
  done = true;
  const [ea, eb] = await Promise.all([a, b]);
  assertEquals([ea.state, eb.state], ["COMPLETED", "COMPLETED"]);
  // Every call asks for both jobs at once; the intervals grew (10, 20, 40, 80, 80...): few calls in 400 ms.
  assert(calls.every((c) => c.length === 2), JSON.stringify(calls));
  assert(calls.length <= 9, `${calls.length} squeue calls in 400 ms`);
  m.close();
});
