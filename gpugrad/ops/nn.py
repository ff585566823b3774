"""Neural-network primitives with fused rules: softmax and log_softmax, and the layers'
primitives (im2col/col2im, conv2d, max/avg pooling, layer and batch normalisation, embedding,
dropout, cross-entropy).

Each rule is one node on the tape written once as a few array expressions (no chain of tiny
ops); a backend may register a kernel for one (``lowerings``, see gpugrad.ops.base).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from gpugrad.backends import backend_for, device_of_array
from gpugrad.backends import numpy_backend as _npb
from gpugrad.errors import ArgumentError, DeviceError, DTypeError, ShapeError
from gpugrad.ops._util import as_tensor_operand, normalize_one_axis
from gpugrad.ops.base import Op, apply, forward
from gpugrad.ops.shape import moveaxis, reshape
from gpugrad.ops.spellings import accepts_dim
from gpugrad.tensor import Tensor, make_tensor


def _shift(ns: Any, x: Any, axis: int) -> Any:
    """x's max along ``axis`` (kept), 0 where that max is not finite: subtracted, it leaves a row
    of -inf -inf instead of NaN."""
    m = ns.amax(x, axis, True)
    return ns.where(ns.isfinite(m), m, 0)


def _shifted(ns: Any, x: Any, axis: int) -> Any:
    """x minus its max along ``axis`` (see :func:`_shift`)."""
    return x - _shift(ns, x, axis)


class Softmax(Op):
    """exp(x) / sum(exp(x)) along an axis; the CUDA backend registers its one-pass kernels for
    both rules (``lowerings``)."""

    name = "softmax"
    save_inputs = False
    save_out = True

    def forward(self, ns: Any, args: list, params: dict) -> Any:
        x, a = args[0], params["axis"]
        if x.size == 0:
            return ns.exp(x)
        e = ns.exp(_shifted(ns, x, a))
        return e / ns.sum(e, a, True)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (out * (g - ns.sum(g * out, params["axis"], True)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        t = tangents[0]
        return out * (t - ns.sum(t * out, params["axis"], True))


class LogSoftmax(Op):
    """x - log(sum(exp(x))) along an axis, computed stably (see :class:`Softmax`)."""

    name = "log_softmax"
    save_inputs = False
    save_out = True

    def forward(self, ns: Any, args: list, params: dict) -> Any:
        x, a = args[0], params["axis"]
        if x.size == 0:
            return ns.exp(x)
        z = _shifted(ns, x, a)
        return z - ns.log(ns.sum(ns.exp(z), a, True))

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (g - ns.exp(out) * ns.sum(g, params["axis"], True),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        t = tangents[0]
        return t - ns.sum(ns.exp(out) * t, params["axis"], True)


SOFTMAX = Softmax()
LOG_SOFTMAX = LogSoftmax()


@accepts_dim
def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed stably. Example: ``gg.softmax(logits, axis=-1)``."""
    x = as_tensor_operand(x)
    return apply(SOFTMAX, (x,), {"axis": normalize_one_axis(axis, x.ndim, "softmax")})


