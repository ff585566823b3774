"""CuPy's array functions on the emulated device, computed by NumPy on device memory.

Every function is one of real CuPy's (cupy_api.json) and is bound to CuPy's signature before it
runs, so a call CuPy would reject is rejected here too. Arguments follow CuPy's rules: device
arrays, Python and NumPy scalars, and sequences where NumPy takes them; a NumPy array passed
where CuPy wants a device array is a TypeError ("Unsupported type"), except in the functions
that copy host data to the device (``asarray``, ``array``, ...). Results are device arrays (0-d
where NumPy gives a scalar); a result that is a view of an argument shares its memory. Each
call that computes counts as one kernel launch with the bytes of its array arguments and
results (views, allocations and ``zeros`` launch nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.testing.cuda_emulator import _api
from gpugrad.testing.cuda_emulator._array import _PY_SCALARS, ndarray
from gpugrad.testing.cuda_emulator._device import COUNTERS, count_launch, count_sync, distinct_bytes

# module name -> {function name: callable}; filled by the module builder (_modules.py)
REGISTRY: dict[str, dict[str, Any]] = {}

# Functions that read host data (NumPy arrays, lists) and copy it to the device.
HOST_INPUT = {"asarray", "array", "asanyarray", "ascontiguousarray", "asfortranarray", "copy"}
# Creation from a shape: no device inputs.
CREATION = {"zeros": 0, "empty": 0, "ones": 1, "full": 1, "arange": 1, "linspace": 1, "logspace": 1, "eye": 1,
            "identity": 1, "tri": 1, "indices": 1, "fromfunction": 1}
# Plain NumPy objects in CuPy too (dtypes, type queries): passed through untouched.
PASSTHROUGH = {"dtype", "finfo", "iinfo", "result_type", "promote_types", "can_cast", "min_scalar_type",
               "issubdtype", "isscalar", "ndim", "shape", "size", "common_type", "obj2sctype",
               "typename", "mintypecode", "broadcast_shapes", "get_printoptions", "set_printoptions",
               "printoptions", "base_repr", "binary_repr"}


def _unsupported(x: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(x)}")


def _device_operand(x: Any, ufunc: bool) -> Any:
    if isinstance(x, ndarray):
        return x._np
    if isinstance(x, (*_PY_SCALARS, np.generic)):
        return x
    if x is None and not ufunc:
        return None
    raise _unsupported(x)


def _convert(x: Any, host_ok: bool, arrays: list) -> Any:
    """An argument as NumPy takes it; device arrays are collected in ``arrays``."""
    if isinstance(x, ndarray):
        arrays.append(x)
        return x._np
    if isinstance(x, np.ndarray):
        if host_ok:
            COUNTERS.h2d_bytes += x.nbytes
            return x
        raise _unsupported(x)
    if isinstance(x, (list, tuple)):
        items = [_convert(v, host_ok, arrays) for v in x]
        return items if isinstance(x, list) else tuple(items)
    return x


def _owner(view: np.ndarray, arrays: list) -> ndarray | None:
    """The device array whose memory ``view`` lies in, if any (then it is a view, not a result)."""
    if not arrays or view.base is None:
        return None
    ptr = view.__array_interface__["data"][0]
    for a in arrays:
        m = a._mem
        if m.ptr <= ptr < m.ptr + max(m.size, 1):
            return a
    return None


def wrap(r: Any, arrays: list, new: list) -> Any:
    """NumPy result ``r`` as device arrays: views of ``arrays`` stay views; new results are
    copied to fresh device memory and listed in ``new``."""
    if isinstance(r, np.ndarray):
        owner = _owner(r, arrays)
        if owner is not None:
            return owner._view_of(r)
        out = ndarray._empty(r.shape, r.dtype, fill=None)
        np.copyto(out._np, r)
        new.append(out)
        return out
    if isinstance(r, np.generic):
        out = ndarray._empty((), r.dtype, fill=None)
        out._np[()] = r
        new.append(out)
        return out
    if isinstance(r, tuple):
        return tuple(wrap(v, arrays, new) for v in r)
    if isinstance(r, list):
        return [wrap(v, arrays, new) for v in r]
    return r


def _account(arrays: list, new: list, launches: int = 1) -> None:
    if new or launches > 1:
        for _ in range(max(launches, 1) - 1):
            count_launch(0)
        count_launch(sum(distinct_bytes(a._np) for a in arrays) + sum(o.nbytes for o in new))


def run(np_func: Callable, args: tuple, kwargs: dict, host_ok: bool = False) -> Any:
    arrays: list = []
    cargs = _convert(args, host_ok, arrays)
    ckw = {k: _convert(v, host_ok, arrays) for k, v in kwargs.items()}
    out = kwargs.get("out")
    with np.errstate(all="ignore"):
        r = np_func(*cargs, **ckw)
    new: list = []
    if out is not None and isinstance(out, ndarray):
        count_launch(sum(distinct_bytes(a._np) for a in arrays))
        return out
    result = wrap(r, arrays, new)
    _account(arrays, new)
    return result


def apply_ufunc(np_ufunc: Any, name: str, operands: tuple, kwargs: dict) -> Any:
    """A CuPy ufunc: operands are device arrays or scalars (NumPy arrays and lists are refused)."""
    ops = [_device_operand(x, ufunc=True) for x in operands]
    arrays = [x for x in operands if isinstance(x, ndarray)]
    kw = dict(kwargs)
    out = kw.pop("out", None)
    outs: tuple = ()
    if out is not None:
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if not isinstance(o, ndarray):
                raise TypeError(f"Output arrays must be cupy.ndarray, got {type(o)}")
        kw["out"] = tuple(o._np for o in outs) if isinstance(out, tuple) else out._np
    with np.errstate(all="ignore"):
        r = np_ufunc(*ops, **kw)
    if outs:
        count_launch(sum(distinct_bytes(a._np) for a in arrays) + sum(o.nbytes for o in outs))
        return out
    new: list = []
    result = wrap(r, [], new)
    count_launch(sum(distinct_bytes(a._np) for a in arrays) + sum(o.nbytes for o in new))
    return result


def numpy_ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict) -> Any:
    """``__array_ufunc__``: NumPy's ufunc on device arrays runs CuPy's, as in CuPy."""
    name = ufunc.__name__
    if not _api.has("cupy", name):
        return NotImplemented
    if method == "__call__":
        return apply_ufunc(ufunc, name, inputs, kwargs)
    if method == "reduce":
        return run(ufunc.reduce, inputs, kwargs)
    return NotImplemented


_NUMPY_MODULES = {"numpy": "cupy", "numpy.linalg": "cupy.linalg", "numpy.fft": "cupy.fft"}


def numpy_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """``__array_function__``: NumPy's function on device arrays runs CuPy's, as in CuPy."""
    module = _NUMPY_MODULES.get(getattr(func, "__module__", "") or "", "cupy")
    fn = REGISTRY.get(module, {}).get(func.__name__)
    if fn is None:
        return NotImplemented
    return fn(*args, **kwargs)


def passthrough(module: str, name: str, np_func: Callable) -> Callable:
    """A NumPy host function that CuPy re-exports for device arrays too (dtype and shape
    queries): it reads only metadata, so it sees the arrays' host views, and launches nothing."""
    def fn(*args: Any, **kwargs: Any) -> Any:
        arrays: list = []
        return np_func(*_convert(args, False, arrays), **{k: _convert(v, False, arrays) for k, v in kwargs.items()})

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = module
    fn.__doc__ = np_func.__doc__
    return fn


