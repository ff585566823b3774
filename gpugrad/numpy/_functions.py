"""The NumPy functions gpugrad.numpy adds, written as compositions of gpugrad ops, so each one's
gradient (and forward-mode tangent) follows from those ops' rules on every backend.

Each is called with at least one Tensor among its arguments (gpugrad.numpy calls NumPy's own
function otherwise) and follows NumPy's semantics for the arguments it accepts.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

import gpugrad.ops as ops
from gpugrad.errors import GpugradError, ShapeError
from gpugrad.ops._util import as_tensor_operand, normalize_axis, normalize_one_axis
from gpugrad.tensor import Tensor, make_tensor


def _t(x: Any, like: Any = None) -> Tensor:
    """``x`` as a tensor on ``like``'s device; a list of numbers has NumPy's dtype (float64)."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    return as_tensor_operand(x, like if isinstance(like, Tensor) else None)


def _slice_axis(x: Tensor, axis: int, start: Any, stop: Any, step: Any = None) -> Tensor:
    return ops.getitem(x, (slice(None),) * axis + (slice(start, stop, step),))


def _values(x: Tensor) -> np.ndarray:
    """The values of ``x`` on the host, for index computations (no gradient flows through them)."""
    return x.data if x.device == "cpu" else x.data.get()


# ---------------------------------------------------------------------------------------------
# differences, statistics


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Tensor:
    """n-th discrete difference along ``axis``; ``prepend``/``append`` values are joined first."""
    a = _t(a, prepend if isinstance(prepend, Tensor) else append)
    ax = normalize_one_axis(axis, a.ndim, "diff")

    def edge(extra: Any) -> Tensor:
        e = _t(extra, a)
        return ops.broadcast_to(e, a.shape[:ax] + (1,) + a.shape[ax + 1:]) if e.ndim == 0 else e

    parts = ([edge(prepend)] if prepend is not None else []) + [a] + ([edge(append)] if append is not None else [])
    if len(parts) > 1:
        a = ops.concatenate(parts, ax)
    for _ in range(int(n)):
        a = _slice_axis(a, ax, 1, None) - _slice_axis(a, ax, None, -1)
    return a


def _sorted_along(a: Tensor, axis: int) -> Tensor:
    return take_along_axis(a, _argsort_values(a, axis), axis)


def _argsort_values(a: Tensor, axis: int) -> Any:
    from gpugrad.backends import backend_for

    return backend_for(a.device).xp.argsort(a.data, axis=axis, kind="stable")


def sort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None) -> Tensor:
    """Sorted copy; the gradient goes back to each element's position before sorting."""
    a = _t(a)
    if axis is None:
        a, axis = ops.ravel(a), 0
    return _sorted_along(a, normalize_one_axis(axis, a.ndim, "sort"))


def take_along_axis(arr: Any, indices: Any, axis: Any) -> Tensor:
    """``arr`` picked at ``indices`` along ``axis`` (differentiable in ``arr``)."""
    from gpugrad.backends import backend_for

    arr = _t(arr)
    B = backend_for(arr.device)
    ind = indices.data if isinstance(indices, Tensor) else B.asarray(indices)
    if axis is None:
        arr, axis = ops.ravel(arr), 0
    axis = normalize_one_axis(axis, arr.ndim, "take_along_axis")
    if ind.ndim != arr.ndim:
        raise ShapeError(f"take_along_axis: indices have {ind.ndim} dims but the array has {arr.ndim}")
    xp = B.xp
    shape = np.broadcast_shapes(tuple(s if i != axis else 1 for i, s in enumerate(arr.shape)),
                                tuple(s if i != axis else 1 for i, s in enumerate(ind.shape)))
    shape = tuple(ind.shape[i] if i == axis else s for i, s in enumerate(shape))
    ind = xp.broadcast_to(ind, shape)
    grids = xp.ix_(*[xp.arange(n) for n in shape])
    index = tuple(ind if i == axis else grids[i] for i in range(arr.ndim))
    if any(arr.shape[i] == 1 and shape[i] != 1 for i in range(arr.ndim) if i != axis):
        arr = ops.broadcast_to(arr, tuple(shape[i] if i != axis else arr.shape[i] for i in range(arr.ndim)))
    return ops.getitem(arr, index)


