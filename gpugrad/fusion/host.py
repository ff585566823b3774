"""Running a lowered chain as C++ compiled at run time with the host's compiler.

The statements of :mod:`gpugrad.fusion.c_render` (the same text the CUDA kernels run, over the
``__host__ __device__`` math of ``kernels/gg_math.cuh``) are wrapped in a loop over the chain's
elements, merged into (rows, cols): each operand's inner stride is a compile-time class
('1' contiguous, '0' broadcast, 'n' any), its row stride a run-time argument. The library is
built with ``$CXX`` (default ``g++``), cached on disk under ``~/.cache/gpugrad/fusion/``
(``$GPUGRAD_FUSION_CACHE``) by the hash of its source, compiler and flags, and called through
ctypes. A call costs about a microsecond, so a chain of 100 ops on 64 floats costs one call
instead of 300 ufunc dispatches.

No compiler (or ``GPUGRAD_FUSION_CC=0``): :func:`available` is False and the NumPy evaluator
runs everything.

Example::

    fn = function(program, "11")    # None until compiled (see Settings.compile_after)
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from array import array
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad.backends.cuda_codegen import headers_text, kernels_dir
from gpugrad.fusion import numpy_eval
from gpugrad.fusion.c_render import CTYPE, statements, storage
from gpugrad.fusion.lower import Program

FLAGS = ("-std=c++20", "-O3", "-fPIC", "-shared", "-pthread", "-fvisibility=hidden", "-fno-math-errno",
         "-ffp-contract=off", "-Wno-unknown-pragmas")
# The inner loop is a ``#pragma omp simd`` loop; with glibc's vector math library (libmvec: tanhf,
# expf, logf... 4 or 8 lanes at a time, within 4 ulp) it runs 8-15x faster than scalar libm and
# 3x faster than NumPy's ufuncs on sum(tanh(x) * sigmoid(x)) (benchmarks/test_fusion.py).
# glibc declares the vector variants only under __FAST_MATH__; defining the macro changes those
# declarations and nothing about code generation (no -ffast-math: IEEE semantics are kept).
# -march=native: the library is built on, and cached for, this machine's CPU.
SIMD_FLAGS = ("-fopenmp-simd", "-D__FAST_MATH__", "-march=native", "-lmvec")
# GPUGRAD_FUSION_WIDE_MIN=n: from n elements a pass is built for the CPU's widest vectors (16
# floats with AVX-512, which GCC leaves for 8 by default), a build of its own. Off by default
# (0): alone in a process it is faster (the vector tanhf/expf run about 1.6x faster: the 100-op
# chain's pass on 64 floats 4.0 against 6.5 us, sum(tanh(x) * sigmoid(x)) on 4M floats 0.83x the
# step with n = 2^16), but the core runs slower for a while after 512-bit code, and interleaved
# with PyTorch and JAX in `gpugrad bench` the 4M step took 15-17 against 11.5 ms; on small arrays
# the slower Python around the call cost more than the pass gained (the 100-op chain: 5%).
WIDE_FLAGS = ("-mprefer-vector-width=512",)
WIDE_MIN = int(os.environ.get("GPUGRAD_FUSION_WIDE_MIN", "0"))


def wide(n: int) -> bool:
    """Whether a pass over ``n`` elements is built with ``WIDE_FLAGS`` (see WIDE_MIN)."""
    return 0 < WIDE_MIN <= n
_lock = threading.Lock()


class Settings:
    """``enabled``: use compiled code at all (``GPUGRAD_FUSION_CC=0`` turns it off);
    ``compile_after``: compile a chain the n-th time it runs (the NumPy evaluator serves it
    meanwhile). 1 by default: which evaluator runs a chain must not depend on how often it ran,
    or two runs of a program would differ in the last bits (gpugrad.fusion.kernels decides which
    chains are worth compiling)."""

    enabled: bool = os.environ.get("GPUGRAD_FUSION_CC", "1") != "0"
    compile_after: int = int(os.environ.get("GPUGRAD_FUSION_CC_AFTER", "1"))
    vectorized: bool = True  # False once a build had to go without libmvec


@cache
def compiler() -> str | None:
    cxx = os.environ.get("CXX") or "g++"
    return shutil.which(cxx)


@cache
def _cpu() -> str:
    """What -march=native depends on (so that a cache shared by machines keeps them apart)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        return hashlib.sha256("\n".join(ln for ln in text.splitlines()[:30]
                                         if ln.startswith(("model name", "flags"))).encode()).hexdigest()[:16]
    except OSError:
        return platform.machine()




