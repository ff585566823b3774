"""An elementwise op's backward on the CPU as one compiled pass: ``gx (+)= g * d(out, inputs)``.

NumPy evaluates an op's vector-Jacobian product one ufunc at a time: ReLU's ``where(out > 0,
g, 0)`` is a comparison and a masked multiply (two passes and a byte mask), sigmoid's
``g * (out * (1 - out))`` three passes, and adding the result into a gradient buffer one more.
Where an op's rule takes two passes or more, this module runs it as one loop compiled with the
host's C++ compiler (:mod:`gpugrad.fusion.host`) from the same element functions the CUDA
kernels use (``gg_ew_<op>_d<k>``, rendered from the op table by
:func:`gpugrad.backends.cuda_codegen.element_functions`): it reads ``g`` and what the rule reads
once, and writes each gradient once, or adds it into the engine's buffer. The NumPy backend
calls it (``lowerings.CPU[lowerings.EW_VJP_ACC]``) for C-contiguous operands of one shape, float32 or
float64, from ``MIN_ELEMENTS`` elements (``GPUGRAD_HOST_VJP_MIN_ELEMENTS``; below, the call
costs more than the passes it saves). Arithmetic rules give NumPy's bits (the same operations
in the same order, ``-ffp-contract=off``); transcendental ones (GELU's erf) agree to a few ulp.

Measured (1 thread, 256 x 256 float32, the bench's MLP layer): ReLU's backward 17.7 us by
NumPy's two passes, 10.9 us compiled, the call included (7.7 us the loop alone).

Example::

    grads, fresh = vjp_acc(relu_op, g, (None,), out, {}, (True,), None)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gpugrad.backends import lowerings
from gpugrad.backends.cuda_codegen import element_functions, kernel_inputs
from gpugrad.fusion import host
from gpugrad.fusion.run import CHEAP_FUNCTIONS
from gpugrad.table import expr as E

# Measured (1 thread, float32, in cache, the call included): at 2^13 elements ReLU's and tanh's
# backward break even and log's, sqrt's and exp2's (two NumPy passes) lose by 1.25-1.9x; at 2^15
# all win or break even (exp2 1.09x, sigmoid 0.60x); GELU's and softplus's win from 2^13 (5x).
MIN_ELEMENTS = int(os.environ.get("GPUGRAD_HOST_VJP_MIN_ELEMENTS", str(1 << 15)))
INPLACE = True  # write a single gradient over an owned g (False: always a new array; for measuring)

_CTYPE = host.FLOAT_CTYPES
_ndarray = np.ndarray
_NO = object()  # a variant not worth compiling, or that failed to build
_VARIANTS: dict[tuple, Any] = {}  # (op, dtype char, mask, pattern, acc bits, in place) -> function or _NO
_PLANS: dict[tuple, Any] = {}  # (op, needs) -> see _plan
_PASSES: dict[tuple, int] = {}
_NONE_ACC = [(False,) * n for n in range(8)]


def passes(op: Any, k: int) -> int:
    """How many array operations NumPy runs for input ``k``'s gradient ``g * d_k`` (0 for ``g``)."""
    got = _PASSES.get((op, k))
    if got is None:
        got = _PASSES[op, k] = E.operations(E.times("_g", op.d[op.inputs[k]]))
    return got


def source(op: Any, ctype: str, mask: tuple[int, ...], pattern: str, uses_out: bool, acc: tuple[bool, ...],
           inplace: bool = False) -> str:
    """C++ of the pass computing the gradients of ``op``'s inputs in ``mask``.

    ``pattern``: per input, 'a' (an array, read), 's' (a scalar, read from the scalar table) or
    'x' (not read). Pointer table: g, the 'a' inputs, out when ``uses_out``, then per input in
    ``mask`` its gradient (added into when ``acc`` says so; with ``inplace``, one gradient written
    over g, which is then not ``__restrict``: each element is read before it is written, which
    ``omp simd`` allows). Scalar table: the 's' inputs, the op's parameters. The host calling
    convention of :func:`gpugrad.fusion.host.source` (its row and column tables unused: one
    contiguous run)."""
    lines = host.op_pass_head(element_functions(op))
    lines.append(f"    const {ctype}* {'' if inplace else '__restrict '}g = (const {ctype}*)P[0];")
    values, slot, scalar = host.op_pass_operands(ctype, pattern, 1, lines)
    if uses_out:
        lines.append(f"    const {ctype}* __restrict out = (const {ctype}*)P[{slot}];")
        slot += 1
    for name in op.param_names:
        lines.append(f"    const {ctype} p_{name} = ({ctype})S[{scalar}];")
        scalar += 1
    args = ", ".join(["g[j]", *values, "out[j]" if uses_out else f"{ctype}(0)", *[f"p_{n}" for n in op.param_names]])
    body = []
    for k, add in zip(mask, acc):
        lines.append(f"    {ctype}* {'' if inplace else '__restrict '}gr{k} = ({ctype}*)P[{slot}];")
        slot += 1
        value = f"gg_ew_{op.name}_d{k}<{ctype}>({args})"
        body.append(f"gr{k}[j] = {'gr' + str(k) + '[j] + ' if add else ''}{value};")
    lines += ["#pragma omp simd", "    for (long long j = 0; j < cols; ++j) {",
              *[f"        {b}" for b in body], "    }", "    return 0;", "}"]
    return "\n".join(lines) + "\n"


