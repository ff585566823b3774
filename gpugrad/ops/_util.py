"""Small helpers shared by the op modules: axis normalisation and operand conversion."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from gpugrad.errors import ShapeError
from gpugrad.tensor import Tensor


def as_tensor_operand(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor (arrays and scalars become constants on ``like``'s device or the CPU)."""
    if isinstance(x, Tensor):
        return x
    from gpugrad.factories import as_tensor

    return as_tensor(x, device=like.device if like is not None else None)


def normalize_axis(axis: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    """None stays None (all axes); an int or a sequence becomes a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral):
            raise ShapeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        a = int(a)
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ShapeError(f"{op}: axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def normalize_one_axis(axis: int, ndim: int, op: str) -> int:
    if not isinstance(axis, numbers.Integral):
        raise ShapeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return int(axis) % ndim


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None, keepdims: bool) -> tuple[int, ...]:
    if axes is None:
        return (1,) * len(shape) if keepdims else ()
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of a reduction over ``axes`` with keepdims=True."""
    return reduced_shape(shape, axes, True)


def count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    if axes is None:
        return int(np.prod(shape, dtype=np.int64))
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))
