"""Special functions that CUDA's device math library lacks (digamma, polygamma, the incomplete gamma
and beta functions, Bessel I of real order, ...), as ops with one rule each.

The forward calls the backend's implementation: ``scipy.special`` on the CPU, ``cupyx.scipy.special``
on the GPU (those CuPy does not have, ``iv``, ``ive`` and ``stdtr``, go through the host). Each partial
derivative is written once, with other differentiable functions, so one definition gives the
fast backward (raw arrays), the differentiable backward (``create_graph``) and forward mode, and
gradients of any order. The elementwise ones CUDA does have (erfc, erfinv, i0, j0, jn, ...) are
declared in the op table (gpugrad/ops/elementwise.py) instead.

Example::

    x = gg.tensor([0.5, 2.0], dtype=gg.float64, requires_grad=True)
    gammaln(x).sum().backward()     # x.grad == digamma(x)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.autograd.state import STATE
from gpugrad.errors import GraphError
from gpugrad.ops.base import Op, apply, forward
from gpugrad.ops.namespace import tensor_namespace
from gpugrad.tensor import Tensor

_F64 = np.dtype(np.float64)

# A partial derivative: (R, *inputs, out) -> d out / d input, written with R's functions (see Rules).
Partial = Callable[..., Any]


def scipy_module(name: str) -> Any:
    """``scipy.<name>``, imported on first use, with an ImportError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(f"scipy.{name}")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"gpugrad.scipy needs SciPy (scipy.{name}): pip install 'gpugrad[scipy]'") from exc


def backend_function(B: Any, module: str, name: str) -> Callable[..., Any]:
    """``<module>.<name>`` for backend ``B``: SciPy's on NumPy arrays, ``cupyx.scipy``'s on CuPy
    arrays, and SciPy's through the host where CuPy has no such function."""
    if B.xp is np:
        return getattr(scipy_module(module), name)
    import importlib

    try:
        fn = getattr(importlib.import_module(f"cupyx.scipy.{module}"), name, None)
    except ImportError:
        fn = None
    if fn is not None:
        return fn
    host = getattr(scipy_module(module), name)

    def via_host(*args: Any, **kwargs: Any) -> Any:
        def host_value(a: Any) -> Any:
            return B.to_host(a) if isinstance(a, B.xp.ndarray) else a

        out = host(*[host_value(a) for a in args], **{k: host_value(v) for k, v in kwargs.items()})
        return B.from_host(np.asarray(out))

    return via_host


def result_dtype(args: Any) -> np.dtype:
    """NumPy's promotion of the operands (Python numbers weak); integers and bools give float64, as SciPy."""
    dts = [a.dtype for a in args if getattr(a, "dtype", None) is not None]
    dt = np.result_type(*dts) if dts else _F64
    return dt if dt.kind == "f" else _F64


def rule_call(ns: Any, op: Op, args: tuple, params: dict) -> Any:
    """Apply ``op`` inside a derivative rule: recorded (differentiable) in the tensor namespace,
    its forward on raw arrays when ``ns`` is a backend (the fast backward)."""
    if ns is tensor_namespace():
        return apply(op, args, params)
    return forward(op, ns, list(args), params)


class Rules:
    """What a derivative rule calls: the rule namespace's functions (``R.exp``, ``R.where``...) and
    the special ops by name (``R.digamma``), applied as differentiable ops in the tensor namespace
    and through their own forward on raw arrays (the fast backward)."""

    def __init__(self, ns: Any) -> None:
        self.ns = ns

    def __getattr__(self, name: str) -> Any:
        op = SPECIAL_OPS.get(name)
        if op is None:
            return getattr(self.ns, name)
        ns = self.ns
        return lambda *args: rule_call(ns, op, args, {})


