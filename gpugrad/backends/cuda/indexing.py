"""Indexing on CUDA: gathers through CuPy, and the scatter-adds that are their gradients
(advanced-index backward, ``take``'s transpose) with the atomic kernel of ``kernels/scatter.cu``
(a general index is turned into flat positions first).

Example::

    B.index_scatter(g, (5, 3), (idx,))      B.take_scatter(g, (5, 3), idx, 0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends.cuda.geometry import BLOCK, FLOATS, SFX, prod
from gpugrad.backends.shapes import is_basic_index


class Indexing:
    """CupyBackend's indexing and scatter-add."""

    def getitem(self, x: Any, index: Any) -> Any:
        r = x[index]
        if not is_basic_index(index):
            self.counters["launches"] += 1  # a gather; basic indexing is a view
        return r if isinstance(r, self._nd) else self.cp.asarray(r)

    def _index_add(self, src: Any, idx: Any, dst: Any, outer: int, nidx: int, inner: int, dim: int) -> None:
        total = outer * nidx * inner
        if total == 0:
            return
        src = self.cp.ascontiguousarray(src)
        idx = self.cp.ascontiguousarray(idx.astype(np.int64, copy=False))
        k = self._handwritten("scatter.cu", f"gg_index_add_{SFX[dst.dtype]}")
        self._launch(k, max(1, min(-(-total // BLOCK), self._max_grid)), BLOCK,
                     (src, idx, dst, np.int64(outer), np.int64(nidx), np.int64(inner), np.int64(dim)))

    def index_scatter(self, values: Any, shape: tuple, index: Any) -> Any:
        """zeros(shape) with ``values`` added at ``index`` (repeated indices accumulate)."""
        cp = self.cp
        with self.device:
            out = cp.zeros(shape, dtype=values.dtype)
        self.counters["launches"] += 1
        items = index if isinstance(index, tuple) else (index,)
        if is_basic_index(index):
            out[index] = values
            self.counters["launches"] += 1
            return out
        if values.dtype not in FLOATS:
            import cupyx

            cupyx.scatter_add(out, index, values)
            self.counters["launches"] += 1
            return out
        if len(items) == 1 and isinstance(items[0], self._nd) and items[0].dtype.kind in "iu" and shape:
            idx = items[0]
            inner = prod(tuple(shape[1:]))
            vals = cp.broadcast_to(values, idx.shape + tuple(shape[1:]))
            self._index_add(vals, idx.ravel(), out, 1, idx.size, inner, shape[0])
            return out
        # general advanced index: the flat positions it selects, then one scatter-add
        with self.device:
            pos = cp.arange(prod(tuple(shape)), dtype=np.int64).reshape(shape)[index]
        self.counters["launches"] += 2
        vals = cp.broadcast_to(values, pos.shape)
        self._index_add(vals, pos.ravel(), out.reshape(-1), 1, pos.size, 1, out.size)
        return out

    def index_put(self, x: Any, index: Any, values: Any) -> Any:
        """A copy of ``x`` with ``x[index] = values``."""
        out = x.copy()
        out[index] = values
        self.counters["launches"] += 2
        return out

    def take(self, x: Any, indices: Any, axis: int) -> Any:
        self.counters["launches"] += 1
        return self.cp.take(x, self.asarray(indices), axis=axis)

    def take_scatter(self, values: Any, shape: tuple, indices: Any, axis: int) -> Any:
        """The transpose of ``take``: zeros(shape) with ``values`` added along ``axis`` at ``indices``."""
        cp = self.cp
        idx = self.asarray(indices)
        with self.device:
            out = cp.zeros(shape, dtype=values.dtype)
        self.counters["launches"] += 1
        if values.dtype not in FLOATS:
            import cupyx

            moved = cp.moveaxis(out, axis, 0)
            vals = cp.moveaxis(values, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
            cupyx.scatter_add(moved, idx.ravel(), vals.reshape((-1,) + moved.shape[1:]))
            self.counters["launches"] += 1
            return out
        outer = prod(tuple(shape[:axis]))
        inner = prod(tuple(shape[axis + 1:]))
        self._index_add(values, idx.ravel(), out, outer, idx.size, inner, shape[axis])
        return out
