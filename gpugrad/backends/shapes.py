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
