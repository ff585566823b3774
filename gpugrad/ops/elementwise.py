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

from gpugrad.fusion import lazy as _fusion  # (a module: fusion.lazy imports the ops)
from gpugrad.ops.base import Op
from gpugrad.table.elementwise import TABLE, Elementwise

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

    # ``run(args, params)``: apply the op to validated operands (Tensor's operators call it
    # directly). It is gpugrad.fusion.lazy.run (bound at the end of this module), which records
    # a pending tensor of a fused chain or applies the op at once.

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
if hasattr(_fusion, "run"):  # (else fusion.lazy is being loaded first, and binds it at its end)
    ElementwiseOp.run = _fusion.run
