"""The beta distribution, as ``scipy.stats.beta``: pdf logpdf cdf logcdf entropy. pdf/logpdf/
entropy are differentiable in every argument; cdf/logcdf in x, loc and scale (the derivatives in
a and b have no closed form, as in HIPS autograd: they raise ``gg.GraphError``)."""

from __future__ import annotations

from typing import Any

from gpugrad.ops import special as _sp
from gpugrad.scipy.stats._common import (
    betaln,
    both,
    broadcast_like,
    digamma,
    exp_of,
    finish,
    log,
    log_of,
    method,
    operands,
    positive,
    sampler,
    where,
    xlog1py,
    xlogy,
)


def _logpdf(x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """log density at x (-inf outside [loc, loc + scale])."""
    x, a, b, loc, scale = operands(x, a, b, loc, scale)
    y = (x - loc) / scale
    inside = both(y >= 0, y <= 1)
    y = where(inside, y, 0.5)
    value = xlogy(a - 1, y) + xlog1py(b - 1, -y) - betaln(a, b) - log(scale)
    return finish(value, positive(a, b, scale), inside)



def _cdf(x: Any, a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """P(X <= x), the regularized incomplete beta function."""
    _sp.require_constant("beta.cdf", "a", a, " (no closed form)")
    _sp.require_constant("beta.cdf", "b", b, " (no closed form)")
    x, a, b, loc, scale = operands(x, a, b, loc, scale)
    y = (x - loc) / scale
    inside = both(y > 0, y < 1)
    value = _sp.betainc(a, b, where(inside, y, 0.5))
    return finish(where(y >= 1, 1.0, value), positive(a, b, scale), y > 0, 0.0)



def _entropy(a: Any, b: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """Differential entropy."""
    a, b, loc, scale = operands(a, b, loc, scale)
    h = (betaln(a, b) - (a - 1) * digamma(a) - (b - 1) * digamma(b) + (a + b - 2) * digamma(a + b)
         + log(scale))
    return broadcast_like(finish(h, positive(a, b, scale)), a, b, loc, scale)


pdf = method("beta", exp_of(_logpdf, "Density"), "pdf")
logpdf = method("beta", _logpdf)
cdf = method("beta", _cdf)
logcdf = method("beta", log_of(_cdf, "log P(X <= x)"), "logcdf")
entropy = method("beta", _entropy)
rvs = sampler("beta")
