"""Launch geometry and memory layout of the CUDA kernels: the dtypes kernels exist for, block
and grid sizes, how operands are read (``layout``) and how a sum is planned in passes
(``reduction_plan``). Pure functions of shapes and strides: no CuPy, no device.

Example::

    layout((4, 6), [a, b])               # ('c', (1, 0)): b is a broadcast scalar
    reduction_plan((2, 3, 4), (0, 2))    # [(6, 4, 1), (1, 2, 3)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends.shapes import broadcast_shape
from gpugrad.backends.shapes import merged as merge_dims

__all__ = ["ACC", "BLOCK", "DTNAME", "F16", "F32", "F64", "FLOATS", "GEOM_DTYPE", "MAXDIM", "MAXOPS", "SCALAR",
           "SFX", "UNROLL", "broadcast_shape", "grid_for", "layout", "pow2_at_least", "prod", "reduction_plan"]

F16 = np.dtype(np.float16)
F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
FLOATS = (F16, F32, F64)  # the dtypes with kernels (others go to CuPy)
SFX = {F16: "f16", F32: "f32", F64: "f64"}  # kernel name suffixes
DTNAME = {F16: "float16", F32: "float32", F64: "float64"}
SCALAR = {F16: np.float32, F32: np.float32, F64: np.float64}  # compute type of kernel scalars
ACC = {F16: F32, F32: F32, F64: F64}  # accumulation dtype of reductions
BLOCK = 256
UNROLL = 4  # GG_UNROLL in kernels/gg_elementwise.cuh
MAXDIM = cg.MAXDIM
MAXOPS = cg.MAXOPS

# gg_geom (kernels/gg_elementwise.cuh), passed by value as a one-element structured array
GEOM_DTYPE = np.dtype([("ndim", np.int64), ("shape", np.int64, (MAXDIM,)),
                       ("strides", np.int64, (MAXOPS, MAXDIM))])


def pow2_at_least(n: int, lo: int = 32, hi: int = BLOCK) -> int:
    """The smallest power of two >= ``n`` within [lo, hi] (a block size for one row)."""
    b = lo
    while b < n and b < hi:
        b *= 2
    return b


def prod(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def grid_for(n: int, max_grid: int) -> int:
    """Blocks for a grid-stride elementwise kernel over ``n`` elements (each thread does UNROLL)."""
    return max(1, min((n + BLOCK * UNROLL - 1) // (BLOCK * UNROLL), max_grid))


def layout(out_shape: tuple, arrays: list) -> tuple[str, Any]:
    """How a kernel reads ``arrays`` (each broadcastable to ``out_shape``).

    ('c', incs): after merging dims, one dim remains and element i of array k is
    ``p_k[i * incs[k]]`` (1 contiguous, 0 a broadcast scalar). ('s', geom): a gg_geom record
    with the collapsed output shape and each array's element strides (0 where broadcast).
    ('m', None): more than GG_MAXDIM dims after merging: the caller makes copies first.
    """
    merged = merge_dims(out_shape, arrays)
    if len(merged) <= 1:
        return "c", tuple(merged[0][1]) if merged else (0,) * len(arrays)
    if len(merged) > MAXDIM:
        return "m", None
    geom = np.zeros(1, dtype=GEOM_DTYPE)
    geom["ndim"] = len(merged)
    for d, (size, col) in enumerate(merged):
        geom["shape"][0, d] = size
        for k, s in enumerate(col):
            geom["strides"][0, k, d] = s
    return "s", geom


def reduction_plan(shape: tuple, axes: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Passes (outer, R, inner) that sum a contiguous array of ``shape`` over ``axes``.

    Adjacent kept (or reduced) dims merge; each pass sums the last remaining reduced block,
    leaving a contiguous (outer, inner) result for the next.
    """
    blocks: list[list] = []  # [size, reduced]
    for d, s in enumerate(shape):
        if s == 1:
            continue
        red = d in axes
        if blocks and blocks[-1][1] == red:
            blocks[-1][0] *= s
        else:
            blocks.append([s, red])
    passes = []
    while any(b[1] for b in blocks):
        j = max(i for i, b in enumerate(blocks) if b[1])
        outer = prod(tuple(b[0] for b in blocks[:j]))
        inner = prod(tuple(b[0] for b in blocks[j + 1:]))
        passes.append((outer, blocks[j][0], inner))
        del blocks[j]
        if 0 < j < len(blocks) and blocks[j - 1][1] == blocks[j][1]:
            blocks[j - 1][0] *= blocks[j][0]
            del blocks[j]
    return passes

