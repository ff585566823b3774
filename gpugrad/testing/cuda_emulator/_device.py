"""The emulated device's state: its memory and what it counts.

Device memory is allocated with the C library's ``malloc`` at exactly the requested size, so
that AddressSanitizer (when the process runs under it) sees a kernel that reaches past the end
of an array. Fresh memory (``cupy.empty``) is filled with 0xff bytes (NaN for floats, -1 for
integers): code that reads memory it never wrote shows it in its results, where a GPU would
give whatever was there before.

The counters are exact for what the emulator executes: every kernel launched (gpugrad's own
kernels and the kernels behind each CuPy call, one per call as CuPy issues them), the bytes
those kernels read and wrote (the distinct elements of their array arguments), host-device
synchronisations (copies to the host, ``item()``, ``float()``, ``bool()``, printing,
``synchronize()``) and run-time compilations of kernel source.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from dataclasses import dataclass, fields
from typing import Any

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.restype = None
_libc.free.argtypes = [ctypes.c_void_p]

# What the emulated GPU reports (cupy.cuda.runtime.getDeviceProperties).
TOTAL_MEMORY = 16 << 30
SM_COUNT = 4
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIM = (1024, 1024, 64)
MAX_GRID_DIM = (2**31 - 1, 65535, 65535)
SHARED_MEMORY_PER_BLOCK = 48 * 1024
COMPUTE_CAPABILITY = "90"  # the architecture the kernels are compiled for when NVRTC checks them


@dataclass
class Counters:
    """What the emulated device has done since the last reset."""

    launches: int = 0
    bytes: int = 0
    syncs: int = 0
    compilations: int = 0
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    allocations: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COUNTERS = Counters()
_lock = threading.Lock()
live_bytes = [0]


def reset_counters() -> None:
    for f in fields(Counters):
        setattr(COUNTERS, f.name, 0)


def count_launch(nbytes: int) -> None:
    COUNTERS.launches += 1
    COUNTERS.bytes += int(nbytes)


def count_sync() -> None:
    COUNTERS.syncs += 1


class Memory:
    """One device allocation: ``size`` bytes at ``ptr`` (freed when the last array using it goes)."""

    __slots__ = ("ptr", "size", "buffer", "__weakref__")

    def __init__(self, size: int, fill: int | None = 0xFF) -> None:
        size = int(size)
        ptr = _libc.malloc(max(size, 1))
        if not ptr:
            raise MemoryError(f"out of memory allocating {size} bytes on the emulated device")
        self.ptr = ptr
        self.size = size
        self.buffer = (ctypes.c_char * max(size, 1)).from_address(ptr)
        if fill is not None and size:
            ctypes.memset(ptr, fill, size)
        with _lock:
            live_bytes[0] += size
        COUNTERS.allocations += 1
        weakref.finalize(self, _release, ptr, size)

    def __repr__(self) -> str:
        return f"<emulated device memory {self.size} bytes at 0x{self.ptr:x}>"


def _release(ptr: int, size: int) -> None:
    _libc.free(ptr)
    with _lock:
        live_bytes[0] -= size


def distinct_bytes(a: Any) -> int:
    """Bytes of the distinct elements an array view reaches (a broadcast axis counts once)."""
    n = a.dtype.itemsize
    for s, st in zip(a.shape, a.strides):
        if s == 0:
            return 0
        if st != 0:
            n *= s
    return n
