"""Creating tensors: ``tensor``, ``as_tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``linspace``,
``eye``, ``rand``, ``randn``, ``randint`` and the ``*_like`` variants, plus ``manual_seed``.

Python floats become float32 (PyTorch's default); NumPy arrays keep their dtype. Floating
factories default to float32.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from gpugrad.backends import backend_for, device_of_array, normalize_device
from gpugrad.errors import DTypeError, GpugradError, ShapeError
from gpugrad.tensor import Tensor, make_tensor

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)

complex64 = np.dtype(np.complex64)
complex128 = np.dtype(np.complex128)

_SUPPORTED = {float16, float32, float64, int8, int16, int32, int64, uint8, bool_, complex64, complex128,
              np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64)}
DEFAULT_FLOAT = float32


def check_dtype(dtype: Any, where: str = "tensor") -> np.dtype:
    """A supported NumPy dtype from a dtype, type or name, else DTypeError."""
    if dtype is float:
        return float32
    if dtype is int:
        return int64
    if dtype is bool:
        return bool_
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{where}: {dtype!r} is not a dtype") from None
    if dt not in _SUPPORTED:
        raise DTypeError(
            f"{where}: dtype {dt} is not supported; use float16/float32/float64, complex64/complex128, an "
            "integer type or bool"
        )
    return dt


def _to_array(data: Any, dtype: Any, device: Any, copy: bool, python_floats_as: Any = float32) -> tuple[Any, str]:
    """(array on the target device, device string) from tensors, arrays, scalars or nested lists."""
    dt = None if dtype is None else check_dtype(dtype)
    if isinstance(data, Tensor):
        dev = data.device if device is None else normalize_device(device)
        arr = data.data
        if dev != data.device:
            arr = backend_for(dev).from_host(backend_for(data.device).to_host(arr))
            copy = False
        arr = arr.astype(dt) if dt is not None and arr.dtype != dt else (arr.copy() if copy else arr)
        return arr, dev
    src = device_of_array(data)
    if src is not None and src != "cpu":  # a CuPy array
        dev = src if device is None else normalize_device(device)
        backend = backend_for(src)
        arr = data if dev == src else backend_for(dev).from_host(backend.to_host(data))
        if dt is not None and arr.dtype != dt:
            arr = arr.astype(dt)
        elif copy and arr is data:
            arr = arr.copy()
        _check_array_dtype(arr)
        return arr, dev
    dev = normalize_device(device)
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.array(data, dtype=dt, copy=copy) if copy or dt is not None else np.asarray(data)
    else:
        if isinstance(data, (list, tuple)) and _contains_tensor(data):
            data = _tensors_to_nested(data)
        try:
            arr = np.array(data, dtype=dt)
        except ValueError as exc:  # ragged nested lists
            raise ShapeError(f"tensor: the nested sequences do not form an array ({exc})") from None
        if arr.dtype == object:
            raise ShapeError("tensor: the nested sequences have inconsistent lengths (a ragged array)")
        if dt is None and python_floats_as is not None:
            if arr.dtype == np.float64:
                arr = arr.astype(python_floats_as)
            elif arr.dtype == np.complex128:  # Python complex numbers: complex64, as floats become float32
                arr = arr.astype(np.result_type(python_floats_as, np.complex64))
    _check_array_dtype(arr)
    if dev != "cpu":
        arr = backend_for(dev).from_host(arr)
    return arr, dev


def _check_array_dtype(arr: Any) -> None:
    if arr.dtype not in _SUPPORTED:
        raise DTypeError(
            f"tensor: dtype {arr.dtype} is not supported (object and string arrays cannot be tensors); use "
            "float16/float32/float64, complex64/complex128, an integer type or bool"
        )


def _contains_tensor(seq: Any) -> bool:
    for item in seq:
        if isinstance(item, Tensor):
            return True
        if isinstance(item, (list, tuple)) and _contains_tensor(item):
            return True
    return False


def _tensors_to_nested(seq: Any) -> Any:
    """Nested lists with each tensor's values; a tensor being differentiated is refused (its gradient
    would be dropped: gg.stack or gpugrad.numpy.array keep it)."""
    from gpugrad.numpy._protocol import is_traced, refuse

    out = []
    for s in seq:
        if isinstance(s, (list, tuple)):
            out.append(_tensors_to_nested(s))
        elif isinstance(s, Tensor):
            if is_traced(s):
                raise refuse("gg.tensor of a list holding a tensor", "build it with gg.stack or gpugrad.numpy.array "
                             "(differentiable), or pass t.detach() for a constant")
            out.append(s.numpy())
        else:
            out.append(s)
    return out


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, NumPy or CuPy arrays).

    Python floats become float32; NumPy arrays keep their dtype. Example::

        x = gg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = gg.tensor(np.arange(3.0))        # float64, as the array
    """
    arr, dev = _to_array(data, dtype, device, copy=True)
    t = make_tensor(arr, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def as_tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor sharing memory with ``data`` when possible (no copy for arrays of the right dtype
    and device). A Tensor is returned as is."""
    if isinstance(data, Tensor) and dtype is None and (device is None or normalize_device(device) == data.device):
        return data
    arr, dev = _to_array(data, dtype, device, copy=False)
    t = make_tensor(arr, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with the NumPy ``array`` (PyTorch's ``from_numpy``): writing to
    one is seen in the other; the dtype is kept. Example: ``t = gg.from_numpy(np.zeros(3))``."""
    if not isinstance(array, np.ndarray):
        raise DTypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__} (gg.tensor copies "
                         "any array-like)")
    _check_array_dtype(array)
    return make_tensor(array, "cpu")


