"""The ``cupy`` and ``cupyx`` module trees of the emulated device.

Each module holds only names that real CuPy's module has (cupy_api.json); a name real CuPy has
but the emulator does not implement raises an AttributeError that says so.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np

from gpugrad.testing.cuda_emulator import _api, _cuda, _functions, _kernels, _random
from gpugrad.testing.cuda_emulator._array import MemoryPointer, ndarray

# module name -> (NumPy-like source module for delegation, or None)
_SOURCES = {
    "cupy": "numpy", "cupy.linalg": "numpy.linalg", "cupy.fft": "numpy.fft", "cupyx.scipy.special": "scipy.special",
    "cupyx.scipy.linalg": "scipy.linalg", "cupyx.scipy.signal": "scipy.signal",
}
_TREE = ["cupy", "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.compiler", "cupy.cuda.memory", "cupy.linalg",
         "cupy.fft", "cupy.random", "cupy.lib", "cupy.lib.stride_tricks", "cupyx", "cupyx.scipy",
         "cupyx.scipy.special", "cupyx.scipy.linalg", "cupyx.scipy.signal"]
# Host-side names that are NumPy's own objects in CuPy too.
_NUMPY_OBJECTS = {"dtype", "finfo", "iinfo", "newaxis", "pi", "e", "inf", "nan", "euler_gamma", "bool_", "generic",
                  "number", "integer", "signedinteger", "unsignedinteger", "inexact", "floating", "complexfloating",
                  "ComplexWarning", "AxisError", "ndindex"}


class EmulatedModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if _api.has(self.__name__, name):
            raise AttributeError(f"module '{self.__name__}' has no attribute '{name}': CuPy has it, but the emulated "
                                 "CUDA device (gpugrad.testing.cuda_emulator) does not implement it")
        raise AttributeError(f"module '{self.__name__}' has no attribute '{name}' (nor has CuPy "
                             f"{_api.api()['cupy_version']})")


def _source(module: str) -> Any:
    src = _SOURCES.get(module)
    if src is None:
        return None
    try:
        __import__(src)
    except ImportError:
        return None
    return sys.modules[src]


def _custom(module: str) -> dict[str, Any]:
    c: dict[str, Any] = dict(_functions.CUSTOM.get(module, {}))
    if module == "cupy":
        c.update(ndarray=ndarray, RawModule=_kernels.RawModule, RawKernel=_kernels.RawKernel,
                 get_default_memory_pool=_cuda.get_default_memory_pool,
                 get_default_pinned_memory_pool=_cuda.get_default_pinned_memory_pool)
    elif module == "cupy.cuda":
        c.update(Device=_cuda.Device, Stream=_cuda.Stream, Event=_cuda.Event, get_elapsed_time=_cuda.get_elapsed_time,
                 get_current_stream=_cuda.get_current_stream, MemoryPointer=MemoryPointer,
                 MemoryPool=_cuda.MemoryPool, is_available=_cuda.is_available)
    elif module == "cupy.cuda.runtime":
        c.update({n: getattr(_cuda, n) for n in ("getDeviceCount", "getDevice", "setDevice", "deviceSynchronize",
                                                 "runtimeGetVersion", "driverGetVersion", "memGetInfo",
                                                 "getDeviceProperties", "deviceGetAttribute", "CUDARuntimeError")})
        c["is_hip"] = False
    elif module == "cupy.cuda.compiler":
        c["CompileException"] = _kernels.CompileException
    elif module == "cupy.random":
        c.update(_random.FUNCTIONS)
    return c


def build_module(name: str) -> EmulatedModule:
    mod = EmulatedModule(name)
    mod.__file__ = __file__
    mod.__package__ = name if "." not in name else name
    mod.__path__ = []  # a package: submodules import
    custom = _custom(name)
    src = _source(name)
    for attr, entry in _api.module_names(name).items():
        kind = entry.get("kind")
        if attr in custom:
            value = custom[attr]
        elif kind == "module":
            continue  # attached below when emulated
        elif src is not None and attr in _NUMPY_OBJECTS and hasattr(src, attr):
            value = getattr(src, attr)
        elif src is not None and attr in _functions.PASSTHROUGH and callable(getattr(src, attr, None)):
            value = _functions.passthrough(name, attr, getattr(src, attr))
        elif src is not None and kind in ("function", "ufunc") and callable(getattr(src, attr, None)):
            value = _functions.delegate(name, attr, getattr(src, attr))
        elif name == "cupy" and kind in ("class", "value") and hasattr(np, attr) and isinstance(
                getattr(np, attr), (type, float, int, np.dtype)):
            value = getattr(np, attr)  # scalar types (cupy.float32 is numpy.float32) and constants
        else:
            continue
        setattr(mod, attr, value)
    if name == "cupy":
        mod.__version__ = _api.api()["cupy_version"]
    _functions.REGISTRY[name] = {k: v for k, v in vars(mod).items() if callable(v) and not k.startswith("_")}
    return mod


def build_tree() -> dict[str, EmulatedModule]:
    mods = {name: build_module(name) for name in _TREE}
    for name, mod in mods.items():
        parent, _, child = name.rpartition(".")
        if parent in mods:
            setattr(mods[parent], child, mod)
    return mods
