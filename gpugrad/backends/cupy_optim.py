"""Optimiser steps on CUDA: the fused kernels of ``kernels/optim.cu``, compiled once per device
with CuPy's RawModule and launched once per parameter tensor.

``optimizer_step(rule, param, grad, state, hyper)`` has the signature and meaning of
``numpy_backend.optimizer_step`` (the reference math, which the kernels reproduce operation by
operation); the CuPy backend exposes it as its ``optimizer_step``. Imported only when a CUDA
parameter is stepped, so CuPy stays optional.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad.errors import ArgumentError, DeviceError, DTypeError

_THREADS = 256
_MAX_BLOCKS = 65535
_MODULES: dict[int, Any] = {}
_DUMMIES: dict[tuple[int, str], Any] = {}


def kernel_path() -> Path:
    """``kernels/optim.cu``: next to the package in a source checkout, else inside it (gpugrad/kernels)."""
    import gpugrad

    path = Path(gpugrad.__file__).resolve().parent.parent / "kernels" / "optim.cu"
    if path.is_file():
        return path
    try:
        res = importlib.resources.files("gpugrad") / "kernels" / "optim.cu"
        if res.is_file():
            return Path(str(res))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    raise DeviceError(f"cannot find the optimiser kernels (kernels/optim.cu); looked in {path.parent} and in the "
                      "gpugrad package")


def kernel_source() -> str:
    return kernel_path().read_text()


def _module(cupy: Any, device_id: int) -> Any:
    mod = _MODULES.get(device_id)
    if mod is None:
        mod = cupy.RawModule(code=kernel_source(), options=("--std=c++14",))
        _MODULES[device_id] = mod
    return mod


def _dummy(cupy: Any, device_id: int, dtype: np.dtype) -> Any:
    """A one-element array standing in for a state pointer the kernel will not read."""
    key = (device_id, dtype.name)
    arr = _DUMMIES.get(key)
    if arr is None:
        arr = _DUMMIES[key] = cupy.zeros(1, dtype=dtype)
    return arr


def launch_config(n: int) -> tuple[tuple[int], tuple[int]]:
    blocks = max(1, min((n + _THREADS - 1) // _THREADS, _MAX_BLOCKS))
    return (blocks,), (_THREADS,)


KERNEL_RULES = ("sgd", "rmsprop", "adam")  # the rules with a kernel in kernels/optim.cu


def optimizer_step(rule: str, param: Any, grad: Any, state: dict, hyper: dict) -> None:
    """One fused in-place update of a CuPy ``param`` (and its ``state`` arrays) by ``rule``."""
    if rule not in KERNEL_RULES:  # a rule without a kernel here: its array code runs on CuPy arrays
        from gpugrad.backends import numpy_backend

        return numpy_backend.optimizer_step(rule, param, grad, state, hyper)
    import cupy

    name = param.dtype.name
    if name not in ("float16", "float32", "float64"):
        raise DTypeError(f"optimizer step ({rule}): unsupported parameter dtype {param.dtype}")
    sdt = np.dtype(np.float64 if name == "float64" else np.float32)
    S = sdt.type
    n = int(param.size)
    if n == 0:
        return
    device_id = param.device.id
    with cupy.cuda.Device(device_id):
        kernel = _module(cupy, device_id).get_function(f"{rule}_step_{name}")
        work = param if param.flags.c_contiguous else cupy.ascontiguousarray(param)
        g = cupy.ascontiguousarray(grad, dtype=param.dtype)

        def arr(a: Any) -> Any:
            if a is None:
                return _dummy(cupy, device_id, sdt)
            if a.dtype != sdt or not a.flags.c_contiguous:
                raise DTypeError(f"optimizer step ({rule}): state must be C-contiguous {sdt}, got {a.dtype}")
            return a

        h = hyper
        if rule == "sgd":
            args = (work, g, arr(state["buf"]), np.int64(n), S(h["lr"]), S(h["momentum"]), S(1 - h["dampening"]),
                    S(h["weight_decay"]), np.int32(bool(h["nesterov"])), np.int32(bool(h["first"])))
        elif rule == "rmsprop":
            args = (work, g, arr(state["square_avg"]), arr(state["grad_avg"]), arr(state["buf"]), np.int64(n),
                    S(h["lr"]), S(h["alpha"]), S(1 - h["alpha"]), S(h["eps"]), S(h["weight_decay"]),
                    S(h["momentum"]), np.int32(state["grad_avg"] is not None), np.int32(h["momentum"] > 0))
        elif rule == "adam":
            step = int(h["step"])
            b1, b2, lr, wd = h["beta1"], h["beta2"], h["lr"], h["weight_decay"]
            args = (work, g, arr(state["exp_avg"]), arr(state["exp_avg_sq"]), arr(state["max_exp_avg_sq"]),
                    np.int64(n), S(b1), S(1 - b1), S(b2), S(1 - b2), S(h["eps"]), S(wd), S(1 - lr * wd),
                    S(lr / (1 - b1 ** step)), S((1 - b2 ** step) ** 0.5), np.int32(bool(h["decoupled"])),
                    np.int32(state["max_exp_avg_sq"] is not None))
        else:
            raise ArgumentError(f"optimizer step: unknown rule {rule!r}")
        grid, block = launch_config(n)
        kernel(grid, block, args)
        if work is not param:
            param[...] = work