def delegate(module: str, name: str, np_func: Callable) -> Callable:
    """CuPy's ``module.name``, bound to its real signature, computed by ``np_func``."""
    entry = _api.module_names(module)[name]
    host_ok = name in HOST_INPUT
    qual = f"{module}.{name}"

    if entry["kind"] == "ufunc":
        def fn(*args: Any, **kwargs: Any) -> Any:
            bound = _api.bind(entry, qual, args, kwargs)
            n = entry["nin"]
            operands = args[:n]
            kw = {k: v for k, v in bound.items() if k not in [p[0] for p in entry["params"][:n]]}
            kw = {k: v for k, v in kw.items() if v is not None or k != "out"}
            return apply_ufunc(np_func, name, operands, kw)
    elif name in CREATION:
        launches = CREATION[name]

        def fn(*args: Any, **kwargs: Any) -> Any:
            _api.bind(entry, qual, args, kwargs)
            r = np_func(*args, **kwargs)
            out = ndarray._empty(r.shape, r.dtype, fill=None)
            np.copyto(out._np, r)
            if launches:
                count_launch(out.nbytes)
            return out
    else:
        def fn(*args: Any, **kwargs: Any) -> Any:
            _api.bind(entry, qual, args, kwargs)
            return run(np_func, args, kwargs, host_ok)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = module
    fn.__doc__ = f"CuPy's {qual} on the emulated device (computed by NumPy's {np_func.__name__})."
    return fn


