"""Hand-written host kernels for ops whose NumPy rule is a dozen small calls: softmax cross-entropy
from integer labels (``kernels/gg_cross_entropy_host.h``) and layer normalisation
(``kernels/gg_layer_norm_host.h``), registered in ``lowerings.CPU`` as the CUDA backend registers
its kernels, and built with the host's C++ compiler like the fused chains
(:mod:`gpugrad.fusion.host`).

The rule (gpugrad.ops.nn.CrossEntropy) runs a row max over short rows, its finiteness test, the
shift, exp, the row sums, log, the labels' values and the reduction: 17 NumPy calls, each one's
Python a few microseconds when the step's matrix products have pushed the interpreter out of the
caches. The kernel does it in one pass per row, and keeps what the rule keeps for the backward
(``exp(x - max)`` and its row sums), whose kernel is one pass too. Declined (NotImplemented: the
rule runs) for class weights, label smoothing, ignored rows, probability targets, the per-row
losses of reduction "none", non-contiguous or non-float32/float64 logits, and without a compiler.
Where both run, the loss agrees with the rule's to a few ulp (exp and log are the host's, the row
sums are added in order) and the gradient from the same kept values is the rule's, bit for bit.

Measured (1 thread, float32, forward and backward with the tape's work around them): 256 x 10
(the bench's MLP head) 45 us by the rule's NumPy calls, 36 us with these kernels (on an Intel
Xeon; on an AMD EPYC 50 us, and 35 us once short rows were taken in blocks across rows: hand-
written NumPy's forward and backward 38 us); 512 x 1000 1228 against 639 us; 128 x 32000 8.5
against 4.3 ms.

Layer normalisation (gpugrad.ops.nn.LayerNorm): the rule takes two means, a subtraction, a square,
a square root and the affine map forward, and recomputes the statistics and takes four more
reductions backward; the kernels take one pass per row each way (backward: the weight's and the
bias's gradients added row after row in the same pass). Declined for float16, non-contiguous
operands, and without a compiler. Measured (1 thread, float32, (8, 32, 64) normalised over 64, the
tape's work included): forward 53 -> 22 us, forward and backward 177 -> 67 us (hand-written NumPy,
which keeps its statistics for the backward, 44 and 105 us).

An embedding's gradient (gpugrad.ops.nn.Embedding): the rule sorts the indices and sums each run
with ``np.add.reduceat``; the kernel adds each gradient row into its weight row in order (the
sums of ``np.add.at``, a few ulp from reduceat's): (8, 32) indices into a 128 x 64 float32 table,
90 -> 5.4 us (1 thread, the call included). Declined for indices other than C-contiguous int64
and for an index that has left the table's range since the forward checked it.

2-D max pooling's gradient (gpugrad.ops.nn.MaxPool2d): the rule recomputes each window's argmax
tap by tap (one strided pass over x per tap), then adds the gradient tap by tap into a zeroed
array. The kernel compares a row of windows' taps as vectors (the window's geometry compiled in)
and adds the gradient window by window. Declined for padding, a last window past the input
(ceil_mode), rows that are not contiguous, float16. Measured (1 thread, float32, the bench's CNN
step): the two poolings' backward 1550 -> 833 us, the step 0.855x. The forward stays the rule's:
the same kernel's forward was faster than NumPy's strided passes only on data in cache (103
against 140 us on (32, 8, 28, 28)), and in the step, on a convolution's fresh output, 695 against
233 us for the two (rows of 14 windows are too short for its vectors).

Example::

    from gpugrad.backends import lowerings
    lowerings.CPU[("cross_entropy", "forward")]   # ce_forward, once gpugrad.fusion is imported
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends import lowerings
from gpugrad.fusion import host
from gpugrad.ops import nn as _nn

_CTYPE = host.FLOAT_CTYPES
_FUNCTIONS: dict[tuple, Any] = {}  # (kernel, dtype char, wide, consts) -> compiled function, or None
# Rows of this many classes or more run the build for the CPU's widest vectors (host.WIDE_FLAGS):
# measured (1 thread, float32, forward), 256 x 64: 26.5 us with 8 lanes, 9.9 with 16; 128 x 32000:
# 8.5 against 1.8 ms (NumPy's own exp runs 16 lanes there); 256 x 10: 6.2 against 23.5 us.
WIDE_MIN_CLASSES = 16
_CE = '#include "gg_cross_entropy_host.h"'
_LN = '#include "gg_layer_norm_host.h"'
_EMB = '#include "gg_embedding_host.h"'
_POOL = '#include "gg_max_pool_host.h"'
_CALL = {  # kernel -> (its header, its call in the calling convention of host.build)
    "fwd": (_CE, "gg_ce_host_fwd<{t}>((const {t}*)P[0], (const long long*)P[1], rows, cols, ({t}*)P[2], "
                 "({t}*)P[3], ({t}*)P[4]);"),
    "bwd": (_CE, "gg_ce_host_bwd<{t}>((const {t}*)P[0], (const {t}*)P[1], (const long long*)P[2], rows, cols, "
                 "({t})S[0], ({t}*)P[3]);"),
    "ln_fwd": (_LN, "gg_ln_host_fwd<{t}>((const {t}*)P[0], (const {t}*)P[1], (const {t}*)P[2], rows, cols, "
                    "({t})S[0], ({t}*)P[3]);"),
    "ln_bwd": (_LN, "gg_ln_host_bwd<{t}>((const {t}*)P[0], (const {t}*)P[1], (const {t}*)P[2], rows, cols, "
                    "({t})S[0], ({t}*)P[3], ({t}*)P[4], ({t}*)P[5]);"),
    # rows: the number of gradient rows, cols: their length; S: the table's rows, the padding row
    "emb_bwd": (_EMB, "if (gg_embedding_host_bwd<{t}>((const long long*)P[0], rows, (const {t}*)P[1], cols, "
                      "(long long)S[0], (long long)S[1], ({t}*)P[2])) return 1;"),
    # the geometry and strides in S (gg_max_pool_host.h, gg_pool_geom_of)
    "pool_bwd": (_POOL, "gg_max_pool_host_bwd<{t}, {k}>((const {t}*)P[0], (const {t}*)P[1], S, ({t}*)P[2], "
                        "({t}*)P[3], (int*)P[4]);"),
}


def source(kernel: str, ctype: str, consts: str = "") -> str:
    """The translation unit exporting ``kernel`` (a key of ``_CALL``) for ``ctype`` (and the
    kernel's compile-time constants ``consts``, a template argument list) in the host calling
    convention of :func:`gpugrad.fusion.host.build` (rows, cols, pointer table, unused stride
    tables, scalar table)."""
    header, call = _CALL[kernel]
    return "\n".join([*host.op_pass_head(header, uses_rows=True), "    " + call.format(t=ctype, k=consts),
                      "    return 0;", "}", ""])


def _function(kernel: str, dt: Any, cols: int, consts: str = "") -> Any:
    """The compiled ``kernel`` for dtype ``dt`` (None where it does not build), built for the
    widest vectors when its rows hold ``WIDE_MIN_CLASSES`` elements or more (``cols``)."""
    wide = cols >= WIDE_MIN_CLASSES
    key = (kernel, dt.char, wide, consts)
    fn = _FUNCTIONS.get(key, False)
    if fn is False:
        fn = _FUNCTIONS[key] = host.try_build(source(kernel, _CTYPE[dt], consts), wide)
    return fn


def _takes(x: Any, params: dict) -> bool:
    """Whether the kernels take this call (see the module's docstring); sets the rule's label state."""
    if (x.__class__ is not np.ndarray or x.dtype not in _CTYPE or x.ndim != 2 or not x.size
            or not x.flags.c_contiguous or params["weight"] is not None or params["smoothing"]
            or params["reduction"] == "none" or not host.Settings.enabled):
        return False
    _nn._label_state(params)
    labels = params["labels"]
    return (params["valid"] is None and labels is not None and labels.dtype == np.int64
            and labels.flags.c_contiguous)


def ce_forward(B: Any, args: list, params: dict) -> Any:
    """The loss of integer labels in one pass per row (or NotImplemented: the rule runs)."""
    x, t = args
    if t is not None or not _takes(x, params):
        return NotImplemented
    m, c = x.shape
    fn = _function("fwd", x.dtype, c)
    if fn is None:
        return NotImplemented
    e = np.empty_like(x)
    s = np.empty(m, x.dtype)
    rows = np.empty(m, x.dtype)
    host.call(fn, m, c, [x, params["labels"], e, s, rows])
    params[_nn.ROW_LSE] = (e, s)  # what the rule's forward keeps for the backward
    return _nn.CrossEntropy._reduce(B, rows, params)


def ce_vjp(ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    """The logits' gradient in one pass per row from the kept ``exp(x - max)`` and row sums (or
    NotImplemented: the rule runs)."""
    x, t = args
    kept = params.get(_nn.ROW_LSE)
    if t is not None or needs[1] or kept is None or not _takes(x, params):
        return NotImplemented
    e, s = kept
    if e.__class__ is not np.ndarray or not e.flags.c_contiguous or e.dtype != x.dtype:
        return NotImplemented
    m, c = x.shape
    fn = _function("bwd", x.dtype, c)
    if fn is None:
        return NotImplemented
    del params[_nn.ROW_LSE]  # (taken, as the rule takes it: a retained graph's next backward recomputes)
    params.pop(_nn.LABEL_AT, None)
    scale = _nn.CROSS_ENTROPY._scale(ns, g, params, m)  # the rows' common factor (a 0-d array)
    dx = np.empty_like(e)
    host.call(fn, m, c, [e, s, params["labels"], dx], (float(scale),))
    return dx, None


lowerings.CPU[("cross_entropy", "forward")] = ce_forward
lowerings.CPU[("cross_entropy", "vjp")] = ce_vjp


# ---- layer normalisation ----------------------------------------------------------------------


def _ln_operands(x: Any, others: tuple, params: dict) -> tuple[int, int] | None:
    """(rows, cols) of a layer norm the kernels take: x and ``others`` (None or arrays) C-contiguous
    ndarrays of x's dtype, float32 or float64, normalised over its trailing axes; else None."""
    if (x.__class__ is not np.ndarray or x.dtype not in _CTYPE or not x.size or not x.flags.c_contiguous
            or not host.Settings.enabled):
        return None
    for a in others:
        if a is not None and (a.__class__ is not np.ndarray or a.dtype != x.dtype or not a.flags.c_contiguous):
            return None
    axes = params["axes"]
    if axes != tuple(range(x.ndim - len(axes), x.ndim)):
        return None
    inner = x.shape[x.ndim - len(axes):]
    for a in others:  # the weight and bias have the normalised shape, g has x's (the call checked
        if a is not None and a.shape != inner and a.shape != x.shape:  # them, but .data can change)
            return None
    cols = int(np.prod(inner, dtype=np.int64))
    return x.size // cols, cols


def _ln_kernel(kernel: str, x: Any, others: tuple, params: dict) -> tuple | None:
    """(compiled ``kernel``, rows, cols) for this call, or None where it declines (see
    :func:`_ln_operands`) or does not compile."""
    geometry = _ln_operands(x, others, params)
    if geometry is None:
        return None
    fn = _function(kernel, x.dtype, geometry[1])
    return None if fn is None else (fn, *geometry)


def ln_forward(B: Any, args: list, params: dict) -> Any:
    """The normalised, scaled and shifted rows in one pass per row (or NotImplemented: the rule runs)."""
    x, w, b = args
    taken = _ln_kernel("ln_fwd", x, (w, b), params)
    if taken is None:
        return NotImplemented
    fn, rows, cols = taken
    y = np.empty_like(x)
    host.call(fn, rows, cols, [x, w, b, y], (params["eps"],))
    return y


def ln_vjp(ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    """The gradients of x, the weight and the bias in one pass per row (or NotImplemented: the rule
    runs)."""
    x, w, _ = args
    if g.__class__ is not np.ndarray or g.shape != x.shape:
        return NotImplemented
    taken = _ln_kernel("ln_bwd", x, (w, g), params)
    if taken is None:
        return NotImplemented
    fn, rows, cols = taken
    inner = x.shape[x.ndim - len(params["axes"]):]
    gx = np.empty_like(x) if needs[0] else None
    gw = np.empty(inner, x.dtype) if needs[1] else None
    gb = np.empty(inner, x.dtype) if len(needs) > 2 and needs[2] else None
    host.call(fn, rows, cols, [x, w, g, gx, gw, gb], (params["eps"],))
    return gx, gw, gb


lowerings.CPU[("layer_norm", "forward")] = ln_forward
lowerings.CPU[("layer_norm", "vjp")] = ln_vjp


# ---- embedding -----------------------------------------------------------------------------------


def emb_vjp(ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    """The weight's gradient, each gradient row added into its weight row in one loop (or
    NotImplemented: the rule runs, as for an index no longer in range)."""
    idx = params["indices"]
    v, d = params["shape"]
    if (g.__class__ is not np.ndarray or g.dtype not in _CTYPE or not g.flags.c_contiguous
            or idx.__class__ is not np.ndarray or idx.dtype != np.int64 or not idx.flags.c_contiguous
            or g.shape != (*idx.shape, d) or not host.Settings.enabled):
        return NotImplemented
    fn = _function("emb_bwd", g.dtype, d)
    if fn is None:
        return NotImplemented
    pad = params["padding_idx"]
    gw = np.empty((v, d), g.dtype)
    if host.call(fn, idx.size, d, [idx, g, gw], (v, -1 if pad is None else pad)):
        return NotImplemented
    return (gw,)


lowerings.CPU[("embedding", "vjp")] = emb_vjp


# ---- max pooling ----------------------------------------------------------------------------------


def _pool_geometry(x: Any, params: dict) -> list | None:
    """The kernels' scalar table for max pooling ``x`` (see gg_max_pool_host.h), or None where they
    decline: not a float32/float64 ndarray, padding, or a window reaching past the input."""
    if x.__class__ is not np.ndarray or x.dtype not in _CTYPE or x.ndim != 4 or not x.size or not host.Settings.enabled:
        return None
    (kh, kw), (sh, sw), padding, (dh, dw) = params["kernel"], params["stride"], params["padding"], params["dilation"]
    n, c, h, w = x.shape
    oh, ow = params["out_hw"]
    if any(p for pair in padding for p in pair) or oh < 1 or ow < 1:
        return None
    if (oh - 1) * sh + (kh - 1) * dh >= h or (ow - 1) * sw + (kw - 1) * dw >= w:
        return None
    item = x.itemsize
    if any(s % item for s in x.strides) or x.strides[3] != item:  # rows contiguous: the kernels' loads
        return None
    return [n, c, h, w, oh, ow, kh, kw, sh, sw, dh, dw, *(s // item for s in x.strides)]


def _pool_consts(geometry: list) -> str:
    """The window's shape, stride and dilation as the kernel's template arguments: compiled in, the
    taps unroll and a row of windows is compared as vectors (with them as run-time numbers a
    forward pass over (32, 8, 28, 28) took 945 us against the rule's 138)."""
    return ", ".join(str(int(v)) for v in geometry[6:12])


def pool_vjp(ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    """x's gradient: each window's gradient added at its maximum (or NotImplemented: the rule runs).
    Stored channels-first, as the rule's."""
    x = args[0]
    geometry = _pool_geometry(x, params)
    if geometry is None or g.__class__ is not np.ndarray or g.dtype != x.dtype or g.shape != (*x.shape[:2],
                                                                                                *params["out_hw"]):
        return NotImplemented
    if any(s % g.itemsize for s in g.strides) or g.strides[3] != g.itemsize:
        return NotImplemented  # g's rows contiguous, as x's (gx's are: it is made here)
    fn = _function("pool_bwd", x.dtype, geometry[5], _pool_consts(geometry))
    if fn is None:
        return NotImplemented
    n, c, h, w = x.shape
    gx = np.empty((c, n, h, w), x.dtype).transpose(1, 0, 2, 3)  # the rule's layout
    strides = [*(s // g.itemsize for s in g.strides), *(s // gx.itemsize for s in gx.strides)]
    ow = geometry[5]
    host.call(fn, 0, 0, [x, g, gx, np.empty(ow, x.dtype), np.empty(ow, np.intc)], [*geometry, *strides])
    return (gx,)


lowerings.CPU[("max_pool2d", "vjp")] = pool_vjp
