"""The CuPy backend: ``device="cuda:N"``.

One :class:`CupyBackend` per GPU provides, on CuPy arrays, every name the NumPy backend
provides (the namespace op rules are written against; see docs/DEVELOPING.md), plus the fused
entry points the engine and the nn ops use:

* elementwise ops run kernels rendered from the op table (:mod:`gpugrad.backends.cuda_codegen`),
  compiled once per (op, dtype, operand pattern, layout) with ``cupy.RawModule`` and cached, or
  loaded from the ahead-of-time build (CMake) when its manifest holds the same source;
* the backward of an elementwise op is one kernel that reads g, the inputs and the output once
  and writes, or accumulates into a gradient buffer the engine owns, each input gradient once
  (:meth:`CupyBackend.ew_vjp_acc`);
* sums (and the summing back of broadcast gradients), softmax / log_softmax forward and
  backward, cross-entropy from logits and scatter-add are the hand-written kernels of
  ``kernels/*.cu``; matmul goes to cuBLAS through ``cupy.matmul``.

``CupyBackend.launches`` counts the kernels and cuBLAS calls the backend issues (one per CuPy
library call it makes). Operators that op rules apply directly to CuPy arrays (``g * out`` in a
rule) are CuPy's own kernels and are not counted, so the count is a lower bound.

CuPy is imported only when a CUDA device is first used. Example::

    x = gg.randn(1024, device="cuda", requires_grad=True)
    gg.tanh(x).sum().backward()
    gg.backends.backend_for("cuda:0").launches
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends import numpy_backend as _portable
from gpugrad.backends.cuda_runtime import import_cupy
from gpugrad.errors import DTypeError, ShapeError
from gpugrad.table import expr as E

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_FLOATS = (_F16, _F32, _F64)
_SFX = {_F16: "f16", _F32: "f32", _F64: "f64"}
_DTNAME = {_F16: "float16", _F32: "float32", _F64: "float64"}
_SCALAR = {_F16: np.float32, _F32: np.float32, _F64: np.float64}  # compute type of kernel scalars
_ACC = {_F16: _F32, _F32: _F32, _F64: _F64}  # accumulation dtype of reductions
_BLOCK = 256
_UNROLL = 4  # GG_UNROLL in kernels/gg_elementwise.cuh
_MAXDIM = cg.MAXDIM
_MAXOPS = cg.MAXOPS

# gg_geom (kernels/gg_elementwise.cuh), passed by value as a one-element structured array
GEOM_DTYPE = np.dtype([("ndim", np.int64), ("shape", np.int64, (_MAXDIM,)),
                       ("strides", np.int64, (_MAXOPS, _MAXDIM))])


def aot_dir() -> Path | None:
    """Where the CMake build's fatbins and manifest are: ``$GPUGRAD_AOT_DIR``, else
    ``build/kernels`` in a source checkout; None when neither holds a manifest (or
    ``GPUGRAD_AOT_DIR`` is set to an empty string, which turns the ahead-of-time path off)."""
    env = os.environ.get("GPUGRAD_AOT_DIR")
    if env is not None:
        path = Path(env) if env else None
    else:
        path = Path(__file__).resolve().parents[2] / "build" / "kernels"
    if path is not None and (path / "manifest.json").is_file():
        return path
    return None


def _pow2_at_least(n: int, lo: int = 32, hi: int = _BLOCK) -> int:
    b = lo
    while b < n and b < hi:
        b *= 2
    return b


def _prod(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


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


def layout(out_shape: tuple, arrays: list) -> tuple[str, Any]:
    """How a kernel reads ``arrays`` (each broadcastable to ``out_shape``).

    ('c', incs): after merging dims, one dim remains and element i of array k is
    ``p_k[i * incs[k]]`` (1 contiguous, 0 a broadcast scalar). ('s', geom): a gg_geom record
    with the collapsed output shape and each array's element strides (0 where broadcast).
    ('m', None): more than GG_MAXDIM dims after merging: the caller makes copies first.
    """
    nd = len(out_shape)
    strides = []
    for a in arrays:
        st = [0] * nd
        off = nd - a.ndim
        item = a.itemsize
        for d in range(a.ndim):
            if a.shape[d] != 1:
                st[off + d] = a.strides[d] // item
        strides.append(st)
    merged: list[tuple[int, list[int]]] = []
    for d in range(nd):
        size = out_shape[d]
        if size == 1:
            continue
        col = [st[d] for st in strides]
        if merged:
            psize, pcol = merged[-1]
            if all(p == c * size for p, c in zip(pcol, col)):
                merged[-1] = (psize * size, col)
                continue
        merged.append((size, col))
    if len(merged) <= 1:
        return "c", tuple(merged[0][1]) if merged else (0,) * len(arrays)
    if len(merged) > _MAXDIM:
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
        outer = _prod(tuple(b[0] for b in blocks[:j]))
        inner = _prod(tuple(b[0] for b in blocks[j + 1:]))
        passes.append((outer, blocks[j][0], inner))
        del blocks[j]
        if 0 < j < len(blocks) and blocks[j - 1][1] == blocks[j][1]:
            blocks[j - 1][0] *= blocks[j][0]
            del blocks[j]
    return passes


class CupyBackend:
    """The namespace of array functions for one GPU (see the module docstring)."""

    def __init__(self, index: int) -> None:
        cp = import_cupy()
        from gpugrad.backends.cuda_runtime import require_device
        from gpugrad.table.elementwise import TABLE as OPS

        require_device(index)
        self.cp = cp
        self.xp = cp
        self.index = index
        self.name = f"cuda:{index}"
        self.TAG = "cupy"
        self.device = cp.cuda.Device(index)
        self._nd = cp.ndarray
        # what gg.cuda.counters() reports on a GPU (the emulated device counts for itself)
        self.counters = {"launches": 0, "bytes": 0, "syncs": 0, "compilations": 0, "indirect_bytes": 0}
        self._optim_tables: dict[bytes, tuple] = {}
        self._pending: dict[tuple, tuple] = {}  # deferred index checks (check_range)
        self.aot_loaded = 0  # kernels taken from the ahead-of-time fatbins
        self.runtime_compiled = 0  # kernels compiled by NVRTC (or found in CuPy's disk cache)
        with self.device:
            self.sm_count = int(cp.cuda.runtime.getDeviceProperties(index)["multiProcessorCount"])
        self._max_grid = max(1, self.sm_count * 16)
        self._kernels: dict[Any, Any] = {}
        self._modules: dict[str, Any] = {}
        self._aot_dir = aot_dir()
        self._aot = self._read_manifest()
        self._aot_units: dict[str, bool] = {}
        self._rng = None
        self._ops = OPS
        self._geoms: dict[Any, tuple] = {}
        self._ones = [(1,) * k for k in range(_MAXOPS + 2)]
        # CuPy keeps C-contiguity as a plain attribute; .flags builds an object per call
        self._contig = (lambda a: a._c_contiguous) if hasattr(cp.ndarray, "_c_contiguous") else (
            lambda a: a.flags.c_contiguous)
        # the expression language's functions and the comparison / arithmetic names rules use,
        # as the op table's forward kernels
        for name in [*E.FUNCTIONS, "negative", "square", "reciprocal", "equal", "not_equal", "less", "greater"]:
            setattr(self, name, partial(self._ew_call, OPS[name]))
        self._python_fns = _cupy_expr_functions(cp)
        # hand-written kernels implementing op rules, keyed by (op name, "forward" | "vjp")
        self.lowerings: dict[tuple[str, str], Any] = {}
        if cp.cuda.runtime.getDeviceCount() > 1:
            self._bind_device()

    # The nn primitives' array code, written against the array module of its input (CuPy here).
    im2col = staticmethod(_portable.im2col)
    col2im = staticmethod(_portable.col2im)
    pool2d = staticmethod(_portable.pool2d)
    pool_argmax = staticmethod(_portable.pool_argmax)
    pool_scatter = staticmethod(_portable.pool_scatter)
    pool_gather = staticmethod(_portable.pool_gather)

    # ---- device placement ---------------------------------------------------------------------
    def _bind_device(self) -> None:
        """With several GPUs, make every public function run with this backend's GPU current
        (CuPy allocates on and launches to the current device)."""
        for name in dir(self):
            if name.startswith("_") or name in ("cp", "xp", "device"):
                continue
            fn = getattr(self, name)
            if callable(fn):
                setattr(self, name, _on_device(self.device, fn))

    # ---- kernels ------------------------------------------------------------------------------
    def _read_manifest(self) -> dict:
        if self._aot_dir is None:
            return {}
        try:
            return json.loads((self._aot_dir / "manifest.json").read_text())["kernels"]
        except (OSError, ValueError, KeyError):
            return {}

    def _module(self, unit: str) -> Any:
        mod = self._modules.get(unit)
        if mod is None:
            with self.device:
                mod = self.cp.RawModule(path=str(self._aot_dir / f"{unit}.fatbin"))
            self._modules[unit] = mod
        return mod

    def _aot_entry(self, name: str, source: str) -> Any:
        """The manifest entry of kernel ``name`` when the ahead-of-time build holds this very
        source (and its fatbin was built), else None."""
        entry = self._aot.get(name)
        if entry is None or entry["hash"] != cg.source_hash(source, True):
            return None
        if entry["unit"] not in self._aot_units:
            self._aot_units[entry["unit"]] = (self._aot_dir / f"{entry['unit']}.fatbin").is_file()
        return entry if self._aot_units[entry["unit"]] else None

    def _op_kernel(self, key: tuple, render: Any, op: Any, *variant: Any) -> Any:
        """The kernel rendered by ``render(op, *variant)`` (forward or backward), loaded once per key."""
        kernel = self._kernels.get(key)
        if kernel is None:
            name, src = render(op, *variant)
            kernel = self.load_kernel(name, cg.standalone_source(op, src))
            self._kernels[key] = kernel
        return kernel

    def load_kernel(self, name: str, source: str) -> Any:
        """The kernel ``name`` of ``source``: from the ahead-of-time fatbin when the manifest
        lists it with this source's hash, else compiled by NVRTC (cached by CuPy on disk)."""
        entry = self._aot_entry(name, source)
        if entry is not None:
            self.aot_loaded += 1
            return self._module(entry["unit"]).get_function(name)
        key = ("module", source)
        mod = self._modules.get(key)
        if mod is None:
            with self.device:
                mod = self.cp.RawModule(code=cg.runtime_code(source), options=cg.runtime_options())
            self._modules[key] = mod
            self.runtime_compiled += 1
            self.counters["compilations"] += 1
        with self.device:
            return mod.get_function(name)

    def _handwritten(self, filename: str, name: str) -> Any:
        kernel = self._kernels.get(name)
        if kernel is None:
            kernel = self.load_kernel(name, cg.handwritten_source(filename))
            self._kernels[name] = kernel
        return kernel

    @property
    def launches(self) -> int:
        """Kernels (and CuPy library calls) this backend has launched (see gg.cuda.counters)."""
        return self.counters["launches"]

    def _launch(self, kernel: Any, grid: int, block: int, args: tuple) -> None:
        kernel((grid,), (block,), args)
        c = self.counters
        c["launches"] += 1
        nd = self._nd
        c["bytes"] += sum(a.nbytes for a in args if isinstance(a, nd))

    def _grid(self, n: int) -> int:
        return max(1, min((n + _BLOCK * _UNROLL - 1) // (_BLOCK * _UNROLL), self._max_grid))

    # ---- elementwise ops ----------------------------------------------------------------------
    def _ew_call(self, op: Any, *args: Any) -> Any:
        return self.ew_forward(op, op.result_dtype(args), list(args), {})

    def _python_ew(self, op: Any, role: Any, args: list, params: dict) -> Any:
        """Integer and boolean dtypes (no kernels): the expression with CuPy's ufuncs."""
        fn = op.python_function(role, None, self._python_fns, "cupy-py")
        with self.device:
            out = fn(*args, *[params[p] for p in op.param_names])
            self.counters["launches"] += 1
            if not isinstance(out, self._nd):
                out = self.cp.asarray(out)
        return out

    def _geometry(self, out_shape: tuple, arrays: list) -> tuple[str, Any]:
        # The common case first: every operand C-contiguous in the output's shape.
        contig = self._contig
        for a in arrays:
            if a.shape != out_shape or not contig(a):
                break
        else:
            return "c", self._ones[len(arrays)]
        key = (out_shape, *[(a.shape, a.strides, a.itemsize) for a in arrays])
        got = self._geoms.get(key)
        if got is None:
            if len(self._geoms) > 4096:
                self._geoms.clear()
            got = layout(out_shape, arrays)
            self._geoms[key] = got
        return got

    def _operands(self, op: Any, dt: np.dtype, args: Any, used: Any) -> tuple[list, list, str]:
        """The arguments as kernel operands: arrays in their storage dtype, scalars as numbers,
        and the pattern string ('a', 's' or 'x' per input)."""
        nd = self._nd
        values = []
        pattern = []
        for k, a in enumerate(args):
            if used is not None and not used[k]:
                values.append(None)
                pattern.append("x")
            elif isinstance(a, nd):
                want = np.dtype(bool) if cg._is_flag_input(op, k) else dt
                if a.dtype != want:
                    a = a.astype(want)
                    self.counters["launches"] += 1
                values.append(a)
                pattern.append("a")
            else:
                values.append(a)
                pattern.append("s")
        return values, pattern, "".join(pattern)

    def ew_forward(self, op: Any, dt: np.dtype, args: list, params: dict) -> Any:
        """The op's value on CUDA arrays: one rendered kernel (floating dtypes), else CuPy ufuncs."""
        if dt not in _FLOATS:
            return self._python_ew(op, "fwd", args, params)
        values, _, pat = self._operands(op, dt, args, None)
        arrays = [v for v, p in zip(values, pat) if p == "a"]
        if not arrays:
            return self._python_ew(op, "fwd", [self.cp.asarray(a) for a in args], params)
        shape = arrays[0].shape
        for a in arrays:
            if a.shape != shape:
                shape = broadcast_shape([a.shape for a in arrays])
                break
        n = _prod(shape)
        cp = self.cp
        out = cp.empty(shape, dtype=np.bool_ if op.kind == "bool" else dt)
        if n == 0:
            return out
        mode, info = self._geometry(shape, arrays)
        if mode == "m":
            values = [cp.ascontiguousarray(cp.broadcast_to(v, shape)) if p == "a" else v for v, p in zip(values, pat)]
            self.counters["launches"] += len(arrays)
            mode, info = "c", (1,) * len(arrays)
        kernel = self._op_kernel((op.name, dt, pat, mode), cg.forward_kernel, op, _DTNAME[dt], pat, mode)
        sc = _SCALAR[dt]
        kargs: list[Any] = [np.int64(n)]
        if mode == "s":
            kargs.append(info)
        j = 0
        for v, p in zip(values, pat):
            if p == "a":
                kargs.append(v)
                if mode == "c":
                    kargs.append(np.int64(info[j]))
                j += 1
            else:
                kargs.append(sc(v))
        for p in op.param_names:
            kargs.append(sc(params[p]))
        kargs.append(out)
        self._launch(kernel, self._grid(n), _BLOCK, tuple(kargs))
        return out

    def ew_vjp(self, op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        """Input gradients of an elementwise op (new arrays, or g itself where d/dx is 1)."""
        return self.ew_vjp_acc(op, g, args, out, params, needs, (None,) * len(needs), False)[0]

    def ew_vjp_acc(self, op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple, acc: Any,
                   g_owned: bool) -> tuple[tuple, tuple]:
        """The fused backward: ``(grads, fresh)``.

        ``acc[i]`` (or None) is a C-contiguous buffer of g's shape and dtype that the engine
        owns: gradient i is added into it in the kernel and ``grads[i] is acc[i]``. ``fresh[i]``
        says grads[i] is a buffer nothing else refers to (new, or acc[i], or g itself when
        ``g_owned`` and only one input takes it). One kernel computes every gradient that is
        not 0 (a zeros array, or nothing with an accumulator) or plain g (returned as is).
        """
        n_in = len(op.inputs)
        if args is None:
            args = (None,) * n_in
        dt = g.dtype
        cp = self.cp
        results: list[Any] = [None] * n_in
        fresh = [False] * n_in
        kmask = []
        aliases = []
        for k, need in enumerate(needs):
            if not need:
                continue
            e = op.d.get(op.inputs[k])
            if e is None:
                continue
            a = acc[k]
            if a is not None and not a.flags.c_contiguous:
                a = None
            if e.constant == 0.0:
                if a is not None:
                    results[k] = a
                else:
                    with self.device:
                        results[k] = cp.zeros(g.shape, dtype=dt)
                    self.counters["launches"] += 1
                fresh[k] = True
            elif e.constant == 1.0 and a is None:
                results[k] = g
                aliases.append(k)
            else:
                kmask.append(k)
        if len(aliases) == 1 and g_owned:
            fresh[aliases[0]] = True  # the only holder of g: ownership passes on
        if not kmask:
            return tuple(results), tuple(fresh)
        if dt not in _FLOATS:  # complex: the derivative expressions with CuPy's ufuncs (no kernels)
            for k in kmask:
                fn = op.python_function(("vjp", k), None, self._python_fns, "cupy-py")
                with self.device:
                    results[k] = fn(g, *args, out, *[params[p] for p in op.param_names])
                self.counters["launches"] += 1
                fresh[k] = True
            return tuple(results), tuple(fresh)
        mask = tuple(kmask)
        used_names, uses_out = cg.backward_uses(op, mask)
        used = [name in used_names for name in op.inputs]
        values, pattern, _ = self._operands(op, dt, args, used)
        for k in mask:
            if pattern[k] == "s":  # a differentiated input is always an array; keep the kernel honest
                raise TypeError(f"{op.name}: input {k} needs a gradient but is a scalar")
        pat = "".join(pattern)
        arrays = [g] + [v for v, p in zip(values, pat) if p == "a"] + ([out] if uses_out else [])
        if uses_out and out.dtype != dt:
            arrays[-1] = out = out.astype(dt)
        shape = g.shape
        n = g.size
        mode, info = self._geometry(shape, arrays)
        if mode == "m":
            arrays = [cp.ascontiguousarray(cp.broadcast_to(a, shape)) for a in arrays]
            self.counters["launches"] += len(arrays)
            it = iter(arrays[1:])
            values = [next(it) if p == "a" else v for v, p in zip(values, pat)]
            g = arrays[0]
            if uses_out:
                out = arrays[-1]
            mode, info = "c", (1,) * len(arrays)
        kernel = self._op_kernel((op.name, dt, mask, pat, mode), cg.backward_kernel, op, _DTNAME[dt], mask, pat, mode)
        sc = _SCALAR[dt]
        kargs: list[Any] = [np.int64(n)]
        if mode == "s":
            kargs.append(info)
        j = 0

        def array(x: Any) -> None:
            nonlocal j
            kargs.append(x)
            if mode == "c":
                kargs.append(np.int64(info[j]))
            j += 1

        array(g)
        for v, p in zip(values, pat):
            if p == "a":
                array(v)
            elif p == "s":
                kargs.append(sc(v))
        if uses_out:
            array(out)
        for p in op.param_names:
            kargs.append(sc(params[p]))
        for k in mask:
            a = acc[k]
            if a is not None and a.flags.c_contiguous:
                kargs += [a, np.int32(1)]
                results[k] = a
            else:
                with self.device:
                    r = cp.empty(shape, dtype=dt)
                kargs += [r, np.int32(0)]
                results[k] = r
            fresh[k] = True
        if n:
            self._launch(kernel, self._grid(n), _BLOCK, tuple(kargs))
        return tuple(results), tuple(fresh)

    def add_into(self, dst: Any, src: Any) -> None:
        """dst += src, in place (dst is a gradient buffer the engine owns)."""
        self.cp.add(dst, src, out=dst)
        self.counters["launches"] += 1

    def accumulate(self, a: Any, b: Any) -> Any:
        """a + b in a new C-contiguous array (the engine may accumulate into it later)."""
        with self.device:
            out = self.cp.empty(broadcast_shape([a.shape, b.shape]), dtype=np.result_type(a.dtype, b.dtype))
        self.cp.add(a, b, out=out)
        self.counters["launches"] += 1
        return out

    # ---- reductions ---------------------------------------------------------------------------
    def _sum_pass(self, x: Any, outer: int, R: int, inner: int, out_dt: np.dtype, scale: float) -> Any:
        """One (outer, R, inner) -> (outer, inner) sum of a contiguous float array."""
        cp = self.cp
        dt = x.dtype
        acc = _ACC[dt]
        sm = self.sm_count
        # Split a reduction into chunks (and add a second launch for the partial sums) only when
        # there are too few outputs to occupy the GPU and each one is long: a launch costs more
        # than a short reduction on a few SMs.
        if inner == 1:
            rows = outer
            nch = 1 if rows >= 2 * sm or R <= 8192 else max(1, min(-(-R // 2048), -(-4 * sm // rows)))
            kind = "rows"
        else:
            ncb = -(-inner // 32)
            work = outer * ncb
            nch = 1 if work >= 2 * sm or R <= 2048 else max(1, min(-(-R // 256), -(-4 * sm // work)))
            kind = "cols"
        chunk = -(-R // nch)
        first_dt = out_dt if nch == 1 else acc
        with self.device:
            y = cp.empty((outer, nch, inner) if kind == "cols" else (outer, nch), dtype=first_dt)
        self._sum_launch(kind, x, y, outer, R, inner, nch, chunk, scale if nch == 1 else 1.0)
        if nch == 1:
            return y.reshape(outer, inner)
        with self.device:
            z = cp.empty((outer, inner), dtype=out_dt)
        self._sum_launch(kind, y, z, outer, nch, inner, 1, nch, scale)
        return z

    def _sum_launch(self, kind: str, x: Any, y: Any, outer: int, R: int, inner: int, nch: int, chunk: int,
                    scale: float) -> None:
        name = f"gg_sum_{kind}_{_SFX[x.dtype]}_{_SFX[y.dtype]}"
        kernel = self._handwritten("reduce.cu", name)
        if kind == "rows":
            work = outer * nch
            block = _pow2_at_least(min(chunk, _BLOCK))
            args = (x, y, np.int64(outer), np.int64(R), np.int64(nch), np.int64(chunk), np.float64(scale))
        else:
            work = outer * nch * (-(-inner // 32))
            block = _BLOCK
            args = (x, y, np.int64(outer), np.int64(R), np.int64(inner), np.int64(nch), np.int64(chunk),
                    np.float64(scale))
        self._launch(kernel, max(1, min(work, self.sm_count * 8)), block, args)

    def _reduce(self, x: Any, axes: tuple[int, ...], scale: float) -> Any:
        """Sum over ``axes`` (sorted, non-negative) times ``scale``; the reduced axes are dropped."""
        cp = self.cp
        dt = x.dtype
        out_shape = tuple(s for d, s in enumerate(x.shape) if d not in axes)
        if not x.flags.c_contiguous:
            x = cp.ascontiguousarray(x)
            self.counters["launches"] += 1
        passes = reduction_plan(x.shape, axes)
        if not passes or x.size == 0:
            with self.device:
                if x.size == 0:
                    r = cp.zeros(out_shape, dtype=dt)
                else:
                    r = cp.multiply(x.reshape(out_shape), dt.type(scale)) if scale != 1.0 else x.reshape(out_shape)
            self.counters["launches"] += 1
            return r
        y = x
        for i, (outer, R, inner) in enumerate(passes):
            last = i == len(passes) - 1
            y = self._sum_pass(y, outer, R, inner, dt, scale if last else 1.0)
        return y.reshape(out_shape)

    def _axes(self, x: Any, axis: Any) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(x.ndim))
        if isinstance(axis, (int, np.integer)):
            axis = (axis,)
        return tuple(sorted(int(a) % x.ndim for a in axis)) if x.ndim else ()

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A003
        cp = self.cp
        if not isinstance(x, self._nd) or x.dtype not in _FLOATS:
            with self.device:
                r = cp.asarray(cp.sum(x, axis=axis, keepdims=keepdims))
            self.counters["launches"] += 1
            return r
        axes = self._axes(x, axis)
        r = self._reduce(x, axes, 1.0)
        return r.reshape(tuple(1 if d in axes else s for d, s in enumerate(x.shape))) if keepdims else r

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        cp = self.cp
        if not isinstance(x, self._nd) or x.dtype not in _FLOATS or x.size == 0:
            with self.device:
                r = cp.asarray(cp.mean(x, axis=axis, keepdims=keepdims))
            self.counters["launches"] += 1
            return r
        axes = self._axes(x, axis)
        n = _prod(tuple(x.shape[a] for a in axes))
        r = self._reduce(x, axes, 1.0 / n)
        return r.reshape(tuple(1 if d in axes else s for d, s in enumerate(x.shape))) if keepdims else r

    def sum_to(self, x: Any, shape: tuple) -> Any:
        """Sum ``x`` over the axes it was broadcast along so that it has ``shape`` (a new array)."""
        if x.shape == shape:
            return x
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
        if x.dtype not in _FLOATS:
            with self.device:
                r = self.cp.sum(x, axis=axes) if axes else x
            self.counters["launches"] += 1
            return r.reshape(shape)
        return self._reduce(x, axes, 1.0).reshape(shape)

    def amax(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        with self.device:
            r = self.cp.asarray(self.cp.amax(x, axis=axis, keepdims=keepdims))
        self.counters["launches"] += 1
        return r

    def amin(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        with self.device:
            r = self.cp.asarray(self.cp.amin(x, axis=axis, keepdims=keepdims))
        self.counters["launches"] += 1
        return r

    # ---- softmax and cross-entropy ------------------------------------------------------------
    def _axis_geometry(self, x: Any, axis: int) -> tuple[Any, int, int, int]:
        if not x.flags.c_contiguous:
            x = self.cp.ascontiguousarray(x)
            self.counters["launches"] += 1
        axis = axis % x.ndim
        return x, _prod(x.shape[:axis]), x.shape[axis], _prod(x.shape[axis + 1:])

    def _softmax(self, x: Any, axis: int, log: bool) -> Any:
        cp = self.cp
        if x.dtype not in _FLOATS or x.size == 0:
            return _np_style_softmax(cp, x, axis, log)
        x, outer, R, inner = self._axis_geometry(x, axis)
        with self.device:
            y = cp.empty(x.shape, dtype=x.dtype)
        sfx = _SFX[x.dtype]
        if inner == 1:
            k = self._handwritten("softmax.cu", f"gg_softmax_rows_{sfx}")
            self._launch(k, min(outer, self.sm_count * 8), _pow2_at_least(R),
                         (x, y, np.int64(outer), np.int64(R), np.int32(log)))
        else:
            k = self._handwritten("softmax.cu", f"gg_softmax_cols_{sfx}")
            n = outer * inner
            self._launch(k, max(1, min(-(-n // _BLOCK), self._max_grid)), _BLOCK,
                         (x, y, np.int64(outer), np.int64(R), np.int64(inner), np.int32(log)))
        return y

    def softmax(self, x: Any, axis: int) -> Any:
        """exp(x - max) / sum(exp(x - max)) along ``axis``, one kernel."""
        return self._softmax(x, axis, False)

    def log_softmax(self, x: Any, axis: int) -> Any:
        """x - max - log(sum(exp(x - max))) along ``axis``, one kernel."""
        return self._softmax(x, axis, True)

    def _softmax_bwd(self, g: Any, y: Any, axis: int, log: bool) -> Any:
        cp = self.cp
        if y.dtype not in _FLOATS or y.size == 0:
            return _np_style_softmax_backward(cp, g, y, axis, log)
        if g.dtype != y.dtype or g.shape != y.shape or not g.flags.c_contiguous:
            g = cp.ascontiguousarray(cp.broadcast_to(g, y.shape).astype(y.dtype, copy=False))
            self.counters["launches"] += 1
        y, outer, R, inner = self._axis_geometry(y, axis)
        with self.device:
            gx = cp.empty(y.shape, dtype=y.dtype)
        sfx = _SFX[y.dtype]
        if inner == 1:
            k = self._handwritten("softmax.cu", f"gg_softmax_bwd_rows_{sfx}")
            self._launch(k, min(outer, self.sm_count * 8), _pow2_at_least(R),
                         (g, y, gx, np.int64(outer), np.int64(R), np.int32(log)))
        else:
            k = self._handwritten("softmax.cu", f"gg_softmax_bwd_cols_{sfx}")
            n = outer * inner
            self._launch(k, max(1, min(-(-n // _BLOCK), self._max_grid)), _BLOCK,
                         (g, y, gx, np.int64(outer), np.int64(R), np.int64(inner), np.int32(log)))
        return gx

    def softmax_backward(self, g: Any, y: Any, axis: int) -> Any:
        """y * (g - sum(g * y, axis)) from the softmax output ``y``, one kernel."""
        return self._softmax_bwd(g, y, axis, False)

    def log_softmax_backward(self, g: Any, y: Any, axis: int) -> Any:
        """g - exp(y) * sum(g, axis) from the log_softmax output ``y``, one kernel."""
        return self._softmax_bwd(g, y, axis, True)

    def cross_entropy_logits(self, logits: Any, labels: Any, ignore_index: int = -100,
                             label_smoothing: float = 0.0) -> tuple[Any, Any]:
        """Mean softmax cross-entropy of ``logits`` (N, C) against int64 ``labels`` (N,).

        Returns ``(loss, stats)``: the 0-d loss in logits' dtype and the state the backward
        needs (row log-sum-exp and the count of rows not ignored). See docs/DEVELOPING.md.
        """
        cp = self.cp
        logits, labels = self._ce_operands(logits, labels)
        n, c = logits.shape
        acc = _ACC[logits.dtype]
        sfx = _SFX[logits.dtype]
        with self.device:
            work = cp.empty(2 * n, dtype=acc)
            stats = cp.empty(n + 1, dtype=acc)
            loss = cp.empty((), dtype=logits.dtype)
        if n:
            k = self._handwritten("cross_entropy.cu", f"gg_ce_fwd_rows_{sfx}")
            self._launch(k, min(n, self.sm_count * 8), _pow2_at_least(c),
                         (logits, labels, work, stats, np.int64(n), np.int64(c), np.int64(ignore_index),
                          np.float64(label_smoothing)))
        k = self._handwritten("cross_entropy.cu", f"gg_ce_finish_{sfx}")
        self._launch(k, 1, _BLOCK, (work, stats, loss, np.int64(n)))
        return loss, stats

    def cross_entropy_logits_backward(self, g: Any, logits: Any, labels: Any, stats: Any, ignore_index: int = -100,
                                      label_smoothing: float = 0.0) -> Any:
        """d loss / d logits for :meth:`cross_entropy_logits` scaled by the 0-d ``g``, one kernel."""
        cp = self.cp
        logits, labels = self._ce_operands(logits, labels)
        n, c = logits.shape
        if not isinstance(g, self._nd) or g.dtype != logits.dtype:
            g = cp.asarray(g, dtype=logits.dtype)
        with self.device:
            dx = cp.empty((n, c), dtype=logits.dtype)
        if n:
            k = self._handwritten("cross_entropy.cu", f"gg_ce_bwd_rows_{_SFX[logits.dtype]}")
            self._launch(k, min(n, self.sm_count * 8), _pow2_at_least(c),
                         (g, logits, labels, stats, dx, np.int64(n), np.int64(c), np.int64(ignore_index),
                          np.float64(label_smoothing)))
        return dx

    def _ce_operands(self, logits: Any, labels: Any) -> tuple[Any, Any]:
        cp = self.cp
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ShapeError(f"cross_entropy: expected logits (N, C) and labels (N,), got {logits.shape} and "
                             f"{labels.shape}")
        if logits.dtype not in _FLOATS:
            raise TypeError(f"cross_entropy: logits must be floating point, got {logits.dtype}")
        if not logits.flags.c_contiguous:
            logits = cp.ascontiguousarray(logits)
            self.counters["launches"] += 1
        if labels.dtype != np.int64 or not labels.flags.c_contiguous:
            labels = cp.ascontiguousarray(labels.astype(np.int64))
            self.counters["launches"] += 1
        return logits, labels

    # ---- indexing -----------------------------------------------------------------------------
    def getitem(self, x: Any, index: Any) -> Any:
        r = x[index]
        if not _is_basic(index if isinstance(index, tuple) else (index,)):
            self.counters["launches"] += 1  # a gather; basic indexing is a view
        return r if isinstance(r, self._nd) else self.cp.asarray(r)

    def _index_add(self, src: Any, idx: Any, dst: Any, outer: int, nidx: int, inner: int, dim: int) -> None:
        total = outer * nidx * inner
        if total == 0:
            return
        src = self.cp.ascontiguousarray(src)
        idx = self.cp.ascontiguousarray(idx.astype(np.int64, copy=False))
        k = self._handwritten("scatter.cu", f"gg_index_add_{_SFX[dst.dtype]}")
        self._launch(k, max(1, min(-(-total // _BLOCK), self._max_grid)), _BLOCK,
                     (src, idx, dst, np.int64(outer), np.int64(nidx), np.int64(inner), np.int64(dim)))

    def index_scatter(self, values: Any, shape: tuple, index: Any) -> Any:
        """zeros(shape) with ``values`` added at ``index`` (repeated indices accumulate)."""
        cp = self.cp
        with self.device:
            out = cp.zeros(shape, dtype=values.dtype)
        self.counters["launches"] += 1
        items = index if isinstance(index, tuple) else (index,)
        if _is_basic(items):
            out[index] = values
            self.counters["launches"] += 1
            return out
        if values.dtype not in _FLOATS:
            import cupyx

            cupyx.scatter_add(out, index, values)
            self.counters["launches"] += 1
            return out
        if len(items) == 1 and isinstance(items[0], self._nd) and items[0].dtype.kind in "iu" and shape:
            idx = items[0]
            inner = _prod(tuple(shape[1:]))
            vals = cp.broadcast_to(values, idx.shape + tuple(shape[1:]))
            self._index_add(vals, idx.ravel(), out, 1, idx.size, inner, shape[0])
            return out
        # general advanced index: the flat positions it selects, then one scatter-add
        with self.device:
            pos = cp.arange(_prod(tuple(shape)), dtype=np.int64).reshape(shape)[index]
        self.counters["launches"] += 2
        vals = cp.broadcast_to(values, pos.shape)
        self._index_add(vals, pos.ravel(), out.reshape(-1), 1, pos.size, 1, out.size)
        return out

    def index_put(self, x: Any, index: Any, values: Any) -> Any:
        """A copy of ``x`` with ``x[index] = values``."""
        out = x.copy()
        out[index] = values
        self.counters["launches"] += 2
        return out

    def take(self, x: Any, indices: Any, axis: int) -> Any:
        self.counters["launches"] += 1
        return self.cp.take(x, self.asarray(indices), axis=axis)

    def take_scatter(self, values: Any, shape: tuple, indices: Any, axis: int) -> Any:
        """The transpose of ``take``: zeros(shape) with ``values`` added along ``axis`` at ``indices``."""
        cp = self.cp
        idx = self.asarray(indices)
        with self.device:
            out = cp.zeros(shape, dtype=values.dtype)
        self.counters["launches"] += 1
        if values.dtype not in _FLOATS:
            import cupyx

            moved = cp.moveaxis(out, axis, 0)
            vals = cp.moveaxis(values, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
            cupyx.scatter_add(moved, idx.ravel(), vals.reshape((-1,) + moved.shape[1:]))
            self.counters["launches"] += 1
            return out
        outer = _prod(tuple(shape[:axis]))
        inner = _prod(tuple(shape[axis + 1:]))
        self._index_add(values, idx.ravel(), out, outer, idx.size, inner, shape[axis])
        return out

    # ---- the rest of the namespace (thin CuPy calls) ------------------------------------------
    def _lib(self, fn: Any, *args: Any, **kw: Any) -> Any:
        with self.device:
            r = fn(*args, **kw)
        self.counters["launches"] += 1
        return r

    def matmul(self, a: Any, b: Any) -> Any:
        """cuBLAS (through cupy.matmul): GEMM / batched GEMM, transposed views without copies."""
        return self._lib(self.cp.matmul, a, b)

    def einsum(self, spec: str, *ops: Any) -> Any:
        return self._lib(self.cp.einsum, spec, *ops)

    def tensordot(self, a: Any, b: Any, axes: Any = 2) -> Any:
        return self._lib(self.cp.tensordot, a, b, axes)

    def concatenate(self, arrays: Any, axis: int = 0) -> Any:
        return self._lib(self.cp.concatenate, list(arrays), axis)

    def stack(self, arrays: Any, axis: int = 0) -> Any:
        return self._lib(self.cp.stack, list(arrays), axis)

    def cumsum(self, x: Any, axis: Any = None) -> Any:
        return self._lib(self.cp.cumsum, x, axis)

    def cumprod(self, x: Any, axis: Any = None) -> Any:
        return self._lib(self.cp.cumprod, x, axis)

    def pad(self, x: Any, pad_width: Any) -> Any:
        return self._lib(self.cp.pad, x, pad_width)

    def solve(self, a: Any, b: Any) -> Any:
        return self._lib(self.cp.linalg.solve, a, b)

    def inv(self, a: Any) -> Any:
        return self._lib(self.cp.linalg.inv, a)

    # decompositions (cuSOLVER) and transforms (cuFFT), through CuPy
    def tril(self, x: Any, k: int = 0) -> Any:
        mask = self.cp.tri(x.shape[-2], x.shape[-1], k, dtype=bool)
        return self._lib(self.cp.where, mask, x, 0)

    def triu(self, x: Any, k: int = 0) -> Any:
        mask = self.cp.tri(x.shape[-2], x.shape[-1], k - 1, dtype=bool)
        return self._lib(self.cp.where, mask, 0, x)

    def cholesky(self, a: Any) -> Any:
        return self._lib(self.cp.linalg.cholesky, a)

    def eigh(self, a: Any, uplo: str = "L") -> tuple[Any, Any]:
        return self._lib(self.cp.linalg.eigh, a, uplo)

    def eig(self, a: Any) -> tuple[Any, Any]:
        """cupy.linalg.eig (CuPy >= 14); older CuPy has none: LAPACK on the host, copied back."""
        fn = getattr(self.cp.linalg, "eig", None)
        if fn is not None:
            return self._lib(fn, a)
        w, v = np.linalg.eig(self.cp.asnumpy(a))
        return self.from_host(w), self.from_host(v)

    def svd(self, a: Any, full_matrices: bool) -> tuple[Any, Any, Any]:
        return self._lib(self.cp.linalg.svd, a, full_matrices=full_matrices)

    def qr(self, a: Any, mode: str) -> tuple[Any, Any]:
        return self._lib(self.cp.linalg.qr, a, mode)

    def pinv(self, a: Any, rcond: float) -> Any:
        return self._lib(self.cp.linalg.pinv, a, rcond)

    def fftn(self, x: Any, kind: str, s: tuple, axes: tuple, norm: Any) -> Any:
        """``cupy.fft.<kind>n`` (cuFFT), kind in fft, ifft, rfft, irfft."""
        return self._lib(getattr(self.cp.fft, kind + "n"), x, s=s, axes=axes, norm=norm)

    def zeros_like(self, x: Any) -> Any:
        return self._lib(self.cp.zeros_like, x)

    def ones_like(self, x: Any) -> Any:
        return self._lib(self.cp.ones_like, x)

    def new_zeros(self, like: Any, shape: tuple) -> Any:
        return self._lib(self.cp.zeros, shape, dtype=like.dtype)

    def new_ones(self, like: Any, shape: tuple) -> Any:
        return self._lib(self.cp.ones, shape, dtype=like.dtype)

    def new_eye(self, like: Any, n: int) -> Any:
        return self._lib(self.cp.eye, n, dtype=like.dtype)

    # views: no kernel
    def reshape(self, x: Any, shape: Any) -> Any:
        return self.cp.reshape(x, shape)

    def transpose(self, x: Any, axes: Any = None) -> Any:
        return self.cp.transpose(x, axes)

    def broadcast_to(self, x: Any, shape: Any) -> Any:
        return self.cp.broadcast_to(x, shape)

    def expand_dims(self, x: Any, axis: Any) -> Any:
        return self.cp.expand_dims(x, axis)

    def swapaxes(self, x: Any, a: int, b: int) -> Any:
        return self.cp.swapaxes(x, a, b)

    def flip(self, x: Any, axis: Any = None) -> Any:
        return self.cp.flip(x, axis)

    def diagonal(self, x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
        return self.cp.diagonal(x, offset, axis1, axis2)

    def astype(self, x: Any, dtype: Any) -> Any:
        if not isinstance(x, self._nd):
            x = self.asarray(x)
        if x.dtype == dtype:
            return x
        if x.dtype.kind == "c" and np.dtype(dtype).kind != "c":
            x = x.real  # a complex gradient reaching a real input: its real part
        self.counters["launches"] += 1
        return x.astype(dtype)

    def real(self, x: Any) -> Any:
        return self.cp.real(x)

    def imag(self, x: Any) -> Any:
        return self.cp.imag(x)

    def conj(self, x: Any) -> Any:
        return self._lib(self.cp.conj, x)

    # ---- arrays, transfers, checks ------------------------------------------------------------
    def asarray(self, data: Any, dtype: Any = None) -> Any:
        if isinstance(data, self._nd) and (dtype is None or data.dtype == dtype) and data.device.id == self.index:
            return data
        with self.device:
            return self.cp.asarray(data, dtype=dtype)

    def array(self, data: Any, dtype: Any = None, copy: bool = True) -> Any:
        with self.device:
            return self.cp.array(data, dtype=dtype, copy=copy)

    def from_host(self, x: Any) -> Any:
        """A copy of ``x`` (NumPy, or CuPy on any GPU) on this GPU."""
        with self.device:
            return self.cp.array(x, copy=True)

    def to_host(self, x: Any) -> np.ndarray:
        self._check_pending()
        self.counters["syncs"] += 1
        return self.cp.asnumpy(x)

    def check_range(self, values: Any, lo: int, hi: int, error: type, what: str) -> None:
        """Check that the integers of ``values`` lie in [lo, hi) without waiting for the GPU: their
        minimum and maximum stay on the device (folded into earlier unchecked ones) and are
        compared at the next synchronisation (``to_host``, ``item()``, ``synchronize``), which
        raises ``error`` then, as CUDA's device-side asserts surface at the next sync."""
        if not values.size:
            return
        cp = self.cp
        with self.device:
            mn, mx = values.min(), values.max()
            self.counters["launches"] += 2
            key = (what, lo, hi, error)
            prev = self._pending.get(key)
            if prev is not None:
                mn, mx = cp.minimum(mn, prev[0]), cp.maximum(mx, prev[1])
                self.counters["launches"] += 2
        self._pending[key] = (mn, mx)

    def _check_pending(self) -> None:
        if not self._pending:
            return
        items = list(self._pending.items())
        self._pending.clear()
        cp = self.cp
        with self.device:
            bounds = cp.stack([cp.stack([a.astype(np.int64), b.astype(np.int64)]) for _, (a, b) in items]).get()
        self.counters["syncs"] += 1
        for ((what, lo, hi, error), _), (mn, mx) in zip(items, bounds):
            if mn < lo or mx >= hi:
                raise error(f"{what} must be in [{lo}, {hi}), got values in [{mn}, {mx}] (found at this "
                            "synchronisation: on CUDA, index checks wait for the next sync instead of causing one)")

    def to_device(self, x: Any, device: str) -> Any:
        from gpugrad.backends import backend_for

        return backend_for(device).from_host(x if device.startswith("cuda") else self.cp.asnumpy(x))

    def all_finite(self, x: Any) -> bool:
        self._check_pending()
        self.counters["syncs"] += 1
        return bool(self.cp.isfinite(x).all())

    def synchronize(self) -> None:
        """Wait for the work queued on this GPU."""
        self._check_pending()
        self.counters["syncs"] += 1
        self.device.synchronize()

    def optimizer_update(self, variant: Any, scalars: dict, items: list) -> None:
        """Apply an update rule's ``variant`` (gpugrad.table.optim) to every ``(param, grad, state)``
        of ``items`` (one dtype) in one launch of its multi-tensor kernel: a device table holds each
        array's address, slot by slot, and the kernel finds the tensor of each element by
        bisection over the tensors' offsets. Scalars are rounded to the state dtype (float32 for
        float16 parameters), as NumPy rounds them."""
        cp = self.cp
        items = [it for it in items if it[0].size]
        if not items:
            return
        pdt = items[0][0].dtype
        if pdt not in _FLOATS:
            raise DTypeError(f"optimizer step ({variant.rule.name}): unsupported parameter dtype {pdt}")
        sdt = _F32 if pdt == _F16 else pdt
        names = variant.state
        cols: list[list[Any]] = [[] for _ in range(2 + len(names))]
        writeback = []
        sizes = []
        traffic = 0
        for param, grad, state in items:
            work = param if self._contig(param) else cp.ascontiguousarray(param)
            if work is not param:
                writeback.append((param, work))
            g = grad if grad.dtype == pdt and self._contig(grad) else cp.ascontiguousarray(grad, dtype=pdt)
            cols[0].append(work)
            cols[1].append(g)
            for k, name in enumerate(names):
                a = state.get(name)
                if a is None or a.dtype != sdt or not self._contig(a) or a.shape != param.shape:
                    raise DTypeError(f"optimizer step ({variant.rule.name}): state {name!r} must be a C-contiguous "
                                     f"{sdt} array of the parameter's shape, got {None if a is None else a.dtype}")
                cols[2 + k].append(a)
            sizes.append(param.size)
            traffic += param.nbytes * (1 + variant.writes_param) + g.nbytes + sdt.itemsize * param.size * (
                len(variant.reads) + len(variant.writes))
        table = np.array([[a.data.ptr for a in col] for col in cols], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        key = table.tobytes() + offsets.tobytes()
        dev = self._optim_tables.get(key)
        if dev is None:  # the parameters and states stay put: only new gradients need a new table
            if len(self._optim_tables) > 16:
                self._optim_tables.clear()
            with self.device:
                dev = self._optim_tables[key] = (cp.asarray(table), cp.asarray(offsets))
        kernel = self._kernels.get(("optim", variant, pdt))
        if kernel is None:
            name, src = cg.optimizer_kernel(variant, _DTNAME[pdt])
            kernel = self._kernels[("optim", variant, pdt)] = self.load_kernel(name, src)
        total = int(offsets[-1])
        args = (dev[0], dev[1], np.int64(len(sizes)), np.int64(total),
                *[sdt.type(scalars[k]) for k in variant.rule.scalars])
        self._launch(kernel, self._grid(total), _BLOCK, args)
        # the kernel reaches the arrays through the table: count what it reads and writes there
        self.counters["bytes"] += traffic
        self.counters["indirect_bytes"] += traffic
        for param, work in writeback:
            param[...] = work
            self.counters["launches"] += 1

    # ---- random numbers -----------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        with self.device:
            self._rng = self.cp.random.RandomState(int(seed))

    def random(self, kind: str, shape: tuple, dtype: Any, **kw: Any) -> Any:
        """rand / randn / randint on this GPU (float16 drawn in float32 and rounded)."""
        if self._rng is None:
            from gpugrad.factories import _SEED

            with self.device:
                self._rng = self.cp.random.RandomState(_SEED[0])
        dt = np.dtype(dtype)
        draw = _F32 if dt == _F16 else dt
        with self.device:
            if kind == "rand":
                arr = self._rng.random_sample(shape, dtype=draw)
            elif kind == "randn":
                arr = self._rng.standard_normal(shape, dtype=draw)
            else:
                arr = self._rng.randint(kw["low"], kw["high"], size=shape, dtype=dt)
            self.counters["launches"] += 1
            if arr.dtype != dt:
                arr = arr.astype(dt)
                self.counters["launches"] += 1
        return arr

    def __repr__(self) -> str:
        return f"<gpugrad CUDA backend {self.name}>"


def _on_device(device: Any, fn: Any) -> Any:
    def call(*args: Any, **kw: Any) -> Any:
        with device:
            return fn(*args, **kw)

    call.__doc__ = fn.__doc__
    return call


def _is_basic(items: tuple) -> bool:
    for item in items:
        if not (item is None or item is Ellipsis or isinstance(item, (int, np.integer, slice))):
            return False
    return True


def _cupy_expr_functions(cp: Any) -> dict[str, Any]:
    """The expression language's functions as CuPy callables (integer and boolean dtypes)."""
    fns = {name: getattr(cp, name) for name in E.FUNCTIONS if hasattr(cp, name)}
    fns.update(
        abs=cp.abs, rsqrt=lambda x: 1 / cp.sqrt(x), floordiv=cp.floor_divide, mod=cp.remainder,
        pow=cp.power, sigmoid=lambda x: 1 / (1 + cp.exp(-x)), zeros_like=cp.zeros_like,
    )
    if "erf" not in fns:
        def _erf(x: Any) -> Any:
            import cupyx.scipy.special as sp

            return sp.erf(x)

        fns["erf"] = _erf
    return fns


def _np_style_softmax(cp: Any, x: Any, axis: int, log: bool) -> Any:
    m = cp.max(x, axis=axis, keepdims=True) if x.size else 0
    shifted = x - cp.where(cp.isfinite(m), m, 0)
    if log:
        return shifted - cp.log(cp.sum(cp.exp(shifted), axis=axis, keepdims=True))
    e = cp.exp(shifted)
    return e / cp.sum(e, axis=axis, keepdims=True)


def _np_style_softmax_backward(cp: Any, g: Any, y: Any, axis: int, log: bool) -> Any:
    if log:
        return g - cp.exp(y) * cp.sum(g, axis=axis, keepdims=True)
    return y * (g - cp.sum(g * y, axis=axis, keepdims=True))
