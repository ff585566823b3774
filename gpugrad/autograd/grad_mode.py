"""``no_grad`` / ``enable_grad`` / ``set_grad_enabled``: context managers that also decorate."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from gpugrad.autograd.state import STATE


class _GradMode:
    """Sets grad mode on entry and restores the previous mode on exit."""

    _enabled: bool

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        self._prev.append(STATE.grad_enabled)
        STATE.grad_enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = self._prev.pop()

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        mode = type(self)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with mode():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):  # noqa: N801 (PyTorch's name)
    """Record nothing on the tape inside this block or decorated function.

    Example::

        with gg.no_grad():
            w -= lr * w.grad          # an update that must not be differentiated
    """

    _enabled = False


class enable_grad(_GradMode):  # noqa: N801
    """Turn recording back on inside a ``no_grad`` region.

    Example::

        with gg.no_grad():
            with gg.enable_grad():
                y = (x * x).sum()      # recorded
    """

    _enabled = True


class set_grad_enabled(_GradMode):  # noqa: N801
    """``with gg.set_grad_enabled(flag):`` records only when ``flag`` is true."""

    def __init__(self, mode: bool) -> None:
        super().__init__()
        self._enabled = bool(mode)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        flag = self._enabled

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(flag):
                return fn(*args, **kwargs)

        return wrapper


class inference_mode(set_grad_enabled):  # noqa: N801
    """PyTorch's ``inference_mode``: records nothing, as :class:`no_grad` (``inference_mode(False)``
    changes nothing). A context manager and a decorator, with or without parentheses.

    Example::

        with gg.inference_mode():
            logits = model(x)
    """

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):  # used as a bare decorator: @gg.inference_mode
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True) -> None:
        super().__init__(not mode)


def is_grad_enabled() -> bool:
    """True when ops are being recorded on the tape."""
    return STATE.grad_enabled