# ---- functions that are not NumPy's -------------------------------------------------------------
def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, *, blocking: bool = True) -> np.ndarray:
    if isinstance(a, ndarray):
        return a.get(stream, order, out, blocking)
    if out is not None:
        np.copyto(out, a)
        return out
    return np.array(a, order=order, copy=False) if isinstance(a, np.ndarray) else np.asarray(a, order=order)


def asarray(a: Any, dtype: Any = None, order: Any = None, *, copy: Any = None, blocking: bool = False) -> ndarray:
    if isinstance(a, ndarray):
        if (dtype is None or np.dtype(dtype) == a.dtype) and copy is not True:
            return a
        return a.astype(dtype or a.dtype, copy=True)
    return ndarray._from_host(np.asarray(a, dtype=dtype, order=order))


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False, ndmin: int = 0,
          *, blocking: bool = False) -> ndarray:
    if isinstance(obj, ndarray):
        r = obj.astype(dtype or obj.dtype, copy=bool(copy) or (dtype is not None and np.dtype(dtype) != obj.dtype))
        while r.ndim < ndmin:
            r = r[None]
        return r
    if isinstance(obj, (list, tuple)) and any(isinstance(v, ndarray) for v in _flatten(obj)):
        # a sequence holding device arrays: CuPy concatenates on the device
        parts = [v if isinstance(v, ndarray) else asarray(v) for v in obj]
        return REGISTRY["cupy"]["stack"](parts).astype(dtype or parts[0].dtype, copy=False)
    return ndarray._from_host(np.array(obj, dtype=dtype, order=order, ndmin=ndmin))


def _flatten(seq: Any) -> list:
    out = []
    for v in seq:
        if isinstance(v, (list, tuple)):
            out += _flatten(v)
        else:
            out.append(v)
    return out


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    if not isinstance(a, ndarray):
        return ndarray._from_host(np.ascontiguousarray(a, dtype=dtype))
    if a._np.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return a.astype(dtype or a.dtype, order="C", copy=True)


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return ndarray._empty(_shape(shape), np.dtype(dtype), order)


def empty_like(prototype: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None) -> ndarray:
    if not isinstance(prototype, ndarray):
        raise _unsupported(prototype)
    return ndarray._empty(_shape(prototype.shape if shape is None else shape), np.dtype(dtype or prototype.dtype))


