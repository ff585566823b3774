"""Discrete Fourier transforms: one op for the complex (``fft``, ``ifft``) and real (``rfft``,
``irfft``) n-dimensional transforms, with NumPy's ``s``/``axes``/``norm`` (cuFFT on the GPU
through ``cupy.fft``, NumPy's pocketfft on the CPU; the backend's ``fftn`` does the work).

Every transform is real-linear, so its tangent is the same transform of the tangent. Its
gradient is the transpose under autograd's pairing ``Re(sum(a * b))``: the DFT matrix is
symmetric, so the transpose of a complex transform is the same transform of the gradient
(cropped or zero-padded back to the input's lengths), that of ``rfft`` is the real part of the
complex transform of the zero-extended gradient, and that of ``irfft`` is
``conj(scale * weights * rfft(g))`` with weights 1 at the ends of the half spectrum and 2 inside.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from gpugrad.errors import GpugradError, ShapeError
from gpugrad.ops._util import as_tensor_operand
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor

KINDS = ("fft", "ifft", "rfft", "irfft")
_NORMS = (None, "backward", "ortho", "forward")


def _resize(ns: Any, x: Any, axes: tuple, sizes: tuple) -> Any:
    """``x`` cropped or zero-padded (at the end) to ``sizes`` along ``axes``."""
    crop = [slice(None)] * len(x.shape)
    pad = [(0, 0)] * len(x.shape)
    cropping = padding = False
    for a, n in zip(axes, sizes):
        have = x.shape[a]
        if have > n:
            crop[a] = slice(0, n)
            cropping = True
        elif have < n:
            pad[a] = (0, n - have)
            padding = True
    if cropping:
        x = ns.getitem(x, tuple(crop))
    if padding:
        x = ns.pad(x, tuple(pad))
    return x


def _scale(norm: Any, lengths: tuple, inverse: bool) -> float:
    """The factor NumPy's ``norm`` puts on the forward (inverse=False) or inverse transform."""
    n = float(np.prod(lengths)) if lengths else 1.0
    if norm == "ortho":
        return 1.0 / np.sqrt(n)
    if (norm == "forward") != inverse:  # forward on fft, or backward (default) on ifft
        return 1.0 / n
    return 1.0


class FFT(Op):
    """``params``: kind, s (output lengths along axes), axes, norm, in_sizes (input lengths)."""

    name = "fft"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.fftn(args[0], params["kind"], params["s"], params["axes"], params["norm"])

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.fftn(tangents[0], params["kind"], params["s"], params["axes"], params["norm"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        kind, s, axes, norm, in_sizes = (params[k] for k in ("kind", "s", "axes", "norm", "in_sizes"))
        if kind in ("fft", "ifft"):
            r = ns.fftn(g, kind, s, axes, norm)
        elif kind == "rfft":  # real input: the real part of the full transform of the zero-extended g
            r = ns.real(ns.fftn(_resize(ns, g, axes[-1:], s[-1:]), "fft", s, axes, norm))
        else:  # irfft: conj(scale * weights * rfft(g))
            r = ns.fftn(g, "rfft", s, axes, None)
            m = r.shape[axes[-1]]
            odd = s[-1] % 2
            pieces = [ns.new_ones(r, (1,)), ns.new_ones(r, (m - 2 + odd,)) * 2.0]
            if not odd and m > 1:
                pieces.append(ns.new_ones(r, (1,)))
            weights = ns.concatenate(pieces, 0) if m > 1 else ns.new_ones(r, (1,))
            shape = [1] * len(r.shape)
            shape[axes[-1]] = m
            weights = ns.reshape(weights, tuple(shape))
            r = ns.conj(r * weights * _scale(norm, s, inverse=True))
        return (_resize(ns, r, axes, in_sizes),)


FFT_OP = FFT()


def _axes_and_lengths(x: Tensor, kind: str, s: Any, axes: Any, name: str) -> tuple[tuple, tuple]:
    nd = x.ndim
    if axes is None:
        axes = tuple(range(nd)) if s is None else tuple(range(nd - len(s), nd))
    else:
        axes = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
    try:
        axes = tuple(int(a) % nd if -nd <= int(a) < nd else _bad_axis(a, nd, name) for a in axes)
    except ZeroDivisionError:
        raise ShapeError(f"{name}: a 0-d array has no axes to transform") from None
    if not axes:
        raise ShapeError(f"{name}: no axes to transform")
    if s is None:
        lengths = [x.shape[a] for a in axes]
        if kind == "irfft":
            lengths[-1] = 2 * (lengths[-1] - 1)
    else:
        s = (s,) if isinstance(s, numbers.Integral) else tuple(s)
        if len(s) != len(axes):
            raise ShapeError(f"{name}: s has {len(s)} lengths for {len(axes)} axes")
        lengths = [int(v) if v is not None and v != -1 else None for v in s]
        for i, a in enumerate(axes):
            if lengths[i] is None:
                lengths[i] = x.shape[a] if not (kind == "irfft" and i == len(axes) - 1) else 2 * (x.shape[a] - 1)
    if any(n < 1 for n in lengths):
        raise ShapeError(f"{name}: invalid number of data points {tuple(lengths)} specified")
    return axes, tuple(lengths)


def _bad_axis(a: Any, nd: int, name: str) -> int:
    raise ShapeError(f"{name}: axis {a} is out of bounds for an array of dimension {nd}")


def fftn(x: Any, kind: str = "fft", s: Any = None, axes: Any = None, norm: Any = None,
         name: str | None = None) -> Tensor:
    """The n-dimensional transform ``kind`` (fft, ifft, rfft, irfft) over ``axes`` with output
    lengths ``s``, as ``numpy.fft.<kind>n`` (the function every gpugrad.numpy.fft name calls)."""
    name = name or f"{kind}n"
    if kind not in KINDS:
        raise GpugradError(f"fftn: kind must be one of {KINDS}, got {kind!r}")
    if norm not in _NORMS:
        raise GpugradError(f"{name}: norm must be 'backward', 'ortho' or 'forward', got {norm!r}")
    x = as_tensor_operand(x)
    if kind == "rfft" and x.dtype.kind == "c":
        raise GpugradError(f"{name}: the input must be real (use fft for complex input)")
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    axes, lengths = _axes_and_lengths(x, kind, s, axes, name)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{name}: repeated axes {axes}")
    in_sizes = tuple(x.shape[a] for a in axes)
    return apply(FFT_OP, (x,), {"kind": kind, "s": lengths, "axes": axes, "norm": norm, "in_sizes": in_sizes})
