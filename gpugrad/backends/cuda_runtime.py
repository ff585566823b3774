"""Finding CuPy and GPUs, lazily, with errors that say what is missing and how to get it."""

from __future__ import annotations

from typing import Any

from gpugrad.errors import DeviceError

_INSTALL = (
    "install CuPy for your CUDA driver: pip install 'gpugrad[cuda]' (CUDA 12) or "
    "pip install cupy-cuda13x (CUDA 13)"
)


def import_cupy() -> Any:
    """Import CuPy or raise DeviceError explaining how to install it."""
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(f"CUDA was requested but CuPy is not installed ({exc}); {_INSTALL}") from None
    return cupy


def device_count() -> int:
    """Number of GPUs CuPy can see (0 when CuPy or a driver is missing)."""
    try:
        import cupy
    except ImportError:
        return 0
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device: CuPy raises its own runtime errors
        return 0


def is_available() -> bool:
    """True when CuPy is installed and at least one GPU is usable."""
    return device_count() > 0


def require_device(index: int) -> None:
    """Raise DeviceError unless CuPy is installed and GPU ``index`` exists."""
    cupy = import_cupy()
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        raise DeviceError(
            f"CUDA was requested and CuPy is installed, but no GPU is usable ({type(exc).__name__}: {exc}); "
            "check the NVIDIA driver (nvidia-smi) or use device='cpu'"
        ) from None
    if count == 0:
        raise DeviceError("CUDA was requested and CuPy is installed, but no GPU was found; use device='cpu'")
    if not 0 <= index < count:
        raise DeviceError(f"device cuda:{index} was requested but only {count} GPU(s) exist (cuda:0..cuda:{count - 1})")
