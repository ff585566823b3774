"""Reductions (sum, mean, max, min, prod, logsumexp, norm, cumulative sums) with NumPy's ``axis``
and ``keepdims``; ``var`` and ``std`` are compositions of these.

Each rule is written once against a namespace ``ns`` (raw backend arrays in fast mode, tensors
with ``create_graph``). The reduced gradient is reshaped to keep the reduced axes and broadcast
back to the input's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.autograd.state import STATE
from gpugrad.errors import GpugradError, ShapeError
from gpugrad.fusion import lazy as _fusion  # (a module: fusion.lazy imports the ops)
from gpugrad.ops._util import as_tensor_operand, count, keepdims_shape, normalize_axis, normalize_one_axis
from gpugrad.ops.base import Op, apply
from gpugrad.ops.spellings import accepts_dim
from gpugrad.tensor import Tensor


def _expand(ns: Any, g: Any, params: dict) -> Any:
    """``g`` reshaped so the reduced axes are kept (size 1), ready to broadcast."""
    if params["keepdims"]:
        return g
    return ns.reshape(g, keepdims_shape(params["shape"], params["axis"]))


class Sum(Op):
    name = "sum"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.sum(args[0], params["axis"], params["keepdims"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.broadcast_to(_expand(ns, g, params), params["shape"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.sum(tangents[0], params["axis"], params["keepdims"])


class Mean(Op):
    name = "mean"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.mean(args[0], params["axis"], params["keepdims"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        n = count(params["shape"], params["axis"])
        return (ns.broadcast_to(_expand(ns, g, params) / n, params["shape"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.mean(tangents[0], params["axis"], params["keepdims"])


class Extremum(Op):
    """amax / amin. The gradient is shared equally among tied extreme elements (as PyTorch's amax)."""

    save_out = True

    def __init__(self, name: str, reducer: str) -> None:
        self.name = name
        self.reducer = reducer

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x = args[0]
        if x.size == 0 and (params["axis"] is None or any(x.shape[a] == 0 for a in params["axis"])):
            raise ShapeError(f"{self.name}: zero-size array to reduction operation which has no identity")
        return getattr(B, self.reducer)(x, params["axis"], params["keepdims"])

    def _mask(self, ns: Any, x: Any, out: Any, params: dict, dtype: Any) -> tuple[Any, Any]:
        mask = ns.equal(x, _expand(ns, out, params))
        n = ns.sum(ns.astype(mask, dtype), params["axis"], True)
        return mask, n

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        mask, n = self._mask(ns, args[0], out, params, g.dtype)
        return (ns.where(mask, _expand(ns, g, params) / n, 0),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        mask, n = self._mask(ns, args[0], out, params, out.dtype)
        picked = ns.sum(ns.where(mask, tangents[0], 0), params["axis"], True) / n
        return picked if params["keepdims"] else ns.reshape(picked, out.shape)


class Prod(Op):
    name = "prod"
    save_inputs = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.asarray(B.xp.prod(args[0], axis=params["axis"], keepdims=params["keepdims"]))

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        others = _prod_of_others(ns, args[0], params["axis"])
        return (_expand(ns, g, params) * others,)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        others = _prod_of_others(ns, args[0], params["axis"])
        return ns.sum(tangents[0] * others, params["axis"], params["keepdims"])


def _prod_of_others(ns: Any, x: Any, axes: tuple[int, ...] | None) -> Any:
    """For each element, the product of the other elements of its reduction group (no division,
    so zeros are handled exactly)."""
    shape = x.shape
    nd = len(shape)
    red = tuple(range(nd)) if axes is None else axes
    keep = tuple(a for a in range(nd) if a not in red)
    perm = keep + red
    xt = ns.transpose(x, perm)
    k = int(np.prod([shape[a] for a in red], dtype=np.int64))
    flat = ns.reshape(xt, tuple(shape[a] for a in keep) + (k,))
    if k == 0:
        return ns.zeros_like(x)
    ones = ns.ones_like(ns.getitem(flat, (Ellipsis, slice(0, 1))))
    left = ns.concatenate([ones, ns.cumprod(ns.getitem(flat, (Ellipsis, slice(0, k - 1))), -1)], -1)
    rev = ns.flip(flat, -1)
    right = ns.flip(ns.concatenate([ones, ns.cumprod(ns.getitem(rev, (Ellipsis, slice(0, k - 1))), -1)], -1), -1)
    others = ns.reshape(left * right, xt.shape)
    return ns.transpose(others, tuple(int(i) for i in np.argsort(perm)))


class LogSumExp(Op):
    name = "logsumexp"
    save_inputs = True
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x = args[0]
        axis = params["axis"]
        m = B.amax(x, axis, True) if x.size else B.xp.zeros(keepdims_shape(x.shape, axis), x.dtype)
        m = B.where(B.isfinite(m), m, 0)
        s = B.sum(B.exp(x - m), axis, True)
        out = B.log(s) + m
        if not params["keepdims"]:
            out = B.reshape(out, params["out_shape"])
        return out

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        return (_expand(ns, g, params) * ns.exp(args[0] - _expand(ns, out, params)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        w = ns.exp(args[0] - _expand(ns, out, params))
        return ns.sum(w * tangents[0], params["axis"], params["keepdims"])


class Norm2(Op):
    """The Euclidean norm over ``axis``; its gradient is 0 where the norm is 0 (as PyTorch)."""

    name = "norm"
    save_inputs = True
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x = args[0]
        return B.sqrt(B.sum(x * x, params["axis"], params["keepdims"]))

    def _scaled(self, ns: Any, x: Any, out: Any, params: dict) -> Any:
        o = _expand(ns, out, params)
        return ns.where(o == 0, 0, x / ns.where(o == 0, 1, o))

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        return (_expand(ns, g, params) * self._scaled(ns, args[0], out, params),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.sum(self._scaled(ns, args[0], out, params) * tangents[0], params["axis"], params["keepdims"])


class CumSum(Op):
    name = "cumsum"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.cumsum(args[0], params["axis"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        a = params["axis"]
        return (ns.flip(ns.cumsum(ns.flip(g, a), a), a),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.cumsum(tangents[0], params["axis"])


class CumProd(Op):
    """Cumulative product; the gradient is computed without dividing by x, so zeros are exact."""

    name = "cumprod"
    save_inputs = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.cumprod(args[0], params["axis"])

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        # dL/dx_k = E_k * S_k with E_k = prod_{j<k} x_j and S_k = g_k + x_{k+1} S_{k+1}.
        x = args[0]
        a = params["axis"]
        n = x.shape[a]
        if n == 0:
            return (ns.zeros_like(x),)

        def at(arr: Any, i: int) -> Any:
            return ns.getitem(arr, (slice(None),) * a + (slice(i, i + 1),))

        s = [None] * n
        s[n - 1] = at(g, n - 1)
        for k in range(n - 2, -1, -1):
            s[k] = at(g, k) + at(x, k + 1) * s[k + 1]
        suffix = ns.concatenate(s, a)
        ones = ns.ones_like(at(x, 0))
        excl = ns.concatenate([ones, ns.cumprod(ns.getitem(x, (slice(None),) * a + (slice(0, n - 1),)), a)], a)
        return (excl * suffix,)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        # d cumprod(x)_i = sum_{k<=i} t_k * prod_{j<=i, j!=k} x_j; computed as a (differentiable) vjp.
        x = args[0]
        a = params["axis"]
        n = x.shape[a]
        terms = []
        for i in range(n):
            sl = (slice(None),) * a + (slice(0, i + 1),)
            xi = ns.getitem(x, sl)
            ti = ns.getitem(tangents[0], sl)
            others = _prod_of_others(ns, xi, (a,))
            terms.append(ns.sum(ti * others, a, True))
        return ns.concatenate(terms, a) if terms else ns.zeros_like(x)


class ArgExtremum(Op):
    differentiable = False
    save_inputs = False

    def __init__(self, name: str) -> None:
        self.name = name

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x = args[0]
        if x.size == 0:
            raise ShapeError(f"{self.name}: attempt to get {self.name} of an empty sequence")
        fn = getattr(B.xp, self.name)
        return B.asarray(fn(x, axis=params["axis"], keepdims=params["keepdims"]))


class Logical(Op):
    differentiable = False
    save_inputs = False

    def __init__(self, name: str) -> None:
        self.name = name

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.asarray(getattr(B.xp, self.name)(args[0], axis=params["axis"], keepdims=params["keepdims"]))


SUM = Sum()
MEAN = Mean()
AMAX = Extremum("max", "amax")
AMIN = Extremum("min", "amin")
PROD = Prod()
LOGSUMEXP = LogSumExp()
NORM2 = Norm2()
CUMSUM = CumSum()
CUMPROD = CumProd()
ARGMAX = ArgExtremum("argmax")
ARGMIN = ArgExtremum("argmin")
ANY = Logical("any")
ALL = Logical("all")


def _reduce(op: Op, x: Any, axis: Any, keepdims: bool, **extra: Any) -> Tensor:
    x = as_tensor_operand(x)
    axes = normalize_axis(axis, x.ndim, op.name)
    return apply(op, (x,), {"axis": axes, "keepdims": bool(keepdims), "shape": x.shape, **extra})


@accepts_dim
def sum(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes by default), as ``numpy.sum``.

    Example: ``gg.sum(x, axis=0)``, ``x.sum(axis=(0, 2), keepdims=True)``.
    """
    if dtype is not None:
        x = as_tensor_operand(x).astype(dtype)
    elif axis is None and not keepdims and isinstance(x, Tensor) and x._lazy is not None and STATE.fuse:
        return _fusion.reduce_all(x, "sum")  # the reduction joins the pending chain's pass
    return _reduce(SUM, x, axis, keepdims)


@accepts_dim
def mean(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Tensor:
    """Arithmetic mean over ``axis``, as ``numpy.mean``. Example: ``gg.mean(x, axis=-1)``."""
    x = as_tensor_operand(x)
    if dtype is not None:
        x = x.astype(dtype)
    elif x.dtype.kind in "biu":
        x = x.astype(np.float64)
    elif axis is None and not keepdims and x._lazy is not None and STATE.fuse:
        return _fusion.reduce_all(x, "mean")
    return _reduce(MEAN, x, axis, keepdims)


@accepts_dim
def max(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis`` (``numpy.amax``); ties share the gradient equally."""
    return _reduce(AMAX, x, axis, keepdims)


@accepts_dim
def min(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis`` (``numpy.amin``); ties share the gradient equally."""
    return _reduce(AMIN, x, axis, keepdims)


amax = max
amin = min


@accepts_dim
def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``; the gradient is exact also where elements are zero."""
    return _reduce(PROD, x, axis, keepdims)


@accepts_dim
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, computed stably. Example: ``gg.logsumexp(logits, axis=-1)``."""
    x = as_tensor_operand(x)
    axes = normalize_axis(axis, x.ndim, "logsumexp")
    out_shape = tuple(s for i, s in enumerate(x.shape) if axes is not None and i not in axes)
    return apply(LOGSUMEXP, (x,), {"axis": axes, "keepdims": bool(keepdims), "shape": x.shape,
                                   "out_shape": out_shape})


def _deviations(x: Any, axis: Any, name: str) -> tuple[Tensor, Any, int]:
    """(x minus its mean over ``axis``, the normalised axes, the count of each group)."""
    x = as_tensor_operand(x)
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    axes = normalize_axis(axis, x.ndim, name)
    return x - mean(x, axes, keepdims=True), axes, count(x.shape, axes)


@accepts_dim
def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """Variance over ``axis`` with NumPy's default ``ddof=0``. Example: ``x.var(axis=0, ddof=1)``."""
    centered, axes, n = _deviations(x, axis, "var")
    if centered.dtype.kind == "c":  # the mean squared modulus (a real result), as NumPy
        from gpugrad.ops.complex import conj, real

        return sum(real(centered * conj(centered)), axes, keepdims) / (n - ddof)
    return sum(centered * centered, axes, keepdims) / (n - ddof)


@accepts_dim
def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """Standard deviation over ``axis`` (``ddof=0`` by default, as NumPy). Computed as the norm of
    the deviations, so its gradient is 0 (not NaN) where all values are equal, as PyTorch's."""
    centered, axes, n = _deviations(x, axis, "std")
    if centered.dtype.kind == "c":
        from gpugrad.ops.complex import abs as modulus

        centered = modulus(centered)
    scale = 1.0 / np.sqrt(n - ddof) if n - ddof > 0 else np.inf
    return apply(NORM2, (centered,), {"axis": axes, "keepdims": bool(keepdims), "shape": centered.shape}) * scale


@accepts_dim
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A002
    """Vector or matrix norm with ``numpy.linalg.norm``'s meaning of ``ord`` and ``axis``.

    Vector ords: None/2, 1, inf, -inf, 0 (count, no gradient), any p. Matrix ords (2-D, or a pair
    of axes): None/'fro', 1, -1, inf, -inf. Example: ``gg.norm(w)``, ``gg.norm(x, axis=1)``.
    """
    from gpugrad.ops import elementwise as ew

    x = as_tensor_operand(x)
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    nd = x.ndim
    if x.dtype.kind == "c":
        matrix = (axis is None and ord is not None and nd == 2) or (
            axis is not None and not isinstance(axis, (int, np.integer)) and len(tuple(axis)) == 2)
        if not (matrix and isinstance(ord, (str, int, np.integer)) and ord in ("nuc", 2, -2)):
            from gpugrad.ops.complex import abs as modulus

            return norm(modulus(x), ord, axis, keepdims)  # every other norm is one of the moduli
    if axis is None:
        if ord is None:
            return apply(NORM2, (x,), {"axis": None, "keepdims": bool(keepdims), "shape": x.shape})
        if nd == 1:
            axis = (0,)
        elif nd == 2:
            axis = (0, 1)
        else:
            raise ShapeError(f"norm: ord={ord!r} needs a 1-D or 2-D input or an explicit axis, got {nd}-D")
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if ord is None:  # the 2-norm of the elements over any set of axes (Frobenius for two)
        return apply(NORM2, (x,), {"axis": normalize_axis(axes, nd, "norm"), "keepdims": bool(keepdims),
                                   "shape": x.shape})
    if len(axes) == 1:
        (a,) = normalize_axis(axes, nd, "norm")
        ax = (a,)
        if ord is None or ord == 2:
            return apply(NORM2, (x,), {"axis": ax, "keepdims": bool(keepdims), "shape": x.shape})
        if ord == np.inf:
            return max(ew.abs(x), ax, keepdims)
        if ord == -np.inf:
            return min(ew.abs(x), ax, keepdims)
        if ord == 0:
            return sum(ew.not_equal(x, 0).astype(x.dtype), ax, keepdims)
        if ord == 1:
            return sum(ew.abs(x), ax, keepdims)
        if isinstance(ord, str):
            raise GpugradError(f"norm: ord={ord!r} is a matrix norm; vector norms take a number")
        total = sum(ew.pow(ew.abs(x), ord), ax, keepdims)
        zero = ew.equal(total, 0)  # gradient 0 at the zero vector (as PyTorch), not 0 * inf
        return ew.where(zero, 0, ew.pow(ew.where(zero, 1, total), 1.0 / ord))
    if len(axes) == 2:
        r, c = (normalize_one_axis(a, nd, "norm") for a in axes)
        if r == c:
            raise ShapeError("norm: the two axes of a matrix norm must differ")
        both = tuple(sorted((r, c)))
        if ord is None or ord == "fro":
            return apply(NORM2, (x,), {"axis": both, "keepdims": bool(keepdims), "shape": x.shape})
        if ord in (1, -1, np.inf, -np.inf):
            inner, outer = (r, c) if ord in (1, -1) else (c, r)
            s = sum(ew.abs(x), inner, True)
            red = max(s, outer, True) if ord in (1, np.inf) else min(s, outer, True)
            return red if keepdims else squeeze_axes(red, both)
        if isinstance(ord, (str, int, np.integer)) and ord in ("nuc", 2, -2):  # from the singular values
            from gpugrad.ops.decomp import svd
            from gpugrad.ops.shape import moveaxis, reshape

            s = svd(moveaxis(x, (r, c), (-2, -1)), compute_uv=False)
            red = sum(s, -1) if ord == "nuc" else (max(s, -1) if ord == 2 else min(s, -1))
            if keepdims:
                red = reshape(red, tuple(1 if i in both else n for i, n in enumerate(x.shape)))
            return red
        raise GpugradError(f"norm: invalid matrix norm ord={ord!r}; use 'fro', 'nuc', 1, -1, 2, -2, inf or -inf")
    raise ShapeError(f"norm: axis must be an int or a pair of ints, got {axis!r}")


def squeeze_axes(x: Tensor, axes: tuple[int, ...]) -> Tensor:
    from gpugrad.ops.shape import reshape

    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def _flat_axis(x: Tensor, axis: Any, name: str) -> tuple[Tensor, int]:
    from gpugrad.ops.shape import reshape

    if axis is None:
        return reshape(x, (-1,)), 0
    return x, normalize_one_axis(axis, x.ndim, name)


@accepts_dim
def cumsum(x: Any, axis: int | None = None) -> Tensor:
    """Cumulative sum along ``axis`` (the flattened array when None), as ``numpy.cumsum``."""
    x, a = _flat_axis(as_tensor_operand(x), axis, "cumsum")
    return apply(CUMSUM, (x,), {"axis": a})


@accepts_dim
def cumprod(x: Any, axis: int | None = None) -> Tensor:
    """Cumulative product along ``axis`` (the flattened array when None), as ``numpy.cumprod``."""
    x, a = _flat_axis(as_tensor_operand(x), axis, "cumprod")
    return apply(CUMPROD, (x,), {"axis": a})


@accepts_dim
def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum (no gradient), as ``numpy.argmax``."""
    x = as_tensor_operand(x)
    a = None if axis is None else normalize_one_axis(axis, x.ndim, "argmax")
    return apply(ARGMAX, (x,), {"axis": a, "keepdims": bool(keepdims)})


@accepts_dim
def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum (no gradient), as ``numpy.argmin``."""
    x = as_tensor_operand(x)
    a = None if axis is None else normalize_one_axis(axis, x.ndim, "argmin")
    return apply(ARGMIN, (x,), {"axis": a, "keepdims": bool(keepdims)})


@accepts_dim
def any(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    x = as_tensor_operand(x)
    return apply(ANY, (x,), {"axis": normalize_axis(axis, x.ndim, "any"), "keepdims": bool(keepdims)})


@accepts_dim
def all(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    x = as_tensor_operand(x)
    return apply(ALL, (x,), {"axis": normalize_axis(axis, x.ndim, "all"), "keepdims": bool(keepdims)})
