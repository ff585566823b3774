"""The library's error classes.

Every error derives from :class:`GpugradError` and from the built-in exception a NumPy or
PyTorch user would catch for the same mistake (a shape mismatch is also a ``ValueError``,
a dtype problem a ``TypeError``), so existing ``except`` clauses keep working.
"""

from __future__ import annotations


class GpugradError(Exception):
    """Base class of every error raised by gpugrad."""


class ShapeError(GpugradError, ValueError):
    """Operand shapes do not fit the op (the message names both shapes and the op)."""


class DeviceError(GpugradError, RuntimeError):
    """A device is missing (CuPy or a GPU), or an op mixes tensors on different devices."""


class DTypeError(GpugradError, TypeError):
    """The op does not support this dtype (e.g. gradients of integer tensors)."""


class GraphError(GpugradError, RuntimeError):
    """Misuse of the tape: backward through a freed graph, non-scalar backward without ``grad``."""


class InplaceError(GpugradError, RuntimeError):
    """A tensor saved for backward was modified in place after it was saved."""


class GradcheckError(GpugradError, AssertionError):
    """Analytic and numerical gradients disagree (names the input and the worst element)."""


class AnomalyError(GpugradError, FloatingPointError):
    """Under ``detect_anomaly()``: an op produced the first NaN or Inf, in forward or backward."""


class ArgumentError(GpugradError, ValueError):
    """An argument's value is outside its valid range (a negative learning rate, a dropout
    probability above 1, a kernel larger than the padded input, an unknown reduction)."""


class CheckpointError(GpugradError, ValueError):
    """``gg.load`` met a file that is not a valid gpugrad/safetensors checkpoint (truncated,
    corrupt, inconsistent or hostile), or ``gg.save`` was given something it cannot store."""


def describe(x) -> str:
    """Short description of an operand for error messages: shape and dtype, or the type."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(x).__name__}(shape={tuple(shape)}, dtype={dtype})"
    return f"{type(x).__name__} {x!r}"
