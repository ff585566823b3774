"""``detect_anomaly()``: stop at the first op that produces NaN or Inf, forward or backward."""

from __future__ import annotations

from gpugrad.autograd.state import STATE


class detect_anomaly:  # noqa: N801 (PyTorch's name)
    """Inside this block, an op whose output has NaN/Inf from finite inputs raises AnomalyError
    naming it (forward), and so does a backward rule producing a non-finite gradient (with the
    place where the forward op was called). It costs a check per op, so use it for debugging.

    Example::

        with gg.detect_anomaly():
            loss = gg.log(x - 1).sum()     # x holds a 1: raises, naming 'log'
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._prev: list[bool] = []

    def __enter__(self) -> detect_anomaly:
        self._prev.append(STATE.anomaly)
        STATE.anomaly = self.enabled
        return self

    def __exit__(self, *exc: object) -> None:
        STATE.anomaly = self._prev.pop()


def is_anomaly_enabled() -> bool:
    return STATE.anomaly
