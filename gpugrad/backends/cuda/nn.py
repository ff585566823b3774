"""Softmax, log-softmax and cross-entropy on CUDA: the hand-written kernels of
``kernels/softmax.cu`` and ``kernels/cross_entropy.cu`` (one launch per pass, rows kernel for the
last axis, columns kernel otherwise; nothing syncs with the host), and their registration as
the CUDA lowerings of the ops ``softmax``, ``log_softmax`` and ``cross_entropy`` (:data:`LOWERINGS`).

Example::

    B.softmax(x, -1)
    B.lowerings[("softmax", "vjp")](B, g, (x,), out, {"axis": -1}, (True,))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends import lowerings, portable
from gpugrad.backends.cuda.geometry import ACC, BLOCK, FLOATS, SFX, pow2_at_least, prod
from gpugrad.errors import DTypeError, ShapeError


class NNKernels:
    """CupyBackend's softmax and cross-entropy kernels."""

    def _axis_geometry(self, x: Any, axis: int) -> tuple[Any, int, int, int]:
        if not x.flags.c_contiguous:
            x = self.cp.ascontiguousarray(x)
            self.counters["launches"] += 1
        axis = axis % x.ndim
        return x, prod(x.shape[:axis]), x.shape[axis], prod(x.shape[axis + 1:])

    def _softmax(self, x: Any, axis: int, log: bool) -> Any:
        cp = self.cp
        if x.dtype not in FLOATS or x.size == 0:  # no kernel: the portable array code
            return (portable.log_softmax if log else portable.softmax)(x, axis)
        x, outer, R, inner = self._axis_geometry(x, axis)
        with self.device:
            y = cp.empty(x.shape, dtype=x.dtype)
        sfx = SFX[x.dtype]
        if inner == 1:
            k = self._handwritten("softmax.cu", f"gg_softmax_rows_{sfx}")
            self._launch(k, min(outer, self.sm_count * 8), pow2_at_least(R),
                         (x, y, np.int64(outer), np.int64(R), np.int32(log)))
        else:
            k = self._handwritten("softmax.cu", f"gg_softmax_cols_{sfx}")
            n = outer * inner
            self._launch(k, max(1, min(-(-n // BLOCK), self._max_grid)), BLOCK,
                         (x, y, np.int64(outer), np.int64(R), np.int64(inner), np.int32(log)))
        return y

    def softmax(self, x: Any, axis: int) -> Any:
        """exp(x - max) / sum(exp(x - max)) along ``axis``, one kernel."""
        return self._softmax(x, axis, False)

    def log_softmax(self, x: Any, axis: int) -> Any:
        """x - max - log(sum(exp(x - max))) along ``axis``, one kernel."""
        return self._softmax(x, axis, True)

    def _softmax_bwd(self, g: Any, y: Any, axis: int, log: bool) -> Any:
        """The softmax (``log``: log_softmax) gradient from the output ``y``, one kernel."""
        cp = self.cp
        if y.dtype not in FLOATS:
            raise DTypeError(f"{'log_' if log else ''}softmax backward kernel: float16/32/64 only, got {y.dtype}")
        if y.size == 0:
            with self.device:
                return cp.empty(y.shape, dtype=y.dtype)
        if g.dtype != y.dtype or g.shape != y.shape or not g.flags.c_contiguous:
            g = cp.ascontiguousarray(cp.broadcast_to(g, y.shape).astype(y.dtype, copy=False))
            self.counters["launches"] += 1
        y, outer, R, inner = self._axis_geometry(y, axis)
        with self.device:
            gx = cp.empty(y.shape, dtype=y.dtype)
        sfx = SFX[y.dtype]
        if inner == 1:
            k = self._handwritten("softmax.cu", f"gg_softmax_bwd_rows_{sfx}")
            self._launch(k, min(outer, self.sm_count * 8), pow2_at_least(R),
                         (g, y, gx, np.int64(outer), np.int64(R), np.int32(log)))
        else:
            k = self._handwritten("softmax.cu", f"gg_softmax_bwd_cols_{sfx}")
            n = outer * inner
            self._launch(k, max(1, min(-(-n // BLOCK), self._max_grid)), BLOCK,
                         (g, y, gx, np.int64(outer), np.int64(R), np.int64(inner), np.int32(log)))
        return gx

    def softmax_backward(self, g: Any, y: Any, axis: int) -> Any:
        """y * (g - sum(g * y, axis)) from the softmax output ``y``, one kernel (float dtypes)."""
        return self._softmax_bwd(g, y, axis, False)

    def log_softmax_backward(self, g: Any, y: Any, axis: int) -> Any:
        """g - exp(y) * sum(g, axis) from the log_softmax output ``y``, one kernel (float dtypes)."""
        return self._softmax_bwd(g, y, axis, True)

    def cross_entropy_logits(self, logits: Any, labels: Any, ignore_index: int = -100,
                             label_smoothing: float = 0.0) -> tuple[Any, Any]:
        """Mean softmax cross-entropy of ``logits`` (N, C) against int64 ``labels`` (N,).

        Returns ``(loss, stats)``: the 0-d loss in logits' dtype and the state the backward
        needs (row log-sum-exp and the count of rows not ignored). See docs/DEVELOPING.md.
        """
        cp = self.cp
        logits, labels = self._ce_operands(logits, labels)
        n, c = logits.shape
        acc = ACC[logits.dtype]
        sfx = SFX[logits.dtype]
        with self.device:
            work = cp.empty(2 * n, dtype=acc)
            stats = cp.empty(n + 1, dtype=acc)
            loss = cp.empty((), dtype=logits.dtype)
        if n:
            k = self._handwritten("cross_entropy.cu", f"gg_ce_fwd_rows_{sfx}")
            self._launch(k, min(n, self.sm_count * 8), pow2_at_least(c),
                         (logits, labels, work, stats, np.int64(n), np.int64(c), np.int64(ignore_index),
                          np.float64(label_smoothing)))
        k = self._handwritten("cross_entropy.cu", f"gg_ce_finish_{sfx}")
        self._launch(k, 1, BLOCK, (work, stats, loss, np.int64(n)))
        return loss, stats

    def cross_entropy_logits_backward(self, g: Any, logits: Any, labels: Any, stats: Any, ignore_index: int = -100,
                                      label_smoothing: float = 0.0) -> Any:
        """d loss / d logits for :meth:`cross_entropy_logits` scaled by the 0-d ``g``, one kernel."""
        cp = self.cp
        logits, labels = self._ce_operands(logits, labels)
        n, c = logits.shape
        if not isinstance(g, self._nd) or g.dtype != logits.dtype:
            g = cp.asarray(g, dtype=logits.dtype)
        with self.device:
            dx = cp.empty((n, c), dtype=logits.dtype)
        if n:
            k = self._handwritten("cross_entropy.cu", f"gg_ce_bwd_rows_{SFX[logits.dtype]}")
            self._launch(k, min(n, self.sm_count * 8), pow2_at_least(c),
                         (g, logits, labels, stats, dx, np.int64(n), np.int64(c), np.int64(ignore_index),
                          np.float64(label_smoothing)))
        return dx

    def layer_norm_rows(self, x: Any, w: Any, b: Any, eps: float) -> tuple[Any, Any]:
        """Layer normalisation of ``x`` over its trailing ``w.shape`` (R elements: x as (rows, R))
        with weight and bias, one kernel: ``(y, stats)``, stats the rows' mean and 1/std ((rows,
        2), float32 for float16, else x's dtype) that :meth:`layer_norm_rows_backward` reads.
        Float dtypes, contiguous operands."""
        cp = self.cp
        R = w.size
        rows = x.size // R if R else 0
        with self.device:
            y = cp.empty(x.shape, dtype=x.dtype)
            stats = cp.empty((rows, 2), dtype=ACC[x.dtype])
        if rows and R:
            k = self._handwritten("layer_norm.cu", f"gg_ln_fwd_rows_{SFX[x.dtype]}")
            self._launch(k, min(rows, self.sm_count * 8), pow2_at_least(R),
                         (x, w, b, y, stats, np.int64(rows), np.int64(R), np.float64(eps)))
        return y, stats

    def layer_norm_rows_backward(self, g: Any, x: Any, w: Any, stats: Any, need_x: bool,
                                 need_params: bool) -> tuple[Any, Any, Any]:
        """``(gx, gw, gb)`` of :meth:`layer_norm_rows` for the output gradient ``g`` (x's shape):
        one kernel for gx (when ``need_x``), one for both parameter gradients (``need_params``),
        new arrays of x's and w's shapes; None where not needed."""
        cp = self.cp
        R = w.size
        rows = stats.shape[0]
        if g.dtype != x.dtype or not g.flags.c_contiguous:
            g = cp.ascontiguousarray(g.astype(x.dtype, copy=False))
            self.counters["launches"] += 1
        sfx = SFX[x.dtype]
        gx = gw = gb = None
        with self.device:
            if need_x:
                gx = cp.empty(x.shape, dtype=x.dtype)
            if need_params:
                gw = cp.empty(w.shape, dtype=x.dtype)
                gb = cp.empty(w.shape, dtype=x.dtype)
        if need_x and rows and R:
            k = self._handwritten("layer_norm.cu", f"gg_ln_bwd_rows_{sfx}")
            self._launch(k, min(rows, self.sm_count * 8), pow2_at_least(R),
                         (g, x, w, stats, gx, np.int64(rows), np.int64(R)))
        if need_params and R:
            k = self._handwritten("layer_norm.cu", f"gg_ln_bwd_params_{sfx}")
            self._launch(k, max(1, min(-(-R // BLOCK), self._max_grid)), BLOCK,
                         (g, x, stats, gw, gb, np.int64(rows), np.int64(R)))
        return gx, gw, gb

    def _ce_operands(self, logits: Any, labels: Any) -> tuple[Any, Any]:
        cp = self.cp
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ShapeError(f"cross_entropy: expected logits (N, C) and labels (N,), got {logits.shape} and "
                             f"{labels.shape}")
        if logits.dtype not in FLOATS:
            raise TypeError(f"cross_entropy: logits must be floating point, got {logits.dtype}")
        if not logits.flags.c_contiguous:
            logits = cp.ascontiguousarray(logits)
            self.counters["launches"] += 1
        if labels.dtype != np.int64 or not labels.flags.c_contiguous:
            labels = cp.ascontiguousarray(labels.astype(np.int64))
            self.counters["launches"] += 1
        return logits, labels


# ---- the CUDA lowerings of ops ------------------------------------------------------------------
# Each has the signature of the op's own method (forward(B, args, params) / vjp(B, g, args, out,
# params, needs)) and returns NotImplemented where its kernel does not apply (dtype, parameters):
# the dispatcher then runs the op's rule, the one definition these kernels are tested against
# (tests/test_lowerings.py).


# They call the backend's public methods only: those run with the backend's GPU current.
def _softmax_forward(B: Any, args: list, params: dict, log: bool = False) -> Any:
    x = args[0]
    if x.dtype not in FLOATS or x.size == 0:
        return NotImplemented
    return (B.log_softmax if log else B.softmax)(x, params["axis"])


def _log_softmax_forward(B: Any, args: list, params: dict) -> Any:
    return _softmax_forward(B, args, params, True)


def _softmax_vjp(B: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple, log: bool = False) -> Any:
    if out.dtype not in FLOATS:
        return NotImplemented
    return ((B.log_softmax_backward if log else B.softmax_backward)(g, out, params["axis"]),)


def _log_softmax_vjp(B: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    return _softmax_vjp(B, g, args, out, params, needs, True)


_CE_STATS = "cuda_ce_stats"


def _ce_fused(args: Any, params: dict) -> bool:
    """Whether the cross-entropy kernels compute this op: integer labels, no class weights, the mean."""
    x, t = args
    return (t is None and params.get("raw_labels") is not None and params.get("weight") is None
            and params.get("reduction") == "mean" and x.ndim == 2 and x.shape[0] > 0 and x.shape[1] > 0
            and x.dtype in FLOATS)


def _cross_entropy_forward(B: Any, args: list, params: dict) -> Any:
    if not _ce_fused(args, params):
        return NotImplemented
    # The backward kernel reads the row log-sum-exp and the row count this pass computes: they are
    # kept with this call's params (made per call by gpugrad.ops.nn.cross_entropy) rather than
    # recomputed (two more launches per step). Without them the vjp declines (the rule runs).
    loss, params[_CE_STATS] = B.cross_entropy_logits(args[0], params["raw_labels"], params["ignore_index"],
                                                     params["smoothing"])
    return loss


def _cross_entropy_vjp(B: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    stats = params.get(_CE_STATS)
    if stats is None or not _ce_fused(args, params):
        return NotImplemented
    gx = B.cross_entropy_logits_backward(g, args[0], params["raw_labels"], stats,
                                         params["ignore_index"], params["smoothing"])
    return gx, None


_LN_STATS = "cuda_ln_stats"


def _ln_rows(B: Any, args: Any, params: dict) -> tuple[int, int] | None:
    """(rows, R) when the layer-norm kernels compute this case: float x, weight and bias given,
    all contiguous, of one dtype."""
    x, w, b = args
    if w is None or b is None or x.dtype not in FLOATS or w.dtype != x.dtype or b.dtype != x.dtype:
        return None
    if not (x.flags.c_contiguous and w.flags.c_contiguous and b.flags.c_contiguous):
        return None
    R = prod(x.shape[x.ndim - len(params["axes"]):])
    return (prod(x.shape) // R if R else 0), R


def _layer_norm_forward(B: Any, args: list, params: dict) -> Any:
    shape = _ln_rows(B, args, params)
    if shape is None or 0 in shape:
        return NotImplemented
    x, w, b = args
    # the statistics are kept with this call's params for the backward (as cross-entropy's)
    y, params[_LN_STATS] = B.layer_norm_rows(x, w, b, params["eps"])
    return y


def _layer_norm_vjp(B: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    stats = params.get(_LN_STATS)
    x, w, _ = args
    if stats is None or x is None or w is None or needs[1] != needs[2] or g.shape != x.shape:
        return NotImplemented
    return B.layer_norm_rows_backward(g, x, w, stats, needs[0], needs[1])


LOWERINGS = lowerings.CUDA
LOWERINGS.update({
    ("layer_norm", "forward"): _layer_norm_forward,
    ("layer_norm", "vjp"): _layer_norm_vjp,
    ("softmax", "forward"): _softmax_forward,
    ("softmax", "vjp"): _softmax_vjp,
    ("log_softmax", "forward"): _log_softmax_forward,
    ("log_softmax", "vjp"): _log_softmax_vjp,
    ("cross_entropy", "forward"): _cross_entropy_forward,
    ("cross_entropy", "vjp"): _cross_entropy_vjp,
})