class SpecialOp(Op):
    """``out = scipy.special.<name>(*inputs)`` elementwise (cupyx.scipy.special's on the GPU), with
    one partial derivative per input (None for an input without one, e.g. an integer order)."""

    def __init__(self, name: str, inputs: str, partials: tuple[Partial | None, ...], *, uses_out: bool = False) -> None:
        self.name = name
        self.inputs = tuple(inputs.split())
        self.partials = partials
        self.save_inputs = True
        self.save_out = uses_out

    def forward(self, B: Any, args: list, params: dict) -> Any:
        out = backend_function(B, "special", self.name)(*args)
        return B.xp.asarray(out).astype(result_dtype(args), copy=False)

    def _partial(self, i: int) -> Partial:
        d = self.partials[i]
        if d is None:
            raise GraphError(f"{self.name}: no derivative with respect to {self.inputs[i]}")
        return d

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        R = Rules(ns)
        return tuple(g * self._partial(i)(R, *args, out) if need else None for i, need in enumerate(needs))

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        R = Rules(ns)
        total = None
        for i, t in enumerate(tangents):
            if t is not None:
                term = t * self._partial(i)(R, *args, out)
                total = term if total is None else total + term
        return total


SPECIAL_OPS: dict[str, SpecialOp] = {}


def _declare(name: str, inputs: str, partials: tuple[Partial | None, ...], **kw: Any) -> SpecialOp:
    op = SpecialOp(name, inputs, partials, **kw)
    SPECIAL_OPS[name] = op
    return op


_LOG_SQRT_2PI = 0.9189385332046728


def _incomplete_beta_dx(R: Any, a: Any, b: Any, x: Any, out: Any) -> Any:
    return R.exp((a - 1) * R.log(x) + (b - 1) * R.log1p(-x) - R.betaln(a, b))


def _incomplete_gamma_dx(R: Any, a: Any, x: Any, out: Any) -> Any:
    return R.exp((a - 1) * R.log(x) - x - R.gammaln(a))


DIGAMMA = _declare("digamma", "x", (lambda R, x, out: R.polygamma(1, x),))
POLYGAMMA = _declare("polygamma", "n x", (None, lambda R, n, x, out: R.polygamma(n + 1, x)))
GAMMA = _declare("gamma", "x", (lambda R, x, out: out * R.digamma(x),), uses_out=True)
GAMMALN = _declare("gammaln", "x", (lambda R, x, out: R.digamma(x),))
RGAMMA = _declare("rgamma", "x", (lambda R, x, out: -out * R.digamma(x),), uses_out=True)
GAMMASGN = _declare("gammasgn", "x", (lambda R, x, out: R.zeros_like(x),))  # piecewise constant
BETA = _declare("beta", "a b", (lambda R, a, b, out: out * (R.digamma(a) - R.digamma(a + b)),
                         lambda R, a, b, out: out * (R.digamma(b) - R.digamma(a + b))), uses_out=True)
BETALN = _declare("betaln", "a b", (lambda R, a, b, out: R.digamma(a) - R.digamma(a + b),
                             lambda R, a, b, out: R.digamma(b) - R.digamma(a + b)))
# Derivatives in the parameters have no closed form (neither SciPy nor HIPS autograd has them).
BETAINC = _declare("betainc", "a b x", (None, None, _incomplete_beta_dx))
GAMMAINC = _declare("gammainc", "a x", (None, _incomplete_gamma_dx))
GAMMAINCC = _declare("gammaincc", "a x", (None, lambda R, a, x, out: -_incomplete_gamma_dx(R, a, x, out)))
# I_v' = (I_{v-1} + I_{v+1}) / 2; ive(v, x) = iv(v, x) exp(-|x|)
IV = _declare("iv", "v x", (None, lambda R, v, x, out: 0.5 * (R.iv(v - 1, x) + R.iv(v + 1, x))))
IVE = _declare("ive", "v x", (None, lambda R, v, x, out: 0.5 * (R.ive(v - 1, x) + R.ive(v + 1, x)) - R.sign(x) * out),
               uses_out=True)
# Student's t CDF; its derivative in t is the density (no closed form in df)
STDTR = _declare("stdtr", "df t", (None, lambda R, df, t, out: R.exp(
    R.gammaln((df + 1) / 2) - R.gammaln(df / 2) - 0.5 * R.log(df * 3.141592653589793)
    - (df + 1) / 2 * R.log1p(t * t / df))))
