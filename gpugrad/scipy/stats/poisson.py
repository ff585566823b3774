"""The Poisson distribution, as ``scipy.stats.poisson``: pmf logpmf cdf logcdf entropy, each
differentiable in mu (k and loc are discrete: differentiating in them raises ``gg.GraphError``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import gpugrad.ops as ops
from gpugrad.factories import arange, as_tensor
from gpugrad.ops import special as _sp
from gpugrad.scipy.stats._common import (
    both,
    broadcast_like,
    exp,
    exp_of,
    finish,
    gammaln,
    log_of,
    method,
    operands,
    sampler,
    where,
    xlogy,
)
from gpugrad.tensor import Tensor


def _discrete(fname: str, k: Any, loc: Any) -> None:
    _sp.require_constant(fname, "k", k, " (it is discrete)")
    _sp.require_constant(fname, "loc", loc, " (it is discrete)")


def _floor(v: Any) -> Any:
    return math.floor(v) if isinstance(v, (int, float)) else ops.floor(v)


def _logpmf(k: Any, mu: Any, loc: Any = 0) -> Any:
    """log P(K = k) (-inf off the non-negative integers)."""
    _discrete("poisson.logpmf", k, loc)
    k, mu, loc = operands(k, mu, loc)
    k = k - loc
    inside = both(k >= 0, _floor(k) == k)
    k = where(inside, k, 0.0)
    return finish(xlogy(k, mu) - gammaln(k + 1) - mu, mu >= 0, inside)



def _cdf(k: Any, mu: Any, loc: Any = 0) -> Any:
    """P(K <= k) = gammaincc(floor(k) + 1, mu)."""
    _discrete("poisson.cdf", k, loc)
    k, mu, loc = operands(k, mu, loc)
    k = _floor(k - loc)
    inside = k >= 0
    return finish(_sp.gammaincc(where(inside, k, 0.0) + 1, mu), mu >= 0, inside, 0.0)



def _entropy(mu: Any, loc: Any = 0) -> Any:
    """-sum_k p(k) log p(k), summed over k up to where the terms vanish in double precision."""
    _discrete("poisson.entropy", None, loc)
    (mu,) = operands(mu)
    if not isinstance(mu, Tensor):
        mu = as_tensor(np.asarray(mu, dtype=np.float64))
    # terms beyond 40 standard deviations from every mean are below double precision
    low = float(ops.min(mu).item()) if mu.size else 0.0
    high = float(ops.max(mu).item()) if mu.size else 0.0
    first = max(0, int(low - 40.0 * math.sqrt(max(low, 1.0)) - 60.0))
    last = int(high + 40.0 * math.sqrt(max(high, 1.0)) + 60.0)
    k = ops.reshape(arange(first, last, dtype=mu.dtype, device=mu.device), (last - first,) + (1,) * mu.ndim)
    logp = xlogy(k, mu) - gammaln(k + 1) - mu
    terms = where(ops.isfinite(logp), exp(logp) * logp, 0.0)
    return broadcast_like(finish(-ops.sum(terms, axis=0), mu >= 0), mu, loc)


pmf = method("poisson", exp_of(_logpmf, "P(K = k)"), "pmf")
logpmf = method("poisson", _logpmf)
cdf = method("poisson", _cdf)
logcdf = method("poisson", log_of(_cdf, "log P(X <= x)"), "logcdf")
entropy = method("poisson", _entropy)
rvs = sampler("poisson")
