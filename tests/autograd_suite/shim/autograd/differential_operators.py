"""autograd's differential operators on gpugrad's transforms (``argnum`` is autograd's name for
``argnums``; a list of argnums gives a tuple of gradients, as in autograd)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as onp

import gpugrad as gg
import gpugrad.numpy as gnp
from autograd.wrap_util import unary_to_nary

checkpoint = gg.checkpoint


def _nums(argnum: Any) -> Any:
    return argnum if isinstance(argnum, int) else tuple(argnum)


def grad(fun: Callable[..., Any], argnum: Any = 0) -> Callable[..., Any]:
    return gg.grad(fun, _nums(argnum))


def value_and_grad(fun: Callable[..., Any], argnum: Any = 0) -> Callable[..., Any]:
    return gg.value_and_grad(fun, _nums(argnum))


def grad_and_aux(fun: Callable[..., Any], argnum: Any = 0) -> Callable[..., Any]:
    return gg.grad(fun, _nums(argnum), has_aux=True)


def elementwise_grad(fun: Callable[..., Any], argnum: Any = 0) -> Callable[..., Any]:
    return gg.elementwise_grad(fun, _nums(argnum))


def holomorphic_grad(fun: Callable[..., Any], argnum: Any = 0) -> Callable[..., Any]:
    return gg.holomorphic_grad(fun, _nums(argnum))


def jacobian(fun: Callable[..., Any], argnum: Any = 0) -> Callable[..., Any]:
    return gg.jacobian(fun, _nums(argnum))


def hessian(fun: Callable[..., Any], argnum: int = 0) -> Callable[..., Any]:
    return gg.hessian(fun, argnum)


def _make_vjp(fun: Callable[..., Any], x: Any) -> tuple[Callable[..., Any], Any]:
    ans, pullback = gg.vjp(fun, x)
    return (lambda g: pullback(g)[0]), ans


def _make_jvp(fun: Callable[..., Any], x: Any) -> Callable[..., Any]:
    return lambda v: gg.jvp(fun, (x,), (v,))


make_vjp = unary_to_nary(_make_vjp)
make_jvp = unary_to_nary(_make_jvp)


@unary_to_nary
def deriv(fun: Callable[..., Any], x: Any) -> Any:
    ones = onp.ones_like(onp.asarray(x))
    if onp.iscomplexobj(ones):
        ones = ones + 1j * ones
    return gg.jvp(fun, (x,), (ones,))[1]


@unary_to_nary
def make_hvp(fun: Callable[..., Any], x: Any) -> tuple[Callable[..., Any], Any]:
    return _make_vjp(gg.grad(fun), x)


def hessian_tensor_product(fun: Callable[..., Any], argnum: int = 0) -> Callable[..., Any]:
    def htp(*args: Any) -> Any:
        args, vector = list(args[:-1]), args[-1]

        def grad_at(x: Any) -> Any:
            full = list(args)
            full[argnum] = x
            return gg.grad(fun, argnum)(*full)

        return gg.jvp(grad_at, (args[argnum],), (vector,))[1]

    return htp


hessian_vector_product = hessian_tensor_product


def tensor_jacobian_product(fun: Callable[..., Any], argnum: int = 0) -> Callable[..., Any]:
    def tjp(*args: Any) -> Any:
        args, vector = args[:-1], args[-1]
        contracted = lambda *a: gnp.tensordot(vector, fun(*a), onp.ndim(vector))  # noqa: E731
        return gg.jacobian(contracted, argnum)(*args)

    return tjp


vector_jacobian_product = tensor_jacobian_product


def make_ggnvp(f: Callable[..., Any], g: Callable[..., Any] = lambda x: 0.5 * gnp.sum(x**2, axis=-1),
               f_argnum: int = 0) -> Callable[..., Any]:
    """Generalised Gauss-Newton products J^T H_g J v (J of f at x, H_g the Hessian of g at f(x))."""

    def maker(*args: Any) -> Callable[..., Any]:
        x = args[f_argnum]

        def f_of(xi: Any) -> Any:
            full = list(args)
            full[f_argnum] = xi
            return f(*full)

        f_vjp, f_x = _make_vjp(f_of, x)

        def ggnvp(v: Any) -> Any:
            jv = gg.jvp(f_of, (x,), (v,))[1]
            hjv = gg.jvp(gg.grad(g), (f_x,), (jv,))[1]
            return f_vjp(hjv)

        return ggnvp

    return maker