# log of the standard normal CDF, accurate in both tails; d/dx = pdf(x) / cdf(x)
LOG_NDTR = _declare("log_ndtr", "x", (lambda R, x, out: R.exp(-0.5 * x * x - _LOG_SQRT_2PI - out),), uses_out=True)


def operand(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a tensor on ``like``'s device. Unlike ``gg.tensor``, Python floats and lists of them
    become float64, as they are in SciPy (whose functions these mirror)."""
    if isinstance(x, Tensor):
        return x
    from gpugrad.ops._util import as_tensor_operand

    if getattr(x, "dtype", None) is None:
        x = np.asarray(x)
    return as_tensor_operand(x, like)


def traced(x: Any) -> bool:
    """Is ``x`` a value some gradient is being taken through (reverse or forward mode)?"""
    if not isinstance(x, Tensor):
        return False
    if x.requires_grad and STATE.grad_enabled:
        return True
    return bool(x._tangents) and any(level in STATE.fw_levels for level in x._tangents)


def require_constant(fname: str, what: str, value: Any, why: str = "") -> None:
    """Raise GraphError when ``value`` (argument ``what`` of ``fname``) is being differentiated:
    its gradient is not available and must not silently be zero."""
    if traced(value):
        raise GraphError(
            f"{fname}: no gradient with respect to {what}{why}; pass it as a constant "
            f"(a NumPy array, or .detach() it)"
        )


def call(op: SpecialOp, *args: Any) -> Tensor:
    """Apply a special op; inputs without a derivative must not be differentiated."""
    for i, (d, a) in enumerate(zip(op.partials, args)):
        if d is None:
            require_constant(op.name, op.inputs[i], a)
    return apply(op, args, {})


def digamma(x: Any) -> Tensor:
    """The digamma function psi(x) = d/dx log Gamma(x)."""
    return call(DIGAMMA, x)


def polygamma(n: Any, x: Any) -> Tensor:
    """The n-th derivative of digamma (integer n >= 0; no gradient in n)."""
    return call(POLYGAMMA, n, x)


def gamma(x: Any) -> Tensor:
    return call(GAMMA, x)


def gammaln(x: Any) -> Tensor:
    """log |Gamma(x)|."""
    return call(GAMMALN, x)


def rgamma(x: Any) -> Tensor:
    """1 / Gamma(x)."""
    return call(RGAMMA, x)


def gammasgn(x: Any) -> Tensor:
    """The sign of Gamma(x) (zero gradient)."""
    return call(GAMMASGN, x)


def beta(a: Any, b: Any) -> Tensor:
    return call(BETA, a, b)


def betaln(a: Any, b: Any) -> Tensor:
    """log |B(a, b)|."""
    return call(BETALN, a, b)


def betainc(a: Any, b: Any, x: Any) -> Tensor:
    """The regularized incomplete beta function I_x(a, b) (differentiable in x only)."""
    return call(BETAINC, a, b, x)


def gammainc(a: Any, x: Any) -> Tensor:
    """The regularized lower incomplete gamma function P(a, x) (differentiable in x only)."""
    return call(GAMMAINC, a, x)


def gammaincc(a: Any, x: Any) -> Tensor:
    """The regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x) (differentiable in x only)."""
    return call(GAMMAINCC, a, x)


def iv(v: Any, x: Any) -> Tensor:
    """The modified Bessel function of the first kind of real order v (differentiable in x only)."""
    return call(IV, v, x)


def ive(v: Any, x: Any) -> Tensor:
    """iv(v, x) * exp(-|x|) (differentiable in x only)."""
    return call(IVE, v, x)


def stdtr(df: Any, t: Any) -> Tensor:
    """The CDF of Student's t distribution with df degrees of freedom at t (differentiable in t)."""
    return call(STDTR, df, t)


def log_ndtr(x: Any) -> Tensor:
    """log of the standard normal CDF, accurate far into both tails."""
    return call(LOG_NDTR, x)