def partition(a: Any, kth: Any, axis: int = -1, kind: str = "introselect", order: Any = None) -> Tensor:
    """``numpy.partition``: the same arrangement as NumPy's (through ``argpartition``)."""
    from gpugrad.backends import backend_for

    a = _t(a)
    if axis is None:
        a, axis = ops.ravel(a), 0
    axis = normalize_one_axis(axis, a.ndim, "partition")
    idx = backend_for(a.device).xp.argpartition(a.data, kth, axis=axis)
    return take_along_axis(a, idx, axis)


def median(a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False,
           keepdims: bool = False) -> Tensor:
    """Median along ``axis``: the middle element, or the mean of the two middle ones."""
    _no_out(out, "median")
    a = _t(a)
    if axis is None:
        flat = ops.ravel(a)
        res = _median_last(flat)
        return ops.reshape(res, (1,) * a.ndim) if keepdims else res
    axes = normalize_axis(axis, a.ndim, "median")
    keep = [i for i in range(a.ndim) if i not in axes]
    moved = ops.transpose(a, keep + list(axes))
    moved = ops.reshape(moved, tuple(a.shape[i] for i in keep) + (-1,))
    res = _median_last(moved)
    if keepdims:
        res = ops.reshape(res, tuple(1 if i in axes else s for i, s in enumerate(a.shape)))
    return res


