"""A multilayer perceptron: Linear -> ReLU -> ... -> Linear."""

from __future__ import annotations

from collections.abc import Sequence

from gpugrad import nn
from gpugrad.tensor import Tensor


class MLP(nn.Module):
    """``MLP(64, (256, 256), 10)``: two hidden ReLU layers of 256 units, 10 logits out.

    Example::

        model = MLP(64, (256, 256), 10)
        logits = model(gg.randn(32, 64))      # (32, 10)
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
