"""The Dirichlet distribution, as ``scipy.stats.dirichlet``: pdf logpdf entropy, differentiable in
x and alpha. As in SciPy, x's first axis holds the K components (or K - 1, the last being 1 minus
their sum) and must lie on the simplex."""

from __future__ import annotations

from typing import Any

import numpy as np

import gpugrad.ops as ops
from gpugrad.errors import ArgumentError, ShapeError
from gpugrad.scipy.stats._common import (
    digamma,
    exp_of,
    gammaln,
    method,
    operands,
    sampler,
    xlogy,
)
from gpugrad.tensor import Tensor


def _alpha(alpha: Any, like: Any = None) -> Tensor:
    (alpha,) = operands(alpha) if like is None else operands(like, alpha)[1:]
    if not isinstance(alpha, Tensor) or alpha.ndim != 1:
        raise ShapeError(f"dirichlet: alpha must be a 1-D array of K > 0 parameters, got {alpha!r:.80}")
    if alpha.device == "cpu" and not np.all(alpha.data > 0):
        raise ArgumentError("dirichlet: all parameters alpha must be greater than 0")
    return alpha


def _log_beta(alpha: Tensor) -> Any:
    return ops.sum(gammaln(alpha)) - gammaln(ops.sum(alpha))


def _logpdf(x: Any, alpha: Any) -> Any:
    """log density at x (components along the first axis)."""
    x, alpha = operands(x, alpha)
    alpha = _alpha(alpha, x)
    k = alpha.shape[0]
    if not isinstance(x, Tensor) or x.ndim == 0 or x.shape[0] not in (k, k - 1):
        raise ShapeError(f"dirichlet: x must have {k} (or {k - 1}) components along its first axis, "
                         f"got shape {np.shape(x)}")
    if x.shape[0] == k - 1:
        x = ops.concatenate([x, 1 - ops.sum(x, axis=0, keepdims=True)], axis=0)
    if x.device == "cpu":
        _check_simplex(x.data, alpha.data)
    a = ops.reshape(alpha, (k,) + (1,) * (x.ndim - 1))
    return ops.sum(xlogy(a - 1, x), axis=0) - _log_beta(alpha)


def _check_simplex(x: np.ndarray, alpha: np.ndarray) -> None:
    if np.any(x < 0) or np.any(x > 1):
        raise ArgumentError("dirichlet: each entry of x must lie in [0, 1]")
    if np.any(np.abs(np.sum(x, 0) - 1.0) > 1e-9):
        raise ArgumentError(f"dirichlet: x must lie on the simplex (sum to 1 along axis 0), got sums {np.sum(x, 0)!r}")
    small = alpha.reshape((-1,) + (1,) * (x.ndim - 1)) < 1
    if np.any((x == 0) & small):
        raise ArgumentError("dirichlet: each entry of x must be greater than 0 where its alpha is less than 1")



def _entropy(alpha: Any) -> Any:
    """Differential entropy log B(alpha) + (a0 - K) digamma(a0) - sum_j (alpha_j - 1) digamma(alpha_j)."""
    alpha = _alpha(alpha)
    a0 = ops.sum(alpha)
    k = alpha.shape[0]
    return _log_beta(alpha) + (a0 - k) * digamma(a0) - ops.sum((alpha - 1) * digamma(alpha))


pdf = method("dirichlet", exp_of(_logpdf, "Density"), "pdf")
logpdf = method("dirichlet", _logpdf)
entropy = method("dirichlet", _entropy)
rvs = sampler("dirichlet")
