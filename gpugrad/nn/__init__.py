"""``gpugrad.nn``: modules (layers with parameters), with PyTorch's names, defaults and behaviour.

    import gpugrad as gg
    from gpugrad import nn
    import gpugrad.nn.functional as F

    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
"""

from gpugrad.nn import functional, init, utils
from gpugrad.nn.activation import (
    GELU,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from gpugrad.nn.layers import (
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool1d,
    MaxPool2d,
    MultiHeadAttention,
    MultiheadAttention,
)
from gpugrad.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from gpugrad.nn.module import IncompatibleKeys, Module, ModuleDict, ModuleList, Parameter, Sequential
from gpugrad.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "IncompatibleKeys", "Linear", "Conv1d",
    "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d",
    "BatchNorm2d", "LayerNorm", "Embedding", "Dropout", "ReLU", "Tanh", "Sigmoid", "GELU", "LeakyReLU", "SiLU",
    "Softplus", "Softmax", "LogSoftmax", "Flatten", "Identity", "MultiHeadAttention", "MultiheadAttention",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "RNN", "LSTM", "GRU",
    "RNNCell", "LSTMCell", "GRUCell", "functional", "init", "utils",
]
