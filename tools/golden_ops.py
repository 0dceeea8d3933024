#!/usr/bin/python3
"""Generate tests/fixtures/golden/ops.json: PyTorch golden values for the layernorm, softmax, embedding,
reduce and loss op families.

Run with Debian's system Python (it has torch 1.13, CPU):

    /usr/bin/python3 tools/golden_ops.py

Every case holds its inputs (float32-representable values, so the GPU sees exactly the same numbers), the
output computed by torch in float64, a fixed random cotangent of the output's shape, and the gradient of
<output, cotangent> with respect to every float input (torch autograd, float64). The diffusion losses are
guided-diffusion's `guided_diffusion/losses.py` (openai/guided-diffusion), transcribed verbatim below, and
`mean_flat` from its `gaussian_diffusion.py`.
"""

import json
import os

import numpy as np
import torch as th
import torch.nn.functional as F

th.set_default_dtype(th.float64)
GEN = th.Generator().manual_seed(20240607)


def randn(*shape, scale=1.0, shift=0.0):
    """Float32-representable normal values as a float64 tensor."""
    x = th.randn(tuple(shape), generator=GEN) * scale + shift
    return x.float().double()


def uniform(*shape, lo=-1.0, hi=1.0):
    x = th.rand(tuple(shape), generator=GEN) * (hi - lo) + lo
    return x.float().double()


# --- guided-diffusion losses.py (verbatim) ------------------------------------------------------------------


def normal_kl(mean1, logvar1, mean2, logvar2):
    """
    Compute the KL divergence between two gaussians.

    Shapes are automatically broadcasted, so batches can be compared to
    scalars, among other use cases.
    """
    tensor = None
    for obj in (mean1, logvar1, mean2, logvar2):
        if isinstance(obj, th.Tensor):
            tensor = obj
            break
    assert tensor is not None, "at least one argument must be a Tensor"

    # Force variances to be Tensors. Broadcasting helps convert scalars to
    # Tensors, but it does not work for th.exp().
    logvar1, logvar2 = [
        x if isinstance(x, th.Tensor) else th.tensor(x).to(tensor)
        for x in (logvar1, logvar2)
    ]

    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + th.exp(logvar1 - logvar2)
        + ((mean1 - mean2) ** 2) * th.exp(-logvar2)
    )


def approx_standard_normal_cdf(x):
    """
    A fast approximation of the cumulative distribution function of the
    standard normal.
    """
    return 0.5 * (1.0 + th.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * th.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, *, means, log_scales):
    """
    Compute the log-likelihood of a Gaussian distribution discretizing to a
    given image.

    :param x: the target images. It is assumed that this was uint8 values,
              rescaled to the range [-1, 1].
    :param means: the Gaussian mean Tensor.
    :param log_scales: the Gaussian log stddev Tensor.
    :return: a tensor like x of log probabilities (in nats).
    """
    assert x.shape == means.shape == log_scales.shape
    centered_x = x - means
    inv_stdv = th.exp(-log_scales)
    plus_in = inv_stdv * (centered_x + 1.0 / 255.0)
    cdf_plus = approx_standard_normal_cdf(plus_in)
    min_in = inv_stdv * (centered_x - 1.0 / 255.0)
    cdf_min = approx_standard_normal_cdf(min_in)
    log_cdf_plus = th.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = th.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    log_probs = th.where(
        x < -0.999,
        log_cdf_plus,
        th.where(x > 0.999, log_one_minus_cdf_min, th.log(cdf_delta.clamp(min=1e-12))),
    )
    assert log_probs.shape == x.shape
    return log_probs


def mean_flat(tensor):
    """
    Take the mean over all non-batch dimensions.
    """
    return tensor.mean(dim=list(range(1, len(tensor.shape))))


# --- DiT's modulate ----------------------------------------------------------------------------------------


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