@accepts_dim
def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along ``axis``, computed stably."""
    x = as_tensor_operand(x)
    return apply(LOG_SOFTMAX, (x,), {"axis": normalize_one_axis(axis, x.ndim, "log_softmax")})


# =============================================================================================
# Neural-network primitives: im2col/col2im, conv2d, pooling, normalisation, embedding, dropout,
# cross-entropy. One Op each, rules written once against the namespace ``ns``: the backend (raw
# arrays) in fast mode, gpugrad.ops (tensors) for create_graph and forward mode. Every backend
# provides the array helpers (``im2col``, ``col2im``, ``pool_*``); both run the same portable
# array code, written against the array module of its input.
# =============================================================================================


def _raw(a: Any) -> Any:
    return a.data if isinstance(a, Tensor) else a


def _backend_of(a: Any) -> Any:
    """The backend of a raw array or tensor."""
    if isinstance(a, Tensor):
        return backend_for(a.device)
    return backend_for(device_of_array(a) or "cpu")


# ---- argument normalisation -------------------------------------------------------------------


def _pair(v: Any, op: str, what: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints as a pair, each at least ``minimum``."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        t = (int(v), int(v))
    else:
        try:
            t = tuple(int(i) for i in v)
        except TypeError:
            raise ArgumentError(f"{op}: {what} must be an int or a pair of ints, got {v!r}") from None
        if len(t) != 2:
            raise ArgumentError(f"{op}: {what} must be an int or a pair of ints, got {v!r}")
    if min(t) < minimum:
        raise ArgumentError(f"{op}: {what} must be >= {minimum}, got {v!r}")
    return t  # type: ignore[return-value]


def _padding(v: Any, op: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """int, (ph, pw) or ((top, bottom), (left, right)) as ((top, bottom), (left, right))."""
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, (tuple, list)) for i in v):
        out = tuple(_pair(i, op, "padding", 0) for i in v)
        return out  # type: ignore[return-value]
    ph, pw = _pair(v, op, "padding", 0)
    return (ph, ph), (pw, pw)


def _window_params(op: str, x: Tensor, kernel: Any, stride: Any, padding: Any, dilation: Any,
                   extra: tuple[int, int] = (0, 0)) -> dict:
    """Checked window geometry of a 4-D input: kernel, stride, padding, dilation and output size."""
    if x.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    k = _pair(kernel, op, "kernel_size", 1)
    s = _pair(stride, op, "stride", 1)
    p = _padding(padding, op)
    d = _pair(dilation, op, "dilation", 1)
    p = ((p[0][0], p[0][1] + extra[0]), (p[1][0], p[1][1] + extra[1]))
    h, w = x.shape[2], x.shape[3]
    oh = _npb.pool_output_size(h, k[0], s[0], p[0][0], p[0][1], d[0])
    ow = _npb.pool_output_size(w, k[1], s[1], p[1][0], p[1][1], d[1])
    if oh <= 0 or ow <= 0:
        raise ShapeError(
            f"{op}: the window (kernel {k}, dilation {d}) does not fit the padded input: input {x.shape}, "
            f"padding {p}; the output would be {oh}x{ow}")
    return {"kernel": k, "stride": s, "padding": p, "dilation": d, "out_hw": (oh, ow)}


def _geom(params: dict) -> tuple:
    return params["kernel"], params["stride"], params["padding"], params["dilation"]


# ---- im2col / col2im as differentiable ops (the tensor namespace's names) ----------------------


class Im2col(Op):
    name = "im2col"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.im2col(args[0], *_geom(params), params["pad_value"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.col2im(g, params["x_shape"], *_geom(params)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return im2col(tangents[0], *_geom(params), 0.0)


class Col2im(Op):
    name = "col2im"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.col2im(args[0], params["x_shape"], *_geom(params))

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.im2col(g, *_geom(params), 0.0),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return col2im(tangents[0], params["x_shape"], *_geom(params))


IM2COL = Im2col()
COL2IM = Col2im()


def im2col(x: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, pad_value: float = 0.0) -> Tensor:
    """Sliding windows of ``x`` (N, C, H, W) as (C, kh, kw, N, OH, OW); differentiable (its
    gradient is :func:`col2im`). ``padding`` is ((top, bottom), (left, right)).

    Example: ``im2col(x, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)).shape == (C, 3, 3, N, H, W)``.
    """
    x = as_tensor_operand(x)
    return apply(IM2COL, (x,), {"kernel": tuple(kernel), "stride": tuple(stride), "padding": tuple(padding),
                                "dilation": tuple(dilation), "pad_value": pad_value, "x_shape": x.shape})


def col2im(cols: Any, x_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Tensor:
    """The transpose of :func:`im2col`: window values summed back into an array of ``x_shape``."""
    cols = as_tensor_operand(cols)
    return apply(COL2IM, (cols,), {"kernel": tuple(kernel), "stride": tuple(stride), "padding": tuple(padding),
                                   "dilation": tuple(dilation), "x_shape": tuple(x_shape)})


# ---- conv2d ----------------------------------------------------------------------------------


class Conv2d(Op):
    """2-D cross-correlation (PyTorch's conv2d) as im2col + one matmul, W (F, C*kh*kw) @ cols
    (C*kh*kw, N*OH*OW); backward: two matmuls and col2im. Inputs (x, weight, bias or None).
    The output is stored channels-first (F, N, OH, OW) and seen as (N, F, OH, OW); elementwise
    ops keep that layout, so the next convolution's im2col and this op's backward reshape for free."""

    name = "conv2d"

    def saves(self, needs: tuple) -> tuple:
        return (needs[1], needs[0], False), False  # dW needs x, dx needs W

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x, w, b = args
        cols = B.im2col(x, *_geom(params), 0.0)
        n, (oh, ow) = x.shape[0], params["out_hw"]
        m = n * oh * ow
        f, groups = w.shape[0], params["groups"]
        ck = w.shape[1] * w.shape[2] * w.shape[3]
        if groups == 1:
            out = B.matmul(w.reshape(f, ck), cols.reshape(ck, m))
        else:  # channels are group-major in both cols and W: one batched matmul, no transposes
            out = B.matmul(w.reshape(groups, f // groups, ck), cols.reshape(groups, ck, m)).reshape(f, m)
        if b is not None:
            out += b.reshape(f, 1)
        return out.reshape(f, n, oh, ow).transpose(1, 0, 2, 3)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        x, w, _ = args
        x_shape, w_shape, groups = params["x_shape"], params["w_shape"], params["groups"]
        n, c, f = x_shape[0], x_shape[1], w_shape[0]
        oh, ow = params["out_hw"]
        kh, kw = params["kernel"]
        m = n * oh * ow
        ck = w_shape[1] * kh * kw
        fg = f // groups
        g2 = ns.reshape(ns.transpose(g, (1, 0, 2, 3)), (f, m) if groups == 1 else (groups, fg, m))
        gx = gw = gb = None
        if needs[0]:
            if groups == 1:
                gcols = ns.matmul(ns.transpose(ns.reshape(w, (f, ck)), (1, 0)), g2)
            else:
                gcols = ns.matmul(ns.transpose(ns.reshape(w, (groups, fg, ck)), (0, 2, 1)), g2)
            gcols = ns.reshape(gcols, (c, kh, kw, n, oh, ow))
            gx = ns.col2im(gcols, x_shape, *_geom(params))
        if needs[1]:
            cols = ns.im2col(x, *_geom(params), 0.0)
            if groups == 1:
                gw = ns.matmul(g2, ns.transpose(ns.reshape(cols, (ck, m)), (1, 0)))
            else:
                gw = ns.matmul(g2, ns.transpose(ns.reshape(cols, (groups, ck, m)), (0, 2, 1)))
            gw = ns.reshape(gw, w_shape)
        if needs[2]:
            gb = ns.sum(g, (0, 2, 3))
        return gx, gw, gb

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        tx, tw, tb = tangents
        x, w, _ = args
        total = None
        if tx is not None:
            total = apply(CONV2D, (tx, w, None), params)
        if tw is not None:
            term = apply(CONV2D, (x, tw, None), params)
            total = term if total is None else total + term
        if tb is not None:
            term = ns.reshape(tb, (1, tb.shape[0], 1, 1))
            total = term if total is None else total + term
        return total


CONV2D = Conv2d()


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch): x (N, C, H, W), weight (F, C/groups, kh, kw),
    bias (F,) or None; ``padding`` an int, a pair, ((top, bottom), (left, right)), "valid" or "same".

    Example: ``y = conv2d(x, w, b, stride=1, padding=1)`` keeps H and W for a 3x3 kernel.
    """
    x = as_tensor_operand(x)
    weight = as_tensor_operand(weight, x)
    if bias is not None:
        bias = as_tensor_operand(bias, x)
    if x.ndim != 4 or weight.ndim != 4:
        raise ShapeError(f"conv2d: expected a 4-D input (N, C, H, W) and a 4-D weight (F, C/groups, kh, kw), "
                         f"got input {x.shape} and weight {weight.shape}")
    groups = int(groups)
    if groups < 1 or x.shape[1] % groups or weight.shape[0] % groups:
        raise ArgumentError(f"conv2d: groups={groups} must divide both the input channels ({x.shape[1]}) "
                            f"and the output channels ({weight.shape[0]})")
    if weight.shape[1] * groups != x.shape[1]:
        raise ShapeError(f"conv2d: input {x.shape} has {x.shape[1]} channels but weight {weight.shape} expects "
                         f"{weight.shape[1] * groups} (weight.shape[1] * groups)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ShapeError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    _same_float_dtype("conv2d", x, weight, bias)
    kernel = weight.shape[2:]
    d = _pair(dilation, "conv2d", "dilation", 1)
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if _pair(stride, "conv2d", "stride", 1) != (1, 1):
                raise ArgumentError("conv2d: padding='same' needs stride 1 (as in PyTorch)")
            tot = [d[i] * (kernel[i] - 1) for i in range(2)]
            padding = ((tot[0] // 2, tot[0] - tot[0] // 2), (tot[1] // 2, tot[1] - tot[1] // 2))
        else:
            raise ArgumentError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    params = _window_params("conv2d", x, kernel, stride, padding, d)
    params.update(groups=groups, x_shape=x.shape, w_shape=weight.shape)
    return apply(CONV2D, (x, weight, bias), params)


def _same_float_dtype(op: str, *tensors: Any) -> None:
    ts = [t for t in tensors if t is not None]
    if ts[0].dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point input, got dtype {ts[0].dtype}")
    for t in ts[1:]:
        if t.dtype != ts[0].dtype:
            raise DTypeError(f"{op}: all operands must share one dtype, got {ts[0].dtype} and {t.dtype}")


# ---- pooling --------------------------------------------------------------------------------


class PoolScatter(Op):
    """Max pooling's gradient as a linear op of g: g added at each window's argmax tap."""

    name = "pool_scatter"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.pool_scatter(args[0], params["idx"], params["x_shape"], *_geom(params))

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.pool_gather(g, params["idx"], *_geom(params)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return pool_scatter(tangents[0], params["idx"], params["x_shape"], *_geom(params))


class PoolGather(Op):
    """The transpose of PoolScatter: x's value at each window's argmax tap (max pooling's tangent)."""

    name = "pool_gather"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.pool_gather(args[0], params["idx"], *_geom(params))

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.pool_scatter(g, params["idx"], params["x_shape"], *_geom(params)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return pool_gather(tangents[0], params["idx"], *_geom(params))


POOL_SCATTER = PoolScatter()
POOL_GATHER = PoolGather()


def _geometry_params(kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> dict:
    return {"kernel": tuple(kernel), "stride": tuple(stride), "padding": tuple(padding), "dilation": tuple(dilation)}


def pool_scatter(g: Any, idx: Any, x_shape: tuple, kernel: tuple, stride: tuple, padding: tuple,
                 dilation: tuple) -> Tensor:
    """zeros(x_shape) with each g (N, C, OH, OW) added at its window's tap ``idx`` (differentiable in g)."""
    g = as_tensor_operand(g)
    params = _geometry_params(kernel, stride, padding, dilation)
    params.update(idx=idx, x_shape=tuple(x_shape))
    return apply(POOL_SCATTER, (g,), params)


def pool_gather(x: Any, idx: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Tensor:
    """x's value at each window's tap ``idx``, (N, C, OH, OW) (differentiable in x)."""
    x = as_tensor_operand(x)
    params = _geometry_params(kernel, stride, padding, dilation)
    params.update(idx=idx, x_shape=x.shape)
    return apply(POOL_GATHER, (x,), params)


def _pool_argmax(x: Any, params: dict) -> Any:
    """Window argmax taps of x, computed on raw arrays: a constant of the gradient."""
    xr = _raw(x)
    return _backend_of(xr).pool_argmax(xr, *_geom(params))


class MaxPool2d(Op):
    """Max over each window; the gradient goes to each window's first maximum (PyTorch's choice)."""

    name = "max_pool2d"
    save_inputs = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.pool2d(args[0], *_geom(params), "max")

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        idx = _pool_argmax(args[0], params)
        return (ns.pool_scatter(g, idx, params["x_shape"], *_geom(params)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        idx = _pool_argmax(args[0], params)
        return pool_gather(tangents[0], idx, *_geom(params))


class AvgPool2d(Op):
    """Window sums over a divisor (a number, or an (OH, OW) array for count_include_pad=False and
    ceil_mode); the gradient spreads g / divisor over each window (col2im of a broadcast)."""

    name = "avg_pool2d"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        s = B.pool2d(args[0], *_geom(params), "sum")
        div = params["divisor"]
        s /= div if isinstance(div, float) else B.asarray(div, dtype=s.dtype)
        return s

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        x_shape = params["x_shape"]
        oh, ow = params["out_hw"]
        kh, kw = params["kernel"]
        n, c = x_shape[0], x_shape[1]
        div = params["divisor"]
        if not isinstance(div, float):
            div = _backend_of(_raw(g)).asarray(div, dtype=g.dtype)
        gt = ns.transpose(g / div, (1, 0, 2, 3))  # (C, N, OH, OW)
        gcols = ns.broadcast_to(ns.reshape(gt, (c, 1, 1, n, oh, ow)), (c, kh, kw, n, oh, ow))
        return (ns.col2im(gcols, x_shape, *_geom(params)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return apply(AVG_POOL2D, (tangents[0],), params)


MAX_POOL2D = MaxPool2d()
AVG_POOL2D = AvgPool2d()


def _ceil_extra(x: Tensor, op: str, kernel: Any, stride: Any, padding: Any, dilation: Any) -> tuple[int, int]:
    """Extra bottom/right padding that makes floor-mode sizes equal PyTorch's ceil_mode sizes (the
    last window must start inside the input or its left padding)."""
    k = _pair(kernel, op, "kernel_size", 1)
    s = _pair(stride, op, "stride", 1)
    p = _padding(padding, op)
    d = _pair(dilation, op, "dilation", 1)
    extra = []
    for i, size in enumerate(x.shape[2:]):
        lo, hi = p[i]
        span = size + lo + hi - d[i] * (k[i] - 1) - 1
        out = -(-span // s[i]) + 1
        if (out - 1) * s[i] >= size + lo:
            out -= 1
        extra.append(max(0, (out - 1) * s[i] + d[i] * (k[i] - 1) + 1 - (size + lo + hi)))
    return extra[0], extra[1]


def _pool_args(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
               ceil_mode: bool) -> dict:
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel_size
    if x.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point input, got dtype {x.dtype}")
    k = _pair(kernel_size, op, "kernel_size", 1)
    p = _padding(padding, op)
    d = _pair(dilation, op, "dilation", 1)
    eff = [d[i] * (k[i] - 1) + 1 for i in range(2)]
    if any(2 * p[i][j] > eff[i] for i in range(2) for j in range(2)):
        raise ArgumentError(f"{op}: padding {padding!r} must be at most half the effective kernel size {tuple(eff)} "
                            "(as in PyTorch)")
    extra = _ceil_extra(x, op, kernel_size, stride, padding, dilation) if ceil_mode else (0, 0)
    params = _window_params(op, x, kernel_size, stride, padding, dilation, extra)
    params["x_shape"] = x.shape
    params["user_padding"] = p
    return params


def _batched4(x: Tensor, op: str) -> tuple[Tensor, bool]:
    """(C, H, W) inputs get a batch axis (PyTorch accepts unbatched images)."""
    from gpugrad.ops.shape import expand_dims

    if x.ndim == 3:
        return expand_dims(x, 0), True
    if x.ndim != 4:
        raise ShapeError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}")
    return x, False


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False) -> Tensor:
    """Max over each window (PyTorch's max_pool2d; the gradient goes to the first maximum of a window).

    Example: ``max_pool2d(x, 2)`` halves H and W.
    """
    from gpugrad.ops.shape import squeeze

    x = as_tensor_operand(x)
    x, unbatched = _batched4(x, "max_pool2d")
    params = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    out = apply(MAX_POOL2D, (x,), params)
    return squeeze(out, 0) if unbatched else out


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None, dilation: Any = 1) -> Tensor:
    """Mean over each window (PyTorch's avg_pool2d, plus ``dilation``): the divisor counts the
    zero padding when ``count_include_pad`` (never the ceil_mode overhang), or is ``divisor_override``.
    """
    from gpugrad.ops.shape import squeeze

    x = as_tensor_operand(x)
    x, unbatched = _batched4(x, "avg_pool2d")
    params = _pool_args("avg_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    kh, kw = params["kernel"]
    if divisor_override is not None:
        if int(divisor_override) <= 0:
            raise ArgumentError(f"avg_pool2d: divisor_override must be positive, got {divisor_override}")
        params["divisor"] = float(divisor_override)
    else:
        (pt, pb), (pl, pr) = params["user_padding"]
        h, w = x.shape[2], x.shape[3]
        ones = np.ones((1, 1, h, w))
        if count_include_pad:
            ones = np.pad(ones, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=1.0)
            geo = dict(params, padding=((0, params["padding"][0][1] - pb), (0, params["padding"][1][1] - pr)))
        else:
            geo = params
        counts = _npb.pool2d(ones, *_geom(geo), "sum")[0, 0]
        params["divisor"] = float(kh * kw) if np.all(counts == kh * kw) else counts
    out = apply(AVG_POOL2D, (x,), params)
    return squeeze(out, 0) if unbatched else out


# ---- normalisation ----------------------------------------------------------------------------


def _f32(ns: Any, x: Any) -> Any:
    """float16 statistics are computed in float32 (as the CUDA kernels do)."""
    return ns.astype(x, np.float32) if x.dtype == np.float16 else x


def _normalize_grad(ns: Any, gxhat: Any, xhat: Any, rstd: Any, axes: tuple) -> Any:
    """d/dx of xhat = (x - mean) * rstd, statistics over ``axes``, applied to ``gxhat``."""
    return rstd * (gxhat - ns.mean(gxhat, axes, True) - xhat * ns.mean(gxhat * xhat, axes, True))


def _stats(ns: Any, x: Any, axes: tuple, eps: float) -> tuple[Any, Any]:
    mu = ns.mean(x, axes, True)
    xc = x - mu
    var = ns.mean(xc * xc, axes, True)
    return xc, 1 / ns.sqrt(var + eps)


class LayerNorm(Op):
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing ``axes``; inputs (x, weight
    or None, bias or None)."""

    name = "layer_norm"
    save_inputs = (True, True, False)
    fresh_grads = True  # new arrays (the engine hands them to .grad as they are); a bias gradient that is g is not

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x, w, b = args
        xf = _f32(B, x)
        xc, rstd = _stats(B, xf, params["axes"], params["eps"])
        xc *= rstd
        out = xc.astype(x.dtype, copy=False)
        if w is not None:
            out *= w
        if b is not None:
            out += b
        return out

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        x, w, _ = args
        axes = params["axes"]
        xf = _f32(ns, x)
        gf = _f32(ns, g)
        xc, rstd = _stats(ns, xf, axes, params["eps"])
        xhat = xc * rstd
        lead = tuple(range(x.ndim - len(axes)))
        gx = gw = gb = None
        if needs[0]:
            gx = _normalize_grad(ns, gf * _f32(ns, w) if w is not None else gf, xhat, rstd, axes)
        if needs[1]:
            gw = ns.sum(gf * xhat, lead) if lead else gf * xhat
        if needs[2]:
            gb = ns.sum(g, lead) if lead else g
        return gx, gw, gb

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        tx, tw, tb = tangents
        x, w, _ = args
        axes = params["axes"]
        xc, rstd = _stats(ns, x, axes, params["eps"])
        xhat = xc * rstd
        total = None
        if tx is not None:
            total = _normalize_grad(ns, tx, xhat, rstd, axes)
            if w is not None:
                total = total * w
        if tw is not None:
            total = xhat * tw if total is None else total + xhat * tw
        if tb is not None:
            total = tb if total is None else total + tb
        return total


LAYER_NORM = LayerNorm()


def layer_norm(x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` axes (PyTorch's layer_norm: biased
    variance, eps inside the square root). Example: ``layer_norm(x, (x.shape[-1],), w, b)``."""
    x = as_tensor_operand(x)
    shape = (int(normalized_shape),) if isinstance(normalized_shape, numbers.Integral) else tuple(
        int(s) for s in normalized_shape)
    k = len(shape)
    if k == 0 or tuple(x.shape[x.ndim - k:]) != shape or x.ndim < k:
        raise ShapeError(f"layer_norm: normalized_shape {shape} must equal the trailing dimensions of the "
                         f"input, got input shape {x.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ShapeError(f"layer_norm: {name} must have shape {shape}, got {tuple(t.shape)}")
    weight = None if weight is None else as_tensor_operand(weight, x)
    bias = None if bias is None else as_tensor_operand(bias, x)
    _same_float_dtype("layer_norm", x, weight, bias)
    axes = tuple(range(x.ndim - k, x.ndim))
    return apply(LAYER_NORM, (x, weight, bias), {"axes": axes, "eps": float(eps)})


class BatchNorm(Op):
    """Batch normalisation over ``axes`` (all but the channel axis 1). Training: batch statistics
    (their gradient included); eval: the given running statistics, a per-channel affine map.
    Inputs (x, weight or None, bias or None); params carry the statistics as raw (C,) arrays."""

    name = "batch_norm"
    save_inputs = (True, True, False)

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x, w, b = args
        bshape = params["bshape"]
        rstd = 1 / B.xp.sqrt(params["var"].reshape(bshape) + params["eps"])
        scale = rstd if w is None else rstd * w.reshape(bshape)
        shift = -params["mean"].reshape(bshape) * scale
        if b is not None:
            shift = shift + b.reshape(bshape)
        out = x * scale.astype(x.dtype, copy=False)
        out += shift.astype(x.dtype, copy=False)
        return out

    def _moments(self, ns: Any, x: Any, params: dict) -> tuple[Any, Any]:
        """(x - mean, rstd): recomputed from x (differentiably) in training, constants in eval."""
        bshape = params["bshape"]
        if params["training"] and isinstance(x, Tensor):
            return _stats(ns, x, params["axes"], params["eps"])
        B = _backend_of(_raw(x))
        mean = B.asarray(params["mean"].reshape(bshape), dtype=x.dtype)
        rstd = B.asarray(1 / B.xp.sqrt(params["var"].reshape(bshape) + params["eps"]), dtype=x.dtype)
        return x - mean, rstd

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        x, w, _ = args
        axes, bshape = params["axes"], params["bshape"]
        xf = _f32(ns, x)
        gf = _f32(ns, g)
        xc, rstd = self._moments(ns, xf, params)
        xhat = xc * rstd
        gx = gw = gb = None
        if needs[0]:
            gxhat = gf * ns.reshape(_f32(ns, w), bshape) if w is not None else gf
            gx = _normalize_grad(ns, gxhat, xhat, rstd, axes) if params["training"] else gxhat * rstd
        if needs[1]:
            gw = ns.sum(gf * xhat, axes)
        if needs[2]:
            gb = ns.sum(g, axes)
        return gx, gw, gb

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        tx, tw, tb = tangents
        x, w, _ = args
        axes, bshape = params["axes"], params["bshape"]
        xc, rstd = self._moments(ns, x, params)
        xhat = xc * rstd
        total = None
        if tx is not None:
            total = _normalize_grad(ns, tx, xhat, rstd, axes) if params["training"] else tx * rstd
            if w is not None:
                total = total * ns.reshape(w, bshape)
        if tw is not None:
            term = xhat * ns.reshape(tw, bshape)
            total = term if total is None else total + term
        if tb is not None:
            term = ns.reshape(tb, bshape)
            total = term if total is None else total + term
        return total


BATCH_NORM = BatchNorm()


def batch_norm_stats(x: Tensor) -> tuple[Any, Any, tuple, tuple, int]:
    """Per-channel batch mean and biased variance of ``x`` (N, C, ...) as raw (C,) arrays (float32
    or wider), with the reduction axes, the broadcast shape and the count per channel."""
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    B = backend_for(x.device)
    xr = x.data.astype(np.float32) if x.dtype == np.float16 else x.data
    mean = B.xp.mean(xr, axis=axes)
    var = B.xp.mean(B.xp.square(xr - mean.reshape(bshape)), axis=axes)
    n = int(np.prod([x.shape[a] for a in axes]))
    return mean, var, axes, bshape, n


def check_channel_vectors(x: Any, **vectors: Any) -> None:
    """Each given per-channel vector of batch_norm must have shape (C,) for x of shape (N, C, ...)."""
    c = x.shape[1]
    for name, t in vectors.items():
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"batch_norm: {name} must have shape ({c},) for an input of shape {tuple(x.shape)}, "
                             f"got {tuple(t.shape)}")


def batch_norm_apply(x: Tensor, weight: Any, bias: Any, mean: Any, var: Any, training: bool, eps: float) -> Tensor:
    """Normalise ``x`` with per-channel statistics ``mean``/``var`` (raw (C,) arrays): in training
    they are the batch's own (and the gradient flows through them), in eval constants."""
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expected an input (N, C, ...), got shape {x.shape}")
    check_channel_vectors(x, weight=weight, bias=bias)
    _same_float_dtype("batch_norm", x, weight, bias)
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    params = {"axes": axes, "bshape": bshape, "eps": float(eps), "training": bool(training),
              "mean": mean, "var": var}
    return apply(BATCH_NORM, (x, weight, bias), params)


# ---- embedding --------------------------------------------------------------------------------


class Embedding(Op):
    """Rows of ``weight`` at integer ``indices`` (a gather); the gradient adds each output row's
    gradient into its weight row (a scatter-add), none into ``padding_idx``."""

    name = "embedding"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.take(args[0], params["indices"], 0)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        idx = params["indices"]
        pad = params["padding_idx"]
        if pad is not None:
            g = ns.where(_backend_of(idx).xp.expand_dims(idx != pad, -1), g, 0)
        return (ns.take_scatter(g, params["shape"], idx, 0),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.take(tangents[0], params["indices"], 0)


EMBEDDING = Embedding()


def embedding(indices: Any, weight: Any, padding_idx: int | None = None) -> Tensor:
    """``weight[indices]`` for an integer tensor/array of indices (PyTorch's embedding).

    Example: ``embedding(gg.tensor([[0, 2]]), w).shape == (1, 2, w.shape[1])``.
    """
    weight = as_tensor_operand(weight)
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {weight.shape}")
    B = backend_for(weight.device)
    if isinstance(indices, Tensor):
        if indices.device != weight.device:
            raise DeviceError(f"embedding: indices are on {indices.device} but the weight is on {weight.device}")
        idx = indices.data
    else:
        idx = B.asarray(np.asarray(indices) if device_of_array(indices) is None else indices)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    v = weight.shape[0]
    B.check_range(idx, 0, v, ArgumentError, "embedding: indices")
    if padding_idx is not None:
        padding_idx = int(padding_idx)
        if padding_idx < 0:
            padding_idx += v
        if not 0 <= padding_idx < v:
            raise ArgumentError(f"embedding: padding_idx must be in [-{v}, {v}), got {padding_idx}")
    return apply(EMBEDDING, (weight,), {"indices": idx, "padding_idx": padding_idx, "shape": weight.shape})


# ---- dropout ------------------------------------------------------------------------------------


class MaskMultiply(Op):
    """x * mask for a constant mask (dropout's kept elements, scaled by 1/(1-p))."""

    name = "dropout"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return args[0] * params["mask"]

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (g * params["mask"],)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return tangents[0] * params["mask"]


MASK_MULTIPLY = MaskMultiply()


def dropout(x: Any, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (identity when not
    ``training`` or p == 0). The mask comes from gpugrad's seeded generator of x's device, so
    ``gg.manual_seed`` makes it repeatable. Example: ``dropout(h, 0.1, training=model.training)``."""
    from gpugrad.factories import rand

    x = as_tensor_operand(x)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ArgumentError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if x.dtype.kind != "f":
        raise DTypeError(f"dropout: expected a floating-point input, got dtype {x.dtype}")
    u = rand(x.shape, dtype=np.float32 if x.dtype == np.float16 else x.dtype, device=x.device).data
    if p == 1.0:
        mask = (u * 0).astype(x.dtype)
    else:
        mask = (u >= p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return apply(MASK_MULTIPLY, (x,), {"mask": mask})


# ---- cross-entropy --------------------------------------------------------------------------


class CrossEntropy(Op):
    """Fused log-softmax + negative log-likelihood over logits (M, C).

    Inputs (logits, target probabilities or None). With integer labels (params ``labels``; ignored
    rows have ``valid`` 0) the effective target row is q = (1 - s) w_y onehot(y) + s/C w
    (s = label smoothing, w = class weights or 1); with probabilities q = ((1 - s) t + s/C) w.
    Row loss -sum_j q_j log_softmax(x)_j; d/dx = (softmax(x) sum_j q_j - q) * row scale.
    The CUDA backend registers a one-pass kernel pair for integer labels without class weights
    and the mean reduction (it declines the other cases).
    """

    name = "cross_entropy"

    def saves(self, needs: tuple) -> tuple:
        return (True, needs[0] or needs[1]), False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x, t = args
        _label_state(params)
        if t is not None:
            s, w, c = params["smoothing"], params["weight"], x.shape[1]
            lsm = forward(LOG_SOFTMAX, B, [x], {"axis": -1})
            q = t * (1 - s) + s / c
            if w is not None:
                q = q * w
            return self._reduce(B, -(q * lsm).sum(-1), params)
        return self._labels_loss(B, x, params)

    def _labels_loss(self, B: Any, x: Any, params: dict) -> Any:
        """The loss for integer labels.

        From z = x - rowmax and the rows' log(sum(exp(z))): -log_softmax(x)[label] = ls - z[label];
        the log-softmax of the whole array is formed only for the smoothing term. exp(z) and its
        row sums are kept with this call's params for the backward (ROW_LSE: softmax(x) is their
        quotient, one pass), as the CUDA kernels keep their statistics. Shifting first keeps a
        large common offset of the logits out of the arithmetic."""
        s, w, labels = params["smoothing"], params["weight"], params["labels"]
        m, c = x.shape
        z = x - _shift(B, x, 1)
        e = B.exp(z)
        se = B.sum(e, 1, False)
        ls = B.log(se)
        params[ROW_LSE] = (e, se)
        at = _label_positions(B.xp, m, c, labels)  # kept for the backward
        params[LABEL_AT] = at
        nll = ls - z.take(at)
        if w is not None:
            rows = nll * ((1 - s) * w[labels])
        else:
            rows = nll * (1 - s) if s else nll  # (times 1.0 changes nothing)
        if s:
            lsm = z - B.reshape(ls, (m, 1))
            rows = rows - (s / c) * (lsm.sum(-1) if w is None else lsm @ w)
        if params["valid"] is not None:
            rows = rows * params["valid"]
        return self._reduce(B, rows, params)

    @staticmethod
    def _reduce(ns: Any, rows: Any, params: dict) -> Any:
        red = params["reduction"]
        if red == "none":
            return ns.reshape(rows, params["out_shape"])
        # float16 rows are summed and averaged in float32, as PyTorch and the CUDA kernels do:
        # 65,504 is float16's largest value, under the row count of a large batch
        half = rows.dtype == np.float16
        total = ns.sum(ns.astype(rows, np.float32) if half else rows, None, False)
        if red != "sum":
            if params["valid"] is None and rows.shape[0] and not half:
                return total / params["denom"]  # the row count, finite: no row is ignored
            with np.errstate(invalid="ignore", divide="ignore"):  # every label ignored: NaN, as PyTorch, silently
                total = total / params["denom"]
        if not half:
            return total
        with np.errstate(over="ignore"):  # a sum past float16's range is inf, as PyTorch's, silently
            return ns.astype(total, np.float16)

    def _scale(self, ns: Any, g: Any, params: dict, m: int) -> Any:
        """Per-row factor (M, 1) of the gradient: g spread back by the reduction."""
        red = params["reduction"]
        if red == "none":
            s = ns.reshape(g, (m, 1))
        else:
            s = g / params["grad_denom"] if red == "mean" else g
        valid = params["valid"]
        if valid is not None:
            s = s * valid[:, None]
        return s

    def _label_target(self, like: Any, params: dict) -> tuple[Any, Any]:
        """Dense effective target q (M, C) and its row sums (M, 1) for integer labels (constants)."""
        labels, w, s = params["labels"], params["weight"], params["smoothing"]
        m, c = like.shape
        xp = _backend_of(labels).xp
        q = xp.zeros((m, c), dtype=like.dtype)
        if s:
            q += (s / c) * (1 if w is None else w)
        onehot = (1 - s) if w is None else (1 - s) * w[labels]
        q[xp.arange(m), labels] += onehot
        if w is None:
            qsum = None  # the rows of q sum to 1
        else:
            qsum = ((1 - s) * w[labels] + (s / c) * w.sum())[:, None].astype(like.dtype)
        return q, qsum

    def _target(self, ns: Any, t: Any, like: Any, params: dict) -> tuple[Any, Any]:
        if t is None:
            return self._label_target(like, params)
        s, w = params["smoothing"], params["weight"]
        q = t * (1 - s) + s / like.shape[-1]
        if w is not None:
            q = q * w
        return q, ns.sum(q, -1, True)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        x, t = args
        m = x.shape[0]
        _label_state(params)
        scale = self._scale(ns, g, params, m)  # (float32 for float16 x: g over a float32 count)
        gx = gt = None
        if needs[0]:
            # (taken, not read: kept past the backward, exp(x - max) would double the logits'
            # memory for as long as the loss lives; a second backward computes the softmax again)
            kept = params.pop(ROW_LSE, None)
            if kept is not None and not isinstance(x, Tensor):
                e, se = kept  # softmax from the forward's exp(x - rowmax) and its row sums
                p = e / se[:, None]
            else:  # create_graph: differentiable in x; or the forward ran as a backend's kernel
                p = ns.softmax(x, -1)
            if t is None and params["weight"] is None and not params["smoothing"] and not isinstance(p, Tensor):
                # q is one-hot (its rows sum to 1): p - q is p less 1 at each label, in place (by
                # flat positions: NumPy's (rows, labels) indexing costs twice as much)
                xp = _backend_of(p).xp
                if not p.flags.c_contiguous:
                    p = xp.ascontiguousarray(p)  # (its flat view is written)
                at = params.pop(LABEL_AT, None)
                if at is None:  # (the forward ran as a backend's kernel, or a backward ran before)
                    at = _label_positions(xp, m, x.shape[1], params["labels"])
                p.reshape(-1)[at] -= 1
                gx = p * scale
            else:
                q, qsum = self._target(ns, t, x, params)
                gx = (p - q) * scale if qsum is None else (p * qsum - q) * scale
            if gx.dtype != x.dtype:
                gx = ns.astype(gx, x.dtype)
        if needs[1]:
            w = params["weight"]
            f = -(1 - params["smoothing"])
            gt = ns.log_softmax(x, -1) * (f if w is None else w * f) * scale
            if gt.dtype != x.dtype:
                gt = ns.astype(gt, x.dtype)
        return gx, gt

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        tx, tt = tangents
        x, t = args
        _label_state(params)
        lsm = ns.log_softmax(x, -1)
        rows = None
        if tx is not None:
            q, _ = self._target(ns, t, x, params)
            dlsm = tx - ns.sum(ns.exp(lsm) * tx, -1, True)
            rows = -ns.sum(q * dlsm, -1)
        if tt is not None:
            w = params["weight"]
            f = -(1 - params["smoothing"])
            term = ns.sum(tt * lsm * (f if w is None else w * f), -1)
            rows = term if rows is None else rows + term
        if params["valid"] is not None:
            rows = rows * params["valid"]
        return self._reduce(ns, rows, params)


CROSS_ENTROPY = CrossEntropy()
_ROW_STARTS: dict = {}  # (m, c) -> the flat positions of m rows of c, read-only (on the host)


def _label_positions(xp: Any, m: int, c: int, labels: Any) -> Any:
    """The flat positions of ``labels`` in an (m, c) array: NumPy's (rows, labels) indexing costs
    twice as much as flat positions. The row starts are made once per (m, c) on the host."""
    if xp is not np:
        at = xp.arange(0, m * c, c)
        at += labels
        return at
    starts = _ROW_STARTS.get((m, c))
    if starts is None:
        if len(_ROW_STARTS) > 64:
            _ROW_STARTS.clear()
        starts = _ROW_STARTS[m, c] = np.arange(0, m * c, c)
        starts.flags.writeable = False
    return starts + labels


LABEL_AT = "label_at"  # the params key of the labels' flat positions in x (the rule's forward keeps them)
ROW_LSE = "row_lse"  # the params key of the (exp(x - rowmax), its row sums) the rule's forward keeps


def _label_state(params: dict) -> None:
    """What the rules need of integer labels, set in ``params`` the first time a rule runs: safe
    labels, the 0/1 row mask, the mean's denominator, and that denominator for the gradient (1
    when every row is ignored: PyTorch gives a NaN loss but a zero gradient). Not at the call: on
    CUDA the cross-entropy kernels read the raw labels and need none of it (seven launches saved)."""
    raw = params.get("raw_labels")
    if raw is None or params["labels"] is not None:
        return
    xp = _backend_of(raw).xp
    w = params["weight"]
    count = np.float32 if params["dtype"] == np.float16 else params["dtype"]  # (float16 stops at 65,504)
    if xp is np and w is None and (params.get("none_ignored") or not (raw == params["ignore_index"]).any()):
        # no row ignored (asked of host memory, so free): no mask; the mean divides by the rows
        n = np.asarray(raw.shape[0], count)
        params.update(labels=raw, valid=None, denom=n, grad_denom=n)
        return
    valid_b = raw != params["ignore_index"]
    labels = xp.where(valid_b, raw, 0)
    valid = valid_b.astype(params["dtype"])
    params.update(labels=labels, valid=valid)
    denom = xp.sum(valid if w is None else valid * w[labels], dtype=count)
    params["denom"] = denom
    params["grad_denom"] = xp.where(denom == 0, 1, denom).astype(count)

_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ArgumentError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between ``logits`` (C,), (N, C) or (N, C, d1, ...) and ``target``: integer class
    labels (N,) / (N, d1, ...) with ``ignore_index``, or class probabilities of the logits' shape.
    PyTorch's definition: optional class ``weight`` (C,), ``label_smoothing`` mixing the target with
    the uniform distribution, 'mean' over non-ignored rows (weighted by their class weight).

    Example: ``loss = cross_entropy(model(x), y)`` with y an int64 tensor of labels.
    """
    logits = as_tensor_operand(logits)
    check_reduction("cross_entropy", reduction)
    ignore_index = int(ignore_index)  # (as labels are compared with it)
    s = float(label_smoothing)
    if not 0.0 <= s <= 1.0:
        raise ArgumentError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    arr = logits.data  # (its shape and dtype read from the array: the tensor's are properties)
    shape, dtype = arr.shape, arr.dtype
    nd = len(shape)
    if dtype.kind != "f":
        raise DTypeError(f"cross_entropy: logits must be floating point, got dtype {dtype}")
    if nd == 0:
        raise ShapeError("cross_entropy: logits must have a class axis, got a 0-d tensor")
    device = logits.device
    B = backend_for(device)
    if isinstance(target, Tensor):
        if target.device != device:
            raise DeviceError(f"cross_entropy: target is on {target.device} but logits are on {device}")
        t_arr = target.data
    else:
        t_arr = B.asarray(np.asarray(target) if device_of_array(target) is None else target)
    is_labels = t_arr.dtype.kind in "iu"
    unbatched = nd == 1
    c = shape[-1] if unbatched else shape[1]
    w = None
    if weight is not None:
        w = _raw(as_tensor_operand(weight, logits))
        if w.shape != (c,):
            raise ShapeError(f"cross_entropy: weight must have shape ({c},), got {tuple(w.shape)}")
        w = w.astype(dtype)
    x = logits
    if unbatched:
        x = reshape(x, (1, c))
        batch_shape: tuple = ()
    elif nd > 2:
        x = moveaxis(x, 1, -1)
        batch_shape = (shape[0], *shape[2:])
    else:
        batch_shape = (shape[0],)
    m = math.prod(batch_shape)
    if nd > 2:
        x = reshape(x, (m, c))
    params: dict[str, Any] = {"smoothing": s, "weight": w, "reduction": reduction, "out_shape": batch_shape,
                              "labels": None, "valid": None}
    if is_labels:
        if t_arr.shape != batch_shape:
            raise ShapeError(f"cross_entropy: integer labels must have shape {batch_shape} for logits of shape "
                             f"{shape}, got {tuple(t_arr.shape)}")
        labels = t_arr.reshape(m).astype(np.int64)  # a copy: the tape keeps it
        in_range = False
        if B.xp is np and m:
            # (a negative label reads as a huge one; the ufunc's reduce: .max() adds 1 us of Python)
            in_range = bool(np.maximum.reduce(labels.view(np.uint64)) < c)
            if not in_range:
                bad = (labels != ignore_index) & ((labels < 0) | (labels >= c))
                if bad.any():
                    raise ArgumentError(f"cross_entropy: labels must be in [0, {c}) or equal ignore_index "
                                        f"({ignore_index}); got {int(labels[bad][0])}")
        # every label a class and ignore_index none: no row is ignored (known without a pass)
        params["none_ignored"] = in_range and not 0 <= ignore_index < c
        # labels, valid and denom: computed by _label_state when the rule runs (a backend's
        # kernel reads raw_labels alone)
        params.update(raw_labels=labels, ignore_index=ignore_index, dtype=dtype, denom=None, grad_denom=None)
        return apply(CROSS_ENTROPY, (x, None), params)
    if t_arr.dtype.kind != "f":
        raise DTypeError(f"cross_entropy: target must hold integer labels or float probabilities, got {t_arr.dtype}")
    if tuple(t_arr.shape) != tuple(logits.shape):
        raise ShapeError(f"cross_entropy: probability targets must have the logits' shape {logits.shape}, "
                         f"got {tuple(t_arr.shape)}")
    t = target if isinstance(target, Tensor) else make_tensor(t_arr, logits.device)
    if t.dtype != logits.dtype:
        t = t.astype(logits.dtype)
    if unbatched:
        t = reshape(t, (1, c))
    elif logits.ndim > 2:
        t = moveaxis(t, 1, -1)
    if t.shape != (m, c):
        t = reshape(t, (m, c))
    params["denom"] = params["grad_denom"] = float(m)
    return apply(CROSS_ENTROPY, (x, t), params)
