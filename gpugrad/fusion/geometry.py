"""Where element i of each operand of a fused chain is: the chain's shape with adjacent dims
merged wherever every operand allows it (the rule of the elementwise kernels' ``layout``,
for any number of operands).

Example::

    merged((3, 4), [np.ones((3, 4)), np.ones(4)])    # [(3, [4, 0]), (4, [1, 1])]
"""

from __future__ import annotations

from typing import Any


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


def merged(shape: tuple, arrays: list) -> list[tuple[int, list[int]]]:
    """``shape`` as few (size, per-array element strides) dims as the strides allow; dims of
    size 1 vanish, so a chain of one element has no dims at all."""
    strides = [element_strides(shape, a) for a in arrays]
    out: list[tuple[int, list[int]]] = []
    for d, size in enumerate(shape):
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
