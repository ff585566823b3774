"""Array code written once over the array module of its argument (NumPy, or CuPy for a CUDA
array: ``_xp``), with no Python loop over elements: the NumPy backend's implementation of these
names, and the CUDA backend's where it has no kernel of its own (dtypes or shapes its kernels do
not cover, and the window helpers of convolution and pooling).

Geometry arguments of the window helpers: ``kernel``, ``stride``, ``dilation`` are (h, w) pairs
of ints; ``padding`` is ((top, bottom), (left, right)); images are (N, C, H, W) in any memory
layout (docs/DEVELOPING.md has the table).

Example::

    cols = im2col(x, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))   # x NumPy or CuPy
    softmax(x, -1)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _xp(a: Any) -> Any:
    """The array module of ``a`` (NumPy, or CuPy for a CuPy array)."""
    if isinstance(a, np.ndarray):
        return np
    import cupy  # only reached with a CuPy array, so CuPy is installed

    return cupy


_UINT_OF_SIZE = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def where(c: Any, a: Any, b: Any) -> Any:
    """np.where, bit for bit, but branch-free for large float selections.

    NumPy's where branches per element: with an unpredictable mask (ReLU's x > 0 on activations)
    it ran ~10x slower than one arithmetic pass (230 us vs 25 us for 65k float32 on a 2-core CI
    machine), making relu's forward and backward a third of an MLP training step. Selecting the
    bits, b ^ ((a ^ b) * c) (just a * c when b is +0.0), is exact for every value (NaN, inf, -0.0).
    """
    if c.__class__ is not np.ndarray or c.dtype != np.bool_ or c.size < 2048:
        return np.where(c, a, b)
    ta, tb = a.__class__, b.__class__
    if ta is np.ndarray:
        dt = a.dtype
        if tb is not np.ndarray:
            if tb is not int and tb is not float:
                return np.where(c, a, b)
            b = np.asarray(b, dt)  # NumPy's weak Python scalar: takes the array's dtype
        elif b.dtype != dt:
            return np.where(c, a, b)
    elif tb is np.ndarray and (ta is int or ta is float):
        dt = b.dtype
        a = np.asarray(a, dt)
    else:
        return np.where(c, a, b)
    if dt.kind != "f" or dt.itemsize not in _UINT_OF_SIZE:
        return np.where(c, a, b)
    ui = _UINT_OF_SIZE[dt.itemsize]
    ab, bb = a.view(ui), b.view(ui)
    if bb.ndim == 0 and bb == 0:  # where(c, a, +0.0), e.g. relu: the bits of a times 0 or 1, one pass
        return np.multiply(ab, c, dtype=ui).view(dt)
    diff = np.bitwise_xor(ab, bb)  # b ^ ((a ^ b) * c): a where c, b elsewhere
    out = np.multiply(diff, c, dtype=ui)
    np.bitwise_xor(out, bb, out=out)
    return out.view(dt)


# ---- max / min over short rows --------------------------------------------------------------

# NumPy reduces a short contiguous last axis one row at a time: the max over rows of 10 floats
# cost 218 us for 4096 rows where ten column passes take 20 us (a softmax over 10 classes, the
# row max of cross-entropy). Columns are folded instead, exactly (max and min round nothing).
_SHORT_ROW_LOOP = 12  # up to this many columns: one pass per column
_SHORT_ROW_FOLD = 96  # up to this many: halve the row repeatedly (log2 passes)
# Up to this many elements a transposed copy is cheaper than either (it stays in cache; past it
# the transpose's strided reads lose: 65536 x 10 took 923 us against 773 by columns).
_SHORT_ROW_TRANSPOSE = 1 << 18


def short_row_extremum(ufunc: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """``ufunc.reduce`` (np.maximum or np.minimum) of NumPy array ``x`` over its last axis, by
    columns, or None where NumPy's own reduction is as fast (long rows, few rows, other axes)."""
    if x.__class__ is not np.ndarray or x.ndim == 0 or x.dtype.kind not in "fiu":
        return None
    nd = x.ndim
    if axis.__class__ is tuple:
        if len(axis) != 1:
            return None
        axis = axis[0]
    if axis != nd - 1 and axis != -1:
        return None
    c = x.shape[-1]
    if c < 2 or c > _SHORT_ROW_FOLD or x.size < 64 * c:
        return None
    if x.size <= _SHORT_ROW_TRANSPOSE:
        # the rows as columns of a copy: one reduction down contiguous rows (256 x 10: 2.1 us,
        # against 7.5 by columns and 14.6 by NumPy's own)
        rows = x.T if nd == 2 else np.moveaxis(x, -1, 0)  # (.T: moveaxis costs 2 us of Python)
        out = ufunc.reduce(np.ascontiguousarray(rows), axis=0)
        return out.reshape(out.shape + (1,)) if keepdims else out
    if c <= _SHORT_ROW_LOOP:
        out = x[..., 0:1].copy()
        for j in range(1, c):
            ufunc(out, x[..., j:j + 1], out=out)
    else:
        out = x
        while c > 1:
            h = c // 2
            nxt = ufunc(out[..., :h], out[..., h:2 * h])
            if c % 2:
                ufunc(nxt[..., :1], out[..., 2 * h:], out=nxt[..., :1])
            out, c = nxt, h
    return out if keepdims else out[..., 0]


