"""PyTorch's argument spellings on NumPy-style functions: ``dim=`` for ``axis=`` and ``keepdim=``
for ``keepdims=``, added by one decorator at each public entry point (functions and Tensor
methods), so ``x.sum(dim=1, keepdim=True)`` and ``gg.softmax(x, dim=-1)`` work as in PyTorch.

Only the names change: the meaning stays NumPy's where the two libraries differ (docs/API.md,
"PyTorch spellings", lists those cases).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from gpugrad.errors import ArgumentError

F = TypeVar("F", bound=Callable[..., Any])

# (PyTorch's name, NumPy's name)
_SPELLINGS = (("dim", "axis"), ("keepdim", "keepdims"))


def accepts_dim(fn: F) -> F:
    """Let ``fn``, which takes ``axis``/``keepdims``, also take ``dim``/``keepdim``; giving both
    spellings of one argument raises :class:`gpugrad.ArgumentError`.

    Example::

        @accepts_dim
        def total(x, axis=None, keepdims=False): ...

        total(x, dim=1, keepdim=True)       # == total(x, axis=1, keepdims=True)
    """
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    # (torch name, numpy name, index of the numpy name among the positional parameters or None)
    pairs = tuple((t, n, positional.index(n) if n in positional else None) for t, n in _SPELLINGS if n in names)
    if not pairs:
        raise TypeError(f"accepts_dim: {fn.__qualname__} takes neither axis nor keepdims")
    qualname = fn.__qualname__

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            for torch_name, numpy_name, index in pairs:
                if torch_name in kwargs:
                    if numpy_name in kwargs or (index is not None and len(args) > index):
                        raise ArgumentError(f"{qualname}: got both {torch_name}= (PyTorch's name) and "
                                            f"{numpy_name}= (NumPy's name) for the same argument; give one")
                    kwargs[numpy_name] = kwargs.pop(torch_name)
        return fn(*args, **kwargs)

    spelled = ", ".join(f"``{t}=``" for t, _, _ in pairs)
    note = f"Also takes PyTorch's {spelled} (docs/API.md, \"PyTorch spellings\")."
    wrapper.__doc__ = (fn.__doc__ or "").rstrip() + "\n\n    " + note + "\n"
    return wrapper  # type: ignore[return-value]
