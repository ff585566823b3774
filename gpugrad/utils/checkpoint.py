"""``gpugrad.utils.checkpoint.checkpoint(function, *args)``: PyTorch's spelling of gradient
checkpointing (``gg.checkpoint(f)`` is HIPS autograd's; both are the same mechanism, see
:mod:`gpugrad.autograd.checkpoint`).

Example::

    from gpugrad.utils.checkpoint import checkpoint
    h = checkpoint(block, x)      # block's activations are recomputed during backward
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpugrad.autograd.checkpoint import checkpoint as _checkpointed

__all__ = ["checkpoint"]


def checkpoint(function: Callable[..., Any], *args: Any, use_reentrant: Any = None,
               preserve_rng_state: bool = True, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` without keeping its intermediates for backward; they are
    recomputed then (the CPU random stream replayed, so dropout agrees). ``use_reentrant`` is
    accepted for PyTorch compatibility and has no effect (there is one implementation)."""
    return _checkpointed(function)(*args, **kwargs)
