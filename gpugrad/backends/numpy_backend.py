"""The NumPy backend: ``device="cpu"``.

This module is itself the array namespace that op rules are written against in fast mode: the
names below (``sum``, ``sum_to``, ``broadcast_to``, ``getitem``, ``index_scatter``, ``exp`` ...)
have the same meaning as the differentiable functions of :mod:`gpugrad.ops`, on raw arrays.
Elementwise ops run their declared expressions with NumPy ufuncs; float16 is computed in
float32 and rounded once, as the CUDA kernels do.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from gpugrad.backends._erf import erf as _erf

name = "cpu"
xp = np
TAG = "numpy"

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_ndarray = np.ndarray


try:  # one ufunc instead of four passes
    from scipy.special import expit as _expit
except ImportError:  # pragma: no cover - depends on the environment
    _expit = None


def _sigmoid(x: Any) -> Any:
    if _expit is not None and getattr(x, "dtype", None) is not None and x.dtype.kind == "f":
        return _expit(x)
    if x.__class__ is np.ndarray and x.dtype.kind == "f":
        t = np.negative(x)
        np.exp(t, out=t)
        t += 1
        return np.reciprocal(t, out=t)
    return 1 / (1 + np.exp(-x))


def _rsqrt(x: Any) -> Any:
    return 1 / np.sqrt(x)


def _zeros_like(x: Any) -> Any:
    return np.zeros_like(x)


# The expression language's functions (gpugrad.ops.expr.FUNCTIONS) as NumPy callables.
EXPR_FUNCTIONS: dict[str, Any] = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "rsqrt": _rsqrt, "cbrt": np.cbrt,
    "abs": np.abs, "sign": np.sign, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan, "sinh": np.sinh,
    "cosh": np.cosh, "tanh": np.tanh, "arcsinh": np.arcsinh, "arccosh": np.arccosh,
    "arctanh": np.arctanh, "sigmoid": _sigmoid, "erf": _erf, "floor": np.floor, "ceil": np.ceil,
    "rint": np.rint, "trunc": np.trunc, "isnan": np.isnan, "isfinite": np.isfinite,
    "isinf": np.isinf, "logical_not": np.logical_not, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor, "where": np.where,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum, "arctan2": np.arctan2,
    "hypot": np.hypot, "floordiv": np.floor_divide, "mod": np.remainder,
    "zeros_like": _zeros_like,
}


# ---------------------------------------------------------------------------------------------
# elementwise ops


def _params(op: Any, params: dict) -> list:
    return [params[p] for p in op.param_names]


def forward_function(op: Any, dt: np.dtype) -> Any:
    """The op's forward for inputs of dtype ``dt``, compiled once and cached on the op.

    Float constants are 0-d arrays of ``dt`` (NumPy's fastest operand; no upcast); integer
    dtypes use Python numbers (weak, so 0.5 stays 0.5); float16 computes in float32 and rounds
    once, as the CUDA kernels do.
    """
    if dt == _F16:
        inner = op.python_function("fwd", _F32, EXPR_FUNCTIONS, TAG, "array")
        is_bool = op.kind == "bool"

        def fn(*args: Any) -> Any:
            up = [a.astype(_F32) if getattr(a, "dtype", None) == _F16 else a for a in args]
            out = np.asarray(inner(*up))
            return out if is_bool else out.astype(_F16)
    elif dt.kind == "f":
        fn = op.python_function("fwd", dt, EXPR_FUNCTIONS, TAG, "array")
    else:
        fn = op.python_function("fwd", None, EXPR_FUNCTIONS, TAG + "-py")
    op.np_fwd[dt] = fn
    return fn


def vjp_functions(op: Any, dt: np.dtype) -> list:
    """Per input, the function computing its gradient from (g, inputs..., out, params...)."""
    fns = []
    for i, name in enumerate(op.inputs):
        if name not in op.d:
            fns.append(None)
        elif dt == _F16:
            fns.append(_half(op.python_function(("vjp", i), _F32, EXPR_FUNCTIONS, TAG, "array")))
        elif dt.kind == "f":
            fns.append(op.python_function(("vjp", i), dt, EXPR_FUNCTIONS, TAG, "array"))
        else:
            fns.append(op.python_function(("vjp", i), None, EXPR_FUNCTIONS, TAG + "-py"))
    op.np_vjp[dt] = fns
    return fns


def _half(inner: Any) -> Any:
    def fn(*args: Any) -> Any:
        up = [a.astype(_F32) if getattr(a, "dtype", None) == _F16 else a for a in args]
        return np.asarray(inner(*up)).astype(_F16)

    return fn


def ew_forward(op: Any, dt: np.dtype, args: list, params: dict) -> Any:
    fn = op.np_fwd.get(dt)
    if fn is None:
        fn = forward_function(op, dt)
    out = fn(*args, *[params[p] for p in op.param_names]) if params else fn(*args)
    if out.__class__ is not _ndarray:
        out = np.asarray(out)
    return out


def ew_vjp(op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
    return op.vjp(sys.modules[__name__], g, args, out, params, needs)


# ---------------------------------------------------------------------------------------------
# the array namespace used by op rules (same names and meaning as gpugrad.ops)

for _name, _fn in EXPR_FUNCTIONS.items():
    globals()[_name] = _fn
del _name, _fn

negative = np.negative
square = np.square
reciprocal = np.reciprocal
matmul = np.matmul
einsum = np.einsum
concatenate = np.concatenate
zeros_like = np.zeros_like
ones_like = np.ones_like
broadcast_to = np.broadcast_to
expand_dims = np.expand_dims
swapaxes = np.swapaxes
flip = np.flip
cumsum = np.cumsum
cumprod = np.cumprod
stack = np.stack
tensordot = np.tensordot
diagonal = np.diagonal


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return np.asarray(np.sum(x, axis=axis, keepdims=keepdims))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.asarray(np.mean(x, axis=axis, keepdims=keepdims))


def amax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.asarray(np.amax(x, axis=axis, keepdims=keepdims))


def reshape(x: Any, shape: Any) -> Any:
    return np.reshape(x, shape)


def transpose(x: Any, axes: Any = None) -> Any:
    return np.transpose(x, axes)


def astype(x: Any, dtype: Any) -> Any:
    return np.asarray(x).astype(dtype, copy=False)


def sum_to(x: Any, shape: tuple) -> Any:
    """Sum ``x`` over the axes it was broadcast along so that it has ``shape``."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1
    )
    out = np.sum(x, axis=axes, keepdims=True) if axes else x
    if lead:
        out = out.reshape(out.shape[lead:])
    return np.asarray(out).reshape(shape)


