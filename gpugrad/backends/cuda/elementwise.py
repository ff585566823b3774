"""Elementwise ops on CUDA: kernels rendered from the op table (gpugrad.table.elementwise by
:mod:`gpugrad.backends.cuda_codegen`), one per (op, dtype, operand pattern, layout), forward and
fused backward (every input gradient in one kernel, written or accumulated into a buffer the
engine owns); integer, boolean and complex dtypes run the same expressions with CuPy's ufuncs.

Example::

    B.ew_forward(TABLE["tanh"], np.dtype("float32"), [x], {})
    B.ew_vjp_acc(TABLE["multiply"], g, (a, b), out, {}, (True, True), (None, None), False)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends.cuda.geometry import BLOCK, DTNAME, FLOATS, SCALAR, broadcast_shape, layout, prod
from gpugrad.table import expr as E


class Elementwise:
    """CupyBackend's elementwise ops (state: ``_geoms``, ``_ones``, ``_contig``, ``_python_fns``)."""

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
        if dt not in FLOATS:
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
        n = prod(shape)
        cp = self.cp
        out = cp.empty(shape, dtype=np.bool_ if op.kind == "bool" else dt)
        if n == 0:
            return out
        mode, info = self._geometry(shape, arrays)
        if mode == "m":
            values = [cp.ascontiguousarray(cp.broadcast_to(v, shape)) if p == "a" else v for v, p in zip(values, pat)]
            self.counters["launches"] += len(arrays)
            mode, info = "c", (1,) * len(arrays)
        kernel = self._op_kernel((op.name, dt, pat, mode), cg.forward_kernel, op, DTNAME[dt], pat, mode)
        sc = SCALAR[dt]
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
        self._launch(kernel, self._grid(n), BLOCK, tuple(kargs))
        return out

    def ew_vjp(self, op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        """Input gradients of an elementwise op (new arrays, or g itself where d/dx is 1)."""
        return self.ew_vjp_acc(op, g, args, out, params, needs, (None,) * len(needs), False)[0]

    def ew_vjp_acc(self, op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple, acc: Any,
                   g_owned: bool) -> tuple[tuple, tuple]:
        """The fused backward: ``(grads, fresh)``.

        ``acc[i]`` (or None; ``acc`` None: none) is a C-contiguous buffer of g's shape and dtype that the engine
        owns: gradient i is added into it in the kernel and ``grads[i] is acc[i]``. ``fresh[i]``
        says grads[i] is a buffer nothing else refers to (new, or acc[i], or g itself when
        ``g_owned`` and only one input takes it). One kernel computes every gradient that is
        not 0 (a zeros array, or nothing with an accumulator) or plain g (returned as is).
        """
        n_in = len(op.inputs)
        if args is None:
            args = (None,) * n_in
        if acc is None:  # no buffer to add into
            acc = op._nones
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
        if dt not in FLOATS:  # complex: the derivative expressions with CuPy's ufuncs (no kernels)
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
        kernel = self._op_kernel((op.name, dt, mask, pat, mode), cg.backward_kernel, op, DTNAME[dt], mask, pat, mode)
        sc = SCALAR[dt]
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
            self._launch(kernel, self._grid(n), BLOCK, tuple(kargs))
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

