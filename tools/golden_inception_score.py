#!/usr/bin/python3
"""Reference Inception Scores for lib/metrics/inception_score.ts, computed with numpy/scipy.

Run with Debian's system Python (numpy, scipy):

    /usr/bin/python3 tools/golden_inception_score.py

`inception_score` below is the original TF code's computation (improved-gan `inception_score.py`,
`get_inception_score` after the network: preds = softmax(logits); for each of `splits` parts
preds[i*N//splits : (i+1)*N//splits]: kl = part * (log(part) - log(mean(part, 0))), score = exp(mean(sum(kl, 1)));
return mean(scores), std(scores)), in float64 with scipy.special.softmax; it is cross-checked against
scipy.stats.entropy(p(y|x), p(y)) (the KL divergence), torch-fidelity's formulation.

Writes tests/fixtures/inception/inception_score.safetensors (the logits of each case, F32, as the network would
produce them) and tests/fixtures/inception/inception_score.json (per case: n, k, splits, mean, std, scores).
"""

import json
import os
import sys

import numpy as np
from scipy.special import softmax
from scipy.stats import entropy

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import serialize  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "inception")


def inception_score(logits, splits):
    preds = softmax(logits.astype(np.float64), axis=1)
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits):((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores)), [float(s) for s in scores]


def inception_score_scipy(logits, splits):
    preds = softmax(logits.astype(np.float64), axis=1)
    n = preds.shape[0]
    scores = []
    for i in range(splits):
        part = preds[i * n // splits:(i + 1) * n // splits]
        py = part.mean(0)
        scores.append(np.exp(np.mean([entropy(p, py) for p in part])))
    return float(np.mean(scores)), float(np.std(scores))


def main():
    rng = np.random.default_rng(20261128)
    k = 1008
    peaked = rng.standard_normal((30, k))
    peaked[np.arange(30), rng.integers(0, 1000, 30)] += 12  # confident, diverse predictions: a high IS
    one_class = rng.standard_normal((20, k)) * 0.5
    one_class[:, 7] += 10  # confident but all the same class: IS near 1
    same = np.tile(rng.standard_normal((1, 12)), (20, 1))  # identical rows: IS exactly 1
    cases = {
        "random_1008": (rng.standard_normal((40, k)) * 3, 10),
        "peaked_1008": (peaked, 10),
        "one_class_1008": (one_class, 10),
        "uneven_splits_k10": (rng.standard_normal((23, 10)) * 2, 4),
        "identical_rows": (same, 5),
        "single_split": (rng.standard_normal((17, 33)), 1),
    }
    tensors = {}
    info = []
    for name, (logits, splits) in cases.items():
        logits = logits.astype(np.float32)
        mean, std, scores = inception_score(logits, splits)
        m2, s2 = inception_score_scipy(logits, splits)
        assert abs(mean - m2) <= 1e-9 * mean and abs(std - s2) <= 1e-9 * max(1.0, mean), (name, mean, m2)
        tensors[name] = ("F32", list(logits.shape), logits.astype("<f4").tobytes())
        info.append(dict(name=name, n=logits.shape[0], k=logits.shape[1], splits=splits, mean=mean, std=std,
                         scores=scores))
        print(f"{name}: IS {mean:.6f} ± {std:.6f} ({logits.shape[0]} x {logits.shape[1]}, {splits} splits)")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "inception_score.safetensors"), "wb") as f:
        f.write(serialize(tensors, {"generator": "tools/golden_inception_score.py"}))
    with open(os.path.join(OUT, "inception_score.json"), "w") as f:
        json.dump({"generator": "tools/golden_inception_score.py", "numpy": np.__version__, "cases": info}, f,
                  indent=1)
    print(f"wrote {OUT}/inception_score.safetensors and inception_score.json")


if __name__ == "__main__":
    main()
