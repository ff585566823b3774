"""Reductions on CUDA: ``sum``, ``mean`` and ``sum_to`` of float arrays with the hand-written
kernels of ``kernels/reduce.cu`` (the array collapsed to (rows, R) or (outer, R, inner) passes by
:func:`~gpugrad.backends.cuda.geometry.reduction_plan`; a long reduction with few outputs split in
chunks plus a second launch), everything else with CuPy.

Example::

    B.sum(x, axis=(0, 2))     B.sum_to(g, (3, 1))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends.cuda.geometry import ACC, BLOCK, FLOATS, SFX, pow2_at_least, prod, reduction_plan
from gpugrad.backends.shapes import sum_to_axes


class Reductions:
    """CupyBackend's sums and extrema."""

    def _sum_pass(self, x: Any, outer: int, R: int, inner: int, out_dt: np.dtype, scale: float,
                  out_shape: tuple | None = None) -> Any:
        """One (outer, R, inner) -> (outer, inner) sum of a contiguous float array, allocated with
        ``out_shape`` (the same elements) when given: a new array, not a view (the autograd engine
        adds into such a gradient in place and hands it to ``.grad`` without a copy)."""
        final = (outer, inner) if out_shape is None else out_shape
        cp = self.cp
        dt = x.dtype
        acc = ACC[dt]
        sm = self.sm_count
        # Split a reduction into chunks (and add a second launch for the partial sums) only when
        # there are too few outputs to occupy the GPU and each one is long: a launch costs more
        # than a short reduction on a few SMs.
        if inner == 1:
            rows = outer
            nch = 1 if rows >= 2 * sm or R <= 8192 else max(1, min(-(-R // 2048), -(-4 * sm // rows)))
            kind = "rows"
        else:
            ncb = -(-inner // 32)
            work = outer * ncb
            nch = 1 if work >= 2 * sm or R <= 2048 else max(1, min(-(-R // 256), -(-4 * sm // work)))
            kind = "cols"
        chunk = -(-R // nch)
        first_dt = out_dt if nch == 1 else acc
        with self.device:
            if nch == 1:
                y = cp.empty(final, dtype=first_dt)
            else:
                y = cp.empty((outer, nch, inner) if kind == "cols" else (outer, nch), dtype=first_dt)
        self._sum_launch(kind, x, y, outer, R, inner, nch, chunk, scale if nch == 1 else 1.0)
        if nch == 1:
            return y
        with self.device:
            z = cp.empty(final, dtype=out_dt)
        self._sum_launch(kind, y, z, outer, nch, inner, 1, nch, scale)
        return z

    def _sum_launch(self, kind: str, x: Any, y: Any, outer: int, R: int, inner: int, nch: int, chunk: int,
                    scale: float) -> None:
        name = f"gg_sum_{kind}_{SFX[x.dtype]}_{SFX[y.dtype]}"
        kernel = self._handwritten("reduce.cu", name)
        if kind == "rows":
            work = outer * nch
            block = pow2_at_least(min(chunk, BLOCK))
            args = (x, y, np.int64(outer), np.int64(R), np.int64(nch), np.int64(chunk), np.float64(scale))
        else:
            work = outer * nch * (-(-inner // 32))
            block = BLOCK
            args = (x, y, np.int64(outer), np.int64(R), np.int64(inner), np.int64(nch), np.int64(chunk),
                    np.float64(scale))
        self._launch(kernel, max(1, min(work, self.sm_count * 8)), block, args)

    def _reduce(self, x: Any, axes: tuple[int, ...], scale: float, shape: tuple | None = None) -> Any:
        """Sum over ``axes`` (sorted, non-negative) times ``scale``; the reduced axes are dropped,
        or the result has ``shape`` (the same number of elements: kept axes of length 1)."""
        cp = self.cp
        dt = x.dtype
        out_shape = tuple(s for d, s in enumerate(x.shape) if d not in axes) if shape is None else shape
        if not x.flags.c_contiguous:
            x = cp.ascontiguousarray(x)
            self.counters["launches"] += 1
        passes = reduction_plan(x.shape, axes)
        if not passes or x.size == 0:
            with self.device:
                if x.size == 0:
                    r = cp.zeros(out_shape, dtype=dt)
                else:
                    r = cp.multiply(x.reshape(out_shape), dt.type(scale)) if scale != 1.0 else x.reshape(out_shape)
            self.counters["launches"] += 1
            return r
        y = x
        for i, (outer, R, inner) in enumerate(passes):
            last = i == len(passes) - 1
            y = self._sum_pass(y, outer, R, inner, dt, scale if last else 1.0, out_shape if last else None)
        return y

    def _axes(self, x: Any, axis: Any) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(x.ndim))
        if isinstance(axis, (int, np.integer)):
            axis = (axis,)
        return tuple(sorted(int(a) % x.ndim for a in axis)) if x.ndim else ()

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A003
        cp = self.cp
        if not isinstance(x, self._nd) or x.dtype not in FLOATS:
            with self.device:
                r = cp.asarray(cp.sum(x, axis=axis, keepdims=keepdims))
            self.counters["launches"] += 1
            return r
        axes = self._axes(x, axis)
        return self._reduce(x, axes, 1.0, tuple(1 if d in axes else s for d, s in enumerate(x.shape))
                            if keepdims else None)

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        cp = self.cp
        if not isinstance(x, self._nd) or x.dtype not in FLOATS or x.size == 0:
            with self.device:
                r = cp.asarray(cp.mean(x, axis=axis, keepdims=keepdims))
            self.counters["launches"] += 1
            return r
        axes = self._axes(x, axis)
        n = prod(tuple(x.shape[a] for a in axes))
        return self._reduce(x, axes, 1.0 / n, tuple(1 if d in axes else s for d, s in enumerate(x.shape))
                            if keepdims else None)

    def sum_to(self, x: Any, shape: tuple) -> Any:
        """Sum ``x`` over the axes it was broadcast along so that it has ``shape`` (a new array)."""
        if x.shape == shape:
            return x
        axes = sum_to_axes(x.shape, shape)
        if x.dtype not in FLOATS:
            with self.device:
                r = self.cp.sum(x, axis=axes) if axes else x
            self.counters["launches"] += 1
            return r.reshape(shape)
        return self._reduce(x, axes, 1.0, tuple(shape))

    def amax(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        with self.device:
            r = self.cp.asarray(self.cp.amax(x, axis=axis, keepdims=keepdims))
        self.counters["launches"] += 1
        return r

    def amin(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        with self.device:
            r = self.cp.asarray(self.cp.amin(x, axis=axis, keepdims=keepdims))
        self.counters["launches"] += 1
        return r
