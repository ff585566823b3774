"""A stand-in for CuPy that runs gpugrad's CUDA kernels on the CPU (for machines without a GPU).

Arrays are NumPy arrays of a subclass that claims to be CuPy's (``__module__`` starts with
"cupy", ``.get()``, ``.device``). ``RawModule(...).get_function(name)`` returns a kernel whose
launch packs its arguments exactly as CuPy does for ``cuLaunchKernel`` (arrays as device
pointers, NumPy scalars and one-element structured arrays by value) and calls the host-emulated
build of that very kernel in ``libgg_emu.so`` (CMake target gg_emu, see kernels/gg_host_emu.h).
Each argument's byte size is checked against the kernel's C++ parameter, so the CuPy backend's
argument packing is tested against the real signatures.

Used by tests/test_kernels_host.py; never imported by the library.
"""

from __future__ import annotations

import ctypes
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def host_lib_dir() -> Path | None:
    """``$GPUGRAD_HOST_LIB_DIR`` (set by .ci/run) or build/kernels of this checkout, if built."""
    env = os.environ.get("GPUGRAD_HOST_LIB_DIR")
    path = Path(env) if env else ROOT / "build" / "kernels"
    return path if (path / "libgg_host.so").is_file() else None


_OWNERS: dict[int, int] = {}


class FakeArray(np.ndarray):
    """A NumPy array posing as a cupy.ndarray."""

    __module__ = "cupy.fake"

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        # CuPy returns 0-d arrays where NumPy returns scalars
        return np.ndarray.__array_wrap__(self, arr, context, False)

    @property
    def device(self) -> Any:
        return types.SimpleNamespace(id=0)

    @property
    def base(self) -> Any:  # type: ignore[override]
        b = np.ndarray.base.__get__(self)
        if b is not None and not isinstance(b, FakeArray) and _OWNERS.get(id(b)) == id(self):
            return None  # this array owns its memory (a fresh CuPy array)
        return b

    def get(self) -> np.ndarray:
        return np.array(self.view(np.ndarray), copy=True)


def fresh(r: Any) -> FakeArray:
    """``r`` (a new NumPy result) as a FakeArray that owns its memory."""
    if isinstance(r, FakeArray):
        return r
    r = np.asarray(r)
    if r.base is not None:
        r = r.copy()
    f = r.view(FakeArray)
    _OWNERS[id(r)] = id(f)
    return f


def _wrap(fn: Any) -> Any:
    def call(*args: Any, **kw: Any) -> Any:
        r = fn(*args, **kw)
        if isinstance(r, FakeArray):
            return r
        if isinstance(r, (np.ndarray, np.generic)):
            if isinstance(r, np.ndarray) and r.base is not None:
                return r.view(FakeArray)  # a view of an argument
            return fresh(r)
        if isinstance(r, (list, tuple)):
            items = [fresh(x) if isinstance(x, (np.ndarray, np.generic)) and not isinstance(x, FakeArray) else x
                     for x in r]
            return tuple(items) if isinstance(r, tuple) else items
        return r

    return call


class _Device:
    def __init__(self, i: int = 0) -> None:
        self.id = i

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def use(self) -> None:
        return None


class _Kernel:
    def __init__(self, lib: Any, name: str) -> None:
        self.name = name
        if lib is None:
            raise RuntimeError(f"fake cupy without a kernel library: cannot launch {name}")
        try:
            self.fn = getattr(lib, f"gg_emu_{name}")
            sizes_fn = getattr(lib, f"gg_emu_sizes_{name}")
        except AttributeError:
            raise RuntimeError(f"fake cupy: kernel {name} is not in libgg_emu.so") from None
        self.fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        self.fn.restype = None
        buf = (ctypes.c_uint * 64)()
        count = sizes_fn(buf)
        self.sizes = list(buf[:count])
        self.calls = 0

    def __call__(self, grid: tuple, block: tuple, args: tuple, **kw: Any) -> None:
        if len(args) != len(self.sizes):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.sizes)} parameters")
        ptrs = (ctypes.c_void_p * max(1, len(args)))()
        keep = []
        for i, (a, size) in enumerate(zip(args, self.sizes)):
            if isinstance(a, FakeArray):
                if not a.flags.c_contiguous and a.size > 1 and 0 not in a.strides:
                    pass  # strided arrays are fine: kernels index them through gg_geom
                v = ctypes.c_void_p(a.__array_interface__["data"][0])
                nbytes = 8
                keep.append(v)
                ptrs[i] = ctypes.addressof(v)
            elif isinstance(a, (np.ndarray, np.generic)) and np.asarray(a).size == 1:
                v = np.ascontiguousarray(a).copy()
                nbytes = v.itemsize
                keep.append(v)
                ptrs[i] = v.ctypes.data
            else:
                raise TypeError(f"{self.name}: argument {i} is a {type(a).__name__}; pass NumPy scalars "
                                "(CuPy would guess its C type)")
            if nbytes != size:
                raise TypeError(f"{self.name}: argument {i} has {nbytes} bytes, the kernel's parameter {size}")
        self.fn(int(grid[0]), int(block[0]), ptrs)
        self.calls += 1


