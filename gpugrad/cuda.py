"""``gg.cuda``: is a GPU usable, how many, and waiting for queued GPU work."""

from __future__ import annotations

from gpugrad.backends.cuda_runtime import device_count as _device_count
from gpugrad.backends.cuda_runtime import is_available as _is_available


def is_available() -> bool:
    """True when CuPy is installed and a GPU is usable.

    Example: ``dev = "cuda" if gg.cuda.is_available() else "cpu"``.
    """
    return _is_available()


def device_count() -> int:
    """Number of usable GPUs (0 without CuPy or a driver)."""
    return _device_count()


def synchronize(device: int | None = None) -> None:
    """Wait for all queued work on the GPU (all GPUs when ``device`` is None) to finish."""
    if not _is_available():
        return
    import cupy

    if device is None:
        for i in range(_device_count()):
            with cupy.cuda.Device(i):
                cupy.cuda.Device(i).synchronize()
    else:
        cupy.cuda.Device(int(device)).synchronize()
