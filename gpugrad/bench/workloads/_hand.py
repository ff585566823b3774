"""Hand-written forward and backward pieces in array code (``xp`` is NumPy or CuPy): the
"hand-written NumPy" peer of the layer and training workloads, and, run in float64, the
reference every library's gradients are checked against."""

from __future__ import annotations

import math
from typing import Any

GELU_C = math.sqrt(2.0 / math.pi)


def windows(xp: Any, x: Any, k: int, p: int) -> Any:
    """im2col as a view: (N, C, Ho, Wo, k, k) windows of x padded by p (stride 1)."""
    if p:
        x = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, c, h, w = x.shape
    ho, wo = h - k + 1, w - k + 1
    s = x.strides
    return xp.lib.stride_tricks.as_strided(x, shape=(n, c, ho, wo, k, k), strides=(s[0], s[1], s[2], s[3], s[2], s[3]))


def conv2d(xp: Any, x: Any, w: Any, b: Any, p: int) -> tuple[Any, Any]:
    """Cross-correlation (PyTorch's conv2d), stride 1, zero padding p: (out, saved windows)."""
    k = w.shape[-1]
    cols = windows(xp, x, k, p)
    out = xp.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, F)
    out = out.transpose(0, 3, 1, 2) + b[None, :, None, None]
    return xp.ascontiguousarray(out), cols


def conv2d_backward(xp: Any, g: Any, cols: Any, w: Any, p: int, need_x: bool = True) -> tuple[Any, Any, Any]:
    """(dx, dw, db) of :func:`conv2d` from the output gradient g (N, F, Ho, Wo)."""
    dw = xp.tensordot(g, cols, axes=([0, 2, 3], [0, 2, 3]))  # (F, C, k, k)
    db = g.sum(axis=(0, 2, 3))
    dx = None
    if need_x:
        k = w.shape[-1]
        wt = xp.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])  # (C, F, k, k), flipped
        dx = xp.tensordot(windows(xp, g, k, k - 1 - p), wt, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
        dx = xp.ascontiguousarray(dx)
    return dx, dw, db


def maxpool2(xp: Any, x: Any) -> tuple[Any, Any]:
    """2x2 max pooling, stride 2: (out, mask of the maxima)."""
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = r.max(axis=(3, 5))
    mask = r == out[:, :, :, None, :, None]
    return out, mask


def maxpool2_backward(xp: Any, g: Any, mask: Any) -> Any:
    n, c, h2, _, w2, _ = mask.shape
    return (mask * g[:, :, :, None, :, None]).reshape(n, c, 2 * h2, 2 * w2)


def cross_entropy(xp: Any, logits: Any, y: Any) -> tuple[Any, Any]:
    """Mean cross-entropy over rows with integer labels: (loss, dlogits)."""
    n = logits.shape[0]
    m = logits.max(axis=1, keepdims=True)
    e = xp.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    rows = xp.arange(n)
    logp_y = logits[rows, y] - m[:, 0] - xp.log(s[:, 0])
    loss = -logp_y.mean()
    d = e / s
    d[rows, y] -= 1
    return loss, d / n


def layer_norm(xp: Any, x: Any, w: Any, b: Any, eps: float = 1e-5) -> tuple[Any, tuple]:
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1 / xp.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * rstd
    return xhat * w + b, (xhat, rstd, w)


def layer_norm_backward(xp: Any, g: Any, saved: tuple) -> tuple[Any, Any, Any]:
    xhat, rstd, w = saved
    axes = tuple(range(g.ndim - 1))
    dw = (g * xhat).sum(axis=axes)
    db = g.sum(axis=axes)
    gh = g * w
    dx = rstd * (gh - gh.mean(axis=-1, keepdims=True) - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    return dx, dw, db


def gelu_tanh(xp: Any, u: Any) -> tuple[Any, Any]:
    """GELU, tanh approximation (PyTorch's approximate="tanh"): (out, derivative)."""
    inner = GELU_C * (u + 0.044715 * u * u * u)
    t = xp.tanh(inner)
    out = 0.5 * u * (1 + t)
    d = 0.5 * (1 + t) + 0.5 * u * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * u * u)
    return out, d


def softmax_last(xp: Any, s: Any) -> Any:
    e = xp.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