def new_zeros(like: Any, shape: tuple) -> Any:
    return np.zeros(shape, dtype=like.dtype)


def getitem(x: Any, index: Any) -> Any:
    return np.asarray(x[index])


def index_scatter(values: Any, shape: tuple, index: Any) -> Any:
    """zeros(shape) with ``values`` added at ``index`` (repeated indices accumulate)."""
    out = np.zeros(shape, dtype=values.dtype)
    if _is_basic(index):
        out[index] += values
    else:
        np.add.at(out, index, values)
    return out


def index_put(x: Any, index: Any, values: Any) -> Any:
    """A copy of ``x`` with ``x[index] = values``."""
    out = np.array(x, copy=True)
    out[index] = values
    return out


def take(x: Any, indices: Any, axis: int) -> Any:
    return np.take(x, indices, axis=axis)


def take_scatter(values: Any, shape: tuple, indices: Any, axis: int) -> Any:
    """The transpose of ``take``: zeros(shape) with ``values`` added along ``axis`` at ``indices``."""
    out = np.zeros(shape, dtype=values.dtype)
    moved = np.moveaxis(out, axis, 0)
    vals = np.moveaxis(values, list(range(axis, axis + np.ndim(indices))), list(range(np.ndim(indices))))
    vals = vals.reshape((-1,) + moved.shape[1:])
    np.add.at(moved, np.ravel(indices), vals)
    return out


def pad(x: Any, pad_width: Any) -> Any:
    return np.pad(x, pad_width)


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if not (item is None or item is Ellipsis or isinstance(item, (int, np.integer, slice))):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# arrays, transfers, checks


def asarray(data: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(data, dtype=dtype)


def array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    return np.array(data, dtype=dtype, copy=copy)


def to_host(x: np.ndarray) -> np.ndarray:
    return x


def from_host(x: np.ndarray) -> np.ndarray:
    return x


def all_finite(x: Any) -> bool:
    return bool(np.isfinite(x).all())


def synchronize() -> None:
    """Nothing to wait for on the CPU."""


# ---------------------------------------------------------------------------------------------
# fused neural-network primitives


def softmax(x: Any, axis: int) -> Any:
    m = np.max(x, axis=axis, keepdims=True) if x.size else 0
    e = np.exp(x - np.where(np.isfinite(m), m, 0))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def log_softmax(x: Any, axis: int) -> Any:
    m = np.max(x, axis=axis, keepdims=True) if x.size else 0
    shifted = x - np.where(np.isfinite(m), m, 0)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# comparisons used by rules
equal = np.equal
not_equal = np.not_equal
less = np.less
greater = np.greater


def new_eye(like: Any, n: int) -> Any:
    return np.eye(n, dtype=like.dtype)


def new_ones(like: Any, shape: tuple) -> Any:
    return np.ones(shape, dtype=like.dtype)


def to_device(x: Any, device: str) -> Any:
    from gpugrad.backends import backend_for

    return backend_for(device).from_host(np.asarray(x))


def solve(a: Any, b: Any) -> Any:
    return np.linalg.solve(a, b)


def inv(a: Any) -> Any:
    return np.linalg.inv(a)


# ---------------------------------------------------------------------------------------------
# Fused nn primitives, the same functions the CUDA backend runs as single kernels
# (kernels/softmax.cu, kernels/cross_entropy.cu). Maintained with the CUDA backend: keep the
# two in step (docs/DEVELOPING.md has the contract).


def softmax_backward(g: Any, y: Any, axis: int) -> Any:
    """Gradient of softmax from its output ``y``: y * (g - sum(g * y, axis))."""
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


def log_softmax_backward(g: Any, y: Any, axis: int) -> Any:
    """Gradient of log_softmax from its output ``y``: g - exp(y) * sum(g, axis)."""
    return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)


