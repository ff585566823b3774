"""Linear algebra: matmul (cuBLAS on the GPU through CuPy), einsum and what is built on them
(dot, vdot, inner, outer, tensordot), and inv, det, slogdet, solve.

matmul's rule is the one every backpropagation course derives: for D = W X, dW = dD X^T and
dX = W^T dD; batch dimensions that were broadcast are summed back by the engine.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpugrad.errors import GpugradError, ShapeError
from gpugrad.ops._util import as_tensor_operand
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor


class MatMul(Op):
    """``a @ b``; with params ``t_b`` (b 2-D) ``a @ b.T``, a linear layer's ``x @ W.T``: W's
    gradient is then made in W's own layout, a new array the engine hands to ``.grad``."""

    name = "matmul"
    fresh_grads = True

    def saves(self, needs: tuple) -> tuple:
        # dA needs B, dB needs A.
        return (needs[1], needs[0]), False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        a, b = args
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
        if params.get("t_b"):
            b = B.swapaxes(b, -1, -2)
        return B.matmul(a, b)

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        a, b = args
        a_nd, b_nd = params["ndims"]
        if a_nd == 1 and b_nd == 1:  # inner product: out is a scalar
            return (g * b if needs[0] else None), (g * a if needs[1] else None)
        if a_nd == 1:
            g = ns.expand_dims(g, -2)
        if b_nd == 1:
            g = ns.expand_dims(g, -1)
        t_b = params.get("t_b")
        ga = gb = None
        if needs[0]:
            if t_b:
                ga = ns.matmul(g, b)
            else:
                b2 = ns.reshape(b, (b.shape[0], 1)) if b_nd == 1 else b
                ga = ns.matmul(g, ns.swapaxes(b2, -1, -2))
            if a_nd == 1:
                ga = ns.reshape(ga, ga.shape[:-2] + ga.shape[-1:])
        if needs[1]:
            a2 = ns.reshape(a, (1, a.shape[0])) if a_nd == 1 else a
            if a_nd > 2 and b_nd == 2:  # b met every row of a's batch: one product, not a batch summed
                rows = int(np.prod(a2.shape[:-1], dtype=np.int64))
                a2 = ns.reshape(a2, (rows, a2.shape[-1]))
                g = ns.reshape(g, (rows, g.shape[-1]))
            gb = ns.matmul(ns.swapaxes(g, -1, -2), a2) if t_b else ns.matmul(ns.swapaxes(a2, -1, -2), g)
            if b_nd == 1:
                gb = ns.reshape(gb, gb.shape[:-1])
        return ga, gb

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        ta, tb = tangents
        a, b = args
        if params.get("t_b"):
            b = ns.swapaxes(b, -1, -2)
            tb = None if tb is None else ns.swapaxes(tb, -1, -2)
        out_t = None
        if ta is not None:
            out_t = ns.matmul(ta, b)
        if tb is not None:
            term = ns.matmul(a, tb)
            out_t = term if out_t is None else out_t + term
        return out_t


class Einsum(Op):
    name = "einsum"

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.einsum(params["subscripts"], *args)

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        ins, out_sub = params["inputs"], params["output"]
        sizes = params["sizes"]
        full = [_broadcast_operand(ns, a, s, sizes) for a, s in zip(args, ins)]
        grads = []
        for k, need in enumerate(needs):
            if not need:
                grads.append(None)
                continue
            others = [(ins[j], full[j]) for j in range(len(ins)) if j != k]
            grads.append(_einsum_grad(ns, g, out_sub, others, ins[k], sizes, args[k]))
        return tuple(grads)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        total = None
        for k, t in enumerate(tangents):
            if t is None:
                continue
            ops = list(args)
            ops[k] = t
            term = ns.einsum(params["subscripts"], *ops)
            total = term if total is None else total + term
        return total


def _broadcast_operand(ns: Any, a: Any, sub: str, sizes: dict[str, int]) -> Any:
    target = tuple(sizes[c] for c in sub)
    return a if tuple(a.shape) == target else ns.broadcast_to(a, target)


def _einsum_grad(ns: Any, g: Any, out_sub: str, others: list, target: str, sizes: dict, like: Any) -> Any:
    present = set(out_sub).union(*[set(s) for s, _ in others]) if others else set(out_sub)
    unique = "".join(dict.fromkeys(target))
    reduced = "".join(c for c in unique if c in present)
    spec = ",".join([out_sub] + [s for s, _ in others]) + "->" + reduced
    r = ns.einsum(spec, g, *[a for _, a in others])
    if reduced == target:
        return r
    # Rebuild repeated letters (diagonals) with identity factors and lonely letters (summed only in
    # this operand) with ones, in one more einsum.
    free = iter(c for c in string.ascii_letters if c not in target and c not in out_sub
                and all(c not in s for s, _ in others))
    renamed = []
    seen: set[str] = set()
    factors: list[tuple[str, Any]] = []
    for c in target:
        if c in seen:
            fresh = next(free)
            factors.append((c + fresh, ns.new_eye(like, sizes[c])))
            renamed.append(fresh)
        else:
            seen.add(c)
            renamed.append(c)
            if c not in present:
                factors.append((c, ns.new_ones(like, (sizes[c],))))
    spec = ",".join([reduced] + [s for s, _ in factors]) + "->" + "".join(renamed)
    return ns.einsum(spec, r, *[f for _, f in factors])