@cache
def _headers() -> str:
    """Every header under kernels/ a pass may include (the elementwise math, the emulator's host
    shims, the hand-written host kernels), concatenated: part of each library's cache key, so that
    a changed header is never served by a library built from the old one."""
    d = kernels_dir()
    return headers_text() + "".join(p.read_text() for p in sorted(d.glob("*.h")))


def available() -> bool:
    return Settings.enabled and compiler() is not None


def cache_dir() -> Path:
    env = os.environ.get("GPUGRAD_FUSION_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpugrad" / "fusion"
    path = base / "host"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stride_class(cs: int) -> str:
    return "1" if cs == 1 else "0" if cs == 0 else "n"


def source(p: Program, classes: str, name: str = "gg_fz_host") -> str:
    """The C++ source of ``p`` for operand inner-stride ``classes``: one letter per pointer slot
    (every leaf, scalars included, then the incoming gradients, then the outputs or leaf
    gradients written)."""
    n_leaves = len(p.leaf_dtypes)
    lines = ['#include "gg_host_emu.h"', '#include "gg_math.cuh"',
             f'extern "C" __attribute__((visibility("default"))) double {name}(long long rows, long long cols, '
             "void* const* P, const long long* RS, const long long* CS, const double* S) {",
             "    (void)CS; (void)S; double acc = 0;",
             "    for (long long r = 0; r < rows; ++r) {"]
    ptrs = []  # (slot, storage type, const?)
    for k, dt in enumerate(p.leaf_dtypes):
        if not p.scalar_leaves[k]:
            ptrs.append((k, storage(dt), True))
    for j, dt in enumerate(p.grad_in_dtypes):
        ptrs.append((n_leaves + j, storage(dt), True))
    base_out = n_leaves + p.n_grads_in
    outs = [*p.out_dtypes]
    for slot, (st, const) in enumerate([(storage(dt), False) for dt in outs]):
        ptrs.append((base_out + slot, st, const))
    for k, st, const in ptrs:
        q = "const " if const else ""
        lines.append(f"        {q}{st}* __restrict b{k} = ({q}{st}*)P[{k}] + r * RS[{k}];")
    lines.append("#pragma omp simd reduction(+:acc)")
    lines.append("        for (long long j = 0; j < cols; ++j) {")
    cls = {k: classes[k] for k, _, _ in ptrs}

    def at(k: int) -> str:
        c = cls[k]
        return f"b{k}[j]" if c == "1" else f"b{k}[0]" if c == "0" else f"b{k}[j * CS[{k}]]"

    def load(kind: str, i: int, ctype: str) -> str:
        if kind == "scalar":
            return f"({ctype})S[{n_leaves if i < 0 else i}]"
        k = i if kind == "leaf" else n_leaves + i
        dt = p.leaf_dtypes[i] if kind == "leaf" else p.grad_in_dtypes[i]
        return f"gg_h2f({at(k)})" if dt == np.float16 else f"({ctype}){at(k)}"

    roots = list(p.written)
    if p.reduced is not None:
        roots.append(p.reduced)
    lines += [f"            {s}" for s in statements(p, roots, load)]
    values = p.written
    for slot, v in enumerate(values):
        lines.append(f"            gg_out(b{base_out + slot} + j, 0, v{v});")
    if p.reduced is not None:
        lines.append(f"            acc += (double)v{p.reduced};")
    lines += ["        }", "    }", "    return acc;", "}"]
    return "\n".join(lines) + "\n"


_LIBS: dict[str, Any] = {}


def build(src: str, wide: bool = False) -> Callable:
    """Compile ``src`` (cached in memory and on disk by its hash, with ``WIDE_FLAGS`` when
    ``wide``); its function ``gg_fz_host``."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    fn = _LIBS.get((src, wide))
    if fn is not None:
        return fn
    with _lock:
        lib_path = None
        simd = (*FLAGS, *SIMD_FLAGS, *(WIDE_FLAGS if wide else ()))
        for flags in (simd, FLAGS):  # without libmvec where the toolchain lacks it
            key = hashlib.sha256("\0".join([src, cxx, *flags, _cpu(), _headers()]).encode()).hexdigest()[:32]
            path = cache_dir() / f"fz{key}.so"
            if path.is_file():
                lib_path = path
                break
            with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
                cpp = Path(tmp) / "chain.cpp"
                cpp.write_text(src)
                out = Path(tmp) / "lib.so"
                res = subprocess.run([cxx, *flags, f"-I{kernels_dir()}", str(cpp), "-o", str(out)],
                                     capture_output=True, text=True)
                if res.returncode == 0:
                    os.replace(out, path)
                    lib_path = path
                    break
            Settings.vectorized = False
        if lib_path is None:
            raise RuntimeError(f"fused chain failed to compile:\n{res.stderr[-3000:]}\n{src}")
        lib = ctypes.CDLL(str(lib_path))
        fn = lib.gg_fz_host
        fn.restype = ctypes.c_double
        fn.argtypes = [ctypes.c_longlong, ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_void_p]
        _LIBS[(src, wide)] = fn
        return fn


def try_build(src: str, wide: bool = False) -> Callable | None:
    """:func:`build`, or None when there is no compiler or ``src`` does not compile here (the
    caller's NumPy code runs)."""
    if not available():
        return None
    try:
        return build(src, wide)
    except RuntimeError:
        return None


def function(p: Program, classes: str, force: bool = False, wide: bool = False) -> Callable | None:
    """The compiled function of ``p`` for ``classes`` (built for the widest vectors when
    ``wide``: see WIDE_MIN); None while it is not worth compiling yet (seen fewer than
    ``Settings.compile_after`` times, unless ``force``)."""
    funcs = p.__dict__.setdefault("_host_functions", {})
    key = (classes, wide)
    fn = funcs.get(key)
    if fn is not None:
        return fn
    seen = funcs.get(("seen", key), 0) + 1
    funcs[("seen", key)] = seen
    if not force and seen < Settings.compile_after:
        return None
    fn = funcs[key] = build(source(p, classes), wide)
    return fn


def compiled(p: Program, classes: str, wide: bool = False) -> Callable | None:
    """The function :func:`function` has compiled for ``p``, ``classes`` and ``wide``, or None
    (this does not count as a use)."""
    return p.__dict__.get("_host_functions", {}).get((classes, wide))


def _interface_address(a: Any) -> int:
    return a.__array_interface__["data"][0]


def _data_offset() -> int | None:
    """Where an ndarray object keeps its data pointer (``PyArrayObject.data``: right after the
    object header, part of NumPy's stable C ABI), checked here on arrays of several kinds; None
    (and the slower ``__array_interface__``) if this interpreter lays it out otherwise."""
    off = object.__basicsize__
    base = np.arange(12.0)
    samples = [base, base[3:], base.reshape(3, 4).T, np.zeros((), np.float32), np.empty(0)]
    try:
        for a in samples:
            if ctypes.c_void_p.from_address(id(a) + off).value != _interface_address(a):
                return None
    except (ValueError, OSError):
        return None
    return off


_DATA_OFFSET = _data_offset()
_at = ctypes.c_void_p.from_address


def address(a: Any) -> int:
    """The address of ndarray ``a``'s first element (about 0.1 us, 8x faster than
    ``a.ctypes.data``: this runs once per operand of every fused call)."""
    return addresses((a,))[0]


def addresses(arrays: Any) -> list[int]:
    """:func:`address` of each array (0 for None), in one call: what a fused call's pointer
    table needs (a call per array was 5% of a small chain's forward and backward)."""
    off = _DATA_OFFSET
    out = []
    for a in arrays:  # (a loop, not a comprehension: these lists are short, and made per call)
        if off is not None and a.__class__ is np.ndarray:
            out.append(_at(id(a) + off).value or 0)
        else:
            out.append(0 if a is None else _interface_address(a))
    return out


def plan(shape: tuple, arrays: list) -> tuple[int, int, list[int], list[int]] | None:
    """(rows, cols, row strides, inner strides) of ``arrays`` over ``shape``, or None when the
    dims do not merge into two."""
    from gpugrad.backends.shapes import merged

    m = merged(shape, arrays, reorder=True)
    if len(m) > 2:
        return None
    if not m:
        return 1, 1, [0] * len(arrays), [0] * len(arrays)
    if len(m) == 1:
        return 1, m[0][0], [0] * len(arrays), m[0][1]
    return m[0][0], m[1][0], m[0][1], m[1][1]


def op_pass_head(code: str, uses_rows: bool = False) -> list[str]:
    """The first lines of a hand-written pass's C++ (gpugrad.fusion.host_forward, host_vjp,
    host_ops): the headers, ``code`` (an op's element functions, an #include), and the signature
    of :func:`source`'s calling convention with its stride tables unused (one contiguous run of
    ``cols``, or ``rows`` of them when ``uses_rows``)."""
    return ['#include "gg_host_emu.h"', '#include "gg_math.cuh"', code,
            'extern "C" __attribute__((visibility("default"))) double gg_fz_host(long long rows, long long cols, '
            "void* const* P, const long long* RS, const long long* CS, const double* S) {",
            "    (void)RS; (void)CS; (void)S;" if uses_rows else "    (void)rows; (void)RS; (void)CS;"]


def op_pass_operands(ctype: str, pattern: str, slot: int, lines: list[str]) -> tuple[list[str], int, int]:
    """Declare a one-op pass's inputs in ``lines``: per letter of ``pattern``, 'a' an array (the
    next pointer from ``slot``), 's' a number (the next of the scalar table), 'x' none (0).
    Returns each input's value at element ``j``, the next pointer slot and scalar index."""
    scalar = 0
    values = []
    for k, p in enumerate(pattern):
        if p == "a":
            lines.append(f"    const {ctype}* __restrict in{k} = (const {ctype}*)P[{slot}];")
            values.append(f"in{k}[j]")
            slot += 1
        elif p == "s":
            lines.append(f"    const {ctype} s{k} = ({ctype})S[{scalar}];")
            values.append(f"s{k}")
            scalar += 1
        else:
            values.append(f"{ctype}(0)")
    return values, slot, scalar


PARALLEL_MIN = 1 << 18  # elements below which one thread is faster than a hand-off
# ... for a pass of plain arithmetic (one op's, ReLU's): handing a slice to a pool thread costs
# about 50 us on a 2-core VM, more than such a pass saves on 2^20 floats (101 us alone; 146 us
# on 2 threads; 2^22: 786 against 600 us), where GELU's breaks even at 2^18 (212 against 189 us)
PARALLEL_MIN_CHEAP = 1 << 21

# The C types of the float dtypes hand-written host passes take (gpugrad.fusion.host_vjp, host_ops).
FLOAT_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# Functions whose host versions (libm's, libstdc++'s Bessel functions) differ from the NumPy
# backend's (scipy.special's) in the tails (d/dx j0 at inf: 0 against NaN): ops calling them stay
# NumPy's outside fused chains (gpugrad.fusion.host_forward, host_vjp).
NOT_AS_SCIPY = frozenset({"i0", "i1", "j0", "j1", "jn", "y0", "y1", "yn"})
_NO_SCALARS = (0.0,)  # (an empty array's buffer address may be 0)


def call(fn: Callable, rows: int, cols: int, arrays: list, scalars: Any = ()) -> float:
    """Call compiled ``fn`` (the calling convention of :func:`source`) on ``arrays`` whose layout
    it knows (its stride tables are not passed), on this thread: a hand-written pass's call."""
    P = array("q", addresses(arrays))
    S = array("d", scalars or _NO_SCALARS)
    return fn(rows, cols, P.buffer_info()[0], None, None, S.buffer_info()[0])


def run_flat(fn: Callable, arrays: list, scalars: Any, light: bool) -> None:
    """Call a one-op pass ``fn`` over its contiguous ``arrays`` (the first one's size), on
    numpy_eval's threads from PARALLEL_MIN elements, or PARALLEL_MIN_CHEAP for a ``light`` pass of
    plain arithmetic."""
    n = arrays[0].size
    threads = numpy_eval.Settings.threads
    parallel_min = PARALLEL_MIN_CHEAP if light else PARALLEL_MIN
    if n >= parallel_min and threads > 1:
        run(fn, (1, n, [0] * len(arrays), [1] * len(arrays)), arrays, scalars, threads, parallel_min)
    else:
        call(fn, 1, n, arrays, scalars)


class Call:
    """Compiled ``fn`` bound to one geometry (rows, cols, stride tables), for one thread: what a
    fused chain's call reuses while its operands' shapes and strides stay the same. Called with
    the operands' addresses and the scalar table (see :func:`source`)."""

    __slots__ = ("fn", "rows", "cols", "n", "_tables", "_rs", "_cs")

    def __init__(self, fn: Callable, geometry: tuple) -> None:
        rows, cols, rs, cs = geometry
        self.fn = fn
        self.rows = rows
        self.cols = cols
        self.n = rows * cols
        self._tables = (array("q", rs), array("q", cs))  # kept alive: their addresses are passed
        self._rs = self._tables[0].buffer_info()[0]
        self._cs = self._tables[1].buffer_info()[0]

    def __call__(self, pointers: list[int], scalars: list[float]) -> float:
        P = array("q", pointers)
        S = array("d", scalars)
        return self.fn(self.rows, self.cols, P.buffer_info()[0], self._rs, self._cs, S.buffer_info()[0])


def run(fn: Callable, geometry: tuple, pointers: list, scalars: list[float], threads: int = 1,
        parallel_min: int | None = None) -> float:
    """Call the compiled ``fn``; with ``threads`` > 1 and a chain of ``parallel_min`` elements
    or more (default ``PARALLEL_MIN``), on slices of the outer dim in parallel (ctypes releases
    the GIL); returns the reduction's sum."""
    rows, cols, rs, cs = geometry
    n = rows * cols
    addrs = addresses(pointers)
    S = [*scalars, n]
    if threads <= 1 or n < (PARALLEL_MIN if parallel_min is None else parallel_min):
        return Call(fn, geometry)(addrs, S)
    items = [0 if a is None else a.itemsize for a in pointers]
    outer, step = (rows, rs) if rows > 1 else (cols, cs)
    bounds = np.linspace(0, outer, min(threads, outer) + 1).astype(int)
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        P = [a + int(lo) * st * it for a, st, it in zip(addrs, step, items)]
        part = (hi - lo, cols, rs, cs) if rows > 1 else (1, hi - lo, rs, cs)
        parts.append((Call(fn, part), P))

    # The calling thread runs the first slice itself: waking a pool thread costs about 50 us on
    # a VM, and waiting on all of them (map) was 164 us for a pass of 47 us alone on 2^19 floats
    # (2 threads), 77 us with one hand-off.
    pool = numpy_eval._pool(threads)
    futures = [pool.submit(call, P, S) for call, P in parts[1:]]
    call, P = parts[0]
    try:
        total = call(P, S)
    finally:  # (the other slices write into the caller's arrays: never return before they end)
        rest = [f.result() for f in futures]
    for r in rest:  # (in slice order: the same sum on every run)
        total += r
    return float(total)


__all__ = ["CTYPE", "FLOAT_CTYPES", "PARALLEL_MIN", "PARALLEL_MIN_CHEAP", "Settings", "available", "build", "call",
           "function", "NOT_AS_SCIPY", "op_pass_head", "op_pass_operands", "plan", "run", "run_flat", "source",
           "try_build"]
