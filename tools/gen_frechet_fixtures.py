#!/usr/bin/python3
"""Generate the Fréchet-distance test fixtures in tests/fixtures/frechet/.

Run with Debian's system Python (numpy + scipy):

    /usr/bin/python3 tools/gen_frechet_fixtures.py

Writes
  cases.safetensors  inputs: for "stats" cases mu1/sigma1/mu2/sigma2 (F64); for "features" cases the raw
                     feature rows x1 (N1×D) and x2 (N2×D) as F32, like Inception pool3 activations.
                     Written with the safetensors writer port in tools/gen_safetensors_fixtures.py.
  expected.json      per case: the pytorch-fid reference value, whether its eps retry was taken, the trace
                     terms, and for feature cases numpy's statistics (mean in full; samples, trace, sum and
                     Frobenius norm of the covariance).

The reference value is computed exactly as pytorch-fid's `calculate_frechet_distance`
(src/pytorch_fid/fid_score.py): scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False); if the result is not
finite, add eps=1e-6 to both diagonals and call sqrtm again; if complex, raise when the diagonal's imaginary
part is not allclose to 0 with atol=1e-3, else keep the real part. Statistics as pytorch-fid's
`calculate_activation_statistics`: the activations are held in float64 (`pred_arr = np.empty((N, dims))`),
mu = np.mean(act, axis=0), sigma = np.cov(act, rowvar=False).
"""

import json
import os
import sys

import numpy as np
from scipy import linalg

sys.dont_write_bytecode = True  # no tools/__pycache__ from the import below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_fixtures import serialize  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "frechet")


def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's function, verbatim in logic; returns (value, eps_used, tr_covmean)."""
    mu1 = np.atleast_1d(mu1)
    mu2 = np.atleast_1d(mu2)
    sigma1 = np.atleast_2d(sigma1)
    sigma2 = np.atleast_2d(sigma2)
    assert mu1.shape == mu2.shape
    assert sigma1.shape == sigma2.shape
    diff = mu1 - mu2
    eps_used = False
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        eps_used = True
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError("Imaginary component {}".format(m))
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean
    return float(value), eps_used, float(tr_covmean)


def random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def spd_with_spectrum(rng, eig):
    q = random_orthogonal(rng, len(eig))
    s = (q * eig) @ q.T
    return (s + s.T) / 2  # exactly symmetric


def random_spd(rng, d, floor=0.1):
    a = rng.standard_normal((d, d)) / np.sqrt(d)
    s = a @ a.T + floor * np.eye(d)
    return (s + s.T) / 2


