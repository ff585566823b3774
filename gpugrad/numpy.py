"""A drop-in NumPy namespace whose functions are differentiable.

``import gpugrad.numpy as np`` and write NumPy code; inside ``gg.grad`` (or on tensors) the
functions run as gpugrad ops and are recorded, outside they are plain NumPy (NumPy in, NumPy
out; CuPy arrays in, CuPy out). Names NumPy has but this namespace does not provide raise an
AttributeError naming them, so a missing function is never a silent wrong gradient.

Example::

    import gpugrad as gg
    import gpugrad.numpy as np

    def loss(w, X, y):
        return np.mean(np.log1p(np.exp(-y * np.dot(X, w))))
    g = gg.grad(loss)(np.zeros(3), X, y)
"""

from __future__ import annotations

import builtins
import functools
import types
from collections.abc import Callable
from typing import Any

import numpy as _np

import gpugrad.ops as _ops
from gpugrad.tensor import Tensor

newaxis = None
pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
euler_gamma = _np.euler_gamma

float16 = _np.float16
float32 = _np.float32
float64 = _np.float64
int8 = _np.int8
int16 = _np.int16
int32 = _np.int32
int64 = _np.int64
uint8 = _np.uint8
bool_ = _np.bool_
ndarray = _np.ndarray
dtype = _np.dtype
random = _np.random  # random numbers are constants for differentiation


def _has_tensor(args: tuple, kwargs: dict) -> bool:
    for a in args:
        if isinstance(a, Tensor):
            return True
        if isinstance(a, (list, tuple)) and builtins.any(isinstance(b, Tensor) for b in a):
            return True
    return builtins.any(isinstance(v, Tensor) for v in kwargs.values())


def _array_module(args: tuple) -> Any:
    for a in args:
        items = a if isinstance(a, (list, tuple)) else (a,)
        for item in items:
            if type(item).__module__.startswith("cupy"):
                import cupy

                return cupy
    return _np


def _dual(name: str, gg_fn: Callable[..., Any], np_name: str | None = None) -> Callable[..., Any]:
    """NumPy's function on arrays, gpugrad's on tensors."""
    np_fn_name = np_name or name

    def fn(*args: Any, **kwargs: Any) -> Any:
        if _has_tensor(args, kwargs):
            return gg_fn(*args, **kwargs)
        target = _array_module(args)
        for part in np_fn_name.split("."):
            target = getattr(target, part)
        return target(*args, **kwargs)

    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = f"``numpy.{np_fn_name}``, differentiable on gpugrad tensors."
    return fn


_SAME = [
    # elementwise
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "power", "floor_divide",
    "remainder", "mod", "maximum", "minimum", "where", "abs", "absolute", "sign", "exp", "exp2",
    "expm1", "log", "log2", "log10", "log1p", "sqrt", "cbrt", "square", "reciprocal", "sin", "cos",
    "tan", "arcsin", "arccos", "arctan", "arctan2", "hypot", "sinh", "cosh", "tanh", "arcsinh",
    "arccosh", "arctanh", "floor", "ceil", "rint", "trunc", "logaddexp", "isnan", "isfinite",
    "isinf", "logical_and", "logical_or", "logical_xor", "logical_not", "equal", "not_equal",
    "less", "less_equal", "greater", "greater_equal",
    # reductions
    "sum", "mean", "prod", "amax", "amin", "var", "std", "argmax", "argmin", "cumsum", "cumprod",
    "any", "all",
    # shape
    "reshape", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze", "broadcast_to",
    "concatenate", "stack", "hstack", "vstack", "split", "array_split", "ravel", "flip", "roll",
    "repeat", "tile", "pad", "diag", "diagonal", "trace", "tril", "triu", "atleast_1d", "atleast_2d",
    # linear algebra
    "dot", "vdot", "inner", "outer", "tensordot", "einsum", "matmul",
]

for _name in _SAME:
    globals()[_name] = _dual(_name, getattr(_ops, _name))
del _name


