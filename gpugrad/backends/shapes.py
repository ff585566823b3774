"""Shape rules both backends share (pure Python, no arrays): broadcasting, the axes a
broadcast gradient is summed over, and whether an index is basic (a view) or advanced.

Example::

    broadcast_shape([(3, 1), (4,)])   # (3, 4)
    sum_to_axes((5, 3, 4), (3, 1))    # (0, 2): sum over these to get back (3, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.errors import ShapeError


def broadcast_shape(shapes: list[tuple]) -> tuple:
    """NumPy's broadcast of ``shapes``; ShapeError when they do not broadcast."""
    nd = max(len(s) for s in shapes)
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        for i, d in enumerate(s):
            o = out[off + i]
            if o == 1:
                out[off + i] = d
            elif d != 1 and d != o:
                raise ShapeError(f"operands could not be broadcast together with shapes {' '.join(map(str, shapes))}")
    return tuple(out)


def sum_to_axes(x_shape: tuple, shape: tuple) -> tuple[int, ...]:
    """The axes of ``x_shape`` that ``shape`` was broadcast along: summing an array of
    ``x_shape`` over them (and dropping the leading ones) gives ``shape`` (``sum_to``)."""
    lead = len(x_shape) - len(shape)
    return tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and x_shape[i + lead] != 1)


def is_basic_index(index: Any) -> bool:
    """True when ``index`` (one item or a tuple) has only ints, slices, None and Ellipsis:
    indexing with it is a view; anything else (arrays, lists, booleans) gathers."""
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if not (item is None or item is Ellipsis or isinstance(item, (int, np.integer, slice))):
            return False
    return True


# Where element i of each operand of an elementwise kernel (or a fused chain) is: the output
# shape with adjacent dims merged wherever every operand allows it.


def element_strides(shape: tuple, a: Any) -> list[int]:
    """``a``'s strides in elements along the (right-aligned) dims of ``shape``; 0 where broadcast."""
    nd = len(shape)
    st = [0] * nd
    if a is None or not hasattr(a, "shape"):
        return st
    off = nd - a.ndim
    item = a.itemsize
    for d in range(a.ndim):
        if a.shape[d] != 1:
            st[off + d] = a.strides[d] // item
    return st


def merged(shape: tuple, arrays: list, reorder: bool = False) -> list[tuple[int, list[int]]]:
    """``shape`` as few (size, per-array element strides) dims as the strides allow; dims of
    size 1 vanish, so a chain of one element has no dims at all. With ``reorder`` (an
    elementwise pass, which may visit elements in any order) the dims are first put in the
    memory order of the first operand that broadcasts nowhere, so that operands stored in
    another order than C's (a convolution's channel-major output) still merge."""
    strides = [element_strides(shape, a) for a in arrays]
    dims: Any = range(len(shape))
    if reorder:
        for st in strides:
            if all(s != 0 or n == 1 for s, n in zip(st, shape)):
                dims = sorted(dims, key=lambda d: -abs(st[d]))  # (stable: ties keep C order)
                break
    out: list[tuple[int, list[int]]] = []
    for d in dims:
        size = shape[d]
        if size == 1:
            continue
        col = [st[d] for st in strides]
        if out:
            psize, pcol = out[-1]
            if all(p == c * size for p, c in zip(pcol, col)):
                out[-1] = (psize * size, col)
                continue
        out.append((size, col))
    return out
