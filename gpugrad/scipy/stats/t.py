"""Student's t distribution, as ``scipy.stats.t``: pdf logpdf cdf logcdf entropy. pdf/logpdf are
differentiable in x, df, loc and scale; cdf/logcdf in x, loc and scale (no closed-form derivative
in df, as in HIPS autograd: differentiating in df raises ``gg.GraphError``)."""

from __future__ import annotations

import math
from typing import Any

from gpugrad.ops import special as _sp
from gpugrad.scipy.stats._common import (
    betaln,
    broadcast_like,
    digamma,
    exp_of,
    finish,
    gammaln,
    log,
    log1p,
    log_of,
    method,
    operands,
    positive,
    sampler,
)


def _logpdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """log density at x."""
    x, df, loc, scale = operands(x, df, loc, scale)
    y = (x - loc) / scale
    value = (gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * log(df * math.pi)
             - (df + 1) / 2 * log1p(y * y / df) - log(scale))
    return finish(value, positive(df, scale))



def _cdf(x: Any, df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """P(X <= x) (SciPy's stdtr; its derivative in x is the density)."""
    _sp.require_constant("t.cdf", "df", df, " (no closed form)")
    x, df, loc, scale = operands(x, df, loc, scale)
    return finish(_sp.stdtr(df, (x - loc) / scale), positive(df, scale))



def _entropy(df: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """Differential entropy (differentiable in df and scale)."""
    df, loc, scale = operands(df, loc, scale)
    half = df / 2
    h = ((df + 1) / 2 * (digamma((df + 1) / 2) - digamma(half))
         + 0.5 * log(df) + betaln(half, 0.5) + log(scale))
    return broadcast_like(finish(h, positive(df, scale)), df, loc, scale)


pdf = method("t", exp_of(_logpdf, "Density"), "pdf")
logpdf = method("t", _logpdf)
cdf = method("t", _cdf)
logcdf = method("t", log_of(_cdf, "log P(X <= x)"), "logcdf")
entropy = method("t", _entropy)
rvs = sampler("t")
