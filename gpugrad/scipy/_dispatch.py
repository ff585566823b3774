"""SciPy's function on plain values, gpugrad's on tensors (the rule of ``gpugrad.numpy``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from gpugrad.ops.special import scipy_module
from gpugrad.tensor import Tensor


def _leaves(obj: Any, depth: int = 0) -> Any:
    yield obj
    if depth < 3 and isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _leaves(item, depth + 1)
    elif depth < 3 and isinstance(obj, dict):
        for item in obj.values():
            yield from _leaves(item, depth + 1)


def _kind(args: tuple, kwargs: dict) -> str:
    kind = "plain"
    for leaf in _leaves((args, kwargs)):
        if isinstance(leaf, Tensor):
            return "tensor"
        if type(leaf).__module__.startswith("cupy"):
            kind = "cupy"
    return kind


def _to_tensors(obj: Any) -> Any:
    from gpugrad.factories import as_tensor

    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_to_tensors(o) for o in obj)
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return as_tensor(obj)
    return obj


def _to_arrays(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.data[()] if obj.ndim == 0 and obj.device == "cpu" else obj.data
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_arrays(o) for o in obj)
    return obj


def on_arrays(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """``fn`` (written for tensors) on arrays: the arrays become constant tensors, the results arrays."""
    return _to_arrays(fn(*_to_tensors(args), **{k: _to_tensors(v) for k, v in kwargs.items()}))


def dual(scipy_name: str | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A function that is ``scipy.<scipy_name>`` on NumPy arrays and numbers and ``fn`` on gpugrad
    Tensors (anywhere in the arguments, also inside lists); CuPy arrays go through ``fn`` too.
    Without a SciPy counterpart of the same signature (``scipy_name=None``) arrays always take ``fn``."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        kind = _kind(args, kwargs)
        if kind == "tensor":
            return fn(*args, **kwargs)
        if kind == "cupy" or scipy_name is None:
            return on_arrays(fn, args, kwargs)
        module, _, path = scipy_name.partition(".")
        target = scipy_module(module)
        for part in path.split("."):
            target = getattr(target, part)
        return target(*args, **kwargs)

    call.__doc__ = (fn.__doc__ or "").strip() + (
        f"\n\nOn NumPy arrays and numbers this is ``scipy.{scipy_name}`` itself." if scipy_name else "")
    return call