def features(rng, n, d, rank=None, shift=0.0):
    """Non-negative, correlated features in float32, like pooled ReLU activations."""
    k = rank or d
    z = rng.standard_normal((n, k))
    m = rng.standard_normal((k, d)) / np.sqrt(k)
    x = np.log1p(np.exp(z @ m + shift))  # softplus: positive, skewed
    return x.astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240612)
    stats_cases = {}
    feature_cases = {}

    def mu(d, scale=1.0):
        return rng.standard_normal(d) * scale

    stats_cases["d2_well"] = (mu(2), random_spd(rng, 2), mu(2), random_spd(rng, 2))
    stats_cases["d8_well"] = (mu(8), random_spd(rng, 8), mu(8), random_spd(rng, 8))
    stats_cases["d8_ill"] = (
        mu(8), spd_with_spectrum(rng, np.logspace(0, -12, 8)),
        mu(8), spd_with_spectrum(rng, np.logspace(1, -11, 8)),
    )
    m8, s8 = mu(8), random_spd(rng, 8)
    stats_cases["d8_identical"] = (m8, s8, m8.copy(), s8.copy())
    g = rng.standard_normal((8, 3))
    h = rng.standard_normal((8, 5))
    stats_cases["d8_rank_deficient"] = (mu(8), (g @ g.T + (g @ g.T).T) / 2, mu(8), (h @ h.T + (h @ h.T).T) / 2)
    stats_cases["d8_zero_sigma1"] = (mu(8), np.zeros((8, 8)), mu(8), random_spd(rng, 8))
    stats_cases["d64_ill"] = (
        mu(64), spd_with_spectrum(rng, np.logspace(2, -10, 64)),
        mu(64), spd_with_spectrum(rng, np.logspace(1, -11, 64)),
    )
    m64 = mu(64)
    stats_cases["d64_mean_shift"] = (m64, random_spd(rng, 64), m64 + 100.0, random_spd(rng, 64))

    feature_cases["d64_features"] = (features(rng, 500, 64), features(rng, 500, 64, shift=0.2))
    feature_cases["d64_features_singular"] = (features(rng, 40, 64), features(rng, 50, 64))
    feature_cases["d256_features"] = (features(rng, 320, 256), features(rng, 320, 256, shift=0.1))
    feature_cases["d256_features_singular"] = (features(rng, 100, 256), features(rng, 120, 256, rank=64))

    tensors = {}
    expected = {"tolerance": {"relative": 1e-6, "absolute": 1e-6}, "cases": {}}
    for name, (m1, s1, m2, s2) in stats_cases.items():
        d = len(m1)
        for key, arr in (("mu1", m1), ("sigma1", s1), ("mu2", m2), ("sigma2", s2)):
            a = np.ascontiguousarray(arr, dtype="<f8")
            tensors[f"{name}.{key}"] = ("F64", list(a.shape), a.tobytes())
        fid, eps_used, tr_covmean = calculate_frechet_distance(m1, s1, m2, s2)
        expected["cases"][name] = {
            "kind": "stats", "dim": d, "fid": fid, "eps_used": eps_used,
            "tr_covmean": tr_covmean, "trace1": float(np.trace(s1)), "trace2": float(np.trace(s2)),
            "mean_term": float((m1 - m2) @ (m1 - m2)),
        }
    for name, (x1, x2) in feature_cases.items():
        d = x1.shape[1]
        tensors[f"{name}.x1"] = ("F32", list(x1.shape), np.ascontiguousarray(x1, dtype="<f4").tobytes())
        tensors[f"{name}.x2"] = ("F32", list(x2.shape), np.ascontiguousarray(x2, dtype="<f4").tobytes())
        entry = {"kind": "features", "dim": d, "n1": x1.shape[0], "n2": x2.shape[0]}
        st = []
        for x in (x1, x2):
            act = np.empty((x.shape[0], d))  # float64, as pytorch-fid's pred_arr
            act[:] = x
            m = np.mean(act, axis=0)
            s = np.cov(act, rowvar=False)
            st.append((m, s))
            idx = [(0, 0), (0, d - 1), (d - 1, 0), (d - 1, d - 1), (1, 2), (d // 2, d // 3)]
            idx += [tuple(int(v) for v in rng.integers(0, d, 2)) for _ in range(10)]
            entry.setdefault("stats", []).append({
                "mu": m.tolist(),
                "sigma_samples": [[i, j, float(s[i, j])] for i, j in idx],
                "sigma_trace": float(np.trace(s)),
                "sigma_sum": float(np.sum(s)),
                "sigma_fro": float(np.linalg.norm(s)),
            })
        fid, eps_used, tr_covmean = calculate_frechet_distance(st[0][0], st[0][1], st[1][0], st[1][1])
        entry.update({
            "fid": fid, "eps_used": eps_used, "tr_covmean": tr_covmean,
            "trace1": float(np.trace(st[0][1])), "trace2": float(np.trace(st[1][1])),
            "mean_term": float((st[0][0] - st[1][0]) @ (st[0][0] - st[1][0])),
        })
        expected["cases"][name] = entry

    blob = serialize(tensors, {"generator": "tools/gen_frechet_fixtures.py", "seed": "20240612"})
    with open(os.path.join(OUT, "cases.safetensors"), "wb") as f:
        f.write(blob)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    for name, c in expected["cases"].items():
        print(f"{name:26s} D={c['dim']:4d} fid={c['fid']:.12g} eps_used={c['eps_used']}")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(expected['cases'])} cases to {os.path.normpath(OUT)} ({total} bytes)")


if __name__ == "__main__":
    main()