class _RawModule:
    lib: Any = None

    def __init__(self, code: str | None = None, path: str | None = None, options: tuple = (), **kw: Any) -> None:
        self.code = code
        self.path = path
        self.options = options
        FAKE_STATS["modules"].append("path" if path else "code")

    def get_function(self, name: str) -> _Kernel:
        return _Kernel(self.lib, name)


FAKE_STATS: dict[str, Any] = {"modules": []}


class _RandomState:
    def __init__(self, seed: Any = None) -> None:
        self.rs = np.random.RandomState(seed)

    def random_sample(self, size: Any, dtype: Any = np.float64) -> FakeArray:
        return fresh(self.rs.random_sample(size).astype(dtype))

    def standard_normal(self, size: Any, dtype: Any = np.float64) -> FakeArray:
        return fresh(self.rs.standard_normal(size).astype(dtype))

    def randint(self, low: int, high: int, size: Any = None, dtype: Any = np.int64) -> FakeArray:
        return fresh(self.rs.randint(low, high, size=size).astype(dtype))


class _FakeModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        fn = getattr(np, name)
        return _wrap(fn) if callable(fn) else fn


def make_fake_cupy(lib_path: Path | None) -> tuple[types.ModuleType, types.ModuleType]:
    """(cupy, cupyx) stand-ins running kernels from ``lib_path`` (libgg_emu.so; None: arrays
    and transfers only, any kernel launch fails)."""
    lib = ctypes.CDLL(str(lib_path)) if lib_path is not None else None
    _RawModule.lib = lib
    cp = _FakeModule("cupy")
    cp.__version__ = "fake"
    cp.ndarray = FakeArray
    cp.RawModule = _RawModule
    cp.asnumpy = lambda x: np.array(np.asarray(x).view(np.ndarray), copy=True)

    def empty(shape: Any, dtype: Any = float, order: str = "C") -> FakeArray:
        return fresh(np.empty(shape, dtype=dtype, order=order))

    def asarray(x: Any, dtype: Any = None) -> FakeArray:
        if isinstance(x, FakeArray) and (dtype is None or x.dtype == dtype):
            return x
        return fresh(np.array(np.asarray(x, dtype=dtype), copy=True))

    def array(x: Any, dtype: Any = None, copy: bool = True) -> FakeArray:
        return fresh(np.array(np.asarray(x, dtype=dtype), copy=True))

    cp.empty = empty
    cp.asarray = asarray
    cp.array = array
    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda i: {"multiProcessorCount": 2, "name": b"fake"},
    )
    cp.cuda = types.SimpleNamespace(Device=_Device, runtime=runtime)
    cp.linalg = types.SimpleNamespace(solve=_wrap(np.linalg.solve), inv=_wrap(np.linalg.inv),
                                      slogdet=_wrap(np.linalg.slogdet), det=_wrap(np.linalg.det))
    cp.random = types.SimpleNamespace(RandomState=_RandomState)
    cpx = types.ModuleType("cupyx")

    def scatter_add(a: Any, index: Any, values: Any) -> None:
        np.add.at(a, index, values)

    cpx.scatter_add = scatter_add
    return cp, cpx


def install(monkeypatch: Any, lib_path: Path) -> types.ModuleType:
    """Make ``import cupy`` give the fake for the rest of a test; drop cached CUDA backends."""
    from gpugrad.backends import _BACKENDS

    cp, cpx = make_fake_cupy(lib_path)
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupyx", cpx)
    for key in [k for k in _BACKENDS if k != "cpu"]:
        monkeypatch.delitem(_BACKENDS, key)
    return cp