# -----------------------------------------------------------------------------------------------------------


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def case(fn, inputs, no_grad=(), **extra):
    """Runs fn on the inputs, backpropagates a random cotangent, and returns the JSON case."""
    ins = [t.clone().requires_grad_(i not in no_grad) for i, t in enumerate(inputs)]
    out = fn(*ins)
    cot = randn(*out.shape)
    (out * cot).sum().backward()
    return {
        "inputs": [{"shape": list(t.shape), "data": flat(t)} for t in inputs],
        "output": flat(out),
        "out_shape": list(out.shape),
        "cotangent": flat(cot),
        "grads": [None if t.grad is None else flat(t.grad) for t in ins],
        **extra,
    }


def main():
    g = {}
    eps = 1e-6
    g["layer_norm"] = case(
        lambda x: F.layer_norm(x, (33,), eps=eps), [randn(2, 3, 33, scale=2.0, shift=0.5)], eps=eps
    )
    g["layer_norm_modulate"] = case(
        lambda x, sh, sc: modulate(F.layer_norm(x, (40,), eps=eps), sh, sc),
        [randn(2, 3, 40, scale=1.5), randn(2, 40), randn(2, 40, scale=0.5)],
        eps=eps,
    )
    g["modulate"] = case(modulate, [randn(2, 3, 40), randn(2, 40), randn(2, 40, scale=0.5)])
    g["add_gated"] = case(
        lambda res, x, gate: res + gate.unsqueeze(1) * x, [randn(2, 3, 40), randn(2, 3, 40), randn(2, 40)]
    )
    g["softmax"] = case(lambda x: F.softmax(x, dim=-1), [randn(3, 37, scale=3.0)])
    g["log_softmax"] = case(lambda x: F.log_softmax(x, dim=-1), [randn(3, 37, scale=3.0)])
    labels = th.randint(0, 11, (5,), generator=GEN)
    g["cross_entropy"] = case(
        lambda x: F.cross_entropy(x, labels), [randn(5, 11, scale=2.0)], labels=labels.tolist()
    )
    idx = th.tensor([3, 0, 7, 3, 9, 3, 1, 0, 5, 9, 3, 2])
    g["embedding"] = case(lambda t: F.embedding(idx, t), [randn(10, 6)], indices=idx.tolist())
    g["sum_all"] = case(lambda x: x.sum(), [randn(3, 4, 5)], axes=None, keepdim=False)
    g["mean_axes"] = case(lambda x: x.mean(dim=(0, 2)), [randn(3, 4, 5)], axes=[0, 2], keepdim=False)
    g["sum_keepdim"] = case(lambda x: x.sum(dim=1, keepdim=True), [randn(3, 4, 5)], axes=[1], keepdim=True)
    g["mse"] = case(lambda a, b: F.mse_loss(a, b), [randn(3, 2, 4, 4), randn(3, 2, 4, 4)])
    g["mse_per_sample"] = case(lambda a, b: mean_flat((a - b) ** 2), [randn(3, 2, 4, 4), randn(3, 2, 4, 4)])
    g["normal_kl"] = case(
        normal_kl,
        [randn(2, 3, 8), uniform(2, 3, 8, lo=-3, hi=1), randn(2, 3, 8), uniform(2, 3, 8, lo=-3, hi=1)],
    )
    # x on the 256-level grid including both edge bins; means within ~1.5 scales of x (see loss_test.ts).
    n = 64
    x = (th.randint(0, 256, (n,), generator=GEN).double() / 127.5 - 1.0)
    x[0], x[1], x[2], x[3] = -1.0, 1.0, -1.0, 1.0
    x = x.float().double()
    ls = uniform(n, lo=float(np.log(0.03)), hi=float(np.log(0.5)))
    means = (x + 0.5 * th.randn(n, generator=GEN) * th.exp(ls)).float().double()
    g["discretized_gaussian_log_likelihood"] = case(
        lambda a, m, s: discretized_gaussian_log_likelihood(a, means=m, log_scales=s),
        [x.reshape(2, 32), means.reshape(2, 32), ls.reshape(2, 32)],
    )
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden", "ops.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(g, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(out)} ({os.path.getsize(out)} bytes, torch {th.__version__})")


if __name__ == "__main__":
    main()
