"""The linear algebra of ``gpugrad.scipy.linalg``: Cholesky factors, triangular solves, Sylvester
equations and the principal matrix square root, as ops.

Forwards call the backend's routines (NumPy/SciPy on the CPU; CuPy/cupyx on the GPU, and SciPy
through the host for the two CuPy lacks, ``solve_sylvester`` and ``sqrtm``). Each rule is written
once with differentiable functions, so gradients of any order and forward mode work:

* cholesky, L L^T = A: dA = sym(L^-T Phi(L^T dL) L^-1) with Phi = lower triangle, half diagonal
  (the symmetric gradient, as PyTorch's ``torch.linalg.cholesky``);
* solve_triangular, op(T) x = b with T the triangle of ``a`` that is read: db = op(T)^-T g and
  dT = -(db x^T) (or its transpose), restricted to that triangle;
* solve_sylvester, A X + X B = Q: dQ = solve_sylvester(A^T, B^T, g), dA = -dQ X^T, dB = -X^T dQ;
* sqrtm, X X = A: dA = solve_sylvester(X^T, X^T, g).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from gpugrad.errors import GpugradError, ShapeError
from gpugrad.ops.base import Op, apply
from gpugrad.ops.namespace import tensor_namespace
from gpugrad.ops.special import backend_function, operand, rule_call
from gpugrad.tensor import Tensor


def _mT(ns: Any, x: Any) -> Any:  # noqa: N802
    return ns.swapaxes(x, -1, -2)


def _triangle(ns: Any, x: Any, lower: bool, k: int = 0) -> Any:
    if ns is tensor_namespace():
        return ns.tril(x, k) if lower else ns.triu(x, k)
    return ns.xp.tril(x, k) if lower else ns.xp.triu(x, k)


def _batched(fn: Any, B: Any, a: Any, b: Any, **kw: Any) -> Any:
    """``fn`` (a routine for one 2-D matrix) over the broadcast leading dimensions of a and b."""
    if a.ndim == 2 and b.ndim <= 2:
        return fn(a, b, **kw)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = B.xp.broadcast_to(a, batch + a.shape[-2:])
    b = B.xp.broadcast_to(b, batch + b.shape[-2:])
    outs = [fn(a[i], b[i], **kw) for i in np.ndindex(batch)]
    return B.xp.stack(outs).reshape(batch + outs[0].shape)


# ---------------------------------------------------------------------------------------------
# Cholesky


class Cholesky(Op):
    """The lower Cholesky factor of (a batch of) symmetric positive definite matrices."""

    name = "cholesky"
    save_inputs = False
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        with _linalg_errors(self.name, args):
            return B.xp.linalg.cholesky(args[0])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        L = out
        n = L.shape[-1]
        m = ns.matmul(_mT(ns, L), g)
        phi = _triangle(ns, m, True, -1) + 0.5 * m * ns.new_eye(L, n)
        # L^-T phi L^-1, as two triangular solves
        left = solve_triangular_rule(ns, L, phi, trans=1, lower=True)
        s = _mT(ns, solve_triangular_rule(ns, L, _mT(ns, left), trans=1, lower=True))
        return (0.5 * (s + _mT(ns, s)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        L = out
        n = L.shape[-1]
        t = tangents[0]
        t = 0.5 * (t + _mT(ns, t))  # the part of dA the factor depends on (it reads a symmetric A)
        inner = solve_triangular_rule(ns, L, t, trans=0, lower=True)
        inner = _mT(ns, solve_triangular_rule(ns, L, _mT(ns, inner), trans=0, lower=True))  # L^-1 dA L^-T
        phi = _triangle(ns, inner, True, -1) + 0.5 * inner * ns.new_eye(L, n)
        return ns.matmul(L, phi)


CHOLESKY = Cholesky()


def cholesky(a: Any, lower: bool = False) -> Tensor:
    """Cholesky factor of a symmetric positive definite matrix, as ``scipy.linalg.cholesky``:
    upper (A = U^T U) by default, lower (A = L L^T) with ``lower=True``; batches allowed.

    Only the lower triangle of ``a`` is read; the gradient is symmetric (PyTorch's convention),
    so differentiate with respect to a symmetric matrix (e.g. ``(m + m.T) / 2``)::

        U = cholesky(gg.tensor([[4.0, 2.0], [2.0, 3.0]]))
    """
    a = _matrix_operand(a, "cholesky")
    L = _call(CHOLESKY, (a,), {})
    return L if lower else L.swapaxes(-1, -2)


# ---------------------------------------------------------------------------------------------
# triangular solves

_TRANS = {0: 0, "N": 0, 1: 1, "T": 1, 2: 1, "C": 1}  # real matrices: conjugate transpose = transpose


class SolveTriangular(Op):
    name = "solve_triangular"
    save_out = True

    def saves(self, needs: tuple) -> tuple:
        return (True, False), True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        a, b = args
        fn = backend_function(B, "linalg", "solve_triangular")
        vec = params["vector"]
        if vec and a.ndim > 2:
            b = b[..., None]
        with _linalg_errors(self.name, args):
            out = _batched(fn, B, a, b, trans=params["trans"], lower=params["lower"],
                           unit_diagonal=params["unit_diagonal"])
        return out[..., 0] if vec and a.ndim > 2 else out

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        a, _ = args
        trans, lower, unit = params["trans"], params["lower"], params["unit_diagonal"]
        gb = solve_triangular_rule(ns, a, g, trans=1 - trans, lower=lower, unit_diagonal=unit)
        ga = None
        if needs[0]:
            if params["vector"]:
                gb2, x2 = ns.expand_dims(gb, -1), ns.expand_dims(out, -1)
            else:
                gb2, x2 = gb, out
            full = ns.matmul(gb2, _mT(ns, x2)) if trans == 0 else ns.matmul(x2, _mT(ns, gb2))
            k = 0 if not unit else (-1 if lower else 1)
            ga = -_triangle(ns, full, lower, k)
        return ga, (gb if needs[1] else None)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        ta, tb = tangents
        a, _ = args
        trans, lower, unit = params["trans"], params["lower"], params["unit_diagonal"]
        rhs = tb
        if ta is not None:
            k = 0 if not unit else (-1 if lower else 1)
            t = _triangle(ns, ta, lower, k)
            if trans:
                t = _mT(ns, t)
            x = ns.expand_dims(out, -1) if params["vector"] else out
            prod = ns.matmul(t, x)
            if params["vector"]:
                prod = ns.reshape(prod, prod.shape[:-1])
            rhs = -prod if rhs is None else rhs - prod
        return solve_triangular_rule(ns, a, rhs, trans=trans, lower=lower, unit_diagonal=unit)


SOLVE_TRIANGULAR = SolveTriangular()


def solve_triangular_rule(ns: Any, a: Any, b: Any, trans: int = 0, lower: bool = False,
                          unit_diagonal: bool = False) -> Any:
    """solve_triangular inside a rule (tensors or raw arrays, per ``ns``)."""
    params = {"trans": trans, "lower": lower, "unit_diagonal": unit_diagonal, "vector": b.ndim == a.ndim - 1}
    return rule_call(ns, SOLVE_TRIANGULAR, (a, b), params)


def solve_triangular(a: Any, b: Any, trans: int | str = 0, lower: bool = False, unit_diagonal: bool = False,
                     overwrite_b: bool = False, check_finite: bool = True) -> Tensor:
    """Solve op(T) x = b for the triangle T of ``a`` (the other triangle is not read), as
    ``scipy.linalg.solve_triangular``: ``trans`` 0/'N' (T x = b), 1/'T' or 2/'C' (T^T x = b);
    ``unit_diagonal`` takes T's diagonal as ones. ``a`` may be a batch (..., n, n) with b (..., n, k).
    Differentiable in ``a`` (its read triangle) and ``b``::

        x = solve_triangular(L, b, lower=True)
    """
    if trans not in _TRANS:
        raise GpugradError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    a = _matrix_operand(a, "solve_triangular", b)
    b = _operand(b, a)
    n = a.shape[-1]
    vector = b.ndim == a.ndim - 1
    if b.ndim < 1 or b.shape[-1 if vector else -2] != n or (a.ndim > 2 and b.ndim < a.ndim - 1):
        raise ShapeError(f"solve_triangular: a of shape {a.shape} and b of shape {b.shape} are incompatible "
                         "(b must be (n,) or (n, k), or (..., n, k) for a batch of matrices)")
    params = {"trans": _TRANS[trans], "lower": bool(lower), "unit_diagonal": bool(unit_diagonal),
              "vector": vector}
    return _call(SOLVE_TRIANGULAR, (a, b), params)


# ---------------------------------------------------------------------------------------------
# banded systems (LAPACK's storage: ab[u + i - j, j] = a[i, j])


def _band_gather(ns: Any, dense: Any, lower: int, upper: int) -> Any:
    """The band of a (..., n, n) matrix in banded storage (lower + upper + 1, n)."""
    n = dense.shape[-1]
    r = np.arange(lower + upper + 1)[:, None]
    j = np.arange(n)[None, :]
    i = r - upper + j
    valid = (i >= 0) & (i < n)
    picked = ns.getitem(dense, _device_index(ns, dense, np.clip(i, 0, n - 1), np.broadcast_to(j, i.shape)))
    return ns.where(_device_mask(ns, dense, valid), picked, 0)


def _band_transpose(ns: Any, ab: Any, lower: int, upper: int) -> Any:
    """The banded storage of A^T (upper and lower swap) from that of A."""
    n = ab.shape[-1]
    r = np.arange(lower + upper + 1)[:, None]
    j = np.arange(n)[None, :]
    col = r - lower + j  # A^T[i, j] = A[j, i] = ab[upper + j - i, i] with i = r - lower + j
    row = upper + lower - r + 0 * j
    valid = (col >= 0) & (col < n)
    picked = ns.getitem(ab, _device_index(ns, ab, row, np.clip(col, 0, n - 1)))
    return ns.where(_device_mask(ns, ab, valid), picked, 0)


def _device_index(ns: Any, like: Any, *arrays: np.ndarray) -> tuple:
    """Integer index arrays for ``ns.getitem`` (the tensor namespace moves them itself)."""
    if ns is tensor_namespace():
        return arrays
    return tuple(ns.asarray(np.ascontiguousarray(a)) for a in arrays)


def _device_mask(ns: Any, like: Any, mask: np.ndarray) -> Any:
    if ns is tensor_namespace():
        from gpugrad.factories import as_tensor

        return as_tensor(mask, device=like.device)
    return ns.asarray(mask)


class SolveBanded(Op):
    """x = A^-1 b with A in banded storage: db = solve_banded(A^T, g), dab = the band of -db x^T."""

    name = "solve_banded"
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        ab, b = args
        with _linalg_errors(self.name, args):
            out = backend_function(B, "linalg", "solve_banded")((params["lower"], params["upper"]), ab, b)
        return B.xp.asarray(out)

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        ab, _ = args
        lower, upper = params["lower"], params["upper"]
        transposed = {"lower": upper, "upper": lower}
        gb = rule_call(ns, SOLVE_BANDED, (_band_transpose(ns, ab, lower, upper), g), transposed)
        gab = None
        if needs[0]:
            gb2 = ns.reshape(gb, (gb.shape[0], -1))
            x2 = ns.reshape(out, (out.shape[0], -1))
            gab = -_band_gather(ns, ns.matmul(gb2, _mT(ns, x2)), lower, upper)
        return gab, (gb if needs[1] else None)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        tab, tb = tangents
        ab, _ = args
        lower, upper = params["lower"], params["upper"]
        rhs = tb
        if tab is not None:
            # (dA x)[i] = sum_j dA[i, j] x[j] = sum_r dab[r, j] x[j] with i = r - upper + j
            dense = _band_to_dense(ns, tab, lower, upper)
            prod = ns.matmul(dense, out)
            rhs = -prod if rhs is None else rhs - prod
        return rule_call(ns, SOLVE_BANDED, (ab, rhs), params)


def _band_to_dense(ns: Any, ab: Any, lower: int, upper: int) -> Any:
    n = ab.shape[-1]
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    r = upper + i - j
    valid = (r >= 0) & (r <= lower + upper)
    picked = ns.getitem(ab, _device_index(ns, ab, np.clip(r, 0, lower + upper), np.broadcast_to(j, r.shape)))
    return ns.where(_device_mask(ns, ab, valid), picked, 0)


SOLVE_BANDED = SolveBanded()


def solve_banded(l_and_u: tuple[int, int], ab: Any, b: Any, overwrite_ab: bool = False, overwrite_b: bool = False,
                 check_finite: bool = True) -> Tensor:
    """Solve A x = b for a banded A given in LAPACK's storage ``ab`` ((l + u + 1, n), with
    ``ab[u + i - j, j] = A[i, j]``), as ``scipy.linalg.solve_banded``; differentiable in ab and b."""
    lower, upper = (int(v) for v in l_and_u)
    ab = _operand(ab, b if isinstance(b, Tensor) else None)
    b = _operand(b, ab)
    if ab.ndim != 2 or ab.shape[0] != lower + upper + 1 or b.ndim not in (1, 2) or b.shape[0] != ab.shape[1]:
        raise ShapeError(f"solve_banded: expected ab ({lower + upper + 1}, n) and b (n,) or (n, k) for "
                         f"(l, u) = ({lower}, {upper}), got shapes {ab.shape} and {b.shape}")
    return _call(SOLVE_BANDED, (ab, b), {"lower": lower, "upper": upper})


# ---------------------------------------------------------------------------------------------
# Sylvester equations and the matrix square root


class SolveSylvester(Op):
    name = "solve_sylvester"
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        with _linalg_errors(self.name, args):
            return B.xp.asarray(backend_function(B, "linalg", "solve_sylvester")(*args))

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        a, b, _ = args
        gq = sylvester_rule(ns, _mT(ns, a), _mT(ns, b), g)
        ga = -ns.matmul(gq, _mT(ns, out)) if needs[0] else None
        gb = -ns.matmul(_mT(ns, out), gq) if needs[1] else None
        return ga, gb, gq

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        ta, tb, tq = tangents
        a, b, q = args
        rhs = tq if tq is not None else ns.zeros_like(out)
        if ta is not None:
            rhs = rhs - ns.matmul(ta, out)
        if tb is not None:
            rhs = rhs - ns.matmul(out, tb)
        return sylvester_rule(ns, a, b, rhs)


SOLVE_SYLVESTER = SolveSylvester()


def sylvester_rule(ns: Any, a: Any, b: Any, q: Any) -> Any:
    return rule_call(ns, SOLVE_SYLVESTER, (a, b, q), {})


def solve_sylvester(a: Any, b: Any, q: Any) -> Tensor:
    """X with A X + X B = Q, as ``scipy.linalg.solve_sylvester`` (A (n, n), B (m, m), Q (n, m));
    differentiable in all three."""
    a = _matrix_operand(a, "solve_sylvester", b, q)
    b = _matrix_operand(b, "solve_sylvester", a)
    q = _operand(q, a)
    if q.shape != (a.shape[0], b.shape[0]) or a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"solve_sylvester: expected a (n, n), b (m, m), q (n, m), got shapes "
                         f"{a.shape}, {b.shape}, {q.shape}")
    return _call(SOLVE_SYLVESTER, (a, b, q), {})


class Sqrtm(Op):
    name = "sqrtm"
    save_inputs = False
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        a = args[0]
        with _linalg_errors(self.name, args):
            x = B.xp.asarray(backend_function(B, "linalg", "sqrtm")(a))
        if x.dtype.kind == "c":
            if bool(B.xp.any(x.imag != 0)):
                raise GpugradError(
                    "sqrtm: the principal square root of this matrix is complex (it has negative real "
                    "eigenvalues); gpugrad.scipy.linalg.sqrtm differentiates real square roots only")
            x = x.real
        return x.astype(a.dtype if a.dtype.kind == "f" else np.float64, copy=False)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        t = _mT(ns, out)
        return (sylvester_rule(ns, t, t, g),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return sylvester_rule(ns, out, out, tangents[0])


SQRTM = Sqrtm()


def sqrtm(a: Any) -> Tensor:
    """The principal square root X of a square matrix (X @ X = A), as ``scipy.linalg.sqrtm``, for
    matrices whose square root is real (a complex one raises); differentiable, any order."""
    a = _matrix_operand(a, "sqrtm")
    if a.ndim != 2:
        raise ShapeError(f"sqrtm: expected one (n, n) matrix, got shape {a.shape}")
    return _call(SQRTM, (a,), {})


# ---------------------------------------------------------------------------------------------
# operands


def _operand(x: Any, like: Tensor | None) -> Tensor:
    return operand(x, like)


def _matrix_operand(x: Any, name: str, *others: Any) -> Tensor:
    like = next((o for o in others if isinstance(o, Tensor)), None)
    x = _operand(x, like)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"{name}: expected square matrices (..., n, n), got shape {x.shape}")
    return x


@contextlib.contextmanager
def _linalg_errors(name: str, args: list) -> Iterator[None]:
    """A failed factorization or a singular system as a GpugradError naming the op."""
    try:
        yield
    except np.linalg.LinAlgError as exc:
        shapes = ", ".join(str(tuple(a.shape)) for a in args if hasattr(a, "shape"))
        raise GpugradError(f"{name}: {exc} (shapes {shapes})") from None


def _call(op: Op, args: tuple, params: dict) -> Tensor:
    return apply(op, args, params)
