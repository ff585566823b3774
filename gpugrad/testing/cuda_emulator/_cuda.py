"""``cupy.cuda`` on the emulated device: the device, its runtime queries, streams, events and
the memory pool. Streams are in order (one queue); an event records host time, so elapsed
times between events are the emulator's, never a GPU's."""

from __future__ import annotations

import time
from typing import Any

from gpugrad.testing.cuda_emulator import _device
from gpugrad.testing.cuda_emulator._array import _Device
from gpugrad.testing.cuda_emulator._device import count_sync

Device = _Device


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``."""


def getDeviceCount() -> int:  # noqa: N802 (CUDA's names)
    return 1


def getDevice() -> int:  # noqa: N802
    return 0


def setDevice(device: int) -> None:  # noqa: N802
    _Device(device)


def deviceSynchronize() -> None:  # noqa: N802
    count_sync()


def runtimeGetVersion() -> int:  # noqa: N802
    return 13000


def driverGetVersion() -> int:  # noqa: N802
    return 13000


def memGetInfo() -> tuple[int, int]:  # noqa: N802
    return _Device(0).mem_info


def getDeviceProperties(device: int) -> dict:  # noqa: N802
    _Device(device)
    return {
        "name": b"gpugrad emulated CUDA device", "totalGlobalMem": _device.TOTAL_MEMORY,
        "sharedMemPerBlock": _device.SHARED_MEMORY_PER_BLOCK, "regsPerBlock": 65536, "warpSize": 32,
        "maxThreadsPerBlock": _device.MAX_THREADS_PER_BLOCK, "maxThreadsDim": _device.MAX_BLOCK_DIM,
        "maxGridSize": _device.MAX_GRID_DIM, "clockRate": 0, "totalConstMem": 65536,
        "major": int(_device.COMPUTE_CAPABILITY[0]), "minor": int(_device.COMPUTE_CAPABILITY[1:]),
        "multiProcessorCount": _device.SM_COUNT, "memoryClockRate": 0, "memoryBusWidth": 0, "l2CacheSize": 0,
        "maxThreadsPerMultiProcessor": 2048, "integrated": 0, "concurrentKernels": 1, "ECCEnabled": 0,
        "pciBusID": 0, "pciDeviceID": 0, "pciDomainID": 0, "uuid": b"\0" * 16,
    }


def deviceGetAttribute(attrib: int, device: int) -> int:  # noqa: N802
    _Device(device)
    return 0


class Stream:
    """``cupy.cuda.Stream``: the emulated device runs everything in order."""

    null: Stream

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False,
                 priority: Any = None) -> None:
        self.ptr = 0 if null else id(self)
        self.is_non_blocking = non_blocking
        self.priority = priority or 0

    def synchronize(self) -> None:
        count_sync()

    def use(self) -> Stream:
        return self

    @property
    def done(self) -> bool:
        return True

    def record(self, event: Any = None) -> Event:
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event: Any) -> None:
        return None

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


Stream.null = Stream(null=True)


def get_current_stream(device_id: int = -1) -> Stream:
    return Stream.null


class Event:
    """``cupy.cuda.Event``: records the host clock (the emulator has no GPU time)."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False) -> None:
        self._t: float | None = None
        self.disable_timing = disable_timing

    def record(self, stream: Any = None) -> None:
        self._t = time.perf_counter()

    def synchronize(self) -> None:
        count_sync()

    @property
    def done(self) -> bool:
        return True


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two recorded events (host time on the emulated device)."""
    if start_event._t is None or end_event._t is None:
        raise CUDARuntimeError("cudaErrorInvalidResourceHandle: an event was not recorded")
    return (end_event._t - start_event._t) * 1000.0


class MemoryPool:
    """``cupy.cuda.MemoryPool``: the emulator allocates each array directly; this reports totals."""

    def __init__(self, allocator: Any = None) -> None:
        self._limit = 0

    def used_bytes(self) -> int:
        return _device.live_bytes[0]

    def total_bytes(self) -> int:
        return _device.live_bytes[0]

    def free_bytes(self) -> int:
        return 0

    def n_free_blocks(self) -> int:
        return 0

    def free_all_blocks(self, stream: Any = None) -> None:
        return None

    def set_limit(self, size: Any = None, fraction: Any = None) -> None:
        self._limit = int(size or 0)

    def get_limit(self) -> int:
        return self._limit


_POOL = MemoryPool()


def get_default_memory_pool() -> MemoryPool:
    return _POOL


def get_default_pinned_memory_pool() -> MemoryPool:
    return _POOL


def is_available() -> bool:
    return True
