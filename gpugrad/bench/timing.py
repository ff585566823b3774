"""Timing done the same way for every library: warm-up outside the timed region, calibrated
batches, libraries interleaved run by run, input sets rotated, medians reported.

On the CPU every library is timed with ``time.perf_counter``. On a GPU gpugrad and the
hand-written CuPy version are timed with CuPy's CUDA events and PyTorch with
``torch.cuda.Event``: the events are recorded on the default stream after a device
synchronisation, around a batch of steps, so the time is from the first launch to the last
kernel's end. JAX, which exposes no events, is timed with ``perf_counter`` around the same
batch, blocking on its last result.

Example::

    clock = PerfCounter()
    stats = interleave([Entry("numpy", step, clock)], n_sets=4, budget_s=0.5)
    stats["numpy"].median        # seconds per step
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class PerfCounter:
    """Host wall clock around a batch of steps, with an optional device sync before and a block
    on the last step's result after (JAX's ``block_until_ready``, or a device synchronise)."""

    name = "perf_counter"

    def __init__(self, sync: Callable[[], None] | None = None,
                 block: Callable[[Any], None] | None = None) -> None:
        self.sync = sync
        self.block = block

    def measure(self, step: Callable[[int], Any], start: int, n: int, n_sets: int) -> float:
        """Seconds per step over ``n`` steps on input sets ``start, start+1, ...`` (mod n_sets)."""
        if self.sync is not None:
            self.sync()
        t0 = time.perf_counter()
        out = None
        for j in range(n):
            out = step((start + j) % n_sets)
        if self.block is not None:
            self.block(out)
        return (time.perf_counter() - t0) / n


class CupyEvents:
    """CUDA events through CuPy, recorded on the current stream of device ``index``."""

    name = "cuda-events(cupy)"

    def __init__(self, index: int) -> None:
        import cupy

        self.cupy = cupy
        self.index = index
        with cupy.cuda.Device(index):
            self.start = cupy.cuda.Event()
            self.end = cupy.cuda.Event()

    def measure(self, step: Callable[[int], Any], start: int, n: int, n_sets: int) -> float:
        cupy = self.cupy
        with cupy.cuda.Device(self.index):
            cupy.cuda.Device(self.index).synchronize()
            self.start.record()
            for j in range(n):
                step((start + j) % n_sets)
            self.end.record()
            self.end.synchronize()
            return cupy.cuda.get_elapsed_time(self.start, self.end) / 1e3 / n


class TorchEvents:
    """CUDA events through ``torch.cuda.Event`` on torch's current stream."""

    name = "cuda-events(torch)"

    def __init__(self, index: int) -> None:
        import torch

        self.torch = torch
        self.index = index
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def measure(self, step: Callable[[int], Any], start: int, n: int, n_sets: int) -> float:
        torch = self.torch
        with torch.cuda.device(self.index):
            torch.cuda.synchronize()
            self.start.record()
            for j in range(n):
                step((start + j) % n_sets)
            self.end.record()
            self.end.synchronize()
            return self.start.elapsed_time(self.end) / 1e3 / n


@dataclass
class Entry:
    """One library's step and the clock that times it."""

    lib: str
    step: Callable[[int], Any]
    clock: Any


@dataclass
class Stats:
    """Seconds per step: median and quartiles over ``samples`` batches of ``inner`` steps."""

    median: float
    p25: float
    p75: float
    samples: int
    inner: int
    times: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "p25_s": self.p25, "p75_s": self.p75,
                "samples": self.samples, "inner": self.inner}


@dataclass
class Budget:
    """How long to measure one case (all its libraries together) and within what bounds.

    ``target_sample_s``: a timed batch lasts at least this long (tiny steps are batched).
    """

    budget_s: float = 2.0
    min_rounds: int = 7
    max_rounds: int = 200
    warmup: int = 3
    target_sample_s: float = 2e-4
    max_inner: int = 1000
    max_case_s: float = 30.0  # a hard stop (after 3 rounds) when steps run far slower than calibrated


