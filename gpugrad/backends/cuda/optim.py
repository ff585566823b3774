"""The multi-tensor optimiser update on CUDA: an update rule's variant (gpugrad.table.optim)
rendered into one kernel (:func:`gpugrad.backends.cuda_codegen.optimizer_kernel`) that updates
every parameter of a dtype in one launch, reaching the arrays through a device table of their
addresses.

Example::

    B.optimizer_update(variant, {"lr": 0.1, ...}, [(param, grad, {"momentum_buffer": buf})])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends.cuda.geometry import BLOCK, DTNAME, F16, F32, FLOATS
from gpugrad.errors import DTypeError


class OptimizerUpdate:
    """CupyBackend's fused optimiser step (state: ``_optim_tables``)."""

    def optimizer_update(self, variant: Any, scalars: dict, items: list) -> None:
        """Apply an update rule's ``variant`` (gpugrad.table.optim) to every ``(param, grad, state)``
        of ``items`` (one dtype) in one launch of its multi-tensor kernel: a device table holds each
        array's address, slot by slot, and the kernel finds the tensor of each element by
        bisection over the tensors' offsets. Scalars are rounded to the state dtype (float32 for
        float16 parameters), as NumPy rounds them."""
        cp = self.cp
        items = [it for it in items if it[0].size]
        if not items:
            return
        pdt = items[0][0].dtype
        if pdt not in FLOATS:
            raise DTypeError(f"optimizer step ({variant.rule.name}): unsupported parameter dtype {pdt}")
        sdt = F32 if pdt == F16 else pdt
        names = variant.state
        cols: list[list[Any]] = [[] for _ in range(2 + len(names))]
        writeback = []
        sizes = []
        traffic = 0
        for param, grad, state in items:
            work = param if self._contig(param) else cp.ascontiguousarray(param)
            if work is not param:
                writeback.append((param, work))
            g = grad if grad.dtype == pdt and self._contig(grad) else cp.ascontiguousarray(grad, dtype=pdt)
            cols[0].append(work)
            cols[1].append(g)
            for k, name in enumerate(names):
                a = state.get(name)
                if a is None or a.dtype != sdt or not self._contig(a) or a.shape != param.shape:
                    raise DTypeError(f"optimizer step ({variant.rule.name}): state {name!r} must be a C-contiguous "
                                     f"{sdt} array of the parameter's shape, got {None if a is None else a.dtype}")
                cols[2 + k].append(a)
            sizes.append(param.size)
            traffic += param.nbytes * (1 + variant.writes_param) + g.nbytes + sdt.itemsize * param.size * (
                len(variant.reads) + len(variant.writes))
        table = np.array([[a.data.ptr for a in col] for col in cols], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        key = table.tobytes() + offsets.tobytes()
        dev = self._optim_tables.get(key)
        if dev is None:  # the parameters and states stay put: only new gradients need a new table
            if len(self._optim_tables) > 16:
                self._optim_tables.clear()
            with self.device:
                dev = self._optim_tables[key] = (cp.asarray(table), cp.asarray(offsets))
        kernel = self._kernels.get(("optim", variant, pdt))
        if kernel is None:
            name, src = cg.optimizer_kernel(variant, DTNAME[pdt])
            kernel = self._kernels[("optim", variant, pdt)] = self.load_kernel(name, src)
        total = int(offsets[-1])
        args = (dev[0], dev[1], np.int64(len(sizes)), np.int64(total),
                *[sdt.type(scalars[k]) for k in variant.rule.scalars])
        self._launch(kernel, self._grid(total), BLOCK, args)
        # the kernel reaches the arrays through the table: count what it reads and writes there
        self.counters["bytes"] += traffic
        self.counters["indirect_bytes"] += traffic
        for param, work in writeback:
            param[...] = work
            self.counters["launches"] += 1
