"""``cupy.ndarray`` on the emulated device: an array in emulated device memory.

It is not a NumPy array (``isinstance(a, numpy.ndarray)`` is False, ``np.asarray(a)`` raises
TypeError as CuPy's does) and behaves as CuPy's: results of reductions and integer indexing are
0-d arrays, mixing in a NumPy array is a TypeError, a copy to the host is explicit (``get()``,
``cupy.asnumpy``) and counted as a synchronisation, as are ``item()``, ``float()``, ``bool()``
and printing. Computation on it runs NumPy on a view of the device memory, so values are
NumPy's; gpugrad's own kernels run through :mod:`._kernels` on the same memory.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from gpugrad.testing.cuda_emulator import _api, _device
from gpugrad.testing.cuda_emulator._device import COUNTERS, Memory, count_launch, count_sync, distinct_bytes

_PY_SCALARS = (bool, int, float, complex)
_CUPY_DTYPES = set("?bhilqBHILQefdFD")


def _check_dtype(dt: np.dtype, what: str) -> np.dtype:
    if dt.char not in _CUPY_DTYPES and dt.kind not in "V":
        raise ValueError(f"{what}: unsupported dtype {dt} (CuPy arrays hold booleans, integers, floats and "
                         "complex numbers)")
    return dt


class _Device:
    """``cupy.cuda.Device`` of the one emulated GPU (also what ``ndarray.device`` returns)."""

    def __init__(self, device: Any = None) -> None:
        idx = 0 if device is None else int(device)
        if idx != 0:
            from gpugrad.testing.cuda_emulator._cuda import CUDARuntimeError

            raise CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal ({idx}; the emulated machine "
                                   "has 1 GPU)")
        self._id = idx

    @property
    def id(self) -> int:  # noqa: A003
        return self._id

    @property
    def compute_capability(self) -> str:
        return _device.COMPUTE_CAPABILITY

    @property
    def mem_info(self) -> tuple[int, int]:
        return (_device.TOTAL_MEMORY - _device.live_bytes[0], _device.TOTAL_MEMORY)

    def use(self) -> None:
        return None

    def synchronize(self) -> None:
        count_sync()

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __int__(self) -> int:
        return self._id

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Device) and other._id == self._id

    def __hash__(self) -> int:
        return hash(("emulated cuda device", self._id))

    def __repr__(self) -> str:
        return f"<CUDA Device {self._id}>"


_DEVICE0 = _Device(0)


class MemoryPointer:
    """``cupy.cuda.MemoryPointer``: a device address inside an allocation."""

    def __init__(self, mem: Any, offset: int) -> None:
        self.mem = mem
        self.ptr = mem.ptr + int(offset)
        self.device_id = 0

    @property
    def device(self) -> _Device:
        return _DEVICE0

    def __int__(self) -> int:
        return self.ptr

    def __add__(self, offset: int) -> MemoryPointer:
        return MemoryPointer(self.mem, self.ptr - self.mem.ptr + int(offset))


class _Flags:
    def __init__(self, a: np.ndarray, owndata: bool) -> None:
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = owndata

    def __getitem__(self, key: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[key]


class ndarray:  # noqa: N801 (CuPy's name)
    """An array on the emulated CUDA device (see the module docstring)."""

    __slots__ = ("_mem", "_np", "_base", "__weakref__")
    __module__ = "cupy"  # what type(a).__module__ says for a real cupy.ndarray
    __array_priority__ = 100

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C") -> None:
        dt = _check_dtype(np.dtype(dtype), "cupy.ndarray")
        shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(int(s) for s in shape)
        if memptr is None:
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            mem = Memory(nbytes)
            offset = 0
            base = None
        else:
            mem = memptr.mem
            offset = memptr.ptr - mem.ptr
            base = None
        view = np.ndarray(shape, dt, buffer=mem.buffer, offset=offset, strides=strides, order=order)
        self._mem = mem
        self._np = view
        self._base = base

    # ---- construction helpers (not part of CuPy's API) -------------------------------------------
    @classmethod
    def _wrap(cls, mem: Memory, view: np.ndarray, base: ndarray | None) -> ndarray:
        a = object.__new__(cls)
        a._mem = mem
        a._np = view
        a._base = base
        return a

    @classmethod
    def _empty(cls, shape: tuple, dtype: np.dtype, order: str = "C", fill: int | None = 0xFF) -> ndarray:
        dtype = _check_dtype(np.dtype(dtype), "cupy")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        mem = Memory(nbytes, fill)
        view = np.ndarray(shape, dtype, buffer=mem.buffer, order="F" if order == "F" else "C")
        return cls._wrap(mem, view, None)

    @classmethod
    def _from_host(cls, values: np.ndarray) -> ndarray:
        """A new device array holding a copy of NumPy array ``values`` (a host-to-device copy)."""
        values = np.asarray(values)
        _check_dtype(values.dtype, "cupy.asarray")
        out = cls._empty(values.shape, values.dtype, fill=None)
        np.copyto(out._np, values)
        COUNTERS.h2d_bytes += values.nbytes
        return out

    def _view_of(self, view: np.ndarray) -> ndarray:
        """``view`` (a NumPy view of this array's memory) as a device array sharing it."""
        return ndarray._wrap(self._mem, view, self._base if self._base is not None else self)

    def _ptr(self) -> int:
        return self._np.__array_interface__["data"][0]

    # ---- attributes ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._np.shape

    @shape.setter
    def shape(self, value: Any) -> None:
        self._np.shape = value

    @property
    def dtype(self) -> np.dtype:
        return self._np.dtype

    @property
    def ndim(self) -> int:
        return self._np.ndim

    @property
    def size(self) -> int:
        return self._np.size

    @property
    def itemsize(self) -> int:
        return self._np.itemsize

    @property
    def nbytes(self) -> int:
        return self._np.nbytes

    @property
    def strides(self) -> tuple:
        return self._np.strides

    @property
    def flags(self) -> _Flags:
        return _Flags(self._np, self._base is None)

    @property
    def _c_contiguous(self) -> bool:
        return bool(self._np.flags.c_contiguous)

    @property
    def _f_contiguous(self) -> bool:
        return bool(self._np.flags.f_contiguous)

    @property
    def base(self) -> ndarray | None:
        return self._base

    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self._mem, self._ptr() - self._mem.ptr)

    @property
    def device(self) -> _Device:
        return _DEVICE0

    @property
    def T(self) -> ndarray:  # noqa: N802
        return self._view_of(self._np.T)

    @property
    def mT(self) -> ndarray:  # noqa: N802
        if self.ndim < 2:
            raise ValueError("matrix transpose with ndim < 2 is undefined")
        return self._view_of(np.swapaxes(self._np, -1, -2))

    @property
    def real(self) -> ndarray:
        return self._view_of(self._np.real) if self.dtype.kind == "c" else self

    @property
    def imag(self) -> ndarray:
        if self.dtype.kind == "c":
            return self._view_of(self._np.imag)
        return _zeros(self.shape, self.dtype)

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "descr": self.dtype.descr,
                "data": (self._ptr(), False), "version": 3,
                "strides": None if self._np.flags.c_contiguous else self.strides}

    # ---- host transfers (synchronising) ------------------------------------------------------
    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True) -> np.ndarray:
        """A NumPy copy on the host (a device-to-host copy: a synchronisation)."""
        count_sync()
        COUNTERS.d2h_bytes += self.nbytes
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            np.copyto(out, self._np)
            return out
        return np.array(self._np, order=order, copy=True)

    def set(self, arr: Any, stream: Any = None) -> None:  # noqa: A003
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        np.copyto(self._np, arr, casting="no")
        COUNTERS.h2d_bytes += arr.nbytes

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return self.get().item()

    def tolist(self) -> Any:
        return self.get().tolist()

    def tobytes(self, order: str = "C") -> bytes:
        return self.get().tobytes(order)

    def __float__(self) -> float:
        return float(self.get())

    def __int__(self) -> int:
        return int(self.get())

    def __complex__(self) -> complex:
        return complex(self.get())

    def __bool__(self) -> bool:
        if self.size == 0:
            raise ValueError("The truth value of an empty array is ambiguous.")
        if self.size > 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        return bool(self.get())

    def __repr__(self) -> str:
        return repr(self.get())

    def __str__(self) -> str:
        return str(self.get())

    def __format__(self, spec: str) -> str:
        return format(self.get(), spec)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
                        "NumPy array explicitly.")

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __copy__(self) -> ndarray:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> ndarray:
        return self.copy()

    def __reduce__(self) -> Any:
        raise TypeError("emulated device arrays cannot be pickled; use .get()")

    __hash__ = None  # type: ignore[assignment]

    # ---- NumPy's protocols: run NumPy functions on device arrays as CuPy does ------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        from gpugrad.testing.cuda_emulator import _functions

        return _functions.numpy_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        from gpugrad.testing.cuda_emulator import _functions

        return _functions.numpy_function(func, args, kwargs)

    # ---- indexing ----------------------------------------------------------------------------
    def __getitem__(self, slices: Any) -> ndarray:
        index, advanced, mask = _prepare_index(slices)
        if mask:
            count_sync()  # CuPy counts the selected elements on the host (cupy.nonzero)
        with np.errstate(all="ignore"):
            r = self._np[index]
        if not advanced and isinstance(r, np.ndarray) and r.base is not None:
            return self._view_of(r)
        out = _result(r)
        count_launch(distinct_bytes(self._np) + out.nbytes)
        return out

    def __setitem__(self, slices: Any, value: Any) -> None:
        index, _, mask = _prepare_index(slices)
        if mask:
            count_sync()
        if isinstance(value, ndarray):
            v = value._np
        elif isinstance(value, np.ndarray):
            v = value  # CuPy copies host values to the device first
            COUNTERS.h2d_bytes += value.nbytes
        elif isinstance(value, (*_PY_SCALARS, np.generic)):
            v = value
        else:
            v = np.asarray(value)
            COUNTERS.h2d_bytes += v.nbytes
        with np.errstate(all="ignore"):
            self._np[index] = v
        count_launch(distinct_bytes(self._np[index]) if not isinstance(self._np[index], np.generic) else 1)

    # ---- methods ------------------------------------------------------------------------------
    def copy(self, order: str = "C") -> ndarray:
        out = ndarray._empty(self.shape, self.dtype, order=order, fill=None)
        np.copyto(out._np, self._np)
        count_launch(distinct_bytes(self._np) + out.nbytes)
        return out

    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None,
               copy: bool = True) -> ndarray:
        dt = _check_dtype(np.dtype(dtype), "astype")
        if not copy and dt == self.dtype:
            return self
        out = ndarray._empty(self.shape, dt, order="F" if order == "F" else "C", fill=None)
        with np.errstate(all="ignore"):
            np.copyto(out._np, self._np, casting=casting or "unsafe")
        count_launch(distinct_bytes(self._np) + out.nbytes)
        return out

    def view(self, dtype: Any = None, type: Any = None) -> ndarray:  # noqa: A002
        if type is not None and type is not ndarray:
            raise TypeError("cupy.ndarray.view: type must be cupy.ndarray")
        return self._view_of(self._np.view() if dtype is None else self._np.view(np.dtype(dtype)))

    def fill(self, value: Any) -> None:
        if isinstance(value, ndarray):
            value = value._np
        elif isinstance(value, np.ndarray):
            raise TypeError(f"Unsupported type {type(value)}")
        self._np.fill(value)
        count_launch(self.nbytes)

    def reshape(self, *shape: Any, order: str = "C", copy: Any = None) -> ndarray:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _reshape(self, shape, order)

    def ravel(self, order: str = "C") -> ndarray:
        return _reshape(self, (-1,), order)

    def flatten(self, order: str = "C") -> ndarray:
        return _reshape(self, (-1,), order).copy() if self._np.flags.c_contiguous else _reshape(self, (-1,), order)

    def transpose(self, *axes: Any) -> ndarray:
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return self._view_of(self._np.transpose(axes or None))

    def swapaxes(self, axis1: int, axis2: int) -> ndarray:
        return self._view_of(self._np.swapaxes(axis1, axis2))

    def squeeze(self, axis: Any = None) -> ndarray:
        return self._view_of(self._np.squeeze(axis))

    def diagonal(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> ndarray:
        return self._view_of(self._np.diagonal(offset, axis1, axis2))


def _reshape(a: ndarray, shape: tuple, order: str) -> ndarray:
    r = np.reshape(a._np, shape, order=order)
    if r.base is not None and np.shares_memory(r, a._np):
        return a._view_of(r)
    out = _result(r)
    count_launch(distinct_bytes(a._np) + out.nbytes)
    return out


def _result(r: Any) -> ndarray:
    """A new device array holding NumPy result ``r`` (a NumPy scalar becomes a 0-d array)."""
    r = np.asarray(r)
    out = ndarray._empty(r.shape, r.dtype, fill=None)
    np.copyto(out._np, r)
    return out


def _zeros(shape: tuple, dtype: np.dtype) -> ndarray:
    return ndarray._empty(shape, dtype, fill=0)


def _index_item(s: Any) -> tuple[Any, bool, bool]:
    """One index item as NumPy takes it: (item, is advanced, is a boolean mask)."""
    if s is None or s is Ellipsis or isinstance(s, slice):
        return s, False, False
    if isinstance(s, ndarray):
        if s.dtype.kind not in "biu":
            raise IndexError(f"arrays used as indices must be of integer or boolean type. (actual: {s.dtype.type})")
        return s._np, True, s.dtype.kind == "b"
    if isinstance(s, (bool, np.bool_)):
        return s, True, True
    if isinstance(s, (numbers.Integral, np.integer)):
        return s, False, False
    # lists, tuples and NumPy arrays: CuPy copies them to the device first
    arr = np.asarray(s)
    if isinstance(s, (list, tuple)) and arr.size == 0:
        arr = arr.astype(np.int32)
    if arr.dtype.kind not in "biu":
        raise IndexError("only integers, slices (`:`), ellipsis (`...`),numpy.newaxis (`None`) and integer or "
                         "boolean arrays are valid indices")
    COUNTERS.h2d_bytes += arr.nbytes
    return arr, True, arr.dtype.kind == "b"


def _prepare_index(slices: Any) -> tuple[Any, bool, bool]:
    items = slices if isinstance(slices, tuple) else (slices,)
    out = []
    advanced = mask = False
    for s in items:
        v, adv, m = _index_item(s)
        out.append(v)
        advanced |= adv
        mask |= m
    return (tuple(out) if isinstance(slices, tuple) else out[0]), advanced, mask


# ---- arithmetic operators: CuPy's ufuncs ---------------------------------------------------------
def _defer(x: Any, y: Any) -> bool:
    """CuPy's rule for ``x <op> y``: leave it to y's reflected operator when y opts out of
    NumPy's ufuncs (``__array_ufunc__ = None``) or, without that attribute, outranks x."""
    try:
        y_ufunc = y.__array_ufunc__
    except AttributeError:
        return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)
    return y_ufunc is None