def interleave(entries: list[Entry], n_sets: int, budget: Budget | None = None) -> dict[str, Stats]:
    """Time every entry, interleaved: round r times each library once, in an order rotated by r.

    Each entry is first warmed up (``max(warmup, n_sets)`` steps, so every input set has been
    touched and any compilation is done), then calibrated so that one timed batch of ``inner``
    steps lasts at least ``target_sample_s``. The number of rounds fills ``budget_s`` within
    ``[min_rounds, max_rounds]``; measuring stops early (after at least 3 rounds) once
    ``max_case_s`` has passed, as when thread pools fighting over the cores make steps far
    slower than calibrated.
    """
    b = budget or Budget()
    if not entries:
        return {}
    n_sets = max(1, n_sets)
    est: dict[str, float] = {}
    pos: dict[str, int] = {}
    for e in entries:
        warm = max(b.warmup, n_sets)
        e.clock.measure(e.step, 1 % n_sets, warm, n_sets)
        trials = sorted(e.clock.measure(e.step, k % n_sets, 1, n_sets) for k in range(3))
        est[e.lib] = max(trials[1], 1e-9)
        pos[e.lib] = 0
    inner = {lib: int(min(b.max_inner, max(1, math.ceil(b.target_sample_s / t)))) for lib, t in est.items()}
    per_round = sum(est[lib] * inner[lib] for lib in est)
    rounds = int(min(b.max_rounds, max(b.min_rounds, b.budget_s // max(per_round, 1e-9))))
    samples: dict[str, list[float]] = {e.lib: [] for e in entries}
    t_start = time.perf_counter()
    for r in range(rounds):
        if r >= 3 and time.perf_counter() - t_start > b.max_case_s:
            break
        k = r % len(entries)
        for e in entries[k:] + entries[:k]:
            n = inner[e.lib]
            samples[e.lib].append(e.clock.measure(e.step, pos[e.lib], n, n_sets))
            pos[e.lib] = (pos[e.lib] + n) % n_sets
    out = {}
    for e in entries:
        t = np.asarray(samples[e.lib])
        out[e.lib] = Stats(float(np.median(t)), float(np.percentile(t, 25)), float(np.percentile(t, 75)),
                           len(t), inner[e.lib], [float(v) for v in t])
    return out


def sets_for(set_bytes: int, cache_bytes: int = 64 << 20, memory_bytes: int = 1 << 30, most: int = 8) -> int:
    """How many input sets to rotate among: enough that together they overflow a cache of
    ``cache_bytes`` twice over (64 MiB covers an H100's 50 MB L2 and common CPU L3s), one when a
    single set already does, and never more than ``memory_bytes`` in all.

    Example: ``sets_for(4 << 20)`` is 8; ``sets_for(256 << 20)`` is 1.
    """
    if set_bytes <= 0 or set_bytes >= 2 * cache_bytes:
        return 1
    return max(1, min(math.ceil(2 * cache_bytes / set_bytes), most, memory_bytes // set_bytes))


# ---------------------------------------------------------------------------------------------
# kernel launches per step (GPU)


def gpugrad_launch_counter(device: str) -> Callable[[], int] | None:
    """A function reading gpugrad's CUDA launch counter, or None when the backend has none.

    The CUDA backend is expected to expose ``gpugrad.backends.backend_for(device).launches``
    (an int, or a method returning one).
    """
    try:
        from gpugrad.backends import backend_for

        backend = backend_for(device)
    except Exception:
        return None
    counter = getattr(backend, "launches", None)
    if counter is None:
        return None
    if callable(counter):
        return lambda: int(counter())
    if isinstance(counter, (int, np.integer)):
        return lambda: int(backend.launches)
    return None


def count_with_counter(step: Callable[[int], Any], read: Callable[[], int], sync: Callable[[], None]) -> int:
    """Kernel launches of one step, from a monotone counter read before and after it."""
    sync()
    before = read()
    step(0)
    sync()
    return read() - before


def count_with_profiler(step: Callable[[int], Any], sync: Callable[[], None]) -> int | None:
    """Kernels of one step as the CUDA profiler (PyTorch's, CUPTI underneath) sees them, or None.

    CUPTI records every kernel in the process, so this also counts kernels launched by CuPy.
    """
    try:
        import torch
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile
    except Exception:
        return None
    try:
        sync()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step(0)
            sync()
        events = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        kernels = [e for e in events if "memcpy" not in e.name.lower() and "memset" not in e.name.lower()]
        del torch
        return len(kernels)
    except Exception:
        return None
