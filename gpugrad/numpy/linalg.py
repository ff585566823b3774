"""Differentiable ``numpy.linalg``: norm (every ord, 'nuc' and 2 included), inv, det, slogdet,
solve, cholesky, eigh, eigvalsh, svd, qr, pinv, matrix_power, lstsq.

NumPy's own functions run on plain arrays; on tensors the gpugrad ops run (LAPACK through NumPy
on the CPU, cuSOLVER through CuPy on the GPU). Results with several parts are NumPy's named
tuples (``EighResult``, ``SVDResult``, ``QRResult``, ``SlogdetResult``). Other numpy.linalg names
raise an AttributeError saying so.
"""

from __future__ import annotations

from typing import Any as _Any

import numpy as _np

import gpugrad.ops as _ops
from gpugrad.numpy._wrap import dual as _dual

LinAlgError = _np.linalg.LinAlgError


def _norm(x: _Any, ord: _Any = None, axis: _Any = None, keepdims: bool = False) -> _Any:  # noqa: A002
    return _ops.norm(x, ord, axis, keepdims)


def _slogdet(a: _Any) -> _Any:
    return _np.linalg._linalg.SlogdetResult(*_ops.slogdet(a))


def _eigh(a: _Any, UPLO: str = "L") -> _Any:  # noqa: N803
    return _np.linalg._linalg.EighResult(*_ops.eigh(a, UPLO))


def _eig(a: _Any) -> _Any:
    return _np.linalg._linalg.EigResult(*_ops.eig(a))


def _svd(a: _Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False) -> _Any:
    out = _ops.svd(a, full_matrices, compute_uv, hermitian)
    return _np.linalg._linalg.SVDResult(*out) if compute_uv else out


def _qr(a: _Any, mode: str = "reduced") -> _Any:
    out = _ops.qr(a, mode)
    return out if mode == "r" else _np.linalg._linalg.QRResult(*out)


def _pinv(a: _Any, rcond: _Any = None, hermitian: bool = False, **kwargs: _Any) -> _Any:
    rtol = kwargs.get("rtol")
    return _ops.pinv(a, rtol if rcond is None and rtol is not None else rcond, hermitian)


def _lstsq(a: _Any, b: _Any, rcond: _Any = None) -> _Any:
    return _ops.lstsq(a, b, rcond)


norm = _dual("norm", _norm, "linalg.norm")
inv = _dual("inv", _ops.inv, "linalg.inv")
det = _dual("det", _ops.det, "linalg.det")
slogdet = _dual("slogdet", _slogdet, "linalg.slogdet")
solve = _dual("solve", _ops.solve, "linalg.solve")
cholesky = _dual("cholesky", _ops.cholesky, "linalg.cholesky")
eigh = _dual("eigh", _eigh, "linalg.eigh")
eigvalsh = _dual("eigvalsh", _ops.eigvalsh, "linalg.eigvalsh")
eig = _dual("eig", _eig, "linalg.eig")
svd = _dual("svd", _svd, "linalg.svd")
qr = _dual("qr", _qr, "linalg.qr")
pinv = _dual("pinv", _pinv, "linalg.pinv")
matrix_power = _dual("matrix_power", _ops.matrix_power, "linalg.matrix_power")
lstsq = _dual("lstsq", _lstsq, "linalg.lstsq")

_PROVIDED = "norm inv det slogdet solve cholesky eig eigh eigvalsh svd qr pinv matrix_power lstsq"


def __getattr__(name: str) -> _Any:
    if hasattr(_np.linalg, name):
        raise AttributeError(
            f"gpugrad.numpy.linalg.{name} is not provided (available: {_PROVIDED}); use numpy.linalg.{name} "
            "on plain arrays (x.numpy() for a tensor) for values you do not differentiate"
        )
    raise AttributeError(f"module 'gpugrad.numpy.linalg' has no attribute {name!r}")

del annotations  # (from __future__): not a NumPy name
