"""An elementwise op's forward on the CPU as one compiled pass, where NumPy's is slow.

NumPy evaluates an op's declared value one ufunc at a time (leaky ReLU's ``where(x > 0, x, x *
negative_slope)``: a comparison, a multiply and a select, three passes and a byte mask), and
some single ufuncs run a scalar loop: ``maximum(x, 0)`` (ReLU) against a scalar is 3x slower
than against an array, NaN handling and all. For such ops the NumPy backend's forward function
(:func:`gpugrad.backends.numpy_backend.forward_function`) is wrapped by :func:`wrap`
(``lowerings.CPU[lowerings.EW_FORWARD]``): operands of one shape, C-contiguous, of the result's
dtype (float32 or float64), or Python numbers, from ``MIN_ELEMENTS`` elements
(``GPUGRAD_HOST_FORWARD_MIN_ELEMENTS``) run one loop compiled with the host's C++ compiler
(:mod:`gpugrad.fusion.host`) over the element function the CUDA kernels use
(``gg_ew_<op>_fwd``, rendered from the op table by
:func:`gpugrad.backends.cuda_codegen.element_functions`); anything else runs NumPy's function.
Arithmetic ops give NumPy's bits (the same operations, ``-ffp-contract=off``); transcendental
ones agree to a few ulp, as the fused chains' passes do.

Measured (1 thread, 256 x 256 float32, the bench's MLP layer; the call and the output's
allocation included): ReLU 24.8 us by NumPy, 8.4 us compiled; leaky ReLU 43.4 -> 12.1 us; GELU
250 -> 50 us; SiLU 229 -> 31 us; softplus 121 -> 69 us. maximum of two arrays stays NumPy's
(8.5 us against 9.8 us compiled).

Example::

    fn = wrap(OPS["relu"], np.dtype(np.float32), numpy_relu)   # numpy_relu below MIN_ELEMENTS
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.backends import lowerings
from gpugrad.backends.cuda_codegen import element_functions
from gpugrad.fusion import host
from gpugrad.fusion.run import cheap
from gpugrad.table import expr as E

MIN_ELEMENTS = int(os.environ.get("GPUGRAD_HOST_FORWARD_MIN_ELEMENTS", str(1 << 15)))

_CTYPE = host.FLOAT_CTYPES
_ndarray = np.ndarray
_NUMBERS = (float, int)
_NO = object()  # a variant that failed to build
_VARIANTS: dict[tuple, Any] = {}  # (op, dtype char, pattern) -> function or _NO

# NumPy ufuncs that run a scalar loop against a scalar operand (maximum(x, 0): 25 us on 2^16
# float32, against 8.6 us against an array and 6 us for add), so that one call is worth a pass.
_SLOW_UFUNCS = frozenset({"maximum", "minimum", "clip", "where"})


def worth_compiling(op: Any) -> str | None:
    """When ``op``'s NumPy forward is slow enough for a compiled pass to win: "always" (two
    passes or more), "scalar" (one ufunc of ``_SLOW_UFUNCS``: when an operand is a scalar; against
    arrays NumPy's SIMD loop is faster, 8.3 us against 12.8 us for maximum on 2^16 float32), or
    None (one fast ufunc, add or tanh, is as fast as a pass)."""
    if op.kind == "bool" or not op.differentiable:
        return None
    if E.calls(op.out_expr) & host.NOT_AS_SCIPY:
        return None
    if E.operations(op.out_expr) >= 2:
        return "always"
    slow = [n for n in ast.walk(op.out_expr.tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) in _SLOW_UFUNCS]
    if not slow:
        return None
    # a number in the expression (ReLU's maximum(x, 0)) is a scalar operand every time
    return "always" if any(isinstance(a, ast.Constant) for n in slow for a in n.args) else "scalar"


def source(op: Any, ctype: str, pattern: str) -> str:
    """C++ of ``op``'s forward over operands ``pattern`` (per input, 'a': an array read at each
    element, 's': a scalar from the scalar table). Pointer table: the 'a' inputs, then the output;
    scalar table: the 's' inputs, then the op's parameters (the calling convention of
    :func:`gpugrad.fusion.host.source`, one contiguous run)."""
    lines = host.op_pass_head(element_functions(op))
    values, slot, scalar = host.op_pass_operands(ctype, pattern, 0, lines)
    for name in op.param_names:
        lines.append(f"    const {ctype} p_{name} = ({ctype})S[{scalar}];")
        values.append(f"p_{name}")
        scalar += 1
    lines += [f"    {ctype}* __restrict out = ({ctype}*)P[{slot}];",
              "#pragma omp simd", "    for (long long j = 0; j < cols; ++j) {",
              f"        out[j] = gg_ew_{op.name}_fwd<{ctype}>({', '.join(values)});",
              "    }", "    return 0;", "}"]
    return "\n".join(lines) + "\n"


def _variant(op: Any, dt: np.dtype, pattern: str) -> Any:
    key = (op, dt.char, pattern)
    got = _VARIANTS.get(key)
    if got is None:
        got = host.try_build(source(op, _CTYPE[dt], pattern)) or _NO
        if len(_VARIANTS) > 4096:
            _VARIANTS.clear()
        _VARIANTS[key] = got
    return got


def run(op: Any, dt: np.dtype, args: tuple) -> Any:
    """``op``'s value on ``args`` (its inputs, then its parameters' values) in one compiled
    pass, or NotImplemented where NumPy's function should run (see the module docstring)."""
    n_in = op.n_inputs
    shape = None
    arrays = []
    scalars = []
    pattern = ""
    for a in args[:n_in]:
        if a.__class__ is _ndarray and a.ndim:
            flags = a.flags
            if a.dtype != dt or not flags.c_contiguous or not flags.aligned or (shape is not None and a.shape != shape):
                return NotImplemented
            shape = a.shape
            arrays.append(a)
            pattern += "a"
        elif a.__class__ in _NUMBERS or (a.__class__ is _ndarray and a.dtype == dt):  # (a 0-d array)
            scalars.append(float(a))
            pattern += "s"
        else:
            return NotImplemented
    if shape is None or arrays[0].size < MIN_ELEMENTS or not host.Settings.enabled:
        return NotImplemented
    for v in args[n_in:]:
        if v.__class__ not in _NUMBERS:
            return NotImplemented
        scalars.append(v)
    light = cheap(op)
    fn = _VARIANTS.get((op, dt.char, pattern))
    if fn is None:
        fn = _variant(op, dt, pattern)
    if fn is _NO or not (light or host.Settings.vectorized):
        return NotImplemented  # (scalar libm, built without the vector math library, loses to NumPy)
    out = np.empty(shape, dt)
    arrays.append(out)
    host.run_flat(fn, arrays, scalars, light)
    return out


def wrap(op: Any, dt: np.dtype, numpy_fn: Callable) -> Callable:
    """The NumPy backend's forward of ``op`` for result dtype ``dt``: ``numpy_fn``, run as one
    compiled pass where :func:`run` takes the operands (float32/float64 ops NumPy is slow at)."""
    when = worth_compiling(op)
    if dt not in _CTYPE or when is None:
        return numpy_fn  # (whether a compiler is there is asked per call: run() declines without one)
    with_scalar = when == "scalar"
    n_in = op.n_inputs

    def forward(*args: Any) -> Any:
        for a in args:  # the first array's size decides first: small ones pay one check
            if a.__class__ is _ndarray:
                if a.size >= MIN_ELEMENTS and (not with_scalar or any(b.__class__ in _NUMBERS for b in args[:n_in])):
                    out = run(op, dt, args)
                    if out is not NotImplemented:
                        return out
                break
        return numpy_fn(*args)

    forward.__wrapped__ = numpy_fn  # type: ignore[attr-defined]
    return forward


lowerings.CPU[lowerings.EW_FORWARD] = wrap

__all__ = ["MIN_ELEMENTS", "run", "source", "worth_compiling", "wrap"]
