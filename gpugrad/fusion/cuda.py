"""CUDA kernels for fused chains: one kernel forward, one backward, rendered from the same
statements as the host code (:mod:`.c_render`) on the elementwise template's conventions
(``kernels/gg_elementwise.cuh``: ``gg_in``/``gg_out`` storage conversions, float16 stored as
``gg_half`` and computed in float, layouts 'c' (element i at ``p[i * inc]``) and 's' (strides
from a ``gg_geom`` passed by value)).

A closing reduction is fused too: each block writes its partial sum (accumulated in float for
float16/float32 values, as ``kernels/reduce.cu``, in double for float64), and the block that
finishes last (a counter it increments atomically after a fence says which) adds the partials in
block order (and divides by N for a mean): one launch, the same result on every run.

Sources are named by their own hash (``gg_fz_<hash>_<f|b>_<layout>``), kept in memory per
(program, layout) and recorded on disk (``~/.cache/gpugrad/fusion/cuda/``, see
:func:`recorded`; CMake's ``-DGPUGRAD_AOT_RECORDED=ON`` builds them ahead of time);
:func:`kernels_of` and :func:`kernels_for` list the kernels of given chains without running
them (:mod:`gpugrad.fusion.aot` builds the bench workloads' kernels ahead of time, and the
backend loads them from there by name and source hash).

Example::

    name, src = forward_source(forward_program(chain.signature), "c")
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends.cuda.geometry import layout as kernel_layout
from gpugrad.fusion.c_render import statements, storage
from gpugrad.fusion.chain import Chain
from gpugrad.fusion.lower import Program, backward_program, forward_program

BLOCK = 256  # threads per block; the reduction's shared buffer holds one value per thread


def _acc(dt: np.dtype) -> str:
    return "double" if np.dtype(dt) == np.float64 else "float"


def _render(p: Program, layout: str, role: str) -> tuple[str, str]:
    """(name, standalone source) of the forward (role 'f') or backward ('b') kernel."""
    n_leaves = len(p.leaf_dtypes)
    arrays = [k for k in range(n_leaves) if not p.scalar_leaves[k]] + [n_leaves + j for j in range(p.n_grads_in)]
    slot = {k: s for s, k in enumerate(arrays)}
    params = ["const gg_index n"] + (["const gg_geom geom"] if layout == "s" else [])
    for k in arrays:
        dt = p.leaf_dtypes[k] if k < n_leaves else p.grad_in_dtypes[k - n_leaves]
        params.append(f"const {storage(dt)}* __restrict__ p{k}")
        if layout == "c":
            params.append(f"const gg_index inc{k}")
    params += [f"const double s{k}" for k in range(n_leaves) if p.scalar_leaves[k]]
    params.append("const double s_n")
    written = p.written
    params += [f"{storage(dt)}* __restrict__ o{j}" for j, dt in enumerate(p.out_dtypes)]
    red = p.reduced is not None and role == "f"
    if red:
        params += [f"{_acc(_reduced_dtype(p))}* __restrict__ partial", "unsigned int* __restrict__ counter",
                   "const double scale", f"{storage(_reduced_dtype(p))}* __restrict__ red_out"]

    def load(kind: str, i: int, ctype: str) -> str:
        if kind == "scalar":
            return f"({ctype})s{'_n' if i < 0 else i}"
        k = i if kind == "leaf" else n_leaves + i
        dt = p.leaf_dtypes[k] if kind == "leaf" else p.grad_in_dtypes[i]
        idx = f"off[{slot[k]}]" if layout == "s" else f"i * inc{k}"
        if np.dtype(dt) in (np.float16, np.float32, np.float64, np.bool_):
            return f"({ctype})gg_in(p{k}, {idx})"
        return f"({ctype})p{k}[{idx}]"

    roots = list(written) + ([p.reduced] if red else [])
    body = statements(p, roots, load)
    lines = ["    (void)s_n;"]
    if red:
        acc = _acc(_reduced_dtype(p))
        lines += [f"    __shared__ {acc} buf[{BLOCK}];", "    __shared__ bool last;", f"    {acc} acc = 0;"]
    lines.append("    for (gg_index i = (gg_index)blockIdx.x * blockDim.x + threadIdx.x; i < n; "
                 "i += (gg_index)gridDim.x * blockDim.x) {")
    if layout == "s" and arrays:
        lines.append(f"        gg_index off[{len(arrays)}]; gg_offsets<{len(arrays)}>(geom, i, off);")
    lines += [f"        {s}" for s in body]
    lines += [f"        gg_out(o{j}, i, v{v});" for j, v in enumerate(written)]
    if red:
        lines.append(f"        acc += ({acc})v{p.reduced};")
    lines.append("    }")
    if red:
        acc = _acc(_reduced_dtype(p))
        lines += ["    acc = gg_block_sum(acc, buf);",
                  "    if (threadIdx.x == 0) {",
                  "        partial[blockIdx.x] = acc;",
                  "        __threadfence();  // the partial is visible before the count says so",
                  "        last = atomicAdd(counter, 1u) == gridDim.x - 1;",
                  "    }",
                  "    __syncthreads();",
                  "    if (last) {  // the last block adds every partial, in block order",
                  "        acc = 0;",
                  "        for (gg_index k = threadIdx.x; k < (gg_index)gridDim.x; k += blockDim.x)",
                  f"            acc += ((volatile {acc}*)partial)[k];",
                  "        acc = gg_block_sum(acc, buf);",
                  "        if (threadIdx.x == 0) {",
                  "            gg_out(red_out, 0, acc / scale);",
                  "            *counter = 0;  // ready for the next launch",
                  "        }",
                  "    }"]
    text = "(" + ", ".join(params) + ") {\n" + "\n".join(lines) + "\n}\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"gg_fz_{digest}_{role}_{layout}"
    src = ('#include "gg_elementwise.cuh"\n' + f'extern "C" __global__ void {name}' + text).replace("@NAME@", name)
    return name, src


def _reduced_dtype(p: Program) -> np.dtype:
    return p._reduced_dtype  # type: ignore[attr-defined]


def _prepare(p: Program, chain: Chain) -> None:
    if p.reduced is not None and not hasattr(p, "_reduced_dtype"):
        p._reduced_dtype = np.dtype(chain.nodes[chain.reduction[0]][2])  # type: ignore[attr-defined]


def source_for(p: Program, layout: str, role: str) -> tuple[str, str]:
    """(kernel name, standalone source), rendered once per (program, layout, role) and recorded."""
    cache = p.__dict__.setdefault("_cuda_sources", {})
    got = cache.get((layout, role))
    if got is None:
        got = cache[(layout, role)] = _render(p, layout, role)
        record(*got)
    return got


# ---- the on-disk record: what the ahead-of-time build compiles -------------------------------
def cache_dir() -> Path:
    env = os.environ.get("GPUGRAD_FUSION_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpugrad" / "fusion"
    path = base / "cuda"
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(name: str, src: str) -> Path:
    """Keep ``src`` on disk as ``<name>.cu`` (the name holds the hash of its text)."""
    path = cache_dir() / f"{name}.cu"
    if not path.is_file():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(src)
        os.replace(tmp, path)
    return path


def recorded() -> dict[str, str]:
    """Every fused kernel source recorded on disk: name -> source (for the ahead-of-time build)."""
    return {p.stem: p.read_text() for p in sorted(cache_dir().glob("gg_fz_*.cu"))}


def kernels_of(chain: Chain, grads_in: tuple | None = None, needs: tuple | None = None) -> dict[str, str]:
    """Names and sources of the kernels the CUDA backend renders for ``chain``: its forward
    (``grads_in`` None) or its backward (``grads_in`` as booleans, ``needs``), in both layouts;
    nothing is recorded (the ahead-of-time build's list, :mod:`gpugrad.fusion.aot`)."""
    if grads_in is None:
        prog, role = forward_program(chain.signature), "f"
        _prepare(prog, chain)
    else:
        prog, role = backward_program(chain.signature, tuple(grads_in), tuple(needs or ())), "b"
    return dict(_render(prog, layout, role) for layout in ("c", "s"))


def kernels_for(chains: list[tuple[Chain, tuple | None, tuple | None]]) -> dict[str, str]:
    """Names and sources of the kernels for ``(chain, grads_in, needs)`` (both layouts; the
    backward when ``grads_in`` is given, ``grads_in`` as booleans), recorded on disk."""
    out = {}
    for chain, grads_in, needs in chains:
        out.update(kernels_of(chain))
        if grads_in is not None:
            out.update(kernels_of(chain, grads_in, needs))
    for name, src in out.items():
        record(name, src)
    return out


# ---- launching ---------------------------------------------------------------------------------
def _geometry(B: Any, shape: tuple, arrays: list) -> tuple[str, Any]:
    """The elementwise kernels' layout rule (``'m'``: copy first), for any number of operands
    up to the geometry record's."""
    if len(arrays) > cg.MAXOPS:
        return "m", None
    return kernel_layout(shape, arrays)


def _launch(B: Any, p: Program, chain: Chain, grads: list, outs: list, role: str) -> Any:
    cp = B.cp
    n = chain.size()
    shape = chain.shape
    n_leaves = len(chain.leaves)
    arrays = [chain.leaves[k] for k in range(n_leaves) if not chain.is_scalar(k)] + list(grads)
    mode, info = _geometry(B, shape, arrays)
    if mode == "m":
        arrays = [cp.ascontiguousarray(cp.broadcast_to(a, shape)) for a in arrays]
        mode, info = "c", [1] * len(arrays)
    name, src = source_for(p, mode, role)
    kernel = B.load_kernel(name, src)
    args: list[Any] = [np.int64(n)]
    if mode == "s":
        args.append(info)
    for j, a in enumerate(arrays):
        args.append(a)
        if mode == "c":
            args.append(np.int64(info[j]))
    args += [np.float64(v) for k, v in enumerate(chain.leaves) if chain.is_scalar(k)]
    args.append(np.float64(n))
    args += outs
    red = role == "f" and p.reduced is not None
    grid = B._grid(n)
    out = None
    if red:
        partial = cp.empty(grid, dtype=np.float64 if _reduced_dtype(p) == np.float64 else np.float32)
        out = cp.empty((), dtype=_reduced_dtype(p))
        scale = float(n) if p.reduce_kind == "mean" else 1.0
        args += [partial, _counter(B), np.float64(scale), out]
    B._launch(kernel, grid, BLOCK, tuple(args))
    return out


def _span(a: Any) -> tuple[int, int]:
    """The device addresses [lo, hi) an array's elements lie in."""
    lo = hi = a.data.ptr
    for n, st in zip(a.shape, a.strides):
        if n == 0:
            return lo, lo
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + a.itemsize


def writable_into(p: Program, chain: Chain, out: Any) -> bool:
    """Whether the forward kernel may write the chain's value into ``out``: one output of
    ``out``'s dtype and the chain's shape, ``out`` contiguous (element i written at i), and every
    leaf either ``out`` itself (read at the index it is written at, by the same thread) or
    clear of its memory."""
    if (p.reduced is not None or len(p.out_dtypes) != 1 or p.out_dtypes[0] != out.dtype
            or tuple(out.shape) != tuple(chain.shape) or not out.flags.c_contiguous):
        return False
    lo, hi = _span(out)
    for k, leaf in enumerate(chain.leaves):
        if chain.is_scalar(k) or leaf is out:
            continue
        a, b = _span(leaf)
        if a < hi and lo < b:
            return False
    return True


_COUNTERS: dict[int, Any] = {}


def _counter(B: Any) -> Any:
    """The backend's block counter for fused reductions (zero between launches: the last block
    resets it; one stream, so launches never share it at once)."""
    c = _COUNTERS.get(id(B))
    if c is None:
        with B.device:
            c = _COUNTERS[id(B)] = B.cp.zeros(1, dtype=np.uint32)
    return c


def forward(B: Any, chain: Chain, p: Program, out: Any = None) -> tuple[list, Any]:
    """The chain's outputs and reduction on CUDA arrays: one kernel. ``out``: an array to write
    the chain's one output into (an in-place update, ``x -= lr * g``), used where it can be
    (see :func:`writable_into`)."""
    _prepare(p, chain)
    cp = B.cp
    if out is not None and writable_into(p, chain, out):
        outs = [out]
    else:
        outs = [cp.empty(chain.shape, dtype=dt) for dt in p.out_dtypes]
    if chain.size() == 0:
        red = None
        if p.reduced is not None:
            red = cp.full((), 0.0 if p.reduce_kind == "sum" else np.nan, dtype=_reduced_dtype(p))
        return outs, red
    return outs, _launch(B, p, chain, [], outs, "f")


def backward(B: Any, chain: Chain, p: Program, grads: list) -> list:
    """Per leaf, its gradient (summed to the leaf's shape by ``B.sum_to``) or None: one kernel."""
    cp = B.cp
    outs = [cp.empty(chain.shape, dtype=dt) for dt in p.out_dtypes]
    if chain.size() and outs:
        _launch(B, p, chain, [cp.asarray(g) for g in grads], outs, "b")
    result: list = [None] * len(chain.leaves)
    taken: set[int] = set()
    for k, slot in enumerate(p.grad_slot):
        if slot is not None:
            g = outs[slot]
            shape = chain.leaf_refs[k].shape
            if g.shape != shape:
                g = B.sum_to(g, shape)
            elif slot in taken:  # two leaves never get the same array
                g = g.copy()
            taken.add(slot)
            result[k] = g
    return result
