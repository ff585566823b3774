"""Differentiable ``scipy.special``, as HIPS autograd's ``autograd.scipy.special``.

erf erfc erfinv erfcinv, gamma gammaln gammasgn rgamma digamma psi polygamma multigammaln,
gammainc gammaincc, beta betaln betainc, logsumexp expit logit, ndtr log_ndtr, and the Bessel
functions i0 i1 iv ive j0 j1 jn y0 y1 yn. Orders (n, v) and the parameters of the incomplete
gamma and beta functions have no derivative (as in HIPS autograd): differentiating with respect to
them raises ``gg.GraphError`` instead of giving zero.

Example::

    import gpugrad as gg
    from gpugrad.scipy.special import gammaln
    gg.grad(lambda x: gammaln(x).sum())(np.array([0.5, 2.0]))   # digamma: [-1.9635, 0.4228]
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

import gpugrad.ops as _ops
from gpugrad.errors import ArgumentError
from gpugrad.ops import elementwise as _ew
from gpugrad.ops import special as _sp
from gpugrad.scipy._dispatch import dual
from gpugrad.tensor import Tensor

__all__ = [
    "erf", "erfc", "erfinv", "erfcinv", "gamma", "gammaln", "gammasgn", "rgamma", "digamma", "psi",
    "polygamma", "multigammaln", "gammainc", "gammaincc", "beta", "betaln", "betainc", "logsumexp",
    "expit", "logit", "ndtr", "log_ndtr", "i0", "i1", "iv", "ive", "j0", "j1", "jn", "y0", "y1", "yn",
]

_SQRT1_2 = 0.7071067811865476

# ---- elementwise functions of the op table (CUDA kernels on the GPU) ------------------------

erf = dual("special.erf", _ew.erf)
erfc = dual("special.erfc", _ew.erfc)
erfinv = dual("special.erfinv", _ew.erfinv)
erfcinv = dual("special.erfcinv", _ew.erfcinv)
expit = dual("special.expit", _ew.sigmoid)
logit = dual("special.logit", _ew.logit)
i0 = dual("special.i0", _ew.i0)
i1 = dual("special.i1", _ew.i1)
j0 = dual("special.j0", _ew.j0)
j1 = dual("special.j1", _ew.j1)
y0 = dual("special.y0", _ew.y0)
y1 = dual("special.y1", _ew.y1)


def _integer_order(fname: str, n: Any, x: Any) -> Any:
    """The order n of jn/yn as an operand of x's dtype, checked to be an integer (SciPy's jn is jv,
    of real order, and its yn truncates; gpugrad's take integer orders only)."""
    _sp.require_constant(fname, "the order n", n, " (an integer)")
    if isinstance(n, numbers.Number):
        if float(n) != int(n):
            raise ArgumentError(f"{fname}: the order n must be an integer, got {n!r}")
        return int(n)
    like = x if isinstance(x, Tensor) else None
    n = _sp.operand(n, like)
    if n.device == "cpu" and not np.all(np.equal(np.mod(n.data, 1), 0)):
        raise ArgumentError(f"{fname}: the order n must hold integers, got {n.data!r}")
    return n.astype(x.dtype if isinstance(x, Tensor) and x.dtype.kind == "f" else np.float64)


def _jn(n: Any, x: Any) -> Tensor:
    """Bessel function of the first kind of integer order n (differentiable in x)."""
    return _ew.jn(_integer_order("jn", n, x), x)


def _yn(n: Any, x: Any) -> Tensor:
    """Bessel function of the second kind of integer order n (differentiable in x)."""
    return _ew.yn(_integer_order("yn", n, x), x)


jn = dual("special.jn", _jn)
yn = dual("special.yn", _yn)


def _ndtr(x: Any) -> Tensor:
    """The standard normal CDF, 0.5 erfc(-x / sqrt(2)) (accurate in the lower tail)."""
    return 0.5 * _ew.erfc(-_SQRT1_2 * x)


ndtr = dual("special.ndtr", _ndtr)

# ---- ops computed by SciPy / cupyx.scipy -------------------------------------------------------

