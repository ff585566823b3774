"""Arrays, host<->device transfers and the checks that wait for them: index range checks stay on
the device (minimum and maximum) and are compared at the next synchronisation (``to_host``,
``all_finite``, ``synchronize``), which raises then, as CUDA's device-side asserts do.

Example::

    B.check_range(idx, 0, 10, IndexError, "index")   # no sync
    B.to_host(y)                                     # syncs, and raises if idx was out of range
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Transfers:
    """CupyBackend's arrays, transfers and deferred checks (state: ``_pending``)."""

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        if isinstance(data, self._nd) and (dtype is None or data.dtype == dtype) and data.device.id == self.index:
            return data
        with self.device:
            return self.cp.asarray(data, dtype=dtype)

    def array(self, data: Any, dtype: Any = None, copy: bool = True) -> Any:
        with self.device:
            return self.cp.array(data, dtype=dtype, copy=copy)

    def from_host(self, x: Any) -> Any:
        """A copy of ``x`` (NumPy, or CuPy on any GPU) on this GPU."""
        with self.device:
            return self.cp.array(x, copy=True)

    def to_host(self, x: Any) -> np.ndarray:
        self._check_pending()
        self.counters["syncs"] += 1
        return self.cp.asnumpy(x)

    def check_range(self, values: Any, lo: int, hi: int, error: type, what: str) -> None:
        """Check that the integers of ``values`` lie in [lo, hi) without waiting for the GPU: their
        minimum and maximum stay on the device (folded into earlier unchecked ones) and are
        compared at the next synchronisation (``to_host``, ``item()``, ``synchronize``), which
        raises ``error`` then, as CUDA's device-side asserts surface at the next sync."""
        if not values.size:
            return
        cp = self.cp
        with self.device:
            mn, mx = values.min(), values.max()
            self.counters["launches"] += 2
            key = (what, lo, hi, error)
            prev = self._pending.get(key)
            if prev is not None:
                mn, mx = cp.minimum(mn, prev[0]), cp.maximum(mx, prev[1])
                self.counters["launches"] += 2
        self._pending[key] = (mn, mx)

    def _check_pending(self) -> None:
        if not self._pending:
            return
        items = list(self._pending.items())
        self._pending.clear()
        cp = self.cp
        with self.device:
            bounds = cp.stack([cp.stack([a.astype(np.int64), b.astype(np.int64)]) for _, (a, b) in items]).get()
        self.counters["syncs"] += 1
        for ((what, lo, hi, error), _), (mn, mx) in zip(items, bounds):
            if mn < lo or mx >= hi:
                raise error(f"{what} must be in [{lo}, {hi}), got values in [{mn}, {mx}] (found at this "
                            "synchronisation: on CUDA, index checks wait for the next sync instead of causing one)")

    def to_device(self, x: Any, device: str) -> Any:
        from gpugrad.backends import backend_for

        return backend_for(device).from_host(x if device.startswith("cuda") else self.cp.asnumpy(x))

    def all_finite(self, x: Any) -> bool:
        self._check_pending()
        self.counters["syncs"] += 1
        return bool(self.cp.isfinite(x).all())

    def synchronize(self) -> None:
        """Wait for the work queued on this GPU."""
        self._check_pending()
        self.counters["syncs"] += 1
        self.device.synchronize()
