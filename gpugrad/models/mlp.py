"""A multilayer perceptron: Linear -> ReLU -> ... -> Linear."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpugrad import nn
from gpugrad.nn.module import IncompatibleKeys


class MLP(nn.Sequential):
    """``MLP(64, (256, 256), 10)``: two hidden ReLU layers of 256 units, 10 logits out.

    A Sequential, so its parameters are named as the same ``nn.Sequential`` written by hand
    ("0.weight", "0.bias", "2.weight", ...). Example::

        model = MLP(64, (256, 256), 10)
        logits = model(gg.randn(32, 64))      # (32, 10)
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """As Module's; also reads state dicts saved before MLP was a Sequential (keys "net.0.weight", ...)."""
        if hasattr(state_dict, "items") and state_dict and all(k.startswith("net.") for k in state_dict):
            state_dict = {k[len("net."):]: v for k, v in state_dict.items()}
        return super().load_state_dict(state_dict, strict)