digamma = dual("special.digamma", _sp.digamma)
psi = dual("special.psi", _sp.digamma)
polygamma = dual("special.polygamma", _sp.polygamma)
gamma = dual("special.gamma", _sp.gamma)
gammaln = dual("special.gammaln", _sp.gammaln)
gammasgn = dual("special.gammasgn", _sp.gammasgn)
rgamma = dual("special.rgamma", _sp.rgamma)
gammainc = dual("special.gammainc", _sp.gammainc)
gammaincc = dual("special.gammaincc", _sp.gammaincc)
beta = dual("special.beta", _sp.beta)
betaln = dual("special.betaln", _sp.betaln)
betainc = dual("special.betainc", _sp.betainc)
iv = dual("special.iv", _sp.iv)
ive = dual("special.ive", _sp.ive)
log_ndtr = dual("special.log_ndtr", _sp.log_ndtr)


# ---- compositions -----------------------------------------------------------------------------


def _multigammaln(a: Any, d: int) -> Tensor:
    """log of the multivariate gamma function of dimension d: d(d-1)/4 log(pi) + sum_j gammaln(a - j/2)."""
    if not isinstance(d, numbers.Integral) or d < 1:
        raise ArgumentError(f"multigammaln: d must be a positive integer, got {d!r}")
    a = _sp.operand(a)
    if a.device == "cpu" and np.any(a.data <= 0.5 * (d - 1)):
        raise ArgumentError(f"multigammaln: condition a > (d - 1) / 2 = {0.5 * (d - 1)} not met, got a = {a.data!r}")
    shifted = _ops.expand_dims(a, -1) - np.arange(d, dtype=a.dtype if a.dtype.kind == "f" else np.float64) / 2
    return _ops.sum(_sp.gammaln(shifted), axis=-1) + d * (d - 1) / 4 * np.log(np.pi)


multigammaln = dual("special.multigammaln", _multigammaln)


def _logsumexp(a: Any, axis: Any = None, b: Any = None, keepdims: bool = False,
               return_sign: bool = False) -> Any:
    """log(sum(b * exp(a))) over ``axis``, stably, as ``scipy.special.logsumexp`` (with ``b`` the
    weights, possibly negative with ``return_sign=True``, which returns (value, sign)).
    Differentiable in ``a`` and ``b``."""
    if isinstance(a, (list, tuple)):
        a = _ops.stack(list(a)) if any(isinstance(v, Tensor) for v in a) else np.asarray(a)
    a = _sp.operand(a, b if isinstance(b, Tensor) else None)
    if b is None and not return_sign:
        return _ops.logsumexp(a, axis, keepdims)
    if b is not None:
        b = _sp.operand(b, a)
        a, b = _ops.broadcast_arrays(a, b)
    from gpugrad.ops._util import normalize_axis

    axes = normalize_axis(axis, a.ndim, "logsumexp")
    # the shift is a constant (the result does not depend on it), so it needs no gradient
    m = _ops.amax(a.detach(), axis=axes, keepdims=True) if a.size else _ops.zeros_like(a.detach())
    m = _ops.where(_ops.isfinite(m), m, 0)
    e = _ops.exp(a - m)
    s = _ops.sum(e if b is None else b * e, axis=axes, keepdims=True)
    out = _ops.log(_ops.abs(s) if return_sign else s) + m
    if not keepdims:
        out = _ops.squeeze(out, axis=axes) if axes is not None else _ops.reshape(out, ())
    if not return_sign:
        return out
    sign = _ops.sign(s.detach())
    if not keepdims:
        sign = _ops.squeeze(sign, axis=axes) if axes is not None else _ops.reshape(sign, ())
    return out, sign


logsumexp = dual("special.logsumexp", _logsumexp)


def __getattr__(name: str) -> Any:
    try:
        getattr(_sp.scipy_module("special"), name)
    except AttributeError:
        raise AttributeError(f"module 'gpugrad.scipy.special' has no attribute {name!r}") from None
    raise AttributeError(
        f"gpugrad.scipy.special.{name} is not provided, so it cannot be differentiated; use scipy.special.{name} "
        "on plain arrays (.numpy() values)")