# ---- softmax: stable, as the CUDA kernels (kernels/softmax.cu) ---------------------------------


def _shift(x: Any, axis: int) -> Any:
    """x minus its max along ``axis`` (a new float array; a non-finite max shifts by 0)."""
    xp = _xp(x)
    dt = np.result_type(x.dtype, np.float16)
    if not x.size:
        return xp.array(x, dtype=dt)
    m = short_row_extremum(np.maximum, x, axis, True) if xp is np else None
    if m is None:
        m = xp.max(x, axis=axis, keepdims=True)
    if xp is not np:  # no host sync to ask whether it is needed
        m = xp.where(xp.isfinite(m), m, 0)
    elif not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0)
    return xp.subtract(x, m, dtype=dt)


# Written in place where the array module allows: each saved pass is one array less to allocate
# (for large arrays, fresh memory costs as much as the arithmetic).
def softmax(x: Any, axis: int) -> Any:
    """exp(x - max) / sum(exp(x - max)) along ``axis``."""
    xp = _xp(x)
    e = _shift(x, axis)
    xp.exp(e, out=e)
    e /= xp.sum(e, axis=axis, keepdims=True)
    return e


def log_softmax(x: Any, axis: int) -> Any:
    """x - max - log(sum(exp(x - max))) along ``axis``."""
    xp = _xp(x)
    shifted = _shift(x, axis)
    lse = xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
    shifted -= lse
    return shifted


# ---- window helpers of convolution and pooling ------------------------------------------------


def pool_output_size(size: int, k: int, s: int, lo: int, hi: int, d: int) -> int:
    """Output length of a sliding window of ``k`` taps, dilation ``d`` and stride ``s`` over
    ``size`` samples padded by ``lo``/``hi`` (may be <= 0 when the window does not fit)."""
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _pad_channels_first(x: Any, padding: tuple, pad_value: float) -> Any:
    """x (N, C, H, W) as a (C, N, H + pt + pb, W + pl + pr) array (a transposed view when unpadded)."""
    xp = _xp(x)
    ((pt, pb), (pl, pr)) = padding
    xc = x.transpose(1, 0, 2, 3)
    if not (pt or pb or pl or pr):
        return xc
    c, n, h, w = xc.shape
    xpad = xp.full((c, n, h + pt + pb, w + pl + pr), pad_value, dtype=x.dtype)
    xpad[:, :, pt:pt + h, pl:pl + w] = xc
    return xpad


