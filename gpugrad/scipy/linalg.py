"""Differentiable ``scipy.linalg``: ``sqrtm``, ``solve_triangular``, ``cholesky``,
``solve_sylvester`` and ``solve_banded`` (the ops are in gpugrad/ops/scipy_linalg.py).

Example::

    import gpugrad as gg
    from gpugrad.scipy.linalg import cholesky, solve_triangular
    L = cholesky(A, lower=True)
    x = solve_triangular(L, b, lower=True)     # differentiable in A and b
"""

from __future__ import annotations

from typing import Any

from gpugrad.ops import scipy_linalg as _la
from gpugrad.scipy._dispatch import dual
from gpugrad.tensor import Tensor

__all__ = ["cholesky", "solve_banded", "solve_sylvester", "solve_triangular", "sqrtm"]


def _cholesky(a: Any, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True) -> Tensor:
    """Cholesky factor, upper (A = U^T U) by default or lower (A = L L^T), as ``scipy.linalg.cholesky``.
    The gradient is symmetric (PyTorch's convention): differentiate with respect to a symmetric matrix."""
    return _la.cholesky(a, lower=lower)


def _sqrtm(a: Any) -> Tensor:
    """The principal matrix square root (real results only), differentiable to any order."""
    return _la.sqrtm(a)


cholesky = dual("linalg.cholesky", _cholesky)
solve_triangular = dual("linalg.solve_triangular", _la.solve_triangular)
solve_sylvester = dual("linalg.solve_sylvester", _la.solve_sylvester)
solve_banded = dual("linalg.solve_banded", _la.solve_banded)
sqrtm = dual("linalg.sqrtm", _sqrtm)
