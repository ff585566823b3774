"""The multivariate normal distribution, as ``scipy.stats.multivariate_normal``: pdf logpdf
entropy, with SciPy's argument handling (``mean=None``, ``cov`` a matrix, a vector of variances or
a number; x of shape (..., d); singleton dimensions of the result squeezed).

Differentiable in x, mean and cov through a Cholesky factorization (so the covariance gradient is
symmetric; differentiate with respect to a symmetric matrix). With ``allow_singular=True`` the
covariance may be singular (SciPy's pseudo-inverse and pseudo-determinant, -inf off the support):
then x and mean are differentiable and cov must be a constant, as in HIPS autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import gpugrad.ops as ops
from gpugrad.backends import backend_for
from gpugrad.errors import ShapeError
from gpugrad.factories import as_tensor, eye, full, zeros
from gpugrad.ops import scipy_linalg as _la
from gpugrad.ops import special as _sp
from gpugrad.scipy.stats._common import (
    LOG_2PI,
    exp_of,
    method,
    operands,
    sampler,
    where,
)
from gpugrad.tensor import Tensor


def _parameters(mean: Any, cov: Any, like: Any) -> tuple[int, Tensor, Tensor]:
    """(dim, mean (dim,), cov (dim, dim)) as SciPy reads them."""
    mean, cov = operands(mean, cov, like)[:2]
    cov_shape = np.shape(cov.data if isinstance(cov, Tensor) else cov)
    if mean is not None:
        dim = int(np.size(mean.data if isinstance(mean, Tensor) else mean))
    elif len(cov_shape) == 2:
        dim = cov_shape[0]
    else:
        dim = int(np.prod(cov_shape)) if cov_shape else 1
    ref = next((v for v in (like, mean, cov) if isinstance(v, Tensor)), None)
    dtype = ref.dtype if ref is not None and ref.dtype.kind == "f" else np.float64
    device = ref.device if ref is not None else "cpu"
    if mean is None:
        mean = zeros(dim, dtype=dtype, device=device)
    elif not isinstance(mean, Tensor):
        mean = zeros(dim, dtype=dtype, device=device) + mean
    mean = ops.reshape(mean, (dim,))
    if len(cov_shape) == 0:
        cov = eye(dim, dtype=dtype, device=device) * cov
    elif len(cov_shape) == 1:
        if cov_shape[0] != dim:
            raise ShapeError(f"multivariate_normal: cov has {cov_shape[0]} variances for dimension {dim}")
        cov = ops.diag(cov)
    elif cov_shape != (dim, dim):
        raise ShapeError(f"multivariate_normal: cov must be ({dim}, {dim}) for a mean of size {dim}, got {cov_shape}")
    return dim, mean, cov


def _quantiles(x: Any, dim: int) -> Tensor:
    """x as (..., dim), as SciPy reads it (a scalar or a 1-D x of dimension 1 are points)."""
    if x.ndim == 0:
        x = ops.reshape(x, (1,))
    if x.ndim == 1:
        x = ops.reshape(x, (-1, 1) if dim == 1 else (1, -1))
    if x.shape[-1] != dim:
        raise ShapeError(f"multivariate_normal: x has {x.shape[-1]} coordinates for dimension {dim}")
    return x


def _squeeze(out: Tensor) -> Tensor:
    return ops.reshape(out, tuple(s for s in out.shape if s != 1))


def _whitened(dev: Tensor, cov: Tensor) -> tuple[Any, Any, int]:
    """(squared Mahalanobis norms, log det cov, rank) through the Cholesky factor."""
    L = _la.cholesky(cov, lower=True)
    flat = ops.reshape(dev, (-1, dev.shape[-1]))
    z = _la.solve_triangular(L, ops.swapaxes(flat, 0, 1), lower=True)
    maha = ops.reshape(ops.sum(z * z, axis=0), dev.shape[:-1])
    return maha, 2 * ops.sum(ops.log(ops.diagonal(L, 0, -2, -1))), dev.shape[-1]


def _pseudo(dev: Tensor, cov: Tensor) -> tuple[Any, Any, int]:
    """SciPy's treatment of a possibly singular covariance (a constant): eigenvalues below its
    cutoff are dropped; points off the support get -inf."""
    B = backend_for(cov.device)
    s, u = np.linalg.eigh(B.to_host(cov.data))
    eps = 1e6 * np.finfo(np.float64).eps * np.max(np.abs(s))
    if np.min(s) < -eps:
        raise ShapeError("multivariate_normal: the covariance must be symmetric positive semidefinite")
    keep = s > eps
    U = B.from_host(np.ascontiguousarray(u[:, keep] / np.sqrt(s[keep])).astype(dev.dtype))
    V = B.from_host(np.ascontiguousarray(u[:, ~keep]).astype(dev.dtype))
    maha = ops.sum(ops.square(ops.matmul(dev, U)), axis=-1)
    off = ops.sqrt(ops.sum(ops.square(ops.matmul(dev.detach(), V)), axis=-1)) >= 1e3 * eps
    maha = where(off, float("inf"), maha) if V.shape[1] else maha
    return maha, float(np.sum(np.log(s[keep]))), int(np.sum(keep))


def _logpdf(x: Any, mean: Any = None, cov: Any = 1, allow_singular: bool = False) -> Any:
    """log density at x (..., d)."""
    x, mean, cov = operands(x, mean, cov)
    like = next(v for v in (x, mean, cov) if isinstance(v, Tensor))
    dim, mean, cov = _parameters(mean, cov, like)
    if not isinstance(x, Tensor):
        x = as_tensor(np.asarray(x, dtype=mean.dtype), device=mean.device)
    dev = _quantiles(x, dim) - mean
    if allow_singular:
        _sp.require_constant("multivariate_normal.logpdf", "cov", cov, " when allow_singular=True")
        maha, logdet, rank = _pseudo(dev, cov)
    else:
        maha, logdet, rank = _whitened(dev, cov)
    return _squeeze(-0.5 * (rank * LOG_2PI + logdet + maha))



def _entropy(mean: Any = None, cov: Any = 1) -> Any:
    """Differential entropy 0.5 (d (1 + log 2 pi) + log det cov) (singular cov: the pseudo-determinant)."""
    like = next((v for v in (mean, cov) if isinstance(v, Tensor)), None)
    dim, mean, cov = _parameters(mean, cov, like)
    if _sp.traced(cov):
        L = _la.cholesky(cov, lower=True)
        logdet, rank = 2 * ops.sum(ops.log(ops.diagonal(L, 0, -2, -1))), dim
    else:
        s = np.linalg.eigvalsh(backend_for(cov.device).to_host(cov.data))
        keep = s > 1e6 * np.finfo(np.float64).eps * np.max(np.abs(s))
        logdet, rank = float(np.sum(np.log(s[keep]))), int(np.sum(keep))
    h = 0.5 * (rank * (LOG_2PI + 1) + logdet)
    return h if isinstance(h, Tensor) else full((), h, dtype=mean.dtype, device=mean.device)


pdf = method("multivariate_normal", exp_of(_logpdf, "Density"), "pdf")
logpdf = method("multivariate_normal", _logpdf)
entropy = method("multivariate_normal", _entropy)
rvs = sampler("multivariate_normal")
