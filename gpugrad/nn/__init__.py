"""``gpugrad.nn``: modules (layers with parameters), with PyTorch's names, defaults and behaviour.

    import gpugrad as gg
    from gpugrad import nn
    import gpugrad.nn.functional as F

    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
"""

from gpugrad.nn import functional, init
from gpugrad.nn.layers import (
    GELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    Linear,
    MaxPool2d,
    MultiHeadAttention,
    MultiheadAttention,
    ReLU,
    Sigmoid,
    Tanh,
)
from gpugrad.nn.module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "IncompatibleKeys", "Linear", "Conv2d", "MaxPool2d",
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding", "Dropout", "ReLU", "Tanh", "Sigmoid",
    "GELU", "Flatten", "Identity", "MultiHeadAttention", "MultiheadAttention", "functional", "init",
]
