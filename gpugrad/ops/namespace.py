"""The tensor namespace handed to op rules when gradients must themselves be differentiable.

It is :mod:`gpugrad.ops`: the same names the backends provide on raw arrays (``sum``,
``sum_to``, ``broadcast_to``, ``getitem``, ``index_scatter``, ``ew_vjp`` ...), as
differentiable functions of tensors.
"""

from __future__ import annotations

from typing import Any

_NAMESPACE: Any = None


def tensor_namespace() -> Any:
    global _NAMESPACE
    if _NAMESPACE is None:
        import gpugrad.ops as ops

        _NAMESPACE = ops
    return _NAMESPACE