MATMUL = MatMul()
EINSUM = Einsum()


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules (1-D operands promoted, batch dimensions broadcast).

    Example: ``gg.matmul(w, x)`` or ``w @ x``.
    """
    if a.__class__ is Tensor and b.__class__ is Tensor:  # (x @ W: the checks below, for two matrices)
        sa, sb = a.data.shape, b.data.shape
        if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0]:
            return apply(MATMUL, (a, b), {"ndims": (2, 2)})
    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    _check_product("matmul", a.shape, b.shape)
    return apply(MATMUL, (a, b), {"ndims": (a.ndim, b.ndim)})


def matmul_transposed(a: Any, b: Any) -> Tensor:
    """``a @ b.T`` for a 2-D ``b`` (a linear layer's ``x @ W.T``), one op: no transposed view of
    ``b`` on the tape, and b's gradient made in b's layout.

    Example: ``matmul_transposed(x, w)`` maps (N, in) to (N, out) for w (out, in).
    """
    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    if b.ndim != 2:
        raise ShapeError(f"matmul: the transposed operand must be 2-D, got shape {b.shape}")
    _check_product("matmul", a.shape, (b.shape[1], b.shape[0]))
    return apply(MATMUL, (a, b), {"ndims": (a.ndim, 2), "t_b": True})


def _check_product(name: str, sa: tuple, sb: tuple) -> None:
    """A clear ShapeError when the summed dimensions of a matrix product differ."""
    if not sa or not sb:
        raise ShapeError(f"{name}: operands must be at least 1-D, got shapes {sa} and {sb}")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        where_b = "its only" if len(sb) == 1 else "its second-to-last"
        raise ShapeError(f"{name}: shapes {sa} and {sb} are not aligned: the last dimension of the first "
                         f"({ka}) must equal {where_b} dimension of the second ({kb})")
    if len(sa) > 2 and len(sb) > 2:
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ShapeError(f"{name}: the batch dimensions of shapes {sa} and {sb} do not broadcast") from None


def parse_einsum(subscripts: str, shapes: Sequence[tuple[int, ...]]) -> tuple[list[str], str, dict[str, int]]:
    """Explicit per-operand subscripts (ellipses expanded), the output subscript and letter sizes."""
    s = subscripts.replace(" ", "")
    if "->" in s:
        lhs, rhs = s.split("->")
        explicit = True
    else:
        lhs, rhs, explicit = s, "", False
    parts = lhs.split(",")
    if len(parts) != len(shapes):
        raise ShapeError(f"einsum: {len(parts)} operand subscripts for {len(shapes)} operands in {subscripts!r}")
    used = set(c for c in s if c.isalpha())
    pool = [c for c in string.ascii_uppercase + string.ascii_lowercase if c not in used]
    ell_len = 0
    for p, shp in zip(parts, shapes):
        if "..." in p:
            ell_len = max(ell_len, len(shp) - (len(p) - 3))
    ell = "".join(pool[:ell_len])
    ins = []
    for p, shp in zip(parts, shapes):
        if "..." in p:
            k = len(shp) - (len(p) - 3)
            if k < 0:
                raise ShapeError(f"einsum: operand subscript {p!r} has more letters than the operand's {len(shp)} dims")
            p = p.replace("...", ell[ell_len - k:] if k else "")
        if len(p) != len(shp) or not p.isalpha() and p:
            raise ShapeError(f"einsum: subscript {p!r} does not match an operand of shape {tuple(shp)}")
        ins.append(p)
    if explicit:
        out = rhs.replace("...", ell)
    else:
        counts: dict[str, int] = {}
        for p in ins:
            for c in p:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    sizes: dict[str, int] = {}
    for p, shp in zip(ins, shapes):
        for c, n in zip(p, shp):
            if sizes.get(c, 1) == 1:
                sizes[c] = int(n)
            elif n not in (1, sizes[c]):
                raise ShapeError(f"einsum: letter {c!r} has sizes {sizes[c]} and {n} in {subscripts!r} "
                                 f"(shapes {', '.join(str(tuple(x)) for x in shapes)})")
    for c in out:
        if c not in sizes:
            raise ShapeError(f"einsum: output letter {c!r} does not appear in the inputs of {subscripts!r}")
    return ins, out, sizes


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """Einstein summation with NumPy's notation (ellipses, implicit output, repeated letters).

    Example: ``gg.einsum("bij,bjk->bik", a, b)``, ``gg.einsum("ii", m)`` (trace).
    """
    like = next((o for o in operands if isinstance(o, Tensor)), None)
    ts = [as_tensor_operand(o, like) for o in operands]
    ins, out, sizes = parse_einsum(subscripts, [t.shape for t in ts])
    spec = ",".join(ins) + "->" + out
    return apply(EINSUM, tuple(ts), {"subscripts": spec, "inputs": ins, "output": out, "sizes": sizes})


def dot(a: Any, b: Any) -> Tensor:
    """``numpy.dot``: inner product of vectors, matrix product, or a sum over a's last axis and b's
    second-to-last."""
    from gpugrad.ops.elementwise import multiply

    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    _check_product("dot", a.shape, b.shape if b.ndim < 2 else b.shape[-2:])
    if a.ndim <= 2 and b.ndim <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 2 if b.ndim >= 2 else 0]))


def vdot(a: Any, b: Any) -> Tensor:
    """Dot product of the flattened arrays, the first conjugated, as ``numpy.vdot``."""
    from gpugrad.ops.complex import conj
    from gpugrad.ops.reduce import sum as _sum
    from gpugrad.ops.shape import ravel

    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    if a.size != b.size:
        raise ShapeError(f"vdot: the arrays have {a.size} and {b.size} elements")
    return _sum(ravel(conj(a)) * ravel(b))


def inner(a: Any, b: Any) -> Tensor:
    """Sum product over the last axes, as ``numpy.inner``."""
    from gpugrad.ops.elementwise import multiply

    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def outer(a: Any, b: Any) -> Tensor:
    """Outer product of the flattened inputs, as ``numpy.outer``."""
    from gpugrad.ops.shape import reshape

    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def tensordot(a: Any, b: Any, axes: Any = 2) -> Tensor:
    """Sum products over the given axes, as ``numpy.tensordot`` (built on transpose and matmul)."""
    from gpugrad.ops.shape import reshape, transpose

    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        ax_a = list(range(a.ndim - n, a.ndim))
        ax_b = list(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    ax_a = [x % a.ndim for x in ax_a] if a.ndim else ax_a
    ax_b = [x % b.ndim for x in ax_b] if b.ndim else ax_b
    if len(ax_a) != len(ax_b) or any(a.shape[i] != b.shape[j] for i, j in zip(ax_a, ax_b)):
        raise ShapeError(f"tensordot: shape mismatch for sum over axes {ax_a} of {a.shape} and {ax_b} of {b.shape}")
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    k = int(np.prod([a.shape[i] for i in ax_a], dtype=np.int64))
    am = reshape(transpose(a, free_a + ax_a), (-1, k))
    bm = reshape(transpose(b, ax_b + free_b), (k, -1))
    return reshape(matmul(am, bm), tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b))


# ---------------------------------------------------------------------------------------------
# inverse, determinant, solve


def _mT(ns: Any, x: Any) -> Any:  # noqa: N802
    return ns.swapaxes(x, -1, -2)


class Inv(Op):
    name = "inv"
    save_inputs = False
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.xp.linalg.inv(args[0])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        t = _mT(ns, out)
        return (-ns.matmul(ns.matmul(t, g), t),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return -ns.matmul(ns.matmul(out, tangents[0]), out)


class Det(Op):
    name = "det"
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.asarray(B.xp.linalg.det(args[0]))

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        scale = ns.reshape(g * out, tuple(out.shape) + (1, 1))
        return (scale * _mT(ns, ns.inv(args[0])),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return out * _trace_last(ns, ns.matmul(ns.inv(args[0]), tangents[0]))


class LogAbsDet(Op):
    name = "slogdet"

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.asarray(B.xp.linalg.slogdet(args[0])[1])

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        scale = ns.reshape(g, tuple(g.shape) + (1, 1))
        return (scale * _mT(ns, ns.inv(args[0])),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return _trace_last(ns, ns.matmul(ns.inv(args[0]), tangents[0]))


def _trace_last(ns: Any, m: Any) -> Any:
    return ns.sum(ns.diagonal(m, 0, -2, -1), -1)


class Solve(Op):
    """x = solve(A, b): gb = solve(A^T, g), gA = -gb x^T."""

    name = "solve"
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.xp.linalg.solve(*args)

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        a, _ = args
        vec = params["vector"]
        gb = ns.solve(_mT(ns, a), g)
        ga = None
        if needs[0]:
            if vec:
                ga = -ns.matmul(ns.expand_dims(gb, -1), ns.expand_dims(out, -2))
            else:
                ga = -ns.matmul(gb, _mT(ns, out))
        return ga, (gb if needs[1] else None)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        ta, tb = tangents
        a, _ = args
        rhs = tb
        if ta is not None:
            prod = ns.matmul(ta, out)
            rhs = -prod if rhs is None else rhs - prod
        return ns.solve(a, rhs)


INV = Inv()
DET = Det()
LOGABSDET = LogAbsDet()
SOLVE = Solve()


def _square(a: Tensor, name: str) -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{name}: expected (..., n, n) square matrices, got shape {a.shape}")


def inv(a: Any) -> Tensor:
    """Matrix inverse of (a batch of) square matrices."""
    a = as_tensor_operand(a)
    _square(a, "inv")
    return _linalg_call(INV, (a,), {})


def det(a: Any) -> Tensor:
    """Determinant of (a batch of) square matrices."""
    a = as_tensor_operand(a)
    _square(a, "det")
    return _linalg_call(DET, (a,), {})


def slogdet(a: Any) -> tuple[Tensor, Tensor]:
    """(sign, log|det|), as ``numpy.linalg.slogdet``; the second is differentiable."""
    a = as_tensor_operand(a)
    _square(a, "slogdet")
    from gpugrad.backends import backend_for
    from gpugrad.tensor import make_tensor

    sign = backend_for(a.device).xp.linalg.slogdet(a.data)[0]
    return make_tensor(backend_for(a.device).asarray(sign), a.device), _linalg_call(LOGABSDET, (a,), {})


def solve(a: Any, b: Any) -> Tensor:
    """Solve a x = b, as ``numpy.linalg.solve`` (b is a vector when 1-D)."""
    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    _square(a, "solve")
    return _linalg_call(SOLVE, (a, b), {"vector": b.ndim == 1})


def _linalg_call(op: Op, args: tuple, params: dict) -> Tensor:
    try:
        return apply(op, args, params)
    except np.linalg.LinAlgError as exc:
        raise GpugradError(f"{op.name}: {exc} (shapes {', '.join(str(a.shape) for a in args)})") from None


def matrix_power(a: Any, n: int) -> Tensor:
    """``a`` raised to the integer power ``n`` by repeated squaring (``inv(a)`` first for
    n < 0; the identity for n = 0), as ``numpy.linalg.matrix_power``."""
    import numbers

    from gpugrad.ops.shape import broadcast_to

    a = as_tensor_operand(a)
    _square(a, "matrix_power")
    if not isinstance(n, numbers.Integral):
        raise GpugradError(f"matrix_power: the exponent must be an integer, got {n!r}")
    n = int(n)
    if n == 0:
        from gpugrad.factories import eye

        return broadcast_to(eye(a.shape[-1], dtype=a.dtype, device=a.device), a.shape) + a * 0
    if n < 0:
        a, n = inv(a), -n
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def lstsq(a: Any, b: Any, rcond: Any = None) -> tuple[Tensor, Tensor, int, Tensor]:
    """Least-squares solution of a x = b: ``(x, residuals, rank, singular values)``, as
    ``numpy.linalg.lstsq``; x (through the pseudo-inverse), the residuals and the singular values
    are differentiable (the rank is constant)."""
    from gpugrad.ops.decomp import pinv, svd
    from gpugrad.ops.reduce import sum as _sum

    a = as_tensor_operand(a, b if isinstance(b, Tensor) else None)
    b = as_tensor_operand(b, a)
    if a.ndim != 2 or b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ShapeError(f"lstsq: expected a (m, n) matrix and b of shape (m,) or (m, k), got {a.shape} and {b.shape}")
    m, n = a.shape
    eps = float(np.finfo(np.real(np.zeros((), a.dtype)).dtype).eps)
    cutoff = eps * max(m, n) if rcond is None or rcond < 0 else float(rcond)
    s = svd(a, compute_uv=False)
    s_values = np.asarray(s.data if s.device == "cpu" else s.data.get())
    rank = int((s_values > cutoff * (s_values.max() if s_values.size else 0.0)).sum())
    x = matmul(pinv(a, cutoff), b)
    if rank == n and m > n:
        from gpugrad.ops.complex import abs as _abs

        r = _abs(matmul(a, x) - b)
        residuals = _sum(r * r, 0)
        if b.ndim == 1:
            from gpugrad.ops.shape import reshape

            residuals = reshape(residuals, (1,))
    else:
        from gpugrad.factories import zeros

        residuals = zeros((0,), dtype=np.real(np.zeros((), a.dtype)).dtype, device=a.device)
    return x, residuals, rank, s
