"""The rest of the CUDA namespace: thin calls of CuPy's library (cuBLAS matmul, cuSOLVER, cuFFT,
concatenation, scans, padding, constructors), each counted as one launch, and views (no kernel).

Example::

    B.matmul(a, b)      B.fftn(x, "rfft", None, (0, 1), None)
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Library:
    """CupyBackend's CuPy library calls and views."""

    def _lib(self, fn: Any, *args: Any, **kw: Any) -> Any:
        with self.device:
            r = fn(*args, **kw)
        self.counters["launches"] += 1
        return r

    def matmul(self, a: Any, b: Any) -> Any:
        """cuBLAS (through cupy.matmul): GEMM / batched GEMM, transposed views without copies."""
        return self._lib(self.cp.matmul, a, b)

    def einsum(self, spec: str, *ops: Any) -> Any:
        return self._lib(self.cp.einsum, spec, *ops)

    def tensordot(self, a: Any, b: Any, axes: Any = 2) -> Any:
        return self._lib(self.cp.tensordot, a, b, axes)

    def concatenate(self, arrays: Any, axis: int = 0) -> Any:
        return self._lib(self.cp.concatenate, list(arrays), axis)

    def stack(self, arrays: Any, axis: int = 0) -> Any:
        return self._lib(self.cp.stack, list(arrays), axis)

    def cumsum(self, x: Any, axis: Any = None) -> Any:
        return self._lib(self.cp.cumsum, x, axis)

    def cumprod(self, x: Any, axis: Any = None) -> Any:
        return self._lib(self.cp.cumprod, x, axis)

    def pad(self, x: Any, pad_width: Any) -> Any:
        return self._lib(self.cp.pad, x, pad_width)

    def solve(self, a: Any, b: Any) -> Any:
        return self._lib(self.cp.linalg.solve, a, b)

    def inv(self, a: Any) -> Any:
        return self._lib(self.cp.linalg.inv, a)

    # decompositions (cuSOLVER) and transforms (cuFFT), through CuPy
    def tril(self, x: Any, k: int = 0) -> Any:
        mask = self.cp.tri(x.shape[-2], x.shape[-1], k, dtype=bool)
        return self._lib(self.cp.where, mask, x, 0)

    def triu(self, x: Any, k: int = 0) -> Any:
        mask = self.cp.tri(x.shape[-2], x.shape[-1], k - 1, dtype=bool)
        return self._lib(self.cp.where, mask, 0, x)

    def cholesky(self, a: Any) -> Any:
        return self._lib(self.cp.linalg.cholesky, a)

    def eigh(self, a: Any, uplo: str = "L") -> tuple[Any, Any]:
        return self._lib(self.cp.linalg.eigh, a, uplo)

    def eig(self, a: Any) -> tuple[Any, Any]:
        """cupy.linalg.eig (CuPy >= 14); older CuPy has none: LAPACK on the host, copied back."""
        fn = getattr(self.cp.linalg, "eig", None)
        if fn is not None:
            return self._lib(fn, a)
        w, v = np.linalg.eig(self.cp.asnumpy(a))
        return self.from_host(w), self.from_host(v)

    def svd(self, a: Any, full_matrices: bool) -> tuple[Any, Any, Any]:
        return self._lib(self.cp.linalg.svd, a, full_matrices=full_matrices)

    def qr(self, a: Any, mode: str) -> tuple[Any, Any]:
        return self._lib(self.cp.linalg.qr, a, mode)

    def pinv(self, a: Any, rcond: float) -> Any:
        return self._lib(self.cp.linalg.pinv, a, rcond)

    def fftn(self, x: Any, kind: str, s: tuple, axes: tuple, norm: Any) -> Any:
        """``cupy.fft.<kind>n`` (cuFFT), kind in fft, ifft, rfft, irfft."""
        return self._lib(getattr(self.cp.fft, kind + "n"), x, s=s, axes=axes, norm=norm)

    def zeros_like(self, x: Any) -> Any:
        return self._lib(self.cp.zeros_like, x)

    def ones_like(self, x: Any) -> Any:
        return self._lib(self.cp.ones_like, x)

    def new_zeros(self, like: Any, shape: tuple) -> Any:
        return self._lib(self.cp.zeros, shape, dtype=like.dtype)

    def new_ones(self, like: Any, shape: tuple) -> Any:
        return self._lib(self.cp.ones, shape, dtype=like.dtype)

    def new_eye(self, like: Any, n: int) -> Any:
        return self._lib(self.cp.eye, n, dtype=like.dtype)

    # views: no kernel
    def reshape(self, x: Any, shape: Any) -> Any:
        return self.cp.reshape(x, shape)

    def transpose(self, x: Any, axes: Any = None) -> Any:
        return self.cp.transpose(x, axes)

    def broadcast_to(self, x: Any, shape: Any) -> Any:
        return self.cp.broadcast_to(x, shape)

    def expand_dims(self, x: Any, axis: Any) -> Any:
        return self.cp.expand_dims(x, axis)

    def swapaxes(self, x: Any, a: int, b: int) -> Any:
        return self.cp.swapaxes(x, a, b)

    def flip(self, x: Any, axis: Any = None) -> Any:
        return self.cp.flip(x, axis)

    def diagonal(self, x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
        return self.cp.diagonal(x, offset, axis1, axis2)

    def astype(self, x: Any, dtype: Any) -> Any:
        if not isinstance(x, self._nd):
            x = self.asarray(x)
        if x.dtype == dtype:
            return x
        if x.dtype.kind == "c" and np.dtype(dtype).kind != "c":
            x = x.real  # a complex gradient reaching a real input: its real part
        self.counters["launches"] += 1
        return x.astype(dtype)

    def real(self, x: Any) -> Any:
        return self.cp.real(x)

    def imag(self, x: Any) -> Any:
        return self.cp.imag(x)

    def conj(self, x: Any) -> Any:
        return self._lib(self.cp.conj, x)
