"""Matrix decompositions: cholesky, eigh, svd, qr, and the pseudo-inverse (cuSOLVER on the GPU
through ``cupy.linalg``, LAPACK on the CPU; the backend functions of the same names do the work).

Each op states one rule, its tangent (forward mode), written with the tensor namespace. Its
gradient is that rule transposed under autograd's pairing ``<a, b> = Re(sum(a * b))``, obtained
by differentiating ``<g, jvp(t)>`` with respect to the tangent ``t`` (:func:`transposed_jvp`), so
reverse and forward mode cannot disagree. Ops with several results (eigh: w, V; svd: U, S, Vh;
qr: Q, R) return them packed in one array, which the public functions split with views.

Symmetric/Hermitian inputs: like LAPACK, cholesky and eigh read one triangle only (the lower
one by default), so the input's other triangle has gradient 0 and finite differences of any
(non-symmetric) perturbation agree with the gradient.

Eigen- and singular vectors are defined up to sign (a phase for complex values); gradients are
meaningful for losses that do not depend on that choice, and undefined (infinite) where
eigenvalues or singular values repeat, as in PyTorch and JAX.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.errors import GpugradError, ShapeError
from gpugrad.ops._util import as_tensor_operand
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor, make_tensor


def transposed_jvp(op: Op, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
    """``op.vjp`` as the transpose of ``op.jvp``: the gradient of ``Re(sum(g * jvp(t)))`` with
    respect to tangents ``t`` (the jvp is linear in t, so any point will do: zeros)."""
    from gpugrad.autograd.engine import run_backward
    from gpugrad.autograd.grad_mode import enable_grad
    from gpugrad.backends import device_of_array
    from gpugrad.ops.namespace import tensor_namespace

    tns = tensor_namespace()
    create_graph = isinstance(g, Tensor)
    if create_graph:
        targs, tout, tg = tuple(args or ()), out, g
    else:
        device = device_of_array(g) or "cpu"
        targs = tuple(make_tensor(a, device) for a in args or ())
        tout = make_tensor(out, device)
        tg = make_tensor(g, device)
    if not targs:  # the op saved no input: its shape and dtype are in params
        targs = (None,) * len(needs)
    leaves = [None if not need else make_tensor(_zeros_for(a, params, tout), tout.device, True)
              for a, need in zip(targs, needs)]
    with enable_grad():
        t_out = op.jvp(tns, tuple(leaves), targs, tout, params)
        pairing = tns.sum(tns.real(tg * t_out))
    wanted = [leaf for leaf in leaves if leaf is not None]
    one = tns.ones_like(pairing)
    grads = iter(run_backward([pairing], [one if create_graph else one.data], retain_graph=create_graph,
                              create_graph=create_graph, inputs=wanted))
    result = []
    for leaf in leaves:
        if leaf is None:
            result.append(None)
            continue
        gi = next(grads)
        if gi is None:
            gi = tns.zeros_like(leaf)
        result.append(gi if create_graph else gi.data)
    return tuple(result)


def _zeros_for(a: Any, params: dict, out: Tensor) -> Any:
    from gpugrad.backends import backend_for

    if a is not None:
        return backend_for(a.device).zeros_like(a.data)
    return backend_for(out.device).xp.zeros(params["in_shape"], dtype=params["in_dtype"])


class Decomposition(Op):
    """An op whose gradient is its tangent rule transposed (see the module docstring)."""

    save_out = True

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return transposed_jvp(self, ns, g, args, out, params, needs)


def _H(ns: Any, x: Any) -> Any:  # noqa: N802 (conjugate transpose)
    return ns.conj(ns.swapaxes(x, -1, -2))


def _mT(ns: Any, x: Any) -> Any:  # noqa: N802
    return ns.swapaxes(x, -1, -2)


def _hermitian_part(ns: Any, dA: Any, lower: bool) -> Any:
    """The Hermitian matrix a LAPACK routine sees when it reads one triangle of ``dA`` (and the
    real part of its diagonal)."""
    half = ns.tril(dA, -1) if lower else ns.triu(dA, 1)
    return half + _H(ns, half) + ns.real(dA) * ns.new_eye(dA, dA.shape[-1])


def _pack_shapes(ns: Any, parts: list, dtype: Any) -> Any:
    """(array, number of core dims) pairs with common batch dims, flattened into one array
    (batch..., total) of ``dtype`` (how ops with several results return them)."""
    pieces = []
    for p, core in parts:
        batch = tuple(p.shape[:len(p.shape) - core])
        q = p if p.dtype == dtype else ns.astype(p, dtype)
        pieces.append(ns.reshape(q, batch + (-1,)))
    return ns.concatenate(pieces, -1)


def _unpack(packed: Tensor, shapes: list[tuple]) -> list[Tensor]:
    """The views of ``packed`` (batch..., total) holding each core shape in ``shapes``."""
    from gpugrad.ops.index import getitem
    from gpugrad.ops.shape import reshape

    batch = packed.shape[:-1]
    out = []
    pos = 0
    for shape in shapes:
        n = int(np.prod(shape, dtype=np.int64))
        out.append(reshape(getitem(packed, (Ellipsis, slice(pos, pos + n))), batch + tuple(shape)))
        pos += n
    return out


# ---------------------------------------------------------------------------------------------
# Cholesky


class Cholesky(Decomposition):
    name = "cholesky"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.cholesky(args[0])

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        # dL = L phi(L^-1 dS L^-H), phi: lower triangle with the diagonal halved.
        L = out
        dS = _hermitian_part(ns, tangents[0], lower=True)
        left = ns.solve(L, dS)  # L^-1 dS
        V = ns.solve(L, _H(ns, left))  # L^-1 dS L^-H (dS is Hermitian)
        n = L.shape[-1]
        phi = ns.tril(V) - V * (ns.new_eye(V, n) * 0.5)
        return ns.matmul(L, phi)


# ---------------------------------------------------------------------------------------------
# eigh: packed (w, V)


class Eigh(Decomposition):
    name = "eigh"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        a = args[0]
        w, v = B.eigh(a, params["UPLO"])
        return _pack_shapes(B, [(w, 1), (v, 2)], a.dtype)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        n = params["n"]
        w, V = _unpack(out, [(n,), (n, n)])
        from gpugrad.ops.complex import real

        w = real(w)
        dS = _hermitian_part(ns, tangents[0], lower=params["UPLO"] == "L")
        X = ns.matmul(_H(ns, V), ns.matmul(dS, V))
        dw = ns.real(ns.diagonal(X, 0, -2, -1))
        eye = ns.new_eye(w, n)
        diff = ns.expand_dims(w, -2) - ns.expand_dims(w, -1)  # w_j - w_i
        F = (1 - eye) / (diff + eye)
        dV = ns.matmul(V, X * F)
        return _pack_shapes(ns, [(dw, 1), (dV, 2)], out.dtype)


# ---------------------------------------------------------------------------------------------
# eig (general square matrices): packed (w, V), complex unless every eigenvalue is real


class Eig(Decomposition):
    name = "eig"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        w, v = B.eig(args[0])
        return _pack_shapes(B, [(w, 1), (v, 2)], np.result_type(w.dtype, v.dtype))

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        # X = V^-1 dA V: dw = diag(X); dV = V (F * X) with F_ij = 1 / (w_j - w_i), then the
        # change of each column's length removed (NumPy returns unit-norm eigenvectors).
        n = params["n"]
        w, V = _unpack(out, [(n,), (n, n)])
        X = ns.matmul(ns.inv(V), ns.matmul(tangents[0], V))
        dw = ns.diagonal(X, 0, -2, -1)
        eye = ns.new_eye(X, n)
        F = (1 - eye) / (ns.expand_dims(w, -2) - ns.expand_dims(w, -1) + eye)
        dV = ns.matmul(V, X * F)
        dV = dV - V * ns.real(ns.sum(ns.conj(V) * dV, -2, True))
        return _pack_shapes(ns, [(dw, 1), (dV, 2)], out.dtype)


# ---------------------------------------------------------------------------------------------
# SVD: packed (U, S, Vh), reduced (full_matrices=False) or square


class SVD(Decomposition):
    name = "svd"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        a = args[0]
        u, s, vh = B.svd(a, params["full_matrices"])
        return _pack_shapes(B, [(u, 2), (s, 1), (vh, 2)], a.dtype)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        from gpugrad.ops.complex import real

        m, n, k = params["m"], params["n"], params["k"]
        U, s, Vh = _unpack(out, [(m, k), (k,), (k, n)])
        s = real(s)
        dA = tangents[0]
        V = _H(ns, Vh)
        dP = ns.matmul(_H(ns, U), ns.matmul(dA, V))  # U^H dA V
        ds = ns.real(ns.diagonal(dP, 0, -2, -1))
        eye = ns.new_eye(s, k)
        s_row = ns.expand_dims(s, -2)  # s_j along columns
        s_col = ns.expand_dims(s, -1)
        F = (1 - eye) / ((s_row - s_col) * (s_row + s_col) + eye)
        s_inv = 1 / (s + (s == 0)) * (s != 0)
        dSS = dP * s_row  # dP diag(s)
        SdS = s_col * dP  # diag(s) dP
        dU = ns.matmul(U, F * (dSS + _H(ns, dSS)) + (dP - _H(ns, dP)) * (eye * ns.expand_dims(s_inv, -2) * 0.5))
        dV = ns.matmul(V, F * (SdS + _H(ns, SdS)))
        if m > n:
            dAV = ns.matmul(dA, V)
            dU = dU + (dAV - ns.matmul(U, ns.matmul(_H(ns, U), dAV))) * ns.expand_dims(s_inv, -2)
        if n > m:
            dAHU = ns.matmul(_H(ns, dA), U)
            dV = dV + (dAHU - ns.matmul(V, ns.matmul(Vh, dAHU))) * ns.expand_dims(s_inv, -2)
        return _pack_shapes(ns, [(dU, 2), (ds, 1), (_H(ns, dV), 2)], out.dtype)


# ---------------------------------------------------------------------------------------------
# QR: packed (Q, R), reduced


class QR(Decomposition):
    name = "qr"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        a = args[0]
        q, r = B.qr(a, "reduced")
        return _pack_shapes(B, [(q, 2), (r, 2)], a.dtype)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        m, n = params["m"], params["n"]
        k = min(m, n)
        Q, R = _unpack(out, [(m, k), (k, n)])
        dA = tangents[0]
        if m >= n:
            dQ, dR = _qr_tall_jvp(ns, Q, R, dA)
        else:  # A = [X Y] with X square: Q, R_X from X; R_Y = Q^H Y
            from gpugrad.ops.index import getitem

            X_R = getitem(R, (Ellipsis, slice(0, m)))
            dX = getitem(dA, (Ellipsis, slice(0, m)))
            dY = getitem(dA, (Ellipsis, slice(m, None)))
            Y = getitem(args[0], (Ellipsis, slice(m, None)))
            dQ, dRX = _qr_tall_jvp(ns, Q, X_R, dX)
            dRY = ns.matmul(_H(ns, dQ), Y) + ns.matmul(_H(ns, Q), dY)
            dR = ns.concatenate([dRX, dRY], -1)
        return _pack_shapes(ns, [(dQ, 2), (dR, 2)], out.dtype)

    def saves(self, needs: tuple) -> tuple:
        return True, True  # the wide case reads the input's extra columns


def _qr_tall_jvp(ns: Any, Q: Any, R: Any, dA: Any) -> tuple[Any, Any]:
    """Tangents of the reduced QR of a tall (or square) matrix (Walter & Lehmann's rule)."""
    n = R.shape[-1]
    dA_Rinv = _mT(ns, ns.solve(_mT(ns, R), _mT(ns, dA)))  # dA R^-1
    C = ns.matmul(_H(ns, Q), dA_Rinv)
    low = ns.tril(C, -1)
    omega = low - _H(ns, low)
    eye = ns.new_eye(C, n)
    omega = omega + eye * (C - ns.real(C))  # the imaginary diagonal, for complex inputs
    dQ = ns.matmul(Q, omega - C) + dA_Rinv
    dR = ns.matmul(C - omega, R)
    return dQ, dR


# ---------------------------------------------------------------------------------------------
# pseudo-inverse


class Pinv(Decomposition):
    name = "pinv"
    save_inputs = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.pinv(args[0], params["rcond"])

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        # Golub & Pereyra: dX = -X dA X + X X^H dA^H (I - A X) + (I - X A) dA^H X^H X (constant rank)
        A, X, dA = args[0], out, tangents[0]
        dAH = _H(ns, dA)
        XH = _H(ns, X)
        term1 = -ns.matmul(X, ns.matmul(dA, X))
        left = ns.matmul(X, ns.matmul(XH, dAH))
        term2 = left - ns.matmul(left, ns.matmul(A, X))
        right = ns.matmul(dAH, ns.matmul(XH, X))
        term3 = right - ns.matmul(X, ns.matmul(A, right))
        return term1 + term2 + term3


CHOLESKY = Cholesky()
EIGH = Eigh()
EIG = Eig()
SVD_OP = SVD()
QR_OP = QR()
PINV = Pinv()


# ---------------------------------------------------------------------------------------------
# public functions


def _matrices(a: Any, name: str, square: bool = False) -> Tensor:
    a = as_tensor_operand(a)
    if a.ndim < 2 or (square and a.shape[-1] != a.shape[-2]):
        what = "square matrices (..., n, n)" if square else "matrices (..., m, n)"
        raise ShapeError(f"{name}: expected {what}, got shape {a.shape}")
    if a.dtype.kind in "biu":
        a = a.astype(np.float64)
    return a


def _call(op: Op, a: Tensor, params: dict) -> Tensor:
    params = {**params, "in_shape": a.shape, "in_dtype": a.dtype}
    try:
        return apply(op, (a,), params)
    except np.linalg.LinAlgError as exc:
        raise GpugradError(f"{op.name}: {exc} (shape {a.shape})") from None


def cholesky(a: Any) -> Tensor:
    """Lower Cholesky factor L of (a batch of) Hermitian positive-definite matrices, A = L L^H
    (only A's lower triangle is read, as ``numpy.linalg.cholesky``)."""
    return _call(CHOLESKY, _matrices(a, "cholesky", square=True), {})


def eigh(a: Any, UPLO: str = "L") -> tuple[Tensor, Tensor]:  # noqa: N803 (NumPy's name)
    """Eigenvalues (ascending, real) and eigenvectors of Hermitian matrices, reading the ``UPLO``
    triangle, as ``numpy.linalg.eigh``."""
    a = _matrices(a, "eigh", square=True)
    if UPLO not in ("L", "U"):
        raise GpugradError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    n = a.shape[-1]
    packed = _call(EIGH, a, {"UPLO": UPLO, "n": n})
    w, v = _unpack(packed, [(n,), (n, n)])
    from gpugrad.ops.complex import real

    return real(w), v


def eigvalsh(a: Any, UPLO: str = "L") -> Tensor:  # noqa: N803
    """Eigenvalues of Hermitian matrices, as ``numpy.linalg.eigvalsh``."""
    return eigh(a, UPLO)[0]


def eig(a: Any) -> tuple[Tensor, Tensor]:
    """Eigenvalues and unit-norm right eigenvectors of general square matrices, as
    ``numpy.linalg.eig`` (complex unless every eigenvalue is real). The eigenvectors' phase is
    arbitrary: differentiate losses that do not depend on it (e.g. of their moduli)."""
    a = _matrices(a, "eig", square=True)
    n = a.shape[-1]
    packed = _call(EIG, a, {"n": n})
    w, v = _unpack(packed, [(n,), (n, n)])
    return w, v


def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False) -> Any:
    """Singular value decomposition ``U, S, Vh`` (or S alone), as ``numpy.linalg.svd``.

    Differentiable for square matrices and with ``full_matrices=False`` (the extra columns of a
    full U or V of a non-square matrix are not determined by it, so they have no derivative).
    """
    from gpugrad.ops.complex import real

    a = _matrices(a, "svd")
    m, n = a.shape[-2:]
    k = min(m, n)
    full = bool(full_matrices) and compute_uv and m != n
    if full:
        from gpugrad.numpy._protocol import is_traced

        if is_traced(a):
            raise GpugradError("svd: the full U/Vh of a non-square matrix have no derivative; pass "
                               "full_matrices=False (or compute_uv=False) to differentiate")
        from gpugrad.backends import backend_for

        u, s, vh = backend_for(a.device).svd(a.data, True)
        return tuple(make_tensor(x, a.device) for x in (u, s, vh))
    packed = _call(SVD_OP, a, {"full_matrices": False, "m": m, "n": n, "k": k})
    u, s, vh = _unpack(packed, [(m, k), (k,), (k, n)])
    s = real(s)
    return (u, s, vh) if compute_uv else s


