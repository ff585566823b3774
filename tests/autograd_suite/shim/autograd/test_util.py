"""autograd.test_util rebuilt on gpugrad: ``check_grads`` compares gg.jvp (forward mode) and
gg.vjp (reverse mode) with central differences, along random directions, recursively up to
``order`` (the derivative maps themselves are checked the same way), as autograd's does.

Values are pytrees (tuples, lists, dicts) of arrays and numbers; complex values use the
real inner product Re(sum(conj(a) * b)) and covectors are conjugates, as in autograd.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as onp

import gpugrad as gg
from autograd.differential_operators import _make_jvp, _make_vjp
from autograd.wrap_util import unary_to_nary
from gpugrad.autograd import pytree

TOL = 1e-6
RTOL = 1e-6
EPS = 1e-6


def scalar_close(a: Any, b: Any) -> bool:
    return abs(a - b) < TOL or abs(a - b) / abs(a + b) < RTOL


def _plain(v: Any) -> Any:
    if isinstance(v, gg.Tensor):
        return v.numpy()
    return onp.asarray(v)


class VSpace:
    """The vector space of a value: its tree structure and each leaf's shape and dtype."""

    def __init__(self, value: Any) -> None:
        leaves, self.structure = pytree.flatten(value)
        arrays = [_plain(v) for v in leaves]
        self.specs = [(a.shape, a.dtype) for a in arrays]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VSpace) and self.structure == other.structure and self.specs == other.specs

    def __repr__(self) -> str:
        return f"VSpace({self.specs})"

    def _build(self, leaves: list) -> Any:
        return pytree.unflatten(self.structure, leaves)

    def randn(self) -> Any:
        out = []
        for shape, dtype in self.specs:
            r = onp.array(onp.random.randn(*shape)).astype(dtype)
            if dtype.kind == "c":
                r = r + 1j * onp.array(onp.random.randn(*shape)).astype(dtype)
            out.append(r)
        return self._build(out)

    def zeros(self) -> Any:
        return self._build([onp.zeros(shape, dtype) for shape, dtype in self.specs])

    def inner_prod(self, x: Any, y: Any) -> float:
        xs, _ = pytree.flatten(x)
        ys, _ = pytree.flatten(y)
        total = 0.0
        for a, b in zip(xs, ys):
            total += float(onp.real(onp.dot(onp.conj(onp.ravel(_plain(a))), onp.ravel(_plain(b)))))
        return total

    def covector(self, x: Any) -> Any:
        leaves, structure = pytree.flatten(x)
        return pytree.unflatten(structure, [onp.conj(_plain(v)) for v in leaves])

    def add(self, x: Any, y: Any) -> Any:
        xs, _ = pytree.flatten(x)
        ys, _ = pytree.flatten(y)
        return self._build([_plain(a) + _plain(b) for a, b in zip(xs, ys)])

    def scalar_mul(self, x: Any, c: float) -> Any:
        xs, _ = pytree.flatten(x)
        return self._build([_plain(a) * c for a in xs])


def vspace(value: Any) -> VSpace:
    return VSpace(value)


def make_numerical_jvp(f: Callable[..., Any], x: Any) -> Callable[..., Any]:
    y = f(x)
    x_vs, y_vs = vspace(x), vspace(y)

    def jvp(v: Any) -> Any:
        f_plus = f(x_vs.add(x, x_vs.scalar_mul(v, EPS / 2)))
        f_minus = f(x_vs.add(x, x_vs.scalar_mul(v, -EPS / 2)))
        return y_vs.scalar_mul(y_vs.add(f_plus, y_vs.scalar_mul(f_minus, -1.0)), 1.0 / EPS)

    return jvp


def _name(f: Any) -> str:
    return getattr(f, "__name__", "f")


def check_vjp(f: Callable[..., Any], x: Any) -> None:
    vjp, y = _make_vjp(f, x)
    jvp = make_numerical_jvp(f, x)
    x_vs, y_vs = vspace(x), vspace(y)
    x_v, y_v = x_vs.randn(), y_vs.randn()
    vjp_y = x_vs.covector(vjp(y_vs.covector(y_v)))
    assert vspace(vjp_y) == x_vs, f"VSpace mismatch: {vspace(vjp_y)} vs {x_vs}"
    exact = x_vs.inner_prod(x_v, vjp_y)
    numeric = y_vs.inner_prod(y_v, jvp(x_v))
    assert scalar_close(numeric, exact), (
        f"Derivative (VJP) check of {_name(f)} failed with arg {x}:\nanalytic: {exact}\nnumeric:  {numeric}")


def check_jvp(f: Callable[..., Any], x: Any) -> None:
    jvp = _make_jvp(f, x)
    numeric = make_numerical_jvp(f, x)
    x_v = vspace(x).randn()
    check_equivalent(jvp(x_v)[1], numeric(x_v))


def check_equivalent(x: Any, y: Any) -> None:
    x_vs, y_vs = vspace(x), vspace(y)
    assert x_vs == y_vs, f"VSpace mismatch:\nx: {x_vs}\ny: {y_vs}"
    v = x_vs.randn()
    assert scalar_close(x_vs.inner_prod(x, v), x_vs.inner_prod(y, v)), f"Value mismatch:\nx: {x}\ny: {y}"


@unary_to_nary
def check_grads(f: Callable[..., Any], x: Any, modes: Any = ("fwd", "rev"), order: int = 2) -> None:
    assert all(m in ("fwd", "rev") for m in modes)
    if "fwd" in modes:
        check_jvp(f, x)
        if order > 1:
            def jvp_f(x: Any, v: Any) -> Any:
                return _make_jvp(f, x)(v)[1]

            jvp_f.__name__ = f"jvp_{_name(f)}"
            v = vspace(x).randn()
            check_grads(jvp_f, (0, 1), modes, order=order - 1)(x, v)
    if "rev" in modes:
        check_vjp(f, x)
        if order > 1:
            def vjp_f(x: Any, v: Any) -> Any:
                return _make_vjp(f, x)[0](v)

            vjp_f.__name__ = f"vjp_{_name(f)}"
            v = vspace(f(x)).randn()
            check_grads(vjp_f, (0, 1), modes, order=order - 1)(x, v)


def combo_check(fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., None]:
    """Check gradients for every combination of the given argument values and keyword values."""

    def check(*arg_lists: Any, **kwarg_lists: Any) -> None:
        keyed = [[(k, v) for v in vs] for k, vs in kwarg_lists.items()]
        for call_args in itertools.product(*arg_lists):
            for call_kwargs in itertools.product(*keyed):
                check_grads(fun, *args, **kwargs)(*call_args, **dict(call_kwargs))

    return check