def _gg_round(x: Any, decimals: int = 0) -> Any:
    return _ops.round(x, decimals)


round = _dual("round", _gg_round)  # noqa: A001
around = round
max = _dual("max", _ops.max)  # noqa: A001
min = _dual("min", _ops.min)  # noqa: A001


def clip(a: Any, a_min: Any = None, a_max: Any = None, **kwargs: Any) -> Any:
    """``numpy.clip``; the gradient passes where a_min <= a <= a_max."""
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if _has_tensor((a, a_min, a_max), {}):
        return _ops.clip(a, a_min, a_max)
    return _array_module((a,)).clip(a, a_min, a_max, **kwargs)


def sort(a: Any, axis: int = -1) -> Any:
    """``numpy.sort``; differentiable (the gradient goes back to each element's old position)."""
    if not isinstance(a, Tensor):
        return _array_module((a,)).sort(a, axis=axis)
    if axis is None:
        a = _ops.ravel(a)
        axis = 0
    idx = argsort(a, axis)
    return take_along_axis(a, idx, axis)


def argsort(a: Any, axis: int = -1) -> Any:
    """``numpy.argsort`` (integer result, no gradient)."""
    if isinstance(a, Tensor):
        from gpugrad.tensor import make_tensor

        xp = _array_module((a.data,))
        return make_tensor(xp.argsort(a.data, axis=axis, kind="stable"), a.device)
    return _array_module((a,)).argsort(a, axis=axis)


def take_along_axis(arr: Any, indices: Any, axis: int) -> Any:
    """``numpy.take_along_axis``, differentiable in ``arr``."""
    if not isinstance(arr, Tensor):
        ind = indices.numpy() if isinstance(indices, Tensor) else indices
        return _array_module((arr,)).take_along_axis(arr, ind, axis)
    from gpugrad.backends import backend_for

    ind = indices.data if isinstance(indices, Tensor) else backend_for(arr.device).asarray(indices)
    axis = axis % arr.ndim
    xp = backend_for(arr.device).xp
    grids = xp.ix_(*[xp.arange(n) for n in ind.shape]) if ind.ndim else ()
    index = tuple(ind if i == axis else grids[i] for i in range(arr.ndim))
    return _ops.getitem(arr, index)


def take(a: Any, indices: Any, axis: int | None = None) -> Any:
    if isinstance(a, Tensor):
        return _ops.take(a, indices, axis)
    return _array_module((a,)).take(a, indices, axis=axis)


def array(obj: Any, dtype: Any = None, copy: bool = True, **kwargs: Any) -> Any:
    """``numpy.array``; a list holding tensors becomes a differentiable stack of them."""
    if isinstance(obj, Tensor):
        return obj.astype(dtype) if dtype is not None else (_ops.copy(obj) if copy else obj)
    if isinstance(obj, (list, tuple)) and _nested_has_tensor(obj):
        t = _stack_nested(obj)
        return t.astype(dtype) if dtype is not None else t
    return _np.array(obj, dtype=dtype, copy=copy, **kwargs)


def asarray(obj: Any, dtype: Any = None, **kwargs: Any) -> Any:
    """``numpy.asarray``; tensors stay tensors (still on the tape)."""
    if isinstance(obj, Tensor):
        return obj if dtype is None else obj.astype(dtype)
    if isinstance(obj, (list, tuple)) and _nested_has_tensor(obj):
        return array(obj, dtype=dtype)
    return _np.asarray(obj, dtype=dtype, **kwargs)


def _nested_has_tensor(obj: Any) -> bool:
    for item in obj:
        if isinstance(item, Tensor):
            return True
        if isinstance(item, (list, tuple)) and _nested_has_tensor(item):
            return True
    return False


def _stack_nested(obj: Any) -> Tensor:
    like = _first_tensor(obj)
    parts = [(_stack_nested(o) if isinstance(o, (list, tuple)) else o) for o in obj]
    parts = [p if isinstance(p, Tensor) else _ops.astype(_as_const(p, like), like.dtype) for p in parts]
    return _ops.stack(parts, 0)