def _binary(name: str, reflected: bool = False) -> Any:
    def op(self: ndarray, other: Any) -> Any:
        from gpugrad.testing.cuda_emulator import _functions

        if not reflected and not isinstance(other, ndarray) and _defer(self, other):
            return NotImplemented
        a, b = (other, self) if reflected else (self, other)
        return _functions.apply_ufunc(getattr(np, name), name, (a, b), {})

    return op


def _inplace(name: str) -> Any:
    def op(self: ndarray, value: Any) -> ndarray:
        from gpugrad.testing.cuda_emulator import _functions

        _functions.apply_ufunc(getattr(np, name), name, (self, value), {"out": self})
        return self

    return op


def _unary(name: str) -> Any:
    def op(self: ndarray) -> Any:
        from gpugrad.testing.cuda_emulator import _functions

        return _functions.apply_ufunc(getattr(np, name), name, (self,), {})

    return op


_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide", "div": "true_divide",
           "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul", "and": "bitwise_and",
           "or": "bitwise_or", "xor": "bitwise_xor", "lshift": "left_shift", "rshift": "right_shift"}
_MEMBERS = _api.class_members("cupy.ndarray")
for _d, _u in _BINARY.items():
    for _name, _fn in ((f"__{_d}__", _binary(_u)), (f"__r{_d}__", _binary(_u, reflected=True)),
                       (f"__i{_d}__", _inplace(_u))):
        if _name in _MEMBERS:  # only the operators CuPy's ndarray has
            setattr(ndarray, _name, _fn)
for _d, _u in {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal", "gt": "greater",
               "ge": "greater_equal"}.items():
    setattr(ndarray, f"__{_d}__", _binary(_u))
for _d, _u in {"neg": "negative", "pos": "positive", "abs": "absolute", "invert": "invert"}.items():
    setattr(ndarray, f"__{_d}__", _unary(_u))
del _d, _u, _name, _fn
