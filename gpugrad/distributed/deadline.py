"""Waiting for a collective with a deadline, so that a dead or hung rank ends the job with an
error instead of leaving the others blocked forever.

MPI's blocking calls cannot be interrupted, so collectives are started non-blocking and their
request is polled: for 2 ms between yields of the core (MPI progresses a non-blocking
collective only while it is polled, so the latency of small messages stays that of a busy
wait, yet an oversubscribed core goes to the rank that needs it), then with sleeps growing to
1 ms (long waits cost no CPU and let Ctrl-C through). The timeout is ``GPUGRAD_DIST_TIMEOUT``
seconds (600 by default, like PyTorch's) or ``init(timeout=...)``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from gpugrad.distributed.errors import DistributedError, DistributedTimeoutError

TIMEOUT_ENV = "GPUGRAD_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
_SPIN_SECONDS = 2e-3
_MAX_SLEEP = 1e-3


def resolve_timeout(timeout: float | None) -> float:
    """``timeout`` if given, else ``$GPUGRAD_DIST_TIMEOUT``, else 600 s; checked to be positive."""
    source = "timeout"
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV)
        if raw is None or raw.strip() == "":
            return DEFAULT_TIMEOUT
        source = TIMEOUT_ENV
        try:
            timeout = float(raw)
        except ValueError:
            raise DistributedError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    timeout = float(timeout)
    if not timeout > 0 or math.isnan(timeout):
        raise DistributedError(f"{source} must be a positive number of seconds, got {timeout}")
    return timeout


def wait_until(done: Callable[[], bool], timeout: float, what: str, rank: int) -> None:
    """Poll ``done()`` until it is true; raise DistributedTimeoutError after ``timeout`` seconds."""
    if done():
        return
    start = time.monotonic()
    spin_until = start + _SPIN_SECONDS
    deadline = start + timeout
    pause = 1e-5
    while not done():
        now = time.monotonic()
        if now < spin_until:
            os.sched_yield()  # returns at once on an idle core; lets the other ranks run on a busy one
            continue
        if now > deadline:
            raise DistributedTimeoutError(
                f"{what} on rank {rank} did not complete within {timeout:g} s: another rank died, hung or "
                f"skipped this collective (set {TIMEOUT_ENV} to wait longer)"
            )
        time.sleep(pause)
        pause = min(pause * 2, _MAX_SLEEP)