def _shape(args: tuple, name: str) -> tuple[int, ...]:
    if len(args) == 1 and not isinstance(args[0], numbers.Integral):
        args = tuple(args[0])
    try:
        shape = tuple(int(s) for s in args)
    except (TypeError, ValueError):
        raise GpugradError(f"{name}: shape must be ints or a tuple of ints, got {args!r}") from None
    if any(s < 0 for s in shape):
        raise GpugradError(f"{name}: negative dimensions are not allowed, got {shape}")
    return shape


def _finish(arr: Any, requires_grad: bool, device: str) -> Tensor:
    t = make_tensor(arr, device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _make(fill: str, shape: tuple, dtype: Any, device: Any, requires_grad: bool, value: Any = None) -> Tensor:
    dev = normalize_device(device)
    dt = DEFAULT_FLOAT if dtype is None else check_dtype(dtype, fill)
    xp = backend_for(dev).xp
    if fill == "zeros":
        arr = xp.zeros(shape, dtype=dt)
    elif fill == "ones":
        arr = xp.ones(shape, dtype=dt)
    elif fill == "empty":
        arr = xp.empty(shape, dtype=dt)
    else:
        arr = xp.full(shape, value, dtype=dt)
    return _finish(arr, requires_grad, dev)


def zeros(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``shape`` (``zeros(2, 3)`` or ``zeros((2, 3))``), float32 by default."""
    return _make("zeros", _shape(shape, "zeros"), dtype, device, requires_grad)


def ones(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones of ``shape``, float32 by default."""
    return _make("ones", _shape(shape, "ones"), dtype, device, requires_grad)


def empty(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uninitialised memory of ``shape`` (float32 by default)."""
    return _make("empty", _shape(shape, "empty"), dtype, device, requires_grad)


def full(shape: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere; the dtype follows the value (float32 for floats) unless given."""
    if dtype is None:
        if isinstance(fill_value, bool):
            dtype = bool_
        elif isinstance(fill_value, numbers.Integral):
            dtype = int64
    return _make("full", _shape((shape,), "full"), dtype, device, requires_grad, fill_value)


def _like(x: Any, dtype: Any, device: Any) -> tuple[tuple, Any, Any]:
    if isinstance(x, Tensor):
        return x.shape, dtype if dtype is not None else x.dtype, device if device is not None else x.device
    arr = np.asarray(x) if device_of_array(x) in (None, "cpu") else x
    return tuple(arr.shape), dtype if dtype is not None else arr.dtype, device if device is not None else (
        device_of_array(x) or "cpu")


def zeros_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(x, dtype, device)
    return _make("zeros", shape, dt, dev, requires_grad)


def ones_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(x, dtype, device)
    return _make("ones", shape, dt, dev, requires_grad)


def empty_like(x: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(x, dtype, device)
    return _make("empty", shape, dt, dev, requires_grad)


def full_like(x: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dt, dev = _like(x, dtype, device)
    return _make("full", shape, dt, dev, requires_grad, fill_value)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in [start, stop): integers stay int64, floats default to float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, stop, step))
        dtype = int64 if is_int else DEFAULT_FLOAT
    dt = check_dtype(dtype, "arange")
    arr = np.arange(start, stop, step, dtype=np.float64 if dt.kind == "f" else dt).astype(dt)
    dev = normalize_device(device)
    return _finish(backend_for(dev).from_host(arr), requires_grad, dev)


def linspace(start: float, stop: float, num: int = 50, endpoint: bool = True, dtype: Any = None,
             device: Any = None, requires_grad: bool = False) -> Tensor:
    """``num`` evenly spaced values from start to stop (float32 by default)."""
    dt = DEFAULT_FLOAT if dtype is None else check_dtype(dtype, "linspace")
    arr = np.linspace(start, stop, int(num), endpoint=endpoint).astype(dt)
    dev = normalize_device(device)
    return _finish(backend_for(dev).from_host(arr), requires_grad, dev)


def eye(n: int, m: int | None = None, k: int = 0, dtype: Any = None, device: Any = None,
        requires_grad: bool = False) -> Tensor:
    """The identity (ones on diagonal ``k``), float32 by default."""
    dev = normalize_device(device)
    dt = DEFAULT_FLOAT if dtype is None else check_dtype(dtype, "eye")
    return _finish(backend_for(dev).xp.eye(int(n), None if m is None else int(m), k, dtype=dt), requires_grad, dev)


# ---------------------------------------------------------------------------------------------
# random numbers

_CPU_RNG = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the random generators of every backend (CPU now, each GPU when first used).

    Runs with the same seed on the same device are repeatable; CPU and GPU streams differ.
    """
    global _CPU_RNG
    _CPU_RNG = np.random.default_rng(int(seed))
    from gpugrad import backends

    backends.manual_seed(int(seed))


def cpu_generator() -> np.random.Generator:
    return _CPU_RNG


def _random(kind: str, shape: tuple, dtype: Any, device: Any, requires_grad: bool, **kw: Any) -> Tensor:
    dev = normalize_device(device)
    if kind == "randint":
        dt = int64 if dtype is None else check_dtype(dtype, kind)
    else:
        dt = DEFAULT_FLOAT if dtype is None else check_dtype(dtype, kind)
        if dt.kind != "f":
            raise DTypeError(f"{kind}: dtype must be floating point, got {dt}")
    if dev == "cpu":
        rng = _CPU_RNG
        if kind == "rand":
            arr = rng.random(shape, dtype=np.float64 if dt == float16 else dt).astype(dt, copy=False)
        elif kind == "randn":
            arr = rng.standard_normal(shape, dtype=np.float64 if dt == float16 else dt).astype(dt, copy=False)
        else:
            arr = rng.integers(kw["low"], kw["high"], size=shape, dtype=dt)
    else:
        arr = backend_for(dev).random(kind, shape, dt, **kw)
    return _finish(arr, requires_grad, dev)


def rand(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1), float32 by default."""
    return _random("rand", _shape(shape, "rand"), dtype, device, requires_grad)


def randn(*shape: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples, float32 by default."""
    return _random("randn", _shape(shape, "randn"), dtype, device, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None, device: Any = None) -> Tensor:
    """Integers in [low, high) (or [0, low) when high is None), int64 by default."""
    if high is None:
        low, high = 0, low
    if high <= low:
        raise GpugradError(f"randint: high ({high}) must be greater than low ({low})")
    shape = _shape((size,), "randint") if not isinstance(size, numbers.Integral) else (int(size),)
    return _random("randint", shape, dtype, device, False, low=int(low), high=int(high))