def zeros(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return ndarray._empty(_shape(shape), np.dtype(dtype), order, fill=0)  # a memset, not a kernel


def zeros_like(a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None) -> ndarray:
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    return ndarray._empty(_shape(a.shape if shape is None else shape), np.dtype(dtype or a.dtype), fill=0)


def _like(fill: Callable) -> Callable:
    def fn(a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None) -> ndarray:
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        out = ndarray._empty(_shape(a.shape if shape is None else shape), np.dtype(dtype or a.dtype), fill=None)
        fill(out._np)
        count_launch(out.nbytes)
        return out

    return fn


ones_like = _like(lambda v: v.fill(1))


def full_like(a: Any, fill_value: Any, dtype: Any = None, order: str = "K", subok: Any = None,
              shape: Any = None) -> ndarray:
    return _like(lambda v: v.fill(fill_value))(a, dtype, order, subok, shape)


def _shape(shape: Any) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def get_array_module(*args: Any) -> Any:
    import sys

    for a in args:
        if isinstance(a, ndarray):
            return sys.modules["cupy"]
    return np


def scatter_add(a: Any, slices: Any, value: Any) -> None:
    """``cupyx.scatter_add``: a[slices] += value with repeated indices accumulating."""
    from gpugrad.testing.cuda_emulator._array import _prepare_index

    if not isinstance(a, ndarray):
        raise _unsupported(a)
    index, _, mask = _prepare_index(slices)
    if mask:
        count_sync()
    v = value._np if isinstance(value, ndarray) else value
    if isinstance(value, np.ndarray):
        raise _unsupported(value)
    np.add.at(a._np, index, v)
    count_launch(distinct_bytes(a._np) + (value.nbytes if isinstance(value, ndarray) else 0))


def rsqrt(x: Any, out: Any = None, **kw: Any) -> Any:
    return apply_ufunc(lambda v, **k: np.reciprocal(np.sqrt(v), **k), "rsqrt", (x,), dict(kw, out=out) if out
                       is not None else kw)


def as_strided(x: Any, shape: Any = None, strides: Any = None) -> ndarray:
    if not isinstance(x, ndarray):
        raise _unsupported(x)
    return x._view_of(np.lib.stride_tricks.as_strided(x._np, shape, strides))


CUSTOM: dict[str, dict[str, Callable]] = {
    "cupy": {"asnumpy": asnumpy, "asarray": asarray, "array": array, "asanyarray": asarray,
             "ascontiguousarray": ascontiguousarray, "empty": empty, "empty_like": empty_like, "zeros": zeros,
             "zeros_like": zeros_like, "ones_like": ones_like, "full_like": full_like,
             "get_array_module": get_array_module},
    "cupyx": {"scatter_add": scatter_add, "rsqrt": rsqrt},
    "cupy.lib.stride_tricks": {"as_strided": as_strided},
}


# ---- ndarray methods: NumPy's, bound to CuPy's method signatures ---------------------------------
def _method(name: str, np_name: str | None = None) -> Callable:
    def m(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        bound = _api.bind_method("cupy.ndarray", name, args, kwargs)
        fn = getattr(np, np_name or name)
        return run(fn, (self,), bound)

    m.__name__ = m.__qualname__ = name
    return m


_REDUCTIONS = ["sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "all", "any", "cumsum",
               "cumprod", "ptp", "trace"]
_OTHERS = {"take": None, "repeat": None, "clip": None, "conj": "conjugate", "conjugate": None, "round": None,
           "dot": None, "sort": None, "argsort": None, "nonzero": None, "searchsorted": None,
           "argpartition": None, "partition": None, "compress": None, "choose": None}
for _n in _REDUCTIONS:
    setattr(ndarray, _n, _method(_n))
for _n, _np_name in _OTHERS.items():
    setattr(ndarray, _n, _method(_n, _np_name))


def _sort_inplace(self: ndarray, axis: int = -1, kind: Any = None) -> None:
    self._np.sort(axis=axis)
    count_launch(2 * self.nbytes)


def _nonzero(self: ndarray) -> tuple:
    count_sync()  # the number of results is known on the host only after a copy
    return run(np.nonzero, (self,), {})


def _searchsorted(self: ndarray, v: Any, side: str = "left", sorter: Any = None) -> Any:
    return run(np.searchsorted, (self, v), {"side": side, "sorter": sorter})


def _scatter_add(self: ndarray, slices: Any, value: Any) -> None:
    scatter_add(self, slices, value)


ndarray.sort = _sort_inplace
ndarray.nonzero = _nonzero
ndarray.searchsorted = _searchsorted
ndarray.scatter_add = _scatter_add
del _n, _np_name