def _taps(kernel: tuple, stride: tuple, dilation: tuple, out_hw: tuple) -> list:
    """(tap index, row slice, column slice) of every kernel tap over a padded input."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    return [(i * kw + j, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


def _out_hw(x_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> tuple[int, int]:
    return (pool_output_size(x_shape[2], kernel[0], stride[0], padding[0][0], padding[0][1], dilation[0]),
            pool_output_size(x_shape[3], kernel[1], stride[1], padding[1][0], padding[1][1], dilation[1]))


def im2col(x: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, pad_value: float = 0.0) -> Any:
    """The sliding windows of ``x`` (N, C, H, W) as a C-contiguous array (C, kh, kw, N, OH, OW).

    ``kernel``, ``stride``, ``dilation``: (h, w) pairs; ``padding``: ((top, bottom), (left, right)),
    filled with ``pad_value``. ``cols.reshape(C*kh*kw, N*OH*OW)`` is the right operand of
    convolution's one matmul, W.reshape(F, C*kh*kw) @ cols. One strided view of the
    (channels-first) padded input and one copy whose inner runs are contiguous rows; no loop.
    """
    xp = _xp(x)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = _out_hw(x.shape, kernel, stride, padding, dilation)
    xpad = _pad_channels_first(x, padding, pad_value)
    s_c, s_n, s_h, s_w = xpad.strides
    view = xp.lib.stride_tricks.as_strided(
        xpad, (x.shape[1], kh, kw, x.shape[0], oh, ow), (s_c, dh * s_h, dw * s_w, s_n, sh * s_h, sw * s_w))
    return xp.ascontiguousarray(view)


def col2im(cols: Any, x_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Any:
    """The transpose of :func:`im2col` (with pad_value 0): an array of ``x_shape`` (N, C, H, W),
    stored channels-first, where every window value of ``cols`` (C, kh, kw, N, OH, OW) is added
    back at the pixel it was read from (overlapping windows accumulate; padding is dropped).

    One strided accumulation per kernel tap (kh*kw of them), each over all pixels at once.
    """
    xp = _xp(cols)
    n, c, h, w = x_shape
    ((pt, pb), (pl, pr)) = padding
    oh, ow = cols.shape[4], cols.shape[5]
    out = xp.zeros((c, n, h + pt + pb, w + pl + pr), dtype=cols.dtype)
    kw = kernel[1]
    for k, rows, cols_ in _taps(kernel, stride, dilation, (oh, ow)):
        out[:, :, rows, cols_] += cols[:, k // kw, k % kw]
    return out[:, :, pt:pt + h, pl:pl + w].transpose(1, 0, 2, 3)


def _select(c: Any, a: Any, b: Any) -> Any:
    return where(c, a, b) if c.__class__ is np.ndarray else _xp(c).where(c, a, b)


def pool2d(x: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, mode: str) -> Any:
    """Per-window reduction of ``x`` (N, C, H, W) to (N, C, OH, OW): ``mode`` "max" (padding is
    -inf, NaN propagates, as PyTorch) or "sum" (padding is 0). One pass per kernel tap over the
    output, in x's memory layout; no window copies."""
    xp = _xp(x)
    oh, ow = _out_hw(x.shape, kernel, stride, padding, dilation)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xpad = _pad_channels_first(x, padding, low if mode == "max" else 0).transpose(1, 0, 2, 3)
    out = None
    for _, rows, cols_ in _taps(kernel, stride, dilation, (oh, ow)):
        v = xpad[:, :, rows, cols_]
        if out is None:
            out = v.copy()
        elif mode == "max":
            xp.maximum(out, v, out=out)
        else:
            out += v
    return out


def pool_argmax(x: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Any:
    """Index (i * kw + j, int32) of each window's maximum tap in ``x`` (N, C, H, W): the first
    maximum, or the last NaN (PyTorch's CPU rule); the constant of max pooling's gradient."""
    xp = _xp(x)
    oh, ow = _out_hw(x.shape, kernel, stride, padding, dilation)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xpad = _pad_channels_first(x, padding, low).transpose(1, 0, 2, 3)
    best = idx = None
    for k, rows, cols_ in _taps(kernel, stride, dilation, (oh, ow)):
        v = xpad[:, :, rows, cols_]
        if best is None:
            best = v.copy()
            idx = xp.zeros(best.shape, dtype=np.int32)
            continue
        upd = v > best
        if x.dtype.kind == "f":
            upd |= v != v
        best = _select(upd, v, best)
        idx += upd * (k - idx)  # integer arithmetic: exact, and branch-free unlike where()
    return idx


def pool_scatter(g: Any, idx: Any, x_shape: tuple, kernel: tuple, stride: tuple, padding: tuple,
                 dilation: tuple) -> Any:
    """The max-pooling gradient: zeros of ``x_shape`` (stored channels-first) with each ``g``
    (N, C, OH, OW) value added at its window's tap ``idx`` (overlapping windows accumulate)."""
    xp = _xp(g)
    n, c, h, w = x_shape
    ((pt, pb), (pl, pr)) = padding
    out = xp.zeros((c, n, h + pt + pb, w + pl + pr), dtype=g.dtype).transpose(1, 0, 2, 3)
    for k, rows, cols_ in _taps(kernel, stride, dilation, idx.shape[2:]):
        out[:, :, rows, cols_] += _select(idx == k, g, 0)
    return out[:, :, pt:pt + h, pl:pl + w]


def pool_gather(t: Any, idx: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Any:
    """The transpose of :func:`pool_scatter`: the value of ``t`` (N, C, H, W) at each window's tap
    ``idx``, as (N, C, OH, OW) (max pooling's tangent)."""
    tpad = _pad_channels_first(t, padding, 0).transpose(1, 0, 2, 3)
    out = None
    for k, rows, cols_ in _taps(kernel, stride, dilation, idx.shape[2:]):
        v = tpad[:, :, rows, cols_]
        out = _select(idx == k, v, 0) if out is None else _select(idx == k, v, out)
    return out
