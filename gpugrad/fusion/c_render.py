"""C++ rendering of a lowered chain: the statements both the CUDA kernels and the host code run.

One element's worth of straight-line code: each live instruction of a
:class:`~gpugrad.fusion.lower.Program` becomes one ``const T v<i> = ...;`` statement over the
functions of ``kernels/gg_math.cuh`` (``gg_tanh``, ``gg_sigmoid``..., defined for float and
double on host and device), with the op table's conventions of
:func:`gpugrad.table.expr.to_c` (``where`` is ``?:``, numbers are typed constants). Loads and
stores are left to the caller, which knows where element i of each array is.

Example::

    body = statements(program, roots, load=lambda kind, k, ctype: f"x{k}[i]")
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gpugrad.fusion.lower import Program

CTYPE = {"float32": "float", "float64": "double", "bool": "bool", "int8": "signed char", "int16": "short",
         "int32": "int", "int64": "long long", "uint8": "unsigned char", "uint16": "unsigned short",
         "uint32": "unsigned int", "uint64": "unsigned long long"}
_STORAGE = {"float16": "gg_half", "float32": "float", "float64": "double", "bool": "bool"}


def storage(dt: np.dtype) -> str:
    """The C type an array of ``dt`` is stored as in kernels (float16 as ``gg_half``)."""
    dt = np.dtype(dt)
    return _STORAGE.get(dt.name) or CTYPE[dt.name]


def _const(value: float, ctype: str) -> str:
    if value != value:
        return f"({ctype})(0.0/0.0)"
    if value in (float("inf"), float("-inf")):
        return f"({'-' if value < 0 else ''}gg_inf<{ctype}>())"
    text = repr(float(value))
    return f"{ctype}({text}{'f' if ctype == 'float' else ''})"


def statements(p: Program, roots: list[int], load: Callable[[str, int, str], str]) -> list[str]:
    """``const T v<i> = ...;`` for every instruction the ``roots`` need.

    ``load(kind, index, ctype)`` gives the C expression reading leaf ``index`` (kind "leaf"),
    scalar ``index`` ("scalar"; -1: the element count) or incoming gradient ``index`` ("grad")
    as a value of ``ctype``.
    """
    live = p.live(roots)
    out = []
    for i, ins in enumerate(p.instrs):
        if not live[i]:
            continue
        kind, dt = ins[0], ins[1]
        t = CTYPE[dt]
        if kind in ("leaf", "scalar", "grad"):
            e = load(kind, ins[2], t)
        elif kind == "const":
            e = _const(ins[2], t)
        elif kind == "cast":
            e = f"({t})(v{ins[2]})"
        elif kind == "round16":
            e = f"gg_h2f(gg_f2h(v{ins[2]}))"
        elif kind == "bin":
            sym = {"&": "&&", "|": "||"}.get(ins[2], ins[2])
            e = f"v{ins[3]} {sym} v{ins[4]}"
        elif kind == "cmp":
            e = f"v{ins[3]} {ins[2]} v{ins[4]}"
        elif kind == "neg":
            e = f"-v{ins[2]}"
        elif ins[2] == "where":
            e = f"v{ins[3]} ? v{ins[4]} : v{ins[5]}"
        else:
            e = f"gg_{ins[2]}({', '.join(f'v{a}' for a in ins[3:])})"
        out.append(f"const {t} v{i} = {e};")
    return out
