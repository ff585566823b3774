"""Process-wide autograd switches, kept in one object so the op path reads them with one lookup.

Like NumPy's error state these are global to the process (not per thread): gpugrad is used
from one Python thread at a time.
"""

from __future__ import annotations

import os


class _State:
    __slots__ = ("grad_enabled", "_anomaly", "fw_levels", "fw_masked", "fw_next_level", "seq", "checks",
                 "_fusion", "fuse")

    def __init__(self) -> None:
        self.grad_enabled = True
        self._anomaly = False
        # True when the op path must do more than compute and record (forward mode or anomaly
        # checks): one flag read per op instead of two.
        self.checks = False
        # Forward mode: the levels of the jvp calls now running (outermost first), and the
        # levels whose tangents are being computed (so a rule does not feed its own level).
        self.fw_levels: list[int] = []
        self.fw_masked: frozenset[int] = frozenset()
        self.fw_next_level = 1
        # Sequence numbers order the tape: a node's inputs always have smaller numbers.
        self.seq = 0
        # Eager fusion of elementwise chains (gpugrad.fusion): switched by gg.no_fusion() and
        # GPUGRAD_FUSION; ``fuse`` is what the op path reads (off while checks are on).
        self._fusion = os.environ.get("GPUGRAD_FUSION", "1").strip().lower() not in ("0", "false", "off", "no")
        self.fuse = self._fusion

    @property
    def anomaly(self) -> bool:
        return self._anomaly

    @anomaly.setter
    def anomaly(self, value: bool) -> None:
        self._anomaly = bool(value)
        self.update_checks()

    @property
    def fusion(self) -> bool:
        return self._fusion

    @fusion.setter
    def fusion(self, value: bool) -> None:
        self._fusion = bool(value)
        self.update_checks()

    def update_checks(self) -> None:
        self.checks = self._anomaly or bool(self.fw_levels)
        self.fuse = self._fusion and not self.checks


STATE = _State()