def _first_tensor(obj: Any) -> Tensor:
    for item in obj:
        if isinstance(item, Tensor):
            return item
        if isinstance(item, (list, tuple)):
            found = _first_tensor(item)
            if found is not None:
                return found
    return None  # type: ignore[return-value]


def _as_const(value: Any, like: Tensor) -> Tensor:
    from gpugrad.factories import as_tensor

    return as_tensor(_np.asarray(value), device=like.device)


def _creation(name: str) -> Callable[..., Any]:
    np_fn = getattr(_np, name)

    @functools.wraps(np_fn)
    def fn(*args: Any, **kwargs: Any) -> Any:
        return np_fn(*args, **kwargs)

    return fn


for _name in ("zeros", "ones", "empty", "full", "arange", "linspace", "logspace", "eye", "identity",
              "meshgrid", "indices", "copy"):
    globals()[_name] = _creation(_name)
del _name


def _like(name: str) -> Callable[..., Any]:
    np_fn = getattr(_np, name)
    gg_name = name

    def fn(a: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(a, Tensor):
            from gpugrad import factories

            return getattr(factories, gg_name)(a, *args, **kwargs)
        return np_fn(a, *args, **kwargs)

    fn.__name__ = name
    return fn


zeros_like = _like("zeros_like")
ones_like = _like("ones_like")
empty_like = _like("empty_like")
full_like = _like("full_like")


def shape(a: Any) -> tuple:
    return tuple(a.shape) if isinstance(a, Tensor) else _np.shape(a)


def ndim(a: Any) -> int:
    return a.ndim if isinstance(a, Tensor) else _np.ndim(a)


def size(a: Any) -> int:
    return a.size if isinstance(a, Tensor) else _np.size(a)


def _plain(x: Any) -> Any:
    return x.numpy() if isinstance(x, Tensor) else x


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """``numpy.allclose`` (a plain bool; tensors are compared by value)."""
    return bool(_np.allclose(_plain(a), _plain(b), rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> Any:
    return _np.isclose(_plain(a), _plain(b), rtol=rtol, atol=atol, equal_nan=equal_nan)


def array_equal(a: Any, b: Any) -> bool:
    return bool(_np.array_equal(_plain(a), _plain(b)))


def nonzero(a: Any) -> tuple:
    return _np.nonzero(_plain(a))


def count_nonzero(a: Any, axis: Any = None) -> Any:
    return _np.count_nonzero(_plain(a), axis=axis)


def _linalg_norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    return _ops.norm(x, ord, axis, keepdims)


linalg = types.ModuleType("gpugrad.numpy.linalg", "Differentiable numpy.linalg: norm, inv, det, solve, slogdet.")
linalg.norm = _dual("norm", _linalg_norm, "linalg.norm")
linalg.inv = _dual("inv", _ops.inv, "linalg.inv")
linalg.det = _dual("det", _ops.det, "linalg.det")
linalg.solve = _dual("solve", _ops.solve, "linalg.solve")
linalg.slogdet = _dual("slogdet", _ops.slogdet, "linalg.slogdet")
for _fn in ("norm", "inv", "det", "solve", "slogdet"):
    getattr(linalg, _fn).__name__ = _fn


def _linalg_getattr(name: str) -> Any:
    raise AttributeError(
        f"gpugrad.numpy.linalg.{name} is not provided (available: norm, inv, det, solve, slogdet); "
        "use numpy.linalg directly for values you do not differentiate"
    )


linalg.__getattr__ = _linalg_getattr  # type: ignore[attr-defined]


def __getattr__(name: str) -> Any:
    if hasattr(_np, name):
        raise AttributeError(
            f"gpugrad.numpy.{name} is not provided, so it cannot be differentiated; use numpy.{name} "
            "on plain arrays, or open an issue if you need its gradient"
        )
    raise AttributeError(f"module 'gpugrad.numpy' has no attribute {name!r}")
