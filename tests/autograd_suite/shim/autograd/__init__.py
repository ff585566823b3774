"""HIPS autograd's public names mapped onto gpugrad, so that autograd's own test suite runs
against gpugrad unchanged (tests/test_autograd_suite.py puts this folder first on the path).

``autograd.numpy`` is ``gpugrad.numpy``, ``autograd.scipy`` is ``gpugrad.scipy``,
``autograd.numpy.random`` is NumPy's, and the transforms are gpugrad's (``argnum`` is
autograd's spelling of ``argnums``). autograd's internals (boxes, vspaces, the tracer,
``primitive``/``defvjp``) have no gpugrad counterpart: their names exist so that the test
modules import, and raise NotImplementedError when used.
"""

from __future__ import annotations

import builtins as _builtins
import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _util
import sys as _sys
from typing import Any

_ALIASES = {"autograd.numpy.random": "numpy.random", "autograd.numpy": "gpugrad.numpy",
            "autograd.scipy": "gpugrad.scipy"}


class _AliasLoader(_abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: Any) -> Any:
        return _resolve(self.target)

    def exec_module(self, module: Any) -> None:
        """The target module is already initialised."""


def _resolve(target: str) -> Any:
    """The module ``target``, or an attribute of its parent (``stats.norm`` may be an object)."""
    try:
        return _importlib.import_module(target)
    except ModuleNotFoundError:
        parent, _, name = target.rpartition(".")
        obj = getattr(_importlib.import_module(parent), name, None)
        if obj is None:
            raise
        return obj


class _AliasFinder(_abc.MetaPathFinder):
    """Imports of ``autograd.numpy[...]`` and ``autograd.scipy[...]`` give gpugrad's modules."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        for prefix, real in _ALIASES.items():
            if fullname == prefix or fullname.startswith(prefix + "."):
                mapped = real + fullname[len(prefix):]
                return _util.spec_from_loader(fullname, _AliasLoader(mapped))
        return None


if not any(isinstance(f, _AliasFinder) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _AliasFinder())

from autograd.builtins import dict, isinstance, list, tuple  # noqa: E402, A004
from autograd.differential_operators import (  # noqa: E402
    checkpoint,
    deriv,
    elementwise_grad,
    grad,
    grad_and_aux,
    hessian,
    hessian_tensor_product,
    hessian_vector_product,
    holomorphic_grad,
    jacobian,
    make_ggnvp,
    make_hvp,
    make_jvp,
    make_vjp,
    tensor_jacobian_product,
    value_and_grad,
    vector_jacobian_product,
)
from autograd.tracer import primitive  # noqa: E402

__all__ = ["checkpoint", "deriv", "elementwise_grad", "grad", "grad_and_aux", "hessian", "hessian_tensor_product",
           "hessian_vector_product", "holomorphic_grad", "jacobian", "make_ggnvp", "make_hvp", "make_jvp",
           "make_vjp", "tensor_jacobian_product", "value_and_grad", "vector_jacobian_product", "primitive",
           "dict", "isinstance", "list", "tuple"]
_ = _builtins
