"""Host memory: keep glibc's malloc from handing NumPy's large temporaries back to the kernel
after every step.

A training step allocates and frees the same large arrays (activations, gradients, im2col
buffers) every iteration. glibc's defaults adapt badly to that: a freed block above the dynamic
mmap threshold goes back to the kernel, and so does free memory at the top of the heap above the
trim threshold, so the next step page-faults the same memory in again (each 4 KiB page zeroed by
the kernel). Measured on the MLP step of ``gpugrad bench`` (64-256-256-10, batch 256, 1 thread):
224 minor page faults per step with glibc's defaults and 0 with the thresholds below; the step
takes about 20% less time (benchmarks/README.md). NumPy, PyTorch and every other library in the
process share the allocator, so they get the same benefit.

What it costs: up to ``TRIM_THRESHOLD`` bytes of freed memory stay mapped (reused by the next
allocation), and blocks below ``MMAP_THRESHOLD`` come from the heap. ``GPUGRAD_MALLOC_TUNING=0``
leaves malloc as it was; other C libraries (musl, macOS) are left alone.

Example::

    from gpugrad.backends import host_memory
    host_memory.tuned()     # True on Linux with glibc unless GPUGRAD_MALLOC_TUNING=0
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 256 << 20  # free memory at the heap's top kept for reuse
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below it come from the heap and are reused

_tuned = False


def tune() -> bool:
    """Set glibc's trim and mmap thresholds once per process (see the module docstring);
    whether they are set."""
    global _tuned
    if _tuned:
        return True
    if os.environ.get("GPUGRAD_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        # the process's own symbols (libc among them): find_library would run ldconfig at import
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has no mallopt thresholds)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def tuned() -> bool:
    """Whether :func:`tune` has set the thresholds in this process."""
    return _tuned
