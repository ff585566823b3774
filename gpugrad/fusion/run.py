"""Evaluating a chain: the forward pass and the vector-Jacobian product, each one pass.

On NumPy arrays the pass runs as compiled host code (:mod:`.host`) for small arrays and for
chains of plain arithmetic at any size, and as blocked NumPy (:mod:`.numpy_eval`) for large
arrays through transcendental functions, where NumPy's SIMD loops beat the C library's scalar
ones (numbers in benchmarks/test_fusion.py). On CuPy arrays it is one generated kernel
(:mod:`.cuda`), launched on the CUDA backend ``B`` the caller passes.

Example::

    outs, loss = forward(chain)                  # chain outputs, and the reduction (0-d) or None
    gx, = backward(chain, [None, np.float32(1)], [True])   # per leaf, at the leaf's shape
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends.numpy_backend import sum_to
from gpugrad.fusion import host, numpy_eval
from gpugrad.fusion.chain import Chain, NotFusable
from gpugrad.fusion.lower import Program, backward_program, forward_program, value_and_grad_program
from gpugrad.table import expr as E

# Measured (benchmarks/test_fusion.py, 1 thread): compiled C with glibc's vector math (libmvec)
# beats NumPy at every size. Without libmvec it still wins below ~16k elements (NumPy's per-call
# overhead dominates) and on plain arithmetic, but loses on large arrays through tanh/exp/...
# (NumPy's SIMD loops are 4-8x faster than scalar libm there).
HOST_MAX_TRANSCENDENTAL = 1 << 14
CHEAP_FUNCTIONS = {"where", "maximum", "minimum", "abs", "sign", "floor", "ceil", "rint", "trunc", "isnan",
                   "isfinite", "isinf", "logical_not", "logical_and", "logical_or", "logical_xor"}


_CHEAP_OPS: dict[Any, bool] = {}


def cheap(op: Any) -> bool:
    """Whether elementwise ``op``'s value calls no function beyond CHEAP_FUNCTIONS (arithmetic,
    max, where...): a light pass (gpugrad.fusion.kernels, host_forward)."""
    got = _CHEAP_OPS.get(op)
    if got is None:
        got = _CHEAP_OPS[op] = E.calls(op.out_expr) <= CHEAP_FUNCTIONS
    return got


def _transcendental(p: Program) -> bool:
    got = getattr(p, "_transcendental", None)
    if got is None:
        got = any(ins[0] == "call" and ins[2] not in CHEAP_FUNCTIONS for ins in p.instrs)
        p._transcendental = got  # type: ignore[attr-defined]
    return got


def layout_of(shape: tuple, arrays: Any) -> Any:
    """The operand whose memory order a chain's outputs take, or None (C order): the first
    array of the chain's shape that is dense but not C-contiguous (a convolution's output is
    (N, C, H, W) stored channel-major). Outputs written in C order beside it would make every
    pass walk one of them across memory (NumPy's ufuncs keep such a layout too: order K)."""
    for a in arrays:
        if a is not None and a.__class__ is np.ndarray and a.shape == shape and not a.flags.c_contiguous:
            like = np.empty_like(a)
            return a if like.strides == a.strides else None
    return None


def empty(shape: tuple, dtype: Any, like: Any) -> Any:
    """An output of a chain: C order, or the memory order of ``like`` (see :func:`layout_of`)."""
    return np.empty(shape, dtype) if like is None else np.empty_like(like, dtype=dtype)


def use_host(p: Program, n: int) -> bool:
    """Whether compiled host code should run ``p`` on ``n`` elements (when it is available)."""
    return host.available() and (host.Settings.vectorized or n <= HOST_MAX_TRANSCENDENTAL
                                 or not _transcendental(p))


def _check_outputs(chain: Chain) -> None:
    for o in chain.outputs:
        if chain.node_refs[o].shape != chain.shape:
            raise NotFusable(f"output {chain.node_refs[o]} does not have the chain's shape {chain.shape}")


def _evaluate(p: Program, chain: Chain, grads: list, outs: list, threads: int | None) -> Any:
    shape = chain.shape
    n = chain.size()
    if n == 0:
        return 0.0
    leaves = chain.arrays()
    scalars = chain.scalars()
    if use_host(p, n):
        ptrs = [*leaves, *grads, *outs]
        geo = host.plan(shape, ptrs)
        if geo is not None:
            classes = "".join("0" if a is None else host.stride_class(c) for a, c in zip(ptrs, geo[3]))
            fn = host.function(p, classes, wide=host.wide(n))
            if fn is not None:
                t = numpy_eval.Settings.threads if threads is None else threads
                return host.run(fn, geo, ptrs, scalars, t)
    return numpy_eval.run(p, shape, leaves, scalars, grads, outs, threads)


def host_call(p: Program, chain: Chain, grads: list, outs: list) -> host.Call | None:
    """The compiled call :func:`_evaluate` makes for these operands on one thread, when the
    code is compiled already: a caller may reuse it (with new addresses and scalars) while the
    operands' shapes and strides stay the same. None where the pass runs otherwise."""
    n = chain.size()
    if n == 0 or not use_host(p, n):
        return None
    ptrs = [*chain.arrays(), *grads, *outs]
    geo = host.plan(chain.shape, ptrs)
    if geo is None:
        return None
    fn = host.compiled(p, "".join("0" if a is None else host.stride_class(c) for a, c in zip(ptrs, geo[3])),
                       host.wide(n))
    return None if fn is None else host.Call(fn, geo)


def forward(chain: Chain, B: Any = None, threads: int | None = None, out: Any = None) -> tuple[list, Any]:
    """``(outputs, reduced)``: each output's value (arrays of the chain's shape) and the closing
    reduction (a 0-d array of the reduced value's dtype) or None. ``B``: the CUDA backend when
    the leaves are CuPy arrays; ``out``: on CUDA, an array the output may be written into (the
    caller checks whether it was)."""
    _check_outputs(chain)
    sig = chain.signature
    p = forward_program(sig)
    if B is not None and getattr(B, "xp", np) is not np:
        from gpugrad.fusion import cuda

        return cuda.forward(B, chain, p, out)
    like = layout_of(chain.shape, chain.arrays())
    outs = [empty(chain.shape, dt, like) for dt in p.out_dtypes]
    total = _evaluate(p, chain, [], outs, threads)
    return outs, None if p.reduced is None else _reduced(chain, total)


def _reduced(chain: Chain, total: float) -> Any:
    """The closing reduction's value (a 0-d array of its dtype) from the pass's float64 sum."""
    r, kind = chain.signature[3]
    if kind == "mean":
        total = total / chain.size() if chain.size() else np.nan
    return np.asarray(total, dtype=chain.nodes[r][2])


def backward(chain: Chain, grads_in: list, needs: list[bool] | tuple[bool, ...], B: Any = None,
             threads: int | None = None) -> list:
    """Per leaf, the gradient (an array of the leaf's shape and dtype) or None (not needed, a
    scalar, or no path from the incoming gradients: zero).

    ``grads_in``: per chain output, then for the reduction (when the chain has one), the
    incoming gradient (outputs: arrays of the chain's shape; the reduction's: a 0-d array) or
    None. Broadcast leaves are computed at the chain's shape and summed to theirs after the pass.
    """
    sig = chain.signature
    n_in = len(chain.outputs) + (chain.reduction is not None)
    if len(grads_in) != n_in:
        raise ValueError(f"backward of a fused chain: {n_in} incoming gradients expected, got {len(grads_in)}")
    if len(needs) != len(chain.leaves):
        raise ValueError(f"backward of a fused chain: {len(chain.leaves)} needs expected, got {len(needs)}")
    p = backward_program(sig, tuple(g is not None for g in grads_in), tuple(bool(x) for x in needs))
    grads = [g for g in grads_in if g is not None]
    if B is not None and getattr(B, "xp", np) is not np:
        from gpugrad.fusion import cuda

        return cuda.backward(B, chain, p, grads)
    grads = [np.asarray(g) for g in grads]
    like = layout_of(chain.shape, [*grads, *chain.arrays()])
    outs = [empty(chain.shape, dt, like) for dt in p.out_dtypes]
    _evaluate(p, chain, grads, outs, threads)
    return _leaf_grads(p, chain, outs)


def value_and_grad(chain: Chain, needs: list[bool] | tuple[bool, ...], threads: int | None = None) -> tuple[Any, list]:
    """``(reduced, grads)`` of a chain on NumPy arrays that ends in a reduction, in one pass: the
    reduced value (a 0-d array) and per leaf the gradient of that value (None where not needed),
    as :func:`backward` gives them for an incoming gradient of 1."""
    sig = chain.signature
    needs = tuple(bool(x) for x in needs)
    p = value_and_grad_program(sig, needs)
    seed = np.ones((), chain.nodes[sig[3][0]][2])
    like = layout_of(chain.shape, chain.arrays())
    outs = [empty(chain.shape, dt, like) for dt in p.out_dtypes]
    total = _evaluate(p, chain, [seed], outs, threads)
    return _reduced(chain, total), _leaf_grads(p, chain, outs)


def _leaf_grads(p: Program, chain: Chain, outs: list) -> list:
    result: list = [None] * len(chain.leaves)
    taken: set[int] = set()
    for k, slot in enumerate(p.grad_slot):
        if slot is not None:
            g = sum_to(outs[slot], chain.leaf_refs[k].shape)
            if g is outs[slot]:  # two leaves never get the same array
                g = g.copy() if slot in taken else g
                taken.add(slot)
            result[k] = g
    return result
