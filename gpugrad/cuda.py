"""``gg.cuda``: is a GPU usable, how many, waiting for queued GPU work, and what the CUDA
backend has done (kernel launches, bytes, host syncs, run-time compilations)."""

from __future__ import annotations

from gpugrad.backends.cuda_runtime import device_count as _device_count
from gpugrad.backends.cuda_runtime import is_available as _is_available

_COUNTER_KEYS = ("launches", "bytes", "syncs", "compilations")


def is_available() -> bool:
    """True when CuPy is installed and a GPU is usable (or the emulated device is on).

    Example: ``dev = "cuda" if gg.cuda.is_available() else "cpu"``.
    """
    return _is_available()


def is_emulated() -> bool:
    """True when ``device="cuda"`` runs on the emulated CUDA device
    (:mod:`gpugrad.testing.cuda_emulator`, switched on by ``GPUGRAD_CUDA_EMULATOR``)."""
    import sys

    emu = sys.modules.get("gpugrad.testing.cuda_emulator")
    return bool(emu is not None and emu.is_enabled())


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


def counters() -> dict[str, int]:
    """What the CUDA backend has done since :func:`reset_counters`, over all GPUs.

    ``launches``: kernels launched (gpugrad's own and the CuPy calls it makes, each counted as
    one launch); ``bytes``: bytes those kernels read and wrote, from their array arguments'
    sizes; ``syncs``: host-device synchronisations; ``compilations``: kernels compiled at run
    time. On the emulated device the counts are the device's own and exact (every kernel CuPy
    runs included); on a GPU they are the backend's bookkeeping (CuPy kernels that op rules
    launch through array operators are not seen, so they are a lower bound).

    Example::

        gg.cuda.reset_counters(); loss.backward(); gg.cuda.counters()["launches"]
    """
    if is_emulated():
        from gpugrad.testing import cuda_emulator

        c = cuda_emulator.counters()
        return {k: c[k] for k in _COUNTER_KEYS}
    from gpugrad.backends import _BACKENDS

    total = dict.fromkeys(_COUNTER_KEYS, 0)
    for name, backend in _BACKENDS.items():
        if name.startswith("cuda"):
            for k in _COUNTER_KEYS:
                total[k] += backend.counters[k]
    return total


def reset_counters() -> None:
    """Start :func:`counters` from zero."""
    if is_emulated():
        from gpugrad.testing import cuda_emulator

        cuda_emulator.reset_counters()
    from gpugrad.backends import _BACKENDS

    for name, backend in _BACKENDS.items():
        if name.startswith("cuda"):
            for k in _COUNTER_KEYS:
                backend.counters[k] = 0
