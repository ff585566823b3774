"""Helpers shared by the workload modules: size labels, dtype names, availability checks for
parts of gpugrad being written in parallel (gpugrad.nn, gpugrad.optim), and the few primitives
a peer lacks (HIPS autograd has no sigmoid)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

SHORT = {"float16": "f16", "float32": "f32", "float64": "f64"}
NO_CONV = "HIPS autograd has no conv2d (its scipy.signal.convolve is a different operation)"


def human(n: float) -> str:
    """1024 -> "1K", 67108864 -> "64M" (binary multiples, as the sweep's sizes are)."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(int(n))


def needs(*paths: str) -> Callable[[], str | None]:
    """A check for ``Workload.needs``: each path ("gpugrad.nn.functional.conv2d",
    "gpugrad.optim.SGD") must import or resolve; a missing gpugrad.nn or gpugrad.optim gives
    the standard note, another missing name says which.

    Example: ``needs("gpugrad.nn.functional.conv2d")() -> "needs gpugrad.nn (not in this build)"``.
    """

    def check() -> str | None:
        missing = []
        for path in paths:
            if not _resolves(path):
                missing.append(path)
        if not missing:
            return None
        for package in ("gpugrad.nn", "gpugrad.optim"):
            if any(m.startswith(package) for m in missing) and not _resolves(package):
                return f"needs {package} (not in this build)"
        return f"needs {', '.join(missing)} (not in this build)"

    return check


def _resolves(path: str) -> bool:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        except Exception:
            return False
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
            if obj is None:
                return False
        return True
    return False


_AG_SIGMOID: Any = None


def ag_sigmoid() -> Any:
    """A sigmoid primitive for HIPS autograd (it has none), with the usual out*(1-out) rule."""
    global _AG_SIGMOID
    if _AG_SIGMOID is None:
        from autograd.extend import defvjp, primitive

        @primitive
        def sigmoid(x: Any) -> Any:
            return 1 / (1 + np.exp(-x))

        defvjp(sigmoid, lambda ans, x: lambda g: g * ans * (1 - ans))
        _AG_SIGMOID = sigmoid
    return _AG_SIGMOID


def np_sigmoid(xp: Any, x: Any) -> Any:
    """1 / (1 + exp(-x)) written by hand (NumPy has no sigmoid)."""
    return 1 / (1 + xp.exp(-x))


def add_at(xp: Any, target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices accumulating (NumPy's add.at; CuPy's
    scatter_add where add.at is missing)."""
    at = getattr(xp.add, "at", None)
    if at is not None:
        try:
            at(target, index, values)
            return
        except (NotImplementedError, TypeError):
            if xp is np:
                raise
    import cupyx

    cupyx.scatter_add(target, index, values)
