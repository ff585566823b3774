"""Random numbers on CUDA: one ``cupy.random.RandomState`` per GPU, seeded by
:func:`gpugrad.backends.manual_seed` (the seed set before the GPU was first used, else CuPy's
default); float16 is drawn in float32 and rounded.

Example::

    B.seed(0); B.random("randn", (3, 4), np.float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends.cuda.geometry import F16, F32


class RandomNumbers:
    """CupyBackend's random number generator (state: ``_rng``)."""

    def seed(self, seed: int) -> None:
        with self.device:
            self._rng = self.cp.random.RandomState(int(seed))

    def random(self, kind: str, shape: tuple, dtype: Any, **kw: Any) -> Any:
        """rand / randn / randint on this GPU (float16 drawn in float32 and rounded)."""
        if self._rng is None:
            from gpugrad.backends import current_seed

            with self.device:
                self._rng = self.cp.random.RandomState(current_seed())
        dt = np.dtype(dtype)
        draw = F32 if dt == F16 else dt
        with self.device:
            if kind == "rand":
                arr = self._rng.random_sample(shape, dtype=draw)
            elif kind == "randn":
                arr = self._rng.standard_normal(shape, dtype=draw)
            else:
                arr = self._rng.randint(kw["low"], kw["high"], size=shape, dtype=dt)
            self.counters["launches"] += 1
            if arr.dtype != dt:
                arr = arr.astype(dt)
                self.counters["launches"] += 1
        return arr
