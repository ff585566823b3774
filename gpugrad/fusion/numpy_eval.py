"""Running a lowered chain on NumPy arrays: the pure-NumPy evaluator (the fallback of the
compiled host code, and the faster path for large arrays with transcendental functions).

A :class:`~gpugrad.fusion.lower.Program` becomes one Python function of NumPy ufunc calls (the
NumPy backend's :data:`EXPR_FUNCTIONS`, so every function means what it means unfused). Large
chains run it block by block over cache-sized slices (the intermediates of a block stay in
the CPU cache instead of making a round trip through memory per op), on a thread pool when
asked (NumPy releases the GIL inside ufuncs).

Example::

    fn = python_function(program)
    partial_sum = fn(leaves, scalars, grads, outs, block_shape)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from gpugrad.backends.numpy_backend import EXPR_FUNCTIONS
from gpugrad.fusion.lower import Program

BLOCK = 1 << 15  # elements per block: ~128 KiB per float32 intermediate, a few fit in L2
_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)


class Settings:
    """Threads used for large chains (default: the machine's cores, as numexpr does).

    ``Settings.threads = 1`` (or ``GPUGRAD_FUSION_THREADS=1``) keeps everything on the caller's
    thread."""

    threads: int = (int(os.environ.get("GPUGRAD_FUSION_THREADS", "0")) or int(os.environ.get("OMP_NUM_THREADS", "0"))
                    or (os.cpu_count() or 1))


_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != n:
        _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="gpugrad-fusion")
        _POOL_SIZE = n
    return _POOL


def _render(p: Program, roots: list[int]) -> list[str]:
    live = p.live(roots)
    lines = []
    for i, ins in enumerate(p.instrs):
        if not live[i]:
            continue
        kind, dt = ins[0], ins[1]
        if kind == "leaf":
            k = ins[2]
            e = f"L[{k}]" + (".astype(_f32)" if p.leaf_dtypes[k] == _F16 else "")
        elif kind == "scalar":
            e = f"S[{ins[2]}]"
        elif kind == "grad":
            j = ins[2]
            e = f"G[{j}]" + (".astype(_f32)" if p.grad_in_dtypes[j] == _F16 else "")
        elif kind == "const":
            e = f"_c_{dt}_{repr(ins[2]).replace('-', 'm').replace('.', 'p').replace('inf', 'I')}"
        elif kind == "cast":
            e = f"_asdt(v{ins[2]}, _{dt})"
        elif kind == "round16":
            e = f"_asdt(_asdt(v{ins[2]}, _f16), _f32)"
        elif kind in ("bin", "cmp"):
            e = f"(v{ins[3]} {ins[2]} v{ins[4]})"
        elif kind == "neg":
            e = f"(-v{ins[2]})"
        else:  # call
            e = f"F_{ins[2]}({', '.join(f'v{a}' for a in ins[3:])})"
        lines.append(f"v{i} = {e}")
    return lines


def _asdt(v: Any, dt: np.dtype) -> Any:
    return v.astype(dt) if hasattr(v, "astype") else np.asarray(v, dt)


def python_function(p: Program) -> Callable:
    """``fn(L, S, G, O, shape)``: evaluates ``p`` on leaf arrays ``L`` (blocks, broadcastable
    to ``shape``), scalars ``S`` (the element count last), incoming gradients ``G``; writes the
    values ``p.written`` (outputs, or leaf gradients) into ``O`` (arrays of ``shape``); returns the
    sum of the reduced value over the block (float64 or the reduced dtype), or None."""
    fn = getattr(p, "_py", None)
    if fn is not None:
        return fn
    roots = list(p.written)
    if p.reduced is not None:
        roots.append(p.reduced)
    lines = _render(p, roots)
    for j, v in enumerate(p.written):
        lines.append(f"O[{j}][...] = v{v}")
    if p.reduced is not None:
        lines.append(f"return _sum(v{p.reduced}, shape)")
    else:
        lines.append("return None")
    src = "def _f(L, S, G, O, shape):\n" + "".join(f"    {ln}\n" for ln in lines)
    scope: dict[str, Any] = {f"F_{k}": v for k, v in EXPR_FUNCTIONS.items()}
    scope.update(_asdt=_asdt, _f16=_F16, _f32=_F32, _float32=_F32, _float64=np.dtype(np.float64),
                 _bool=np.dtype(bool), _sum=_block_sum)
    for ins in p.instrs:
        if ins[0] == "const":
            name = f"_c_{ins[1]}_{repr(ins[2]).replace('-', 'm').replace('.', 'p').replace('inf', 'I')}"
            scope[name] = np.asarray(ins[2], dtype=ins[1])
    exec(compile(src, "<gpugrad fused chain>", "exec"), scope)  # noqa: S102 (our own source)
    fn = scope["_f"]
    p._py = fn  # type: ignore[attr-defined]
    return fn


def _block_sum(v: Any, shape: tuple) -> Any:
    v = np.asarray(v)
    acc = np.float64 if v.dtype != np.float64 else v.dtype
    if v.shape != shape:
        v = np.broadcast_to(v, shape)
    return np.sum(v, dtype=acc)


def _index(arr_shape: tuple, nd: int, lead: tuple, d: int, lo: int, hi: int) -> tuple:
    """The index of an array (aligned right to a chain of ``nd`` dims) that selects the block
    (``lead`` on the axes before ``d``, [lo, hi) on axis ``d``)."""
    off = nd - len(arr_shape)
    idx: list[Any] = []
    for a in range(max(off, 0), d):
        idx.append(0 if arr_shape[a - off] == 1 else lead[a])
    if d >= off:
        idx.append(slice(None) if arr_shape[d - off] == 1 else slice(lo, hi))
    return tuple(idx)


def run(p: Program, shape: tuple, leaves: list, scalars: list[float], grads: list, outs: list,
        threads: int | None = None) -> Any:
    """Evaluate ``p`` over ``shape``, in blocks when large; returns the reduction's sum (a
    float64 or the reduced dtype), or None."""
    fn = python_function(p)
    n = 1
    for s in shape:
        n *= s
    S = [np.float64(s) for s in scalars] + [np.float64(n)]
    if n <= 2 * BLOCK or not shape:
        return fn(leaves, S, grads, outs, shape)
    nd = len(shape)
    # axis d is split in chunks of ``step``; the axes before it are iterated one index at a time
    for d in range(nd):
        inner = 1
        for s in shape[d + 1:]:
            inner *= s
        if inner <= BLOCK:
            break
    step = max(1, BLOCK // inner)
    blocks = [(lead, lo, min(lo + step, shape[d])) for lead in np.ndindex(*shape[:d])
              for lo in range(0, shape[d], step)]
    arrays = [leaves, grads, outs]

    def one(block: tuple) -> Any:
        lead, lo, hi = block
        views = [[a if a is None or not hasattr(a, "shape") else a[_index(a.shape, nd, lead, d, lo, hi)]
                  for a in group] for group in arrays]
        return fn(views[0], S, views[1], views[2], (hi - lo, *shape[d + 1:]))

    t = Settings.threads if threads is None else threads
    if t > 1 and len(blocks) > 1:
        parts = list(_pool(min(t, len(blocks))).map(one, blocks))
    else:
        parts = [one(b) for b in blocks]
    if p.reduced is None:
        return None
    total = parts[0]
    for x in parts[1:]:
        total = total + x
    return total
