"""The elementwise ops on tensors: one differentiable op per declaration of the op table
(:mod:`gpugrad.table.elementwise`, where each op's value and partial derivatives are written
once as expressions).

From a declaration the NumPy backend evaluates the expressions with ufuncs, the CuPy backend
renders them into one CUDA kernel per (op, dtype) for the forward and one for the whole
backward, and the tensor namespace evaluates them with differentiable ops for higher-order
gradients and forward mode (jvp = sum_i d_i * t_i).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.autograd.state import STATE
from gpugrad.backends import numpy_backend as _npb
from gpugrad.errors import GpugradError, ShapeError, describe
from gpugrad.fusion import lazy as _fusion  # (a module: fusion.lazy imports the ops)
from gpugrad.ops.base import _SCALARS, Op, _check_forward, _forward_mode, _mixed_devices, _record, apply
from gpugrad.table.elementwise import TABLE, Elementwise
from gpugrad.tensor import Tensor, make_tensor

_ndarray = np.ndarray
_PY_SCALARS = (int, float, bool)


class ElementwiseOp(Elementwise, Op):
    """The differentiable op of one declaration of the table (it shares the declaration's
    fields and caches); see the module docstring."""

    fresh_grads = True  # each gradient is a new array from its expression, or g itself
    accumulates = True  # its backend vjp adds into the engine's gradient buffers (ew_vjp_acc)

    @classmethod
    def of(cls, decl: Elementwise) -> ElementwiseOp:
        op = cls.__new__(cls)
        op.__dict__.update(decl.__dict__)
        op.__doc__ = decl.doc
        return op

    # ---- the op protocol -----------------------------------------------------------------------
    def __call__(self, *args: Any, **params: Any) -> Any:
        if len(args) != self.n_inputs:
            raise TypeError(
                f"{self.name}() takes {len(self.inputs)} operand(s) ({', '.join(self.inputs)}), got {len(args)}"
            )
        if (params or self.param_names) and params.keys() != set(self.param_names):
            missing = set(self.param_names) - params.keys()
            extra = params.keys() - set(self.param_names)
            raise TypeError(f"{self.name}(): missing parameters {sorted(missing)}, unexpected {sorted(extra)}")
        return self.run(args, params)

    def run(self, args: tuple, params: dict) -> Any:
        """Apply the op to validated operands (Tensor operators call this directly)."""
        if STATE.fuse:  # a pending tensor of a fused chain (gpugrad.fusion.lazy)
            pending = _fusion.record(self, args, params)
            if pending is not None:
                return pending
        # The common case, inlined: CPU tensors of one dtype, and Python scalars.
        device = None
        rg = False
        dt = None
        datas = []
        for a in args:
            if isinstance(a, Tensor):
                d = a.device
                if device is None:
                    device = d
                elif d != device:
                    _mixed_devices(self, args)
                if a.requires_grad:
                    rg = True
                arr = a.data
                if dt is None:
                    dt = arr.dtype
                elif arr.dtype is not dt:
                    return apply(self, args, params)
                datas.append(arr)
            elif a is None or isinstance(a, _SCALARS) and a.__class__ in _PY_SCALARS:
                datas.append(a)
            else:
                return apply(self, args, params)
        if device != "cpu" or dt is None or (dt.kind != "f" and (self.kind == "float" or dt.kind == "c")):
            return apply(self, args, params)
        fast = self.np_fwd.get(dt)
        if fast is None:
            fast = _npb.forward_function(self, dt)
        try:
            out = fast(*datas, *[params[p] for p in self.param_names]) if params else fast(*datas)
        except (ValueError, IndexError) as exc:
            if isinstance(exc, GpugradError):
                raise
            raise ShapeError(f"{self.name}: {exc} (operands: {', '.join(describe(a) for a in args)})") from exc
        if out.__class__ is not _ndarray:
            out = np.asarray(out)
        version = [0]
        if rg and STATE.grad_enabled and self.differentiable and out.dtype.kind == "f":
            result = make_tensor(out, device, True, _record(self, args, params, out, device, version), version)
        else:
            result = make_tensor(out, device, False, None, version)
        if STATE.checks:
            if STATE.fw_levels:
                _forward_mode(self, args, params, result)
            if STATE.anomaly:
                _check_forward(self, datas, out, device)
        return result

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.ew_forward(self, self.result_dtype(args), args, params)

    def vjp(self, ns: Any, g: Any, args: tuple | None, out: Any, params: dict, needs: tuple) -> tuple:
        return ns.ew_vjp(self, g, self._nones if args is None else args, out, params, needs)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.ew_jvp(self, tangents, args, out, params)


OPS: dict[str, ElementwiseOp] = {name: ElementwiseOp.of(decl) for name, decl in TABLE.items()}
# add, subtract, ..., tanh, ...: every op of the table under its name
globals().update(OPS)


def _bind_operators() -> None:
    """Give Tensor's + - * / direct references to their ops (one lookup less per operator)."""
    import importlib

    tensor_module = importlib.import_module("gpugrad.tensor")  # gpugrad.tensor, the attribute, is gg.tensor()

    tensor_module._ADD, tensor_module._SUB = OPS["add"], OPS["subtract"]
    tensor_module._MUL, tensor_module._DIV = OPS["multiply"], OPS["divide"]


_bind_operators()