def _median_last(x: Tensor) -> Tensor:
    n = x.shape[-1]
    if n == 0:
        raise ShapeError("median: the reduced axis is empty")
    s = _sorted_along(x, x.ndim - 1)
    if n % 2:
        return ops.getitem(s, (Ellipsis, n // 2))
    return (ops.getitem(s, (Ellipsis, n // 2 - 1)) + ops.getitem(s, (Ellipsis, n // 2))) * 0.5


def average(a: Any, axis: Any = None, weights: Any = None, returned: bool = False, keepdims: bool = False) -> Any:
    """Weighted mean along ``axis``; with ``returned`` also the sum of the weights."""
    a = _t(a, weights)
    if weights is None:
        avg = ops.mean(a, axis, keepdims=keepdims)
        if returned:
            scale = a.size // max(avg.size, 1) if a.size else 0
            return avg, ops.astype(ops.zeros_like(avg) + scale, avg.dtype)
        return avg
    w = _t(weights, a)
    if w.shape != a.shape:
        if axis is None or w.ndim != 1:
            raise ShapeError(f"average: weights of shape {w.shape} need axis= for an array of shape {a.shape}")
        ax = normalize_one_axis(axis, a.ndim, "average")
        if w.shape[0] != a.shape[ax]:
            raise ShapeError(f"average: {w.shape[0]} weights for an axis of length {a.shape[ax]}")
        w = ops.reshape(w, tuple(-1 if i == ax else 1 for i in range(a.ndim)))
        w = ops.broadcast_to(w, a.shape)
    wsum = ops.sum(w, axis, keepdims=keepdims)
    avg = ops.sum(a * w, axis, keepdims=keepdims) / wsum
    return (avg, ops.broadcast_to(wsum, avg.shape)) if returned else avg


def _nan_zeroed(a: Tensor) -> Tensor:
    return ops.where(ops.isnan(a), 0, a) if a.dtype.kind in "fc" else a


def nansum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Tensor:
    """Sum treating NaN as zero (gradient 0 at the NaNs)."""
    _no_out(out, "nansum")
    return ops.sum(_nan_zeroed(_t(a)), axis, keepdims=keepdims, dtype=dtype)


def nanmean(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False) -> Tensor:
    """Mean of the non-NaN elements."""
    _no_out(out, "nanmean")
    a = _t(a)
    count = ops.sum(ops.astype(ops.logical_not(ops.isnan(a)), a.dtype if a.dtype.kind == "f" else np.float64),
                    axis, keepdims=keepdims)
    return ops.sum(_nan_zeroed(a), axis, keepdims=keepdims, dtype=dtype) / count


def nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> Tensor:
    """NaN and infinities replaced by numbers (gradient 1 where x is finite, 0 elsewhere)."""
    x = _t(x)
    if x.dtype.kind == "c":
        from gpugrad.ops.complex import imag, real

        re = nan_to_num(real(x), copy, nan, posinf, neginf)
        im = nan_to_num(imag(x), copy, nan, posinf, neginf)
        return re + im * 1j
    if x.dtype.kind != "f":
        return x
    big = np.finfo(x.dtype).max
    hi = big if posinf is None else posinf
    lo = -big if neginf is None else neginf
    out = ops.where(ops.isnan(x), nan, x)
    out = ops.where(ops.isinf(x) & (x > 0), hi, out)
    return ops.where(ops.isinf(x) & (x < 0), lo, out)


def ptp(a: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Range (max - min) along ``axis``."""
    a = _t(a)
    return ops.max(a, axis, keepdims) - ops.min(a, axis, keepdims)


def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """Central differences inside, one-sided at the edges (``edge_order=1``), as ``numpy.gradient``."""
    if edge_order != 1:
        raise GpugradError("gradient: only edge_order=1 is provided")
    f = _t(f)
    axes = list(range(f.ndim)) if axis is None else list(normalize_axis(axis, f.ndim, "gradient") if
                                                             not isinstance(axis, numbers.Integral) else
                                                             [normalize_one_axis(axis, f.ndim, "gradient")])
    if axis is not None and not isinstance(axis, numbers.Integral):
        axes = [normalize_one_axis(a, f.ndim, "gradient") for a in axis]
    spacing = list(varargs) if varargs else [1.0] * len(axes)
    if len(spacing) == 1 and len(axes) > 1:
        spacing = spacing * len(axes)
    outs = []
    for ax, h in zip(axes, spacing):
        if np.ndim(h) != 0:
            raise GpugradError("gradient: only scalar spacings are provided")
        n = f.shape[ax]
        if n < 2:
            raise ShapeError("gradient: each differentiated axis needs at least 2 samples")
        first = _slice_axis(f, ax, 1, 2) - _slice_axis(f, ax, 0, 1)
        last = _slice_axis(f, ax, n - 1, n) - _slice_axis(f, ax, n - 2, n - 1)
        inner = (_slice_axis(f, ax, 2, None) - _slice_axis(f, ax, None, n - 2)) * 0.5
        outs.append(ops.concatenate([first, inner, last], ax) / float(h))
    return outs[0] if len(outs) == 1 else tuple(outs)


# ---------------------------------------------------------------------------------------------
# products and signals


def kron(a: Any, b: Any) -> Tensor:
    """Kronecker product, as ``numpy.kron``."""
    a = _t(a, b)
    b = _t(b, a)
    nd = max(a.ndim, b.ndim)
    if nd == 0:
        return a * b
    a = ops.reshape(a, (1,) * (nd - a.ndim) + a.shape)
    b = ops.reshape(b, (1,) * (nd - b.ndim) + b.shape)
    ai, bi = [], []
    for sa, sb in zip(a.shape, b.shape):
        ai += [sa, 1]
        bi += [1, sb]
    prod = ops.reshape(a, tuple(ai)) * ops.reshape(b, tuple(bi))
    return ops.reshape(prod, tuple(sa * sb for sa, sb in zip(a.shape, b.shape)))


def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None) -> Tensor:
    """Cross product of 2- or 3-vectors, as ``numpy.cross``."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a = _t(a, b)
    b = _t(b, a)
    a = ops.moveaxis(a, axisa, -1)
    b = ops.moveaxis(b, axisb, -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ShapeError(f"cross: incompatible dimensions for cross product (dimension must be 2 or 3), "
                         f"got {na} and {nb}")

    def comp(v: Tensor, i: int) -> Any:
        return ops.getitem(v, (Ellipsis, i)) if i < v.shape[-1] else 0

    a0, a1, a2 = comp(a, 0), comp(a, 1), comp(a, 2)
    b0, b1, b2 = comp(b, 0), comp(b, 1), comp(b, 2)
    z = a0 * b1 - a1 * b0
    if na == 2 and nb == 2:
        return z
    x = a1 * b2 - a2 * b1
    y = a2 * b0 - a0 * b2
    shape = np.broadcast_shapes(*[getattr(v, "shape", ()) for v in (x, y, z)])
    out = ops.stack([ops.broadcast_to(_t(v, a), shape) for v in (x, y, z)], -1)
    return ops.moveaxis(out, -1, axisc)


def _full_convolution(a: Tensor, v: Tensor) -> Tensor:
    """out[k] = sum_j a[k - j] v[j] (length n + m - 1), as one matrix-vector product over the
    zero-padded a's windows."""
    n, m = a.shape[0], v.shape[0]
    padded = ops.pad(a, ((m - 1, m - 1),))
    windows = ops.take(padded, np.arange(n + m - 1)[:, None] + np.arange(m)[None, :], 0)
    return ops.matmul(windows, ops.flip(v, 0))


def _mode_slice(full: Tensor, n: int, m: int, mode: str) -> Tensor:
    if mode == "full":
        return full
    lo, hi = min(n, m), max(n, m)
    if mode == "same":
        start = (lo - 1) // 2
        return ops.getitem(full, (slice(start, start + hi),))
    if mode == "valid":
        return ops.getitem(full, (slice(lo - 1, hi),))
    raise GpugradError(f"convolve: mode must be 'full', 'same' or 'valid', got {mode!r}")


def convolve(a: Any, v: Any, mode: str = "full") -> Tensor:
    """Discrete linear convolution of two 1-D sequences, as ``numpy.convolve``."""
    a = ops.atleast_1d(_t(a, v))
    v = ops.atleast_1d(_t(v, a))
    if a.ndim != 1 or v.ndim != 1:
        raise ShapeError(f"convolve: inputs must be 1-D, got shapes {a.shape} and {v.shape}")
    if a.shape[0] == 0 or v.shape[0] == 0:
        raise ShapeError("convolve: inputs cannot be empty")
    return _mode_slice(_full_convolution(a, v), a.shape[0], v.shape[0], mode)


def correlate(a: Any, v: Any, mode: str = "valid") -> Tensor:
    """Cross-correlation of two 1-D sequences, as ``numpy.correlate`` (v conjugated)."""
    from gpugrad.ops.complex import conj

    a = ops.atleast_1d(_t(a, v))
    v = ops.atleast_1d(_t(v, a))
    if a.ndim != 1 or v.ndim != 1:
        raise ShapeError(f"correlate: inputs must be 1-D, got shapes {a.shape} and {v.shape}")
    n, m = a.shape[0], v.shape[0]
    full = _full_convolution(a, ops.flip(conj(v), 0))
    if m > n:  # NumPy's correlate reverses (and conjugates) the result when v is the longer one
        full = ops.flip(conj(_full_convolution(v, ops.flip(conj(a), 0))), 0)
    return _mode_slice(full, n, m, mode)


def interp(x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None, period: Any = None) -> Tensor:
    """Piecewise-linear interpolation, as ``numpy.interp`` (differentiable in x, xp and fp)."""
    like = next((v for v in (x, xp, fp) if isinstance(v, Tensor)), None)
    x, xp, fp = _t(x, like), _t(xp, like), _t(fp, like)
    if period is not None:
        raise GpugradError("interp: period= is not provided for tensors")
    if xp.ndim != 1 or fp.ndim != 1 or xp.shape != fp.shape or xp.shape[0] == 0:
        raise ShapeError(f"interp: xp and fp must be 1-D of the same non-zero length, got {xp.shape} and {fp.shape}")
    n = xp.shape[0]
    if n == 1:
        base = ops.broadcast_to(ops.getitem(fp, 0), x.shape)
    else:
        from gpugrad.backends import backend_for

        B = backend_for(x.device)
        idx = B.xp.clip(B.xp.searchsorted(xp.data, x.data, side="right"), 1, n - 1)
        x0, x1 = ops.take(xp, idx - 1, 0), ops.take(xp, idx, 0)
        y0, y1 = ops.take(fp, idx - 1, 0), ops.take(fp, idx, 0)
        base = y0 + (x - x0) * ((y1 - y0) / (x1 - x0))
        base = ops.where(x == ops.getitem(xp, n - 1), ops.getitem(fp, n - 1), base)
    lo = ops.getitem(fp, 0) if left is None else left
    hi = ops.getitem(fp, n - 1) if right is None else right
    out = ops.where(x < ops.getitem(xp, 0), lo, base)
    return ops.where(x > ops.getitem(xp, n - 1), hi, out)


# ---------------------------------------------------------------------------------------------
# joining, splitting, rearranging


def _seq(arrays: Any, name: str) -> list[Tensor]:
    seq = list(arrays) if not isinstance(arrays, Tensor) else [arrays[i] for i in range(arrays.shape[0])]
    if not seq:
        raise ShapeError(f"{name}: need at least one array")
    like = next((a for a in seq if isinstance(a, Tensor)), None)
    return [_t(a, like) for a in seq]


def append(arr: Any, values: Any, axis: Any = None) -> Tensor:
    """``arr`` with ``values`` appended (flattened when ``axis`` is None)."""
    arr = _t(arr, values)
    values = _t(values, arr)
    if axis is None:
        return ops.concatenate([ops.ravel(arr), ops.ravel(values)], 0)
    return ops.concatenate([arr, values], axis)


def column_stack(tup: Any) -> Tensor:
    """1-D arrays as columns (2-D ones as they are), joined along axis 1."""
    ts = [ops.reshape(t, (-1, 1)) if t.ndim < 2 else t for t in _seq(tup, "column_stack")]
    return ops.concatenate(ts, 1)


def atleast_3d(*arys: Any) -> Any:
    """Views with at least three dimensions, as ``numpy.atleast_3d``."""
    outs = []
    for a in arys:
        a = _t(a)
        if a.ndim == 0:
            a = ops.reshape(a, (1, 1, 1))
        elif a.ndim == 1:
            a = ops.reshape(a, (1, a.shape[0], 1))
        elif a.ndim == 2:
            a = ops.reshape(a, a.shape + (1,))
        outs.append(a)
    return outs[0] if len(outs) == 1 else outs


def dstack(tup: Any) -> Tensor:
    """Stack along the third axis (depth), as ``numpy.dstack``."""
    return ops.concatenate([atleast_3d(t) for t in _seq(tup, "dstack")], 2)


def hstack(tup: Any, dtype: Any = None, casting: str = "same_kind") -> Tensor:
    return ops.hstack(_seq(tup, "hstack"))


def vstack(tup: Any, dtype: Any = None, casting: str = "same_kind") -> Tensor:
    return ops.vstack(_seq(tup, "vstack"))


def concatenate(arrays: Any, axis: Any = 0, out: Any = None, dtype: Any = None, casting: str = "same_kind") -> Tensor:
    _no_out(out, "concatenate")
    ts = _seq(arrays, "concatenate")
    result_dt = np.result_type(*[t.dtype for t in ts])
    return ops.concatenate([t if t.dtype == result_dt else ops.astype(t, result_dt) for t in ts], axis)


def stack(arrays: Any, axis: int = 0, out: Any = None, dtype: Any = None, casting: str = "same_kind") -> Tensor:
    _no_out(out, "stack")
    ts = _seq(arrays, "stack")
    result_dt = np.result_type(*[t.dtype for t in ts])
    return ops.stack([t if t.dtype == result_dt else ops.astype(t, result_dt) for t in ts], axis)


def _split_along(name: str, axis_of: Any) -> Any:
    def fn(ary: Any, indices_or_sections: Any) -> list[Tensor]:
        ary = _t(ary)
        axis = axis_of(ary)
        if ary.ndim <= axis:
            raise ShapeError(f"{name}: needs an array of at least {axis + 1} dimensions, got shape {ary.shape}")
        return ops.split(ary, indices_or_sections, axis)

    fn.__name__ = name
    fn.__doc__ = f"``numpy.{name}``: split along axis {axis_of.__doc__}."
    return fn


def _hsplit_axis(a: Tensor) -> int:
    """1 (0 for 1-D arrays)"""
    return 0 if a.ndim == 1 else 1


def _axis0(a: Tensor) -> int:
    """0"""
    return 0


def _axis2(a: Tensor) -> int:
    """2"""
    return 2


hsplit = _split_along("hsplit", _hsplit_axis)
vsplit = _split_along("vsplit", _axis0)
dsplit = _split_along("dsplit", _axis2)


def rot90(m: Any, k: int = 1, axes: tuple = (0, 1)) -> Tensor:
    """Rotate by 90 degrees ``k`` times in the plane of ``axes``, as ``numpy.rot90``."""
    m = _t(m)
    a0, a1 = (normalize_one_axis(a, m.ndim, "rot90") for a in axes)
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return ops.flip(ops.flip(m, a0), a1)
    perm = list(range(m.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return ops.transpose(ops.flip(m, a1), perm)
    return ops.flip(ops.transpose(m, perm), a1)


def fliplr(m: Any) -> Tensor:
    return ops.flip(_t(m), 1)


def flipud(m: Any) -> Tensor:
    return ops.flip(_t(m), 0)


def rollaxis(a: Any, axis: int, start: int = 0) -> Tensor:
    """Roll ``axis`` backwards until it lies before ``start``, as ``numpy.rollaxis``."""
    a = _t(a)
    n = a.ndim
    axis = normalize_one_axis(axis, n, "rollaxis")
    if start < 0:
        start += n
    if not 0 <= start <= n:
        raise ShapeError(f"rollaxis: start {start} is out of range for {n} dimensions")
    if axis < start:
        start -= 1
    if axis == start:
        return a
    order = [i for i in range(n) if i != axis]
    order.insert(start, axis)
    return ops.transpose(a, order)


def meshgrid(*xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy") -> list[Tensor]:
    """Coordinate arrays from 1-D coordinate vectors, as ``numpy.meshgrid`` (differentiable)."""
    if indexing not in ("xy", "ij"):
        raise GpugradError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    like = next((x for x in xi if isinstance(x, Tensor)), None)
    ts = [ops.ravel(_t(x, like)) for x in xi]
    nd = len(ts)
    shapes = []
    for i, t in enumerate(ts):
        s = [1] * nd
        s[i] = t.shape[0]
        if indexing == "xy" and nd > 1 and i < 2:
            s[0], s[1] = s[1], s[0]
        shapes.append(tuple(s))
    out = [ops.reshape(t, s) for t, s in zip(ts, shapes)]
    if sparse:
        return out
    full = np.broadcast_shapes(*shapes)
    return [ops.broadcast_to(o, full) if o.shape != full else o for o in out]


def select(condlist: Any, choicelist: Any, default: Any = 0) -> Tensor:
    """The choice of the first true condition per element, as ``numpy.select``."""
    if len(condlist) != len(choicelist):
        raise ShapeError("select: condlist and choicelist must have the same length")
    like = next((c for c in list(choicelist) + [default] if isinstance(c, Tensor)), None)
    out = _t(default, like)
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = ops.where(_t(cond, like), _t(choice, like), out)
    return out


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0) -> Any:
    """Evenly spaced numbers, differentiable in ``start`` and ``stop``."""
    from gpugrad.factories import as_tensor

    like = start if isinstance(start, Tensor) else stop
    start, stop = _t(start, like), _t(stop, like)
    num = int(num)
    if num < 0:
        raise GpugradError(f"linspace: number of samples, {num}, must be non-negative")
    dt = np.result_type(start.dtype, stop.dtype, 1.0)  # integers become float64, as NumPy
    start = start if start.dtype == dt else ops.astype(start, dt)
    stop = stop if stop.dtype == dt else ops.astype(stop, dt)
    shape = np.broadcast_shapes(start.shape, stop.shape)
    start, stop = ops.broadcast_to(start, shape), ops.broadcast_to(stop, shape)
    delta = stop - start
    div = (num - 1) if endpoint else num
    steps = as_tensor(np.arange(num, dtype=dt).reshape((-1,) + (1,) * len(shape)), device=start.device)
    step = delta / div if div > 0 else delta * np.nan
    y = ops.expand_dims(start, 0) + steps * ops.expand_dims(step if div > 0 else delta, 0)
    if endpoint and num > 1:  # the last sample is stop exactly
        y = ops.concatenate([ops.getitem(y, (slice(0, num - 1),)), ops.expand_dims(stop, 0)], 0)
    if axis != 0:
        y = ops.moveaxis(y, 0, axis)
    if dtype is not None:
        y = ops.astype(y, dtype)
    return (y, step) if retstep else y


def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C") -> Tensor:
    """An array of ``shape`` filled with ``fill_value`` (differentiable in a tensor fill value)."""
    v = _t(fill_value)
    if dtype is not None:
        v = ops.astype(v, dtype)
    shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(s) for s in shape)
    return ops.broadcast_to(v, shape) + ops.zeros_like(ops.broadcast_to(v, shape))


def make_diagonal(d: Any, offset: int = 0, axis1: int = -1, axis2: int = -2) -> Tensor:
    """A batch of diagonal matrices with ``d``'s last axis on their diagonals (HIPS autograd's
    ``make_diagonal``); the new axes are ``axis1`` and ``axis2``."""
    from gpugrad.factories import eye

    d = _t(d)
    if offset != 0:
        raise GpugradError("make_diagonal: only offset=0 is provided")
    n = d.shape[-1]
    mat = ops.expand_dims(d, -1) * eye(n, dtype=d.dtype if d.dtype.kind in "fc" else np.float64, device=d.device)
    nd = mat.ndim
    a1, a2 = axis1 % nd, axis2 % nd
    if (a1, a2) in ((nd - 1, nd - 2), (nd - 2, nd - 1)):
        return mat
    return ops.moveaxis(mat, (nd - 2, nd - 1), (a1, a2))


def copy(a: Any, order: str = "K", subok: bool = False) -> Tensor:
    """A differentiable copy with its own storage."""
    return ops.copy(_t(a))


def real_if_close(a: Any, tol: float = 100) -> Tensor:
    """The real part when every imaginary part is within ``tol`` machine epsilons of 0."""
    from gpugrad.ops.complex import is_complex, real

    a = _t(a)
    if not is_complex(a):
        return a
    eps = np.finfo(np.real(np.zeros((), a.dtype)).dtype).eps
    limit = tol * eps if tol > 1 else tol
    imag_values = np.abs(np.imag(_values(a)))
    return real(a) if bool((imag_values < limit).all()) else a


def iscomplex(x: Any) -> Tensor:
    """Elementwise: is the imaginary part non-zero (a boolean tensor, no gradient)."""
    from gpugrad.ops.complex import imag

    return ops.not_equal(imag(_t(x)), 0)


def isreal(x: Any) -> Tensor:
    from gpugrad.ops.complex import imag

    return ops.equal(imag(_t(x)), 0)


def _no_out(out: Any, name: str) -> None:
    if out is not None:
        raise GpugradError(f"{name}: the out= argument is not supported for tensors")


def constant_like(value: np.ndarray, like: Tensor) -> Tensor:
    from gpugrad.backends import backend_for

    return make_tensor(backend_for(like.device).asarray(value), like.device)
