"""Differentiable ``numpy.fft``: fft, ifft, rfft, irfft, fft2, ifft2, rfft2, irfft2, fftn, ifftn,
rfftn, irfftn, and fftshift, ifftshift, fftfreq, rfftfreq.

NumPy's own functions run on plain arrays; on tensors the gpugrad FFT op runs (pocketfft through
NumPy on the CPU, cuFFT through CuPy on the GPU) with complex results where NumPy gives them.
Gradients of real losses of complex values follow JAX's (and HIPS autograd's) convention.
"""

from __future__ import annotations

from typing import Any as _Any

import numpy as _np

import gpugrad.ops as _ops
from gpugrad.numpy._wrap import dual as _dual

fftfreq = _np.fft.fftfreq  # frequencies: constants from lengths
rfftfreq = _np.fft.rfftfreq


def _one_axis(kind: str, name: str) -> _Any:
    def fn(a: _Any, n: _Any = None, axis: int = -1, norm: _Any = None, out: _Any = None) -> _Any:
        return _ops.fftn(a, kind, None if n is None else (n,), (axis,), norm, name)

    return _dual(name, fn, f"fft.{name}")


def _n_axes(kind: str, name: str, default_axes: _Any = None) -> _Any:
    def fn(a: _Any, s: _Any = None, axes: _Any = default_axes, norm: _Any = None, out: _Any = None) -> _Any:
        return _ops.fftn(a, kind, s, axes, norm, name)

    return _dual(name, fn, f"fft.{name}")


fft = _one_axis("fft", "fft")
ifft = _one_axis("ifft", "ifft")
rfft = _one_axis("rfft", "rfft")
irfft = _one_axis("irfft", "irfft")
fft2 = _n_axes("fft", "fft2", (-2, -1))
ifft2 = _n_axes("ifft", "ifft2", (-2, -1))
rfft2 = _n_axes("rfft", "rfft2", (-2, -1))
irfft2 = _n_axes("irfft", "irfft2", (-2, -1))
fftn = _n_axes("fft", "fftn")
ifftn = _n_axes("ifft", "ifftn")
rfftn = _n_axes("rfft", "rfftn")
irfftn = _n_axes("irfft", "irfftn")


def _shift(x: _Any, axes: _Any, inverse: bool) -> _Any:
    nd = x.ndim
    axes = tuple(range(nd)) if axes is None else ((axes,) if isinstance(axes, int) else tuple(axes))
    shifts = [(-(x.shape[a] // 2) if inverse else x.shape[a] // 2) for a in axes]
    return _ops.roll(x, shifts, axes)


def _fftshift(x: _Any, axes: _Any = None) -> _Any:
    return _shift(x, axes, inverse=False)


def _ifftshift(x: _Any, axes: _Any = None) -> _Any:
    return _shift(x, axes, inverse=True)


fftshift = _dual("fftshift", _fftshift, "fft.fftshift")
ifftshift = _dual("ifftshift", _ifftshift, "fft.ifftshift")

_PROVIDED = "fft ifft rfft irfft fft2 ifft2 rfft2 irfft2 fftn ifftn rfftn irfftn fftshift ifftshift fftfreq rfftfreq"


def __getattr__(name: str) -> _Any:
    if hasattr(_np.fft, name):
        raise AttributeError(f"gpugrad.numpy.fft.{name} is not provided (available: {_PROVIDED}); use "
                             f"numpy.fft.{name} on plain arrays")
    raise AttributeError(f"module 'gpugrad.numpy.fft' has no attribute {name!r}")

del annotations  # (from __future__): not a NumPy name
