"""How a ``gpugrad.numpy`` name is made from NumPy's and gpugrad's functions.

* :func:`dual`: NumPy's (or CuPy's) own function on plain arrays, gpugrad's differentiable one as
  soon as a Tensor is among the arguments (anywhere in a list or tuple argument too).
* :func:`constant_only`: a function with no gradient (sorting indices, searching, counting):
  computed on the values of tensors that are not being differentiated, refused (GraphError) for
  a value being differentiated, so no gradient is ever dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.numpy._protocol import any_traced, refuse
from gpugrad.tensor import Tensor


def has_tensor(obj: Any) -> bool:
    if isinstance(obj, Tensor):
        return True
    if isinstance(obj, (list, tuple)):
        return any(has_tensor(o) for o in obj)
    return False


def any_tensor(args: tuple, kwargs: dict) -> bool:
    return any(has_tensor(a) for a in args) or any(has_tensor(v) for v in kwargs.values())


def array_module(args: Any) -> Any:
    """CuPy if any (nested) argument is a CuPy array, else NumPy."""
    for a in args:
        if isinstance(a, (list, tuple)):
            found = array_module(a)
            if found is not np:
                return found
        elif type(a).__module__.startswith("cupy"):
            import cupy

            return cupy
    return np


def numpy_function(path: str, args: Any) -> Callable[..., Any]:
    target = array_module(args)
    for part in path.split("."):
        target = getattr(target, part)
    return target


def dual(name: str, gg_fn: Callable[..., Any], np_path: str | None = None,
         sequence: bool = False) -> Callable[..., Any]:
    """``numpy.<np_path>`` on plain arrays, ``gg_fn`` when a Tensor is among the arguments.

    A list or tuple argument holding tensors is stacked into one differentiable tensor first
    (``np.sum([x, 2 * x])``), except the first argument of a ``sequence`` function
    (concatenate, stack, ...), which takes the sequence itself.
    """
    path = np_path or name

    def fn(*args: Any, **kwargs: Any) -> Any:
        if not any_tensor(args, kwargs):
            return numpy_function(path, args)(*args, **kwargs)
        args = tuple(a if (sequence and i == 0) or not isinstance(a, (list, tuple)) or not has_tensor(a)
                     else stack_nested(a) for i, a in enumerate(args))
        return gg_fn(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    doc = getattr(gg_fn, "__doc__", None) or ""
    fn.__doc__ = f"``numpy.{path}``, differentiable on gpugrad tensors." + (f"\n\n{doc}" if doc else "")
    fn.differentiable = True  # type: ignore[attr-defined]
    return fn


def constant_only(name: str, np_path: str | None = None) -> Callable[..., Any]:
    """``numpy.<np_path>``: no gradient exists, so a value being differentiated is refused."""
    path = np_path or name

    def fn(*args: Any, **kwargs: Any) -> Any:
        if any_traced(args) or any_traced(kwargs):
            raise refuse(f"gpugrad.numpy.{name} (it has no gradient) applied to a tensor",
                         "apply it to x.detach() (or x.numpy()) if a constant result is what you want")
        if not any_tensor(args, kwargs):
            return numpy_function(path, args)(*args, **kwargs)
        device = next(_tensors(args), None).device  # type: ignore[union-attr]
        from gpugrad.backends import backend_for

        xp = backend_for(device).xp
        target = xp
        for part in path.split("."):
            target = getattr(target, part)
        result = target(*_datas(args), **_datas(kwargs))
        return _wrap_result(result, device)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"``numpy.{path}``: not differentiable; refuses (GraphError) a tensor being "
                  "differentiated, computes on the values of any other tensor.")
    fn.differentiable = False  # type: ignore[attr-defined]
    return fn


def _tensors(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)


def _datas(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.data
    if isinstance(obj, list):
        return [_datas(o) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_datas(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _datas(v) for k, v in obj.items()}
    return obj


def _wrap_result(result: Any, device: str) -> Any:
    from gpugrad.tensor import make_tensor

    if isinstance(result, tuple):
        return tuple(_wrap_result(r, device) for r in result)
    if isinstance(result, list):
        return [_wrap_result(r, device) for r in result]
    if hasattr(result, "shape") and hasattr(result, "dtype") and not isinstance(result, np.generic):
        return make_tensor(result, device)
    return result


def stack_nested(obj: Any) -> Tensor:
    """A nested list/tuple holding tensors (and numbers or arrays) as one differentiable tensor,
    as ``numpy.array`` would build it."""
    import gpugrad.ops as ops

    like = next(_tensors(obj))
    dtype = np.result_type(*[t.dtype for t in _tensors(obj)], *_plain_dtypes(obj))
    parts = []
    for o in obj:
        if isinstance(o, Tensor):
            parts.append(o)
        elif isinstance(o, (list, tuple)) and has_tensor(o):
            parts.append(stack_nested(o))
        else:
            parts.append(_constant(o, like))
    parts = [p if p.dtype == dtype else ops.astype(p, dtype) for p in parts]
    return ops.stack(parts, 0)


def _plain_dtypes(obj: Any) -> list:
    """The dtypes NumPy would give the plain (non-tensor) leaves of ``obj`` (Python numbers weak)."""
    out = []
    for o in obj:
        if isinstance(o, Tensor):
            continue
        if isinstance(o, (list, tuple)):
            out += _plain_dtypes(o)
        elif isinstance(o, (bool, int, float, complex)):
            out.append(type(o)(0))  # weak: a Python float does not upcast float32
        else:
            out.append(np.asarray(o).dtype)
    return out


def _constant(value: Any, like: Tensor) -> Tensor:
    from gpugrad.factories import as_tensor

    return as_tensor(np.asarray(value), device=like.device)
