"""The gamma distribution, as ``scipy.stats.gamma`` (shape a): pdf logpdf cdf logcdf entropy.
pdf/logpdf/entropy are differentiable in every argument; cdf/logcdf in x, loc and scale (the
derivative in a has no closed form, as in HIPS autograd: it raises ``gg.GraphError``)."""

from __future__ import annotations

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


def _logpdf(x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """log density at x (-inf for x < loc)."""
    x, a, loc, scale = operands(x, a, loc, scale)
    y = (x - loc) / scale
    inside = y >= 0
    y = where(inside, y, 1.0)  # keeps the unused branch finite, so its gradient is 0, not NaN
    return finish(xlogy(a - 1, y) - y - gammaln(a) - log(scale), positive(a, scale), inside)



def _cdf(x: Any, a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """P(X <= x), the regularized lower incomplete gamma function."""
    _sp.require_constant("gamma.cdf", "a", a, " (no closed form)")
    x, a, loc, scale = operands(x, a, loc, scale)
    y = (x - loc) / scale
    inside = y > 0
    return finish(_sp.gammainc(a, where(inside, y, 1.0)), positive(a, scale), inside, 0.0)



def _entropy(a: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """Differential entropy a + gammaln(a) + (1 - a) digamma(a) + log(scale)."""
    a, loc, scale = operands(a, loc, scale)
    h = a + gammaln(a) + (1 - a) * digamma(a) + log(scale)
    return broadcast_like(finish(h, positive(a, scale)), a, loc, scale)


pdf = method("gamma", exp_of(_logpdf, "Density"), "pdf")
logpdf = method("gamma", _logpdf)
cdf = method("gamma", _cdf)
logcdf = method("gamma", log_of(_cdf, "log P(X <= x)"), "logcdf")
entropy = method("gamma", _entropy)
rvs = sampler("gamma")
