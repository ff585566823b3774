"""autograd.tracer: boxes and primitives are autograd internals with no gpugrad counterpart."""

from __future__ import annotations

from typing import Any

from gpugrad.numpy._protocol import is_traced as _is_traced
from gpugrad.tensor import Tensor as _Tensor


def _internal(name: str) -> Any:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"autograd.{name} is an autograd internal with no gpugrad counterpart "
                                  "(define new ops with gg.custom_vjp / gg.custom_jvp)")

    unavailable.__name__ = name.rpartition(".")[2]
    return unavailable


primitive = _internal("tracer.primitive")
notrace_primitive = _internal("tracer.notrace_primitive")


def isbox(x: Any) -> bool:
    """A value being differentiated is gpugrad's counterpart of autograd's box."""
    return isinstance(x, _Tensor) and _is_traced(x)


def getval(x: Any) -> Any:
    return x.detach() if isinstance(x, _Tensor) else x


class Box:
    """autograd's box type (internal): nothing is ever an instance of it here."""
