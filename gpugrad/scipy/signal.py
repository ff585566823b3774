"""``convolve`` as HIPS autograd's ``autograd.scipy.signal.convolve``: N-dimensional convolution of
two arrays along chosen axes, with other axes contracted (``dot_axes``) or kept, differentiable in
both operands (any order; CuPy arrays run on the GPU).

The output's axes are A's kept axes, then B's kept axes, then the convolved ones. Modes as SciPy's:
``full`` (every overlap), ``valid`` (complete overlaps; one operand must be at least as long as the
other along every convolved axis) and ``same`` (A's length, centred in the full result).

Example::

    from gpugrad.scipy.signal import convolve
    convolve(x, kernel, mode="same")                               # like scipy.signal.convolve
    convolve(images, filters, axes=([1, 2], [0, 1]), dot_axes=([3], [2]))
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np

import gpugrad.ops as _ops
from gpugrad.errors import ArgumentError, ShapeError
from gpugrad.ops.special import operand
from gpugrad.scipy._dispatch import dual
from gpugrad.tensor import Tensor

__all__ = ["convolve"]


def _axes(spec: Any, ndim: int, what: str) -> list[int]:
    out = [int(a) % ndim if ndim else int(a) for a in spec]
    if any(not 0 <= a < max(ndim, 1) for a in out) or len(set(out)) != len(out):
        raise ShapeError(f"convolve: bad {what} {list(spec)!r} for an operand with {ndim} dimensions")
    return out


def _windows(x: Tensor, axes: list[int], lengths: list[int]) -> Tensor:
    """x with each axis in ``axes`` replaced by two: (window offset, window start), every window
    of the given length (``take`` with index j + l, so the gradient is a scatter-add)."""
    for a, win in sorted(zip(axes, lengths), reverse=True):  # last axes first: earlier positions stay valid
        starts = x.shape[a] - win + 1
        idx = np.arange(win)[:, None] + np.arange(starts)[None, :]
        x = _ops.take(x, idx, axis=a)
    return x


def _convolve(A: Any, B: Any, axes: Any = None, dot_axes: Sequence[Sequence[int]] = ((), ()),
              mode: str = "full") -> Tensor:
    """Convolve A with B along ``axes`` (a pair of axis lists, A's and B's; default: every axis of A
    with the same axes of B), summing over the paired ``dot_axes``; see the module docstring."""
    if mode not in ("full", "valid", "same"):
        raise ArgumentError(f"convolve: mode must be 'full', 'valid' or 'same', got {mode!r}")
    A = operand(A, B if isinstance(B, Tensor) else None)
    B = operand(B, A)
    if axes is None:
        axes = (list(range(A.ndim)), list(range(A.ndim)))
    conv_a, conv_b = _axes(axes[0], A.ndim, "axes"), _axes(axes[1], B.ndim, "axes")
    dot_a, dot_b = _axes(dot_axes[0], A.ndim, "dot_axes"), _axes(dot_axes[1], B.ndim, "dot_axes")
    if len(conv_a) != len(conv_b) or len(dot_a) != len(dot_b) or set(conv_a) & set(dot_a) or set(conv_b) & set(dot_b):
        raise ShapeError(f"convolve: axes {axes!r} and dot_axes {dot_axes!r} must pair up the same number of "
                         "distinct axes of A and B")
    for i, j in zip(dot_a, dot_b):
        if A.shape[i] != B.shape[j]:
            raise ShapeError(f"convolve: dot axes {i} of A (size {A.shape[i]}) and {j} of B (size {B.shape[j]}) differ")
    len_a = [A.shape[i] for i in conv_a]
    len_b = [B.shape[j] for j in conv_b]

    # The windowed operand slides; the other is flipped and contracted with each window.
    if mode == "valid" and not all(na <= nb for na, nb in zip(len_a, len_b)):
        if not all(nb <= na for na, nb in zip(len_a, len_b)):
            raise ShapeError(f"convolve: in 'valid' mode one operand must be at least as large as the other "
                             f"along every convolved axis, got {len_a} and {len_b}")
        a_windowed = True
        windowed, flipped, w_conv, f_conv, win = A, B, conv_a, conv_b, len_b
    else:
        a_windowed = False
        windowed, flipped, w_conv, f_conv, win = B, A, conv_b, conv_a, len_a
        if mode != "valid":
            widths = [(0, 0)] * B.ndim
            for j, n in zip(conv_b, len_a):
                widths[j] = (n - 1, n - 1)
            windowed = _ops.pad(windowed, widths)
    if f_conv:
        flipped = _ops.flip(flipped, axis=tuple(f_conv))
    windowed = _windows(windowed, w_conv, win)

    letters = iter(string.ascii_letters)
    k = {p: next(letters) for p in range(len(conv_a))}  # offset inside the window (contracted)
    s = {p: next(letters) for p in range(len(conv_a))}  # window start (an output axis)
    d = {p: next(letters) for p in range(len(dot_a))}
    sub_a = [None] * A.ndim
    sub_b = [None] * B.ndim
    for p, (i, j) in enumerate(zip(dot_a, dot_b)):
        sub_a[i] = sub_b[j] = d[p]
    keep_a = [i for i in range(A.ndim) if sub_a[i] is None and i not in conv_a]
    keep_b = [j for j in range(B.ndim) if sub_b[j] is None and j not in conv_b]
    for i in keep_a:
        sub_a[i] = next(letters)
    for j in keep_b:
        sub_b[j] = next(letters)
    w_sub, f_sub = (sub_a, sub_b) if a_windowed else (sub_b, sub_a)
    for p, (i, j) in enumerate(zip(w_conv, f_conv)):
        w_sub[i] = k[p] + s[p]
        f_sub[j] = k[p]
    out_sub = "".join(sub_a[i] for i in keep_a) + "".join(sub_b[j] for j in keep_b) + "".join(s.values())
    spec = f"{''.join(f_sub)},{''.join(w_sub)}->{out_sub}"
    out = _ops.einsum(spec, flipped, windowed)
    if mode == "same":
        first = len(keep_a) + len(keep_b)
        index = [slice(None)] * out.ndim
        for p, (na, nb) in enumerate(zip(len_a, len_b)):
            start = (nb - 1) // 2
            index[first + p] = slice(start, start + na)
        out = out[tuple(index)]
    return out


convolve = dual(None, _convolve)
