"""The registries of kernels that implement op rules, one per backend kind (gpugrad.ops.base):
``(op name or kernel_key, "forward" | "vjp") -> callable`` with the rule's signature. The NumPy
backend reads :data:`CPU`, every CUDA backend :data:`CUDA`; whoever provides a kernel (the CUDA
backend's hand-written ones, the fusion compiler) registers it here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry(dict):
    """A registry (a dict) that tells its watchers when its kernels change: fusion resolves a
    learned op's forward once (gpugrad.fusion.lazy), and must resolve it again then."""

    def __init__(self) -> None:
        super().__init__()
        self._watchers: list[Callable[[], None]] = []

    def watch(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    def _changed(self) -> None:
        for callback in self._watchers:
            callback()

    def __setitem__(self, key: tuple[str, str], kernel: Any) -> None:
        super().__setitem__(key, kernel)
        self._changed()

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def pop(self, *args: Any) -> Any:
        out = super().pop(*args)
        self._changed()
        return out

    def setdefault(self, key: tuple[str, str], kernel: Any = None) -> Any:
        out = super().setdefault(key, kernel)
        self._changed()
        return out

    def clear(self) -> None:
        super().clear()
        self._changed()


CPU: Registry = Registry()
CUDA: Registry = Registry()

# An elementwise op's backward for the engine (numpy_backend.ew_vjp_acc's signature), NotImplemented
# where it declines: gpugrad.fusion.host_vjp registers its compiled pass.
EW_VJP_ACC = ("elementwise", "vjp_acc")
# A factory ``(op, result dtype, NumPy forward function) -> forward function`` the NumPy backend
# passes each elementwise op's forward through once (numpy_backend.forward_function):
# gpugrad.fusion.host_forward registers one that runs slow ones as a compiled pass.
EW_FORWARD = ("elementwise", "forward_function")
