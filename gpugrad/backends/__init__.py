"""Backends: the only code that computes on NumPy or CuPy arrays.

A tensor's device picks its backend (there is no global switch): ``"cpu"`` is NumPy,
``"cuda:N"`` is CuPy on GPU N. CuPy is imported the first time a CUDA device is asked for, so
``import gpugrad`` never needs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.errors import DeviceError

_BACKENDS: dict[str, Any] = {}
_SEED: list[int | None] = [None]  # the last manual_seed, for GPU backends made after it


def backend_for(device: str) -> Any:
    """The backend object (NumPy module or CuPy backend) for a normalised device string."""
    backend = _BACKENDS.get(device)
    if backend is None:
        backend = _load(device)
    return backend


def _load(device: str) -> Any:
    if device == "cpu":
        from gpugrad.backends import numpy_backend

        _BACKENDS["cpu"] = numpy_backend
        return numpy_backend
    if device.startswith("cuda:"):
        from gpugrad.backends.cuda import CupyBackend

        backend = CupyBackend(int(device[5:]))
        _BACKENDS[device] = backend
        return backend
    raise DeviceError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def manual_seed(seed: int) -> None:
    """Seed the generator of every GPU backend made so far, and of those made later (the CPU
    generator is gpugrad.factories'; ``gg.manual_seed`` seeds both)."""
    _SEED[0] = int(seed)
    for name, backend in _BACKENDS.items():
        if name != "cpu":
            backend.seed(int(seed))


def current_seed() -> int | None:
    """The seed of the last :func:`manual_seed` (None: never seeded), for a GPU's first draw."""
    return _SEED[0]


def normalize_device(device: Any) -> str:
    """``None``/"cpu" -> "cpu"; "cuda" -> "cuda:0"; "cuda:N" checked against the GPUs present.

    Raises DeviceError naming what is missing (CuPy, or a GPU) and how to install it.
    """
    if device is None:
        return "cpu"
    if not isinstance(device, str):
        device = str(device)
    device = device.strip().lower()
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        index = 0
        if device != "cuda":
            try:
                index = int(device[5:])
            except ValueError:
                raise DeviceError(f"bad device string {device!r}; expected 'cuda' or 'cuda:N'") from None
        from gpugrad.backends.cuda_runtime import require_device

        require_device(index)
        return f"cuda:{index}"
    raise DeviceError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def device_of_array(array: Any) -> str | None:
    """'cpu' for NumPy arrays, 'cuda:N' for CuPy arrays, None for anything else."""
    if array.__class__ is np.ndarray or isinstance(array, (np.ndarray, np.generic)):
        return "cpu"
    module = type(array).__module__
    if module.startswith("cupy"):
        return f"cuda:{array.device.id}"
    return None
