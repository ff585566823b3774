"""What NumPy does with a Tensor, through the protocols NumPy itself uses (no call-site tricks).

* Binary operators: a Tensor has a high ``__array_priority__`` and no ``__array_ufunc__``, so
  ``ndarray * t`` (and ``cupy_array * t``) defers to ``Tensor.__rmul__``: differentiable.
* ``__array_function__`` (``np.sum(t)``, ``np.concatenate([a, t])``, ``np.linalg.norm(t)``): the
  function of the same name in :mod:`gpugrad.numpy` runs, so the result stays differentiable; a
  NumPy function gpugrad.numpy does not provide raises :class:`GraphError` for a value being
  differentiated and computes on plain arrays otherwise.
* ``__array__`` (``np.asarray(t)``, ``np.array(t)``, ``a[:2] = t``, a NumPy ufunc such as
  ``np.exp(t)`` or ``a += t``, any library converting its input): an implicit exit from the graph,
  refused for a value being differentiated (a tensor that requires grad, PyTorch's rule, or that
  carries a forward-mode tangent); a copy otherwise. A conversion to an integer or boolean dtype
  (``np.int64(t)``) is allowed: integers have no gradient.

Explicit exits stay allowed on any tensor, as in JAX: ``.numpy()``, ``.item()``, ``float()``,
``int()``, ``bool()``, ``.tolist()``, ``.detach()`` (``a[0] = t`` is NumPy calling ``float(t)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.autograd.state import STATE
from gpugrad.errors import GraphError
from gpugrad.tensor import Tensor

_WAY_OUT = ("call .detach() (or .numpy()) first to use the value as a constant, or compute with "
            "gpugrad.numpy (import gpugrad.numpy as np) so the gradient flows")


def is_traced(t: Tensor) -> bool:
    """Is ``t`` being differentiated (it requires grad, or carries an active forward-mode tangent)?"""
    if t.requires_grad:
        return True
    tangents = t._tangents
    if tangents:
        active = STATE.fw_levels
        return any(level in active for level in tangents)
    return False


def any_traced(obj: Any) -> bool:
    """Does ``obj`` (a value, or lists/tuples/dicts of them) hold a tensor being differentiated?"""
    if isinstance(obj, Tensor):
        return is_traced(obj)
    if isinstance(obj, (list, tuple)):
        return any(any_traced(o) for o in obj)
    if isinstance(obj, dict):
        return any(any_traced(o) for o in obj.values())
    return False


def to_plain(obj: Any) -> Any:
    """``obj`` with every tensor replaced by a NumPy copy of its data (lists/tuples/dicts kept)."""
    if isinstance(obj, Tensor):
        return obj.numpy()
    if isinstance(obj, list):
        return [to_plain(o) for o in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(to_plain(o) for o in obj)
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def refuse(what: str, hint: str = _WAY_OUT) -> GraphError:
    return GraphError(f"{what} would drop the gradient of a value being differentiated (a tensor that "
                      f"requires grad or carries a forward-mode tangent); {hint}")


def array_conversion(t: Tensor, dtype: Any, copy: Any) -> np.ndarray:
    """``Tensor.__array__``: a host copy, refused for a value being differentiated unless the
    requested dtype is integer or boolean (``np.int64(t)``, like ``int(t)``: no gradient exists)."""
    if is_traced(t) and (dtype is None or np.dtype(dtype).kind not in "biu"):
        raise refuse(f"converting a Tensor of shape {t.shape} to a NumPy array (np.asarray, np.array, a NumPy "
                     "ufunc such as np.exp, a NumPy/SciPy function gpugrad.numpy does not provide, a[...] = t "
                     "or a += t)", "call .detach() (or .numpy()) first to use the value as a constant, or compute "
                     "with gpugrad.numpy (import gpugrad.numpy as np; a = a + t rather than a += t) so the "
                     "gradient flows")
    if copy is False:
        if t.device != "cpu" or (dtype is not None and np.dtype(dtype) != t.dtype):
            raise ValueError("Tensor.__array__: a copy is needed (copy=False was given)")
        view = t.data.view()
        view.flags.writeable = False  # the tensor's own storage: reading only
        return view
    arr = t.numpy()
    return arr if dtype is None else arr.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# __array_ufunc__ / __array_function__


def _namespace(module: str) -> Any:
    import gpugrad.numpy as gnp

    if module == "numpy":
        return gnp
    if module == "numpy.linalg":
        return gnp.linalg
    if module == "numpy.fft":
        return gnp.fft
    return None


def _lookup(ns: Any, name: str) -> Any:
    if ns is None:
        return None
    try:
        return getattr(ns, name)
    except AttributeError:
        return None


def array_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_function__``: gpugrad.numpy's function of the same name."""
    target = _lookup(_namespace(getattr(func, "__module__", "") or ""), func.__name__)
    if target is not None and target is not func:
        return target(*args, **kwargs)
    if any_traced(args) or any_traced(kwargs):
        raise refuse(f"numpy function {getattr(func, '__module__', 'numpy')}.{func.__name__} "
                     "(gpugrad.numpy has no differentiable version of it)")
    return func(*to_plain(args), **to_plain(kwargs))
