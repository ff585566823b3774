"""The normal distribution, as ``scipy.stats.norm``: pdf logpdf cdf logcdf sf logsf entropy, each
differentiable in x, loc and scale (``scale <= 0`` gives NaN, as SciPy)."""

from __future__ import annotations

import math
from typing import Any

from gpugrad.ops import elementwise as _ew
from gpugrad.ops import special as _sp
from gpugrad.scipy.stats._common import (
    LOG_SQRT_2PI,
    broadcast_like,
    exp_of,
    finish,
    log,
    method,
    operands,
    positive,
    sampler,
)

_SQRT1_2 = 0.7071067811865476


def _z(x: Any, loc: Any, scale: Any) -> tuple[Any, Any]:
    x, loc, scale = operands(x, loc, scale)
    return (x - loc) / scale, scale


def _logpdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """log density at x."""
    z, scale = _z(x, loc, scale)
    return finish(-0.5 * z * z - LOG_SQRT_2PI - log(scale), positive(scale))



def _cdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """P(X <= x), as 0.5 erfc(-z / sqrt(2)) (accurate in the lower tail)."""
    z, scale = _z(x, loc, scale)
    return finish(0.5 * _ew.erfc(-_SQRT1_2 * z), positive(scale))


def _logcdf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """log P(X <= x) (SciPy's log_ndtr: accurate far into the lower tail)."""
    z, scale = _z(x, loc, scale)
    return finish(_sp.log_ndtr(z), positive(scale))


def _sf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """P(X > x)."""
    z, scale = _z(x, loc, scale)
    return finish(0.5 * _ew.erfc(_SQRT1_2 * z), positive(scale))


def _logsf(x: Any, loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """log P(X > x)."""
    z, scale = _z(x, loc, scale)
    return finish(_sp.log_ndtr(-z), positive(scale))


def _entropy(loc: Any = 0.0, scale: Any = 1.0) -> Any:
    """Differential entropy, 0.5 log(2 pi e) + log(scale) (broadcast with loc)."""
    loc, scale = operands(loc, scale)
    h = finish(0.5 * (math.log(2 * math.pi) + 1.0) + log(scale), positive(scale))
    return broadcast_like(h, loc, scale)


pdf = method("norm", exp_of(_logpdf, "Density"), "pdf")
logpdf = method("norm", _logpdf)
cdf = method("norm", _cdf)
logcdf = method("norm", _logcdf)
sf = method("norm", _sf)
logsf = method("norm", _logsf)
entropy = method("norm", _entropy)
rvs = sampler("norm")
