"""``gpugrad.nn.utils``: gradient clipping, under PyTorch's ``torch.nn.utils`` names.

    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
"""

from __future__ import annotations

from typing import Any

from gpugrad.optim.optimizer import clip_grad_norm_
from gpugrad.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def clip_grad_value_(parameters: Any, clip_value: float) -> None:
    """Clamp every gradient of ``parameters`` to [-clip_value, clip_value] in place.
    Example: ``nn.utils.clip_grad_value_(model.parameters(), 0.5)``."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    c = float(clip_value)
    for p in parameters:
        g = p.grad
        if g is not None:
            g.data = g.data.clip(-c, c)
            g._version[0] += 1
