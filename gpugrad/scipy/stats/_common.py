"""Helpers shared by the distributions: operands, math that also takes Python numbers, support
and parameter masks (SciPy's conventions), and the SciPy-or-gpugrad dispatch of each method."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

import gpugrad.ops as ops
from gpugrad.ops import special as sp
from gpugrad.scipy._dispatch import dual
from gpugrad.tensor import Tensor

LOG_2PI = math.log(2 * math.pi)
LOG_SQRT_2PI = 0.5 * LOG_2PI
NAN = float("nan")


def operands(*args: Any) -> list[Any]:
    """Tensors stay, arrays become constant tensors on the first tensor's device, Python numbers
    stay numbers (weak: they never upcast a float32 tensor)."""
    like = next((a for a in args if isinstance(a, Tensor)), None)
    return [a if isinstance(a, (Tensor, numbers.Number)) or a is None else sp.operand(a, like) for a in args]


def _lift(op_fn: Callable[..., Any], number_fn: Callable[..., float]) -> Callable[..., Any]:
    def fn(*args: Any) -> Any:
        if all(isinstance(a, numbers.Number) for a in args):
            with np.errstate(all="ignore"):
                return float(number_fn(*args))
        return op_fn(*args)

    return fn


def _scipy_special(name: str) -> Callable[..., Any]:
    return lambda *args: getattr(sp.scipy_module("special"), name)(*args)


log = _lift(ops.log, np.log)
log1p = _lift(ops.log1p, np.log1p)
exp = _lift(ops.exp, np.exp)
gammaln = _lift(sp.gammaln, _scipy_special("gammaln"))
betaln = _lift(sp.betaln, _scipy_special("betaln"))
digamma = _lift(sp.digamma, _scipy_special("digamma"))


def where(cond: Any, a: Any, b: Any) -> Any:
    """``where`` that also takes a Python bool (then a or b, broadcast like a)."""
    if isinstance(cond, (bool, np.bool_)):
        if cond:
            return a
        return ops.zeros_like(a) + b if isinstance(a, Tensor) else b
    return ops.where(cond, a, b)


def both(c1: Any, c2: Any) -> Any:
    """Logical and of conditions that may be Python bools."""
    if isinstance(c1, (bool, np.bool_)):
        return c2 if c1 else False
    if isinstance(c2, (bool, np.bool_)):
        return c1 if c2 else False
    return ops.logical_and(c1, c2)


def xlogy(a: Any, x: Any) -> Any:
    """a log(x), 0 where a == 0 and x == 0 (SciPy's xlogy); full gradients everywhere else."""
    if isinstance(a, numbers.Number) and a == 0:
        return 0.0
    zero = both(a == 0, x == 0) if not isinstance(x, numbers.Number) else (a == 0 if x == 0 else False)
    return a * log(where(zero, 1.0, x))


def xlog1py(a: Any, x: Any) -> Any:
    """a log1p(x), 0 where a == 0 and x == -1 (SciPy's xlog1py)."""
    if isinstance(a, numbers.Number) and a == 0:
        return 0.0
    zero = both(a == 0, x == -1) if not isinstance(x, numbers.Number) else (a == 0 if x == -1 else False)
    return a * log1p(where(zero, 0.0, x))


def positive(*params: Any) -> Any:
    """The condition that every parameter is > 0 (a Python bool when all are numbers)."""
    cond: Any = True
    for p in params:
        cond = both(cond, p > 0)
    return cond


def finish(value: Any, valid: Any = True, inside: Any = True, outside: float = -math.inf) -> Any:
    """SciPy's conventions: ``outside`` off the support, NaN for invalid parameters."""
    value = where(inside, value, outside)
    return where(valid, value, NAN)


def broadcast_like(value: Any, *args: Any) -> Any:
    """``value`` as a tensor of the broadcast shape of ``args`` (entropies depend on fewer arguments)."""
    shapes = [np.shape(a.data if isinstance(a, Tensor) else a) for a in args]
    like = next(a for a in (value, *args) if isinstance(a, Tensor))
    shape = np.broadcast_shapes(*shapes)
    if not isinstance(value, Tensor):
        value = ops.zeros_like(like) + value
    if value.shape != shape:
        value = ops.broadcast_to(value, np.broadcast_shapes(value.shape, shape))
    return value


def quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Evaluate without NumPy's warnings for values SciPy returns silently (log(0) off the support)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(*args, **kwargs)

    return call


def method(dist: str, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """``scipy.stats.<dist>.<name>`` on plain values, ``fn`` (quiet) on tensors."""
    name = name or fn.__name__.lstrip("_")
    return dual(f"stats.{dist}.{name}", quiet(fn))


def exp_of(log_fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """exp(log_fn(...)): a density from its log (same arguments)."""

    @functools.wraps(log_fn)
    def fn(*args: Any, **kwargs: Any) -> Any:
        return exp(log_fn(*args, **kwargs))

    fn.__doc__ = f"{what}: the exponential of ``{log_fn.__name__.lstrip('_')}`` (same arguments)."
    return fn


def log_of(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """log(fn(...)): a log-CDF from the CDF (same arguments)."""

    @functools.wraps(fn)
    def log_fn(*args: Any, **kwargs: Any) -> Any:
        return log(fn(*args, **kwargs))

    log_fn.__doc__ = f"{what}: the log of ``{fn.__name__.lstrip('_')}`` (same arguments)."
    return log_fn


def sampler(dist: str) -> Callable[..., Any]:
    """``rvs``: SciPy's random draws (constants; sampling is not differentiated here)."""

    def rvs(*args: Any, **kwargs: Any) -> Any:
        for a in (*args, *kwargs.values()):
            sp.require_constant(f"{dist}.rvs", "its parameters", a, " (random draws are not differentiated)")
        plain = [a.numpy() if isinstance(a, Tensor) else a for a in args]
        kw = {k: v.numpy() if isinstance(v, Tensor) else v for k, v in kwargs.items()}
        return getattr(sp.scipy_module("stats"), dist).rvs(*plain, **kw)

    rvs.__doc__ = f"Random draws from scipy.stats.{dist} (NumPy arrays, no gradient)."
    return rvs
