"""A small convolutional network for 8x8 single-channel images."""

from __future__ import annotations

from gpugrad import nn
from gpugrad.tensor import Tensor


class DigitsCNN(nn.Module):
    """conv3x3(32) -> ReLU -> conv3x3(32) -> ReLU -> maxpool2 -> conv3x3(64) -> ReLU -> maxpool2
    -> Linear(256, 10), for (N, 1, 8, 8) inputs.

    Example::

        logits = DigitsCNN()(gg.randn(16, 1, 8, 8))   # (16, 10)
    """

    def __init__(self, classes: int = 10, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * 2 * 2, classes))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:  # flat 64-pixel rows
            x = x.reshape(x.shape[0], 1, 8, 8)
        return self.head(self.features(x))
