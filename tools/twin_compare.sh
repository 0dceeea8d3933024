#!/usr/bin/env bash
# The PyTorch twin of the main job (issue 12, item 2): trains tools/twin_mnist.py on the latents of
# pipelines/mnist.yaml for each run below, one at a time, scores each run's samples with
# tools/twin_eval.ts (the pipeline's VAE, LeNet and reference), and collects everything into
# experiments/objective/twin_results.json.
#
#   bash tools/twin_compare.sh                      # the default runs (about 8 min each on 2 busy cores)
#   RUNS="ddpm:2e-3:0 sit:2e-3:0" bash tools/twin_compare.sh
#   CACHE=/path/to/.ditflow LATENTS=/path/to/out/latents OUT=/tmp/twin bash tools/twin_compare.sh
#
# A run is objective:lr:seed[:t-sampling]. CROSSCHECK="ddpm_lr2e-3_s0 sit_lr2e-3_s0" (the default; empty
# for none) also samples those runs' EMA weights with ditflow's sampler from the same x_T as PyTorch
# (tools/twin_crosscheck.ts) and runs one training step of each side on the same batch
# (tools/twin_step_check.py, ddpm runs); the results go under "crosscheck" in the JSON.
# The main job must have run once with this cache (the
# `latents`, `vae`, `classifier` and `ref` stages): `deno task run pipelines/mnist.yaml`.
# Torch comes from Debian's python3-torch, so the python is /usr/bin/python3, not the first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
CACHE=${CACHE:-$PWD/.ditflow}
OUT=${OUT:-/tmp/twin}
STEPS=${STEPS:-3000}
RUNS=${RUNS:-"ddpm:2e-3:0 sit:2e-3:0 ddpm:1e-4:0 ddpm:2e-3:1 sit:2e-3:1"}
RESULTS=${RESULTS:-experiments/objective/twin_results.json}
if [ -z "${LATENTS:-}" ]; then
  # The latents of the VAE that twin_eval.ts decodes with (the current code's cache keys).
  LATENTS=$(deno run -A tools/twin_eval.ts --pipeline pipelines/mnist.yaml --cache "$CACHE" --locate latents.latents)
fi
echo "latents: $LATENTS" >&2
mkdir -p "$OUT"
for run in $RUNS; do
  IFS=: read -r objective lr seed tsamp <<<"$run"
  tsamp=${tsamp:-uniform}
  name="${objective}_lr${lr}_s${seed}$([ "$tsamp" = uniform ] || echo "_$tsamp")"
  if [ ! -f "$OUT/$name/train.json" ] || [ "$(
    $PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["steps"])' "$OUT/$name/train.json"
  )" != "$STEPS" ]; then
    $PY tools/twin_mnist.py --latents "$LATENTS" --objective "$objective" --lr "$lr" --seed "$seed" \
      --t-sampling "$tsamp" --steps "$STEPS" --out "$OUT/$name" 2>&1 | tee "$OUT/$name.log" >&2
  fi
  deno run -A tools/twin_eval.ts --pipeline pipelines/mnist.yaml --cache "$CACHE" --samples "$OUT/$name" \
    --grid "$OUT/$name/grid.png" >"$OUT/$name/eval.json"
done
CROSSCHECK=${CROSSCHECK-"ddpm_lr2e-3_s0 sit_lr2e-3_s0"}
for name in $CROSSCHECK; do
  objective=${name%%_*}
  [ -f "$OUT/$name/ema.safetensors" ] || $PY tools/convert_dit_checkpoint.py "$OUT/$name/ema.pt" "$OUT/$name/ema.safetensors" --heads 4 >&2
  for side in ditflow torch; do
    x="$OUT/x_${name}_${side}sampler"
    [ -f "$x/eval.json" ] && continue # done before
    if [ "$side" = ditflow ]; then
      deno run -A tools/twin_crosscheck.ts --weights "$OUT/$name/ema.safetensors" --objective "$objective" \
        --out "$x" >&2
    else
      $PY tools/twin_mnist.py --latents "$LATENTS" --objective "$objective" --out "$x" \
        --sample-from "$OUT/$name/ema.safetensors" --noise-from "$OUT/x_${name}_ditflowsampler/noise.safetensors" >&2
    fi
    deno run -A tools/twin_eval.ts --pipeline pipelines/mnist.yaml --cache "$CACHE" --samples "$x" >"$x/eval.json"
  done
  if [ "$objective" = ddpm ]; then
    $PY tools/twin_step_check.py --weights "$OUT/$name/ema.safetensors" --latents "$LATENTS" >"$OUT/x_${name}_step.json"
  fi
done
# Collect: one row per run (train.json without the loss log, eval.json), keyed by run name.
CROSSCHECK="$CROSSCHECK" $PY - "$OUT" "$RESULTS" $RUNS <<'EOF'
import json, os, sys
import numpy as np
sys.path.insert(0, "tools")
from twin_mnist import read_dataset
out, results, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for run in runs:
    objective, lr, seed, *rest = run.split(":")
    tsamp = rest[0] if rest else "uniform"
    name = f"{objective}_lr{lr}_s{seed}" + ("" if tsamp == "uniform" else f"_{tsamp}")
    train = json.load(open(os.path.join(out, name, "train.json")))
    losses = train.pop("losses")
    ev = json.load(open(os.path.join(out, name, "eval.json")))
    ev.pop("samples", None)
    ev.pop("info", None)
    rows.append({"run": name, **train, "loss_at": {str(r["step"]): r["loss"] for r in losses
                                                   if r["step"] % 500 == 0}, **ev})
crosscheck = {}
for name in os.environ.get("CROSSCHECK", "").split():
    x = {s: os.path.join(out, f"x_{name}_{s}sampler") for s in ("ditflow", "torch")}
    a, b = read_dataset(x["torch"])[0], read_dataset(x["ditflow"])[0]
    keys = ("fid", "fid_low", "fid_high", "class_accuracy", "precision", "recall", "kid")
    ev = {s: json.load(open(os.path.join(x[s], "eval.json"))) for s in x}
    c = {"samples_max_abs_diff": float(np.abs(a - b).max()),
         "samples_rel_l2_diff": float(np.linalg.norm(a - b) / np.linalg.norm(a)),
         **{f"{s}_sampler": {k: ev[s][k] for k in keys} for s in x}}
    step = os.path.join(out, f"x_{name}_step.json")
    if os.path.exists(step):
        c["training_step"] = json.load(open(step))
    crosscheck[name] = c
prev = json.load(open(results)) if os.path.exists(results) else {"rows": []}
keep = [r for r in prev.get("rows", []) if r["run"] not in {x["run"] for x in rows}]
os.makedirs(os.path.dirname(results), exist_ok=True)
with open(results, "w") as f:
    json.dump({**prev, "about": "PyTorch twin of pipelines/mnist.yaml (tools/twin_compare.sh); N = 300 samples, "
                        "extractor lenet-mnist, reference = 1,000 held-out digits",
               "rows": keep + rows, "crosscheck": {**prev.get("crosscheck", {}), **crosscheck}}, f, indent=1)
print(f"wrote {results}: {len(keep) + len(rows)} rows", file=sys.stderr)
EOF