def _fits(a: Any, shape: tuple, dt: Any) -> bool:
    return a.__class__ is _ndarray and a.shape == shape and a.dtype == dt and a.flags.c_contiguous and a.flags.aligned


def _calls(op: Any, k: int) -> frozenset:
    return E.calls(op.d[op.inputs[k]])


def _plan(op: Any, needs: tuple) -> Any:
    """(inputs whose gradient is asked, per input whether those gradients read it, whether they
    read ``out``, the NumPy passes they take, whether they call no function beyond arithmetic: a
    light pass, see host.run_flat) for ``op`` and ``needs``, or _NO."""
    key = (op, needs)
    mask = tuple([k for k, need in enumerate(needs) if need])
    kinputs = kernel_inputs(op)
    if not mask or any(k not in kinputs or _calls(op, k) & host.NOT_AS_SCIPY for k in mask):
        got = _NO
    else:
        used: set = set()
        for k in mask:
            used |= op.d[op.inputs[k]].names
        light = all(_calls(op, k) <= CHEAP_FUNCTIONS for k in mask)  # (threads from more elements)
        got = (mask, tuple([name in used for name in op.inputs]), "out" in used, sum(passes(op, k) for k in mask),
               light)
    _PLANS[key] = got
    return got


def _variant(op: Any, dt: Any, plan: tuple, pattern: str, acc_bits: tuple, inplace: bool) -> Any:
    """The compiled pass for ``plan``'s gradients of ``op`` on ``pattern`` operands, or _NO."""
    key = (op, dt.char, plan[0], pattern, acc_bits, inplace)
    got = _VARIANTS.get(key)
    if got is None:
        got = _NO
        if plan[3] + sum(acc_bits) >= 2:  # one NumPy pass (g * b) is as fast
            got = host.try_build(source(op, _CTYPE[dt], plan[0], pattern, plan[2], acc_bits, inplace)) or _NO
        if len(_VARIANTS) > 4096:
            _VARIANTS.clear()
        _VARIANTS[key] = got
    return got


def vjp_acc(op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple, acc: Any, g_owned: bool = False) -> Any:
    """``numpy_backend.ew_vjp_acc``'s ``(grads, fresh)`` in one compiled pass, or NotImplemented
    (the NumPy rule runs): operands of other shapes, layouts or dtypes, too few elements, a rule
    of one pass, no compiler. ``g_owned``: nothing else refers to g (the engine allocated it), so
    a single gradient is written over it, in memory the pass that made g has just written."""
    if g.__class__ is not _ndarray or g.size < MIN_ELEMENTS or not g.flags.c_contiguous:
        return NotImplemented
    dt = g.dtype
    if dt not in _CTYPE or not host.Settings.enabled:
        return NotImplemented
    plan = _PLANS.get((op, needs))
    if plan is None:
        plan = _plan(op, needs)
    if plan is _NO:
        return NotImplemented
    mask, reads, uses_out, n_passes, light = plan
    if n_passes < 2 and acc is None:
        return NotImplemented  # (g itself, or g * b: NumPy's one pass is as fast)
    shape = g.shape
    ptrs = [g]
    scalars = []
    pattern = ""
    for a, read in zip(op._nones if args is None else args, reads):
        if not read:
            pattern += "x"
        elif _fits(a, shape, dt):
            pattern += "a"
            ptrs.append(a)
        elif a.__class__ is float or a.__class__ is int or isinstance(a, np.floating) or (
                a.__class__ is _ndarray and a.ndim == 0):
            pattern += "s"
            scalars.append(float(a))
        else:
            return NotImplemented
    if uses_out:
        if not _fits(out, shape, dt):
            return NotImplemented
        ptrs.append(out)
    if acc is None:
        acc_bits = _NONE_ACC[len(mask)]
    else:
        acc_bits = tuple([acc[k] is not None for k in mask])
        if not all(_fits(acc[k], shape, dt) for k, b in zip(mask, acc_bits) if b):
            return NotImplemented
    inplace = g_owned and INPLACE and len(mask) == 1 and not acc_bits[0]
    fn = _VARIANTS.get((op, dt.char, mask, pattern, acc_bits, inplace))
    if fn is None:
        fn = _variant(op, dt, plan, pattern, acc_bits, inplace)
    if fn is _NO:
        return NotImplemented
    for name in op.param_names:
        v = params[name]
        if v.__class__ is not float and v.__class__ is not int:
            return NotImplemented
        scalars.append(v)
    grads: list = [None] * len(needs)
    for k, b in zip(mask, acc_bits):
        grads[k] = gk = acc[k] if b else g if inplace else np.empty(shape, dt)
        ptrs.append(gk)
    host.run_flat(fn, ptrs, scalars, light)
    # (a gradient added into the engine's buffer is that buffer: the engine sees it is acc[k])
    return tuple(grads), tuple([gk is not None for gk in grads])


lowerings.CPU[lowerings.EW_VJP_ACC] = vjp_acc
