"""Parameter initialisation with PyTorch's formulas, drawn from gpugrad's seeded generators
(``gg.manual_seed(s)`` makes a model's initial weights repeatable on a device).

Each function fills a tensor in place (under no_grad) and returns it, e.g.
``init.normal_(model.wte.weight, std=0.02)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpugrad.errors import ArgumentError, ShapeError
from gpugrad.fusion import lazy as _fusion  # (a module: fusion.lazy imports the ops)
from gpugrad.tensor import Tensor


def _fill(t: Tensor, arr: Any) -> Tensor:
    _fusion.flush()  # pending chains read t's storage as it is now
    t.data[...] = arr.astype(t.dtype, copy=False)
    t._version[0] += 1
    return t


def _draw(kind: str, t: Tensor) -> Any:
    from gpugrad.factories import rand, randn

    dt = np.float32 if t.dtype == np.float16 else t.dtype
    fn = rand if kind == "rand" else randn
    return fn(t.shape, dtype=dt, device=t.device).data


def fan_in_and_fan_out(t: Tensor) -> tuple[int, int]:
    """PyTorch's fans: (in_features * receptive field, out_features * receptive field) of a weight
    shaped (out, in, *kernel)."""
    if t.ndim < 2:
        raise ShapeError(f"init: fan in and fan out need a tensor with at least 2 dimensions, got shape {t.shape}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b)."""
    u = _draw("rand", t)
    return _fill(t, u * (b - a) + a)


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std^2)."""
    z = _draw("randn", t)
    return _fill(t, z * std + mean)


def zeros_(t: Tensor) -> Tensor:
    return _fill(t, t.data * 0)


def ones_(t: Tensor) -> Tensor:
    return _fill(t, t.data * 0 + 1)


def constant_(t: Tensor, value: float) -> Tensor:
    return _fill(t, t.data * 0 + value)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gains: linear/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2/(1+a^2))."""
    if nonlinearity in ("linear", "conv2d", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + a * a))
    raise ArgumentError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al.; PyTorch's default for Linear and
    Conv2d weights uses a = sqrt(5), i.e. bound = 1/sqrt(fan_in))."""
    fan_in, fan_out = fan_in_and_fan_out(t)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
    return uniform_(t, -bound, bound)


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    fan_in, fan_out = fan_in_and_fan_out(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)