def qr(a: Any, mode: str = "reduced") -> Any:
    """QR decomposition, as ``numpy.linalg.qr`` (modes 'reduced', 'r', and 'complete' for
    square or wide matrices, where it equals 'reduced')."""
    a = _matrices(a, "qr")
    m, n = a.shape[-2:]
    if mode not in ("reduced", "complete", "r"):
        raise GpugradError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    if mode == "complete" and m > n:
        from gpugrad.numpy._protocol import is_traced

        if is_traced(a):
            raise GpugradError("qr: the extra columns of a complete Q of a tall matrix have no derivative; "
                               "use mode='reduced' to differentiate")
        from gpugrad.backends import backend_for

        q, r = backend_for(a.device).qr(a.data, "complete")
        return make_tensor(q, a.device), make_tensor(r, a.device)
    k = min(m, n)
    packed = _call(QR_OP, a, {"m": m, "n": n})
    q, r = _unpack(packed, [(m, k), (k, n)])
    return r if mode == "r" else (q, r)


def pinv(a: Any, rcond: Any = None, hermitian: bool = False) -> Tensor:
    """Moore-Penrose pseudo-inverse (singular values below ``rcond`` times the largest are
    dropped), as ``numpy.linalg.pinv``; the gradient assumes the rank does not change."""
    a = _matrices(a, "pinv")
    if rcond is None:
        rcond = max(a.shape[-2:]) * float(np.finfo(np.real(np.zeros((), a.dtype)).dtype).eps)
    return _call(PINV, a, {"rcond": rcond})