def _ce_check(logits: Any, labels: Any) -> np.dtype:
    from gpugrad.errors import DTypeError, ShapeError

    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ShapeError(
            f"cross_entropy: expected logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}"
        )
    if logits.dtype.kind != "f":
        raise DTypeError(f"cross_entropy: logits must be floating point, got {logits.dtype}")
    if labels.dtype.kind not in "iu":
        raise DTypeError(f"cross_entropy: labels must be integers, got {labels.dtype}")
    return _F32 if logits.dtype == _F16 else logits.dtype


def cross_entropy_logits(logits: Any, labels: Any, ignore_index: int = -100,
                         label_smoothing: float = 0.0) -> tuple[Any, Any]:
    """Mean softmax cross-entropy of ``logits`` (N, C) against integer ``labels`` (N,).

    Rows whose label is ``ignore_index`` count for nothing; the mean is over the others (NaN
    when there are none, as PyTorch). With label smoothing eps the row loss is
    ``(1 - eps) * (lse - x[label]) + eps * (lse - mean(x))`` (PyTorch's definition). A label
    outside [0, C) raises here (the CUDA kernel, which cannot raise, gives NaN).
    Returns ``(loss, stats)``: the 0-d loss in logits' dtype and what the backward needs
    (row log-sum-exp, then the number of counted rows; float32 for float16 logits).
    """
    acc = _ce_check(logits, labels)
    n, c = logits.shape
    x = logits.astype(acc, copy=False)
    valid = labels != ignore_index
    if np.any(valid & ((labels < 0) | (labels >= c))):
        from gpugrad.errors import ShapeError

        bad = int(labels[valid & ((labels < 0) | (labels >= c))][0])
        raise ShapeError(f"cross_entropy: label {bad} is out of range for {c} classes")
    with np.errstate(all="ignore"):
        m = np.max(x, axis=1, keepdims=True) if x.size else np.zeros((n, 1), acc)
        m = np.where(np.isfinite(m), m, 0)
        lse = (np.log(np.sum(np.exp(x - m), axis=1, keepdims=True)) + m)[:, 0]
        picked = np.take_along_axis(x, np.where(valid, labels, 0)[:, None].astype(np.int64), 1)[:, 0] if c else lse
        row = (1 - label_smoothing) * (lse - picked)
        if label_smoothing:
            row = row + label_smoothing * (lse - np.mean(x, axis=1))
        count = acc.type(np.count_nonzero(valid))
        loss = np.asarray(np.sum(np.where(valid, row, 0), dtype=acc) / count).astype(logits.dtype)
    stats = np.concatenate([lse.astype(acc), np.asarray([count], dtype=acc)])
    return loss, stats


def cross_entropy_logits_backward(g: Any, logits: Any, labels: Any, stats: Any, ignore_index: int = -100,
                                  label_smoothing: float = 0.0) -> Any:
    """d loss / d logits of :func:`cross_entropy_logits`, times the 0-d upstream gradient ``g``:
    ``g / count * (softmax - (1 - eps) * onehot(label) - eps / C)`` on counted rows, 0 elsewhere."""
    acc = _ce_check(logits, labels)
    n, c = logits.shape
    x = logits.astype(acc, copy=False)
    valid = labels != ignore_index
    with np.errstate(all="ignore"):
        p = np.exp(x - stats[:n, None])
        rows = np.nonzero(valid)[0]
        p[rows, labels[rows]] -= acc.type(1 - label_smoothing)
        if label_smoothing:
            p -= acc.type(label_smoothing / c)
        p *= acc.type(np.asarray(g, dtype=acc) / stats[n])
    p[~valid] = 0
    return p.astype(logits.dtype, copy=False)
