#!/usr/bin/env python3
"""Golden values for lib/metrics/kid.ts and lib/metrics/intervals.ts (numpy/scipy, float64).

Run with Debian's python: /usr/bin/python3 tools/golden_metrics.py > tests/fixtures/golden/metrics.json

- KID: torch-fidelity's/GAN-metrics' `polynomial_mmd` (unbiased MMD² with k(x, y) = (x·y/d + 1)³) on the whole
  sets (no subsets), for deterministic pseudo-random features (the formula below, reproduced in the test).
- Wilson interval: the closed form with z = scipy.stats.norm.ppf(0.975).
- Quantiles: numpy.quantile with the default linear interpolation.
"""
import json
import math

import numpy as np
from scipy import stats


def feats(n, d, seed):
    # Deterministic features both sides can compute: sin of an integer formula.
    i = np.arange(n * d, dtype=np.float64)
    return (np.sin(i * 0.7311 + seed * 1.37) * 2.0 + np.cos(i * 0.131 + seed)).reshape(n, d)


def polynomial_mmd(x, y):
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = x.shape[0]
    n = y.shape[0]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.sum() / (m * n))


def wilson(k, n):
    z = stats.norm.ppf(0.975)
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [p, max(0.0, c - h), min(1.0, c + h)]


out = {"kid": [], "wilson": [], "quantile": []}
for (n, d, s1, s2) in [(20, 5, 1, 2), (50, 12, 3, 3.5), (64, 84, 0.25, 0.5)]:
    x = feats(n, d, s1)
    y = feats(n, d, s2) * 1.1 + 0.05
    out["kid"].append({"n": n, "d": d, "s1": s1, "s2": s2, "mmd2": polynomial_mmd(x, y)})
for (k, n) in [(0, 10), (3, 10), (290, 300), (300, 300), (487, 1000)]:
    out["wilson"].append({"k": k, "n": n, "expected": wilson(k, n)})
vals = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
for q in [0.0, 0.025, 0.5, 0.975, 1.0]:
    out["quantile"].append({"values": vals, "q": q, "expected": float(np.quantile(vals, q))})
print(json.dumps(out, indent=1))
