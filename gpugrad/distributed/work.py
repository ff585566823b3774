"""A started collective that completes later: ``test()`` polls, ``wait()`` blocks with a deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpugrad.distributed.deadline import wait_until


class Work:
    """A collective in flight on this rank.

    ``done()`` says whether the communication has completed (and makes progress); once it has,
    ``wait()`` runs the follow-up steps in order (copies back to the tensor, the division of a
    mean...) exactly once. ``result`` holds what the collective produced, if anything
    (``all_gather``'s list).
    """

    __slots__ = ("_done", "_then", "_what", "_timeout", "_rank", "_finished", "result")

    def __init__(self, done: Callable[[], bool], what: str, timeout: float, rank: int,
                 then: Callable[[], Any] | None = None) -> None:
        self._done = done
        self._then: list[Callable[[], Any]] = [] if then is None else [then]
        self._what = what
        self._timeout = timeout
        self._rank = rank
        self._finished = False
        self.result: Any = None

    def then(self, step: Callable[[], Any]) -> Work:
        """Run ``step()`` after completion, after the steps added before it."""
        self._then.append(step)
        return self

    def test(self) -> bool:
        """True once the communication is complete (the follow-up steps run in ``wait``)."""
        return self._finished or self._done()

    def wait(self) -> Any:
        """Block until complete (DistributedTimeoutError past the deadline); return ``result``."""
        if not self._finished:
            wait_until(self._done, self._timeout, self._what, self._rank)
            self._finished = True
            for step in self._then:
                step()
        return self.result


def completed(what: str, result: Any = None) -> Work:
    """A Work that is already complete (world size 1, where every collective is the identity)."""
    w = Work(_true, what, 1.0, 0)
    w.result = result
    return w


def _true() -> bool:
    return True
