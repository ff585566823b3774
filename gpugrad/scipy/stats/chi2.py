"""The chi-squared distribution, as ``scipy.stats.chi2``: pdf logpdf cdf logcdf entropy.
pdf/logpdf/entropy are differentiable in every argument; cdf/logcdf in x, loc and scale (the
derivative in df has no closed form, as in HIPS autograd: it raises ``gg.GraphError``)."""

from __future__ import annotations

import math
from typing import Any

from gpugrad.ops import special as _sp
from gpugrad.scipy.stats._common import (
    broadcast_like,
    digamma,
    exp_of,
    finish,
    gammaln,
    log,
    log_of,
    method,
    operands,
    positive,
    sampler,
    where,
    xlogy,
)

_LOG2 = math.log(2.0)


def _logpdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """log density at x (-inf for x < loc)."""
    x, df, loc, scale = operands(x, df, loc, scale)
    y = (x - loc) / scale
    inside = y >= 0
    y = where(inside, y, 1.0)
    half = df / 2
    value = xlogy(half - 1, y) - y / 2 - gammaln(half) - half * _LOG2 - log(scale)
    return finish(value, positive(df, scale), inside)



def _cdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """P(X <= x) = gammainc(df / 2, x / 2)."""
    _sp.require_constant("chi2.cdf", "df", df, " (no closed form)")
    x, df, loc, scale = operands(x, df, loc, scale)
    y = (x - loc) / scale
    inside = y > 0
    return finish(_sp.gammainc(df / 2, where(inside, y, 1.0) / 2), positive(df, scale), inside, 0.0)



def _entropy(df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """Differential entropy df/2 + log(2 Gamma(df/2)) + (1 - df/2) digamma(df/2) + log(scale)."""
    df, loc, scale = operands(df, loc, scale)
    half = df / 2
    h = half + _LOG2 + gammaln(half) + (1 - half) * digamma(half) + log(scale)
    return broadcast_like(finish(h, positive(df, scale)), df, loc, scale)


pdf = method("chi2", exp_of(_logpdf, "Density"), "pdf")
logpdf = method("chi2", _logpdf)
cdf = method("chi2", _cdf)
logcdf = method("chi2", log_of(_cdf, "log P(X <= x)"), "logcdf")
entropy = method("chi2", _entropy)
rvs = sampler("chi2")
