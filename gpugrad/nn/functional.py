"""``gpugrad.nn.functional``: the layers as functions, with PyTorch's names, arguments and defaults.

The hot primitives are single ops with fused rules (:mod:`gpugrad.ops.nn`: conv2d, pooling,
layer/batch norm, embedding, dropout, cross-entropy); the rest (linear, the other losses,
attention) are compositions of differentiable ops, so their gradients, higher-order gradients
and forward-mode tangents follow from those ops.

    import gpugrad.nn.functional as F
    loss = F.cross_entropy(F.linear(F.relu(F.linear(x, w1, b1)), w2, b2), labels)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from gpugrad import ops as _ops
from gpugrad.autograd.grad_mode import no_grad
from gpugrad.backends import backend_for
from gpugrad.errors import ArgumentError, DTypeError, ShapeError
from gpugrad.ops import nn as _nn
from gpugrad.ops._util import as_tensor_operand
from gpugrad.ops.linalg import matmul_transposed
from gpugrad.tensor import Tensor

__all__ = [
    "relu", "sigmoid", "tanh", "gelu", "leaky_relu", "silu", "softplus", "softmax", "log_softmax", "linear",
    "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool2d",
    "dropout", "layer_norm", "batch_norm", "embedding", "cross_entropy", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "mse_loss", "l1_loss", "nll_loss", "scaled_dot_product_attention",
]


# ---- activations --------------------------------------------------------------------------------


def relu(input: Any, inplace: bool = False) -> Tensor:
    """max(x, 0). ``inplace`` is accepted for PyTorch compatibility and ignored (results are new tensors)."""
    return _ops.relu(input)


def sigmoid(input: Any) -> Tensor:
    """1 / (1 + exp(-x))."""
    return _ops.sigmoid(input)


def tanh(input: Any) -> Tensor:
    """Hyperbolic tangent."""
    return _ops.tanh(input)


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """GELU, exact erf form or ``approximate="tanh"`` (PyTorch's definitions)."""
    return _ops.gelu(input, approximate)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return _ops.leaky_relu(input, negative_slope)


def silu(input: Any, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _ops.silu(input)


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold."""
    return _ops.softplus(input, beta, threshold)


def softmax(input: Any, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``. Example: ``F.softmax(logits, dim=-1)``."""
    return _ops.softmax(input, dim)


def log_softmax(input: Any, dim: int = -1) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably."""
    return _ops.log_softmax(input, dim)


# ---- linear and convolutional layers ------------------------------------------------------------


def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch.

    Example: ``F.linear(x, w, b)`` maps (N, in) to (N, out).
    """
    input = as_tensor_operand(input)
    weight = as_tensor_operand(weight, input)
    if weight.ndim != 2:
        raise ShapeError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input {input.shape} has {input.shape[-1] if input.ndim else 'no'} features "
                         f"but weight {weight.shape} expects {weight.shape[1]}")
    out = matmul_transposed(input, weight)
    if bias is not None:
        out = out + bias
    return out


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) as PyTorch's: input (N, C, H, W) or (C, H, W), weight
    (F, C/groups, kh, kw); ``padding`` an int, a pair, "valid" or "same". im2col + one matmul.

    Example: ``F.conv2d(x, w, b, padding=1)``.
    """
    input = as_tensor_operand(input)
    if input.ndim == 3:
        return _ops.squeeze(_nn.conv2d(_ops.expand_dims(input, 0), weight, bias, stride, padding, dilation,
                                       groups), 0)
    return _nn.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _single(v: Any, op: str, what: str) -> int:
    """A 1-d layer's int argument, also given as a 1-tuple (PyTorch accepts both)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ArgumentError(f"{op}: {what} must be an int or a 1-tuple, got {v!r}")
        v = v[0]
    return int(v)


def _as_1d_image(input: Any, op: str) -> tuple[Tensor, bool]:
    """(N, C, L) or unbatched (C, L) as the image (N, C, 1, L); also says whether it was unbatched."""
    x = as_tensor_operand(input)
    if x.ndim not in (2, 3):
        raise ShapeError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {x.shape}")
    unbatched = x.ndim == 2
    if unbatched:
        x = _ops.expand_dims(x, 0)
    return _ops.expand_dims(x, 2), unbatched


def _from_1d_image(y: Tensor, unbatched: bool) -> Tensor:
    y = _ops.squeeze(y, 2)
    return _ops.squeeze(y, 0) if unbatched else y


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1) -> Tensor:
    """1-D convolution (cross-correlation) as PyTorch's: input (N, C, L) or (C, L), weight
    (F, C/groups, k); ``padding`` an int, "valid" or "same". Computed as conv2d on (N, C, 1, L).

    Example: ``F.conv1d(x, w, b, padding=1)`` keeps L for k = 3.
    """
    x, unbatched = _as_1d_image(input, "conv1d")
    weight = as_tensor_operand(weight, x)
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: weight must be 3-D (out_channels, in_channels/groups, kernel), got {weight.shape}")
    if not isinstance(padding, str):
        padding = (0, _single(padding, "conv1d", "padding"))
    y = _nn.conv2d(x, _ops.expand_dims(weight, 2), bias, (1, _single(stride, "conv1d", "stride")), padding,
                   (1, _single(dilation, "conv1d", "dilation")), groups)
    return _from_1d_image(y, unbatched)


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """Max over each window of (N, C, L) or (C, L) (stride defaults to the kernel size)."""
    if return_indices:
        raise ArgumentError("max_pool1d: return_indices=True is not supported")
    x, unbatched = _as_1d_image(input, "max_pool1d")
    k = _single(kernel_size, "max_pool1d", "kernel_size")
    s = k if stride is None or stride == () else _single(stride, "max_pool1d", "stride")
    y = _nn.max_pool2d(x, (1, k), (1, s), (0, _single(padding, "max_pool1d", "padding")),
                       (1, _single(dilation, "max_pool1d", "dilation")), ceil_mode)
    return _from_1d_image(y, unbatched)


def avg_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over each window of (N, C, L) or (C, L) (PyTorch's avg_pool1d, same defaults)."""
    x, unbatched = _as_1d_image(input, "avg_pool1d")
    k = _single(kernel_size, "avg_pool1d", "kernel_size")
    s = k if stride is None or stride == () else _single(stride, "avg_pool1d", "stride")
    y = _nn.avg_pool2d(x, (1, k), (1, s), (0, _single(padding, "avg_pool1d", "padding")), ceil_mode,
                       count_include_pad)
    return _from_1d_image(y, unbatched)


def _adaptive_bins(size: int, out: int, dtype: Any) -> np.ndarray:
    """(out, size) averaging matrix: row i averages [floor(i size / out), ceil((i + 1) size / out))."""
    m = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Average over PyTorch's adaptive bins, giving (N, C, *output_size) whatever the input's H and
    W (``None`` in output_size keeps that size): bin i of an axis of length n covers
    [floor(i n / out), ceil((i + 1) n / out)). Computed as two matmuls with averaging matrices.

    Example: ``F.adaptive_avg_pool2d(x, 1)`` is the global average pool (N, C, 1, 1).
    """
    from gpugrad.factories import tensor

    x = as_tensor_operand(input)
    if x.ndim not in (3, 4):
        raise ShapeError(f"adaptive_avg_pool2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got {x.shape}")
    if x.dtype.kind != "f":
        raise DTypeError(f"adaptive_avg_pool2d: expected a floating-point input, got dtype {x.dtype}")
    sizes = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(sizes) != 2:
        raise ArgumentError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")
    h, w = x.shape[-2:]
    oh, ow = (h if sizes[0] is None else int(sizes[0])), (w if sizes[1] is None else int(sizes[1]))
    if oh <= 0 or ow <= 0 or h == 0 or w == 0:
        raise ShapeError(f"adaptive_avg_pool2d: cannot pool input {x.shape} to output size {(oh, ow)}")
    rows = tensor(_adaptive_bins(h, oh, x.dtype), device=x.device)
    cols = tensor(_adaptive_bins(w, ow, x.dtype).T, device=x.device)
    return _ops.matmul(_ops.matmul(rows, x), cols)


def max_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """Max over each window (stride defaults to the kernel size). ``return_indices`` is not supported."""
    if return_indices:
        raise ArgumentError("max_pool2d: return_indices=True is not supported")
    return _nn.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over each window (PyTorch's avg_pool2d, same defaults)."""
    return _nn.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


# ---- regularisation and normalisation -------------------------------------------------------------


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability ``p``, scale the rest by 1/(1-p); identity when not ``training``.

    The mask comes from gpugrad's seeded generator of the input's device (``gg.manual_seed``).
    """
    return _nn.dropout(input, p, training)


def layer_norm(input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` axes, then scale and shift (one fused op)."""
    return _nn.layer_norm(input, normalized_shape, weight, bias, eps)


def batch_norm(input: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, momentum: float | None = 0.1, eps: float = 1e-5,
               num_batches_tracked: Tensor | None = None) -> Tensor:
    """Batch normalisation of ``input`` (N, C, ...) per channel, as PyTorch's.

    Training: normalise with the batch mean and biased variance and, when ``running_mean``/
    ``running_var`` are given, update them in place: r = (1 - momentum) r + momentum batch_stat,
    with the unbiased variance (``momentum=None``: a cumulative average over
    ``num_batches_tracked``, which the caller increments). Eval: normalise with the running
    statistics. Example: ``F.batch_norm(x, rm, rv, w, b, training=True)``.
    """
    input = as_tensor_operand(input)
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: expected an input (N, C, ...), got shape {input.shape}")
    _nn.check_channel_vectors(input, running_mean=running_mean, running_var=running_var)
    if training:
        mean, var, _, _, n = _nn.batch_norm_stats(input)
        if n <= 1:
            raise ShapeError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"shape {input.shape}")
        if running_mean is not None and running_var is not None:
            if momentum is None:
                if num_batches_tracked is None:
                    raise ArgumentError("batch_norm: momentum=None (cumulative average) needs num_batches_tracked")
                # 1 / max(1, n) as a device scalar: no host sync per step
                n_tracked = num_batches_tracked.data if isinstance(num_batches_tracked, Tensor) else \
                    num_batches_tracked
                xp = backend_for(input.device).xp
                factor = 1.0 / xp.maximum(n_tracked, 1).astype(input.dtype)
            else:
                factor = float(momentum)
            with no_grad():
                _blend(running_mean, mean, factor)
                _blend(running_var, var * (n / (n - 1)), factor)
        return _nn.batch_norm_apply(input, weight, bias, mean, var, True, eps)
    if running_mean is None or running_var is None:
        raise ArgumentError("batch_norm: eval mode (training=False) needs running_mean and running_var")
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    return _nn.batch_norm_apply(input, weight, bias, rm.copy(), rv.copy(), False, eps)


def _blend(buffer: Tensor, value: Any, factor: float) -> None:
    """buffer = (1 - factor) buffer + factor value, in place (a buffer update, not recorded)."""
    arr = buffer.data
    new = arr * (1.0 - factor) + value.astype(arr.dtype, copy=False) * factor
    arr[...] = new
    buffer._version[0] += 1


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) at the integer ``input`` indices; no gradient flows
    into row ``padding_idx``. Example: ``F.embedding(tokens, wte)``."""
    return _nn.embedding(input, weight, padding_idx)


# ---- losses ------------------------------------------------------------------------------------


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Log-softmax + negative log-likelihood in one fused op (PyTorch's cross_entropy).

    ``input``: logits (N, C), (C,) or (N, C, d1, ...); ``target``: integer labels (ignore_index
    skipped, 'mean' over the rest) or class probabilities of the input's shape.
    Example: ``F.cross_entropy(logits, labels, label_smoothing=0.1)``.
    """
    return _nn.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    _nn.check_reduction(op, reduction)
    if reduction == "mean":
        return _ops.mean(loss)
    if reduction == "sum":
        return _ops.sum(loss)
    return loss


def _pair_operands(input: Any, target: Any, op: str) -> tuple[Tensor, Tensor]:
    input = as_tensor_operand(input)
    target = as_tensor_operand(target, input)
    if input.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point input, got dtype {input.dtype}")
    if target.shape != input.shape:
        warnings.warn(f"{op}: target shape {target.shape} differs from input shape {input.shape}; they are "
                      "broadcast, which is rarely intended", UserWarning, stacklevel=3)
    if target.dtype != input.dtype:
        target = target.astype(input.dtype)
    return input, target


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer labels given log-probabilities (N, C) or (N, C, d1, ...)."""
    input = as_tensor_operand(input)
    _nn.check_reduction("nll_loss", reduction)
    if input.ndim < 1:
        raise ShapeError("nll_loss: input must have a class axis")
    x = input
    if x.ndim == 1:
        x = _ops.reshape(x, (1, x.shape[0]))
    elif x.ndim > 2:
        x = _ops.moveaxis(x, 1, -1)
    c = x.shape[-1]
    batch_shape = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    x = _ops.reshape(x, (-1, c))
    B = backend_for(input.device)
    t = target.data if isinstance(target, Tensor) else B.asarray(np.asarray(target))
    if t.dtype.kind not in "iu":
        raise DTypeError(f"nll_loss: target must hold integer labels, got dtype {t.dtype}")
    if tuple(t.shape) != batch_shape:
        raise ShapeError(f"nll_loss: target must have shape {batch_shape} for input {input.shape}, "
                         f"got {tuple(t.shape)}")
    t = t.reshape(-1).astype(np.int64)
    valid = t != ignore_index
    if B.xp is np and t.size and bool((valid & ((t < 0) | (t >= c))).any()):
        raise ArgumentError(f"nll_loss: labels must be in [0, {c}) or equal ignore_index ({ignore_index})")
    safe = B.xp.where(valid, t, 0)
    w = valid.astype(input.dtype)
    if weight is not None:
        wt = weight.data if isinstance(weight, Tensor) else B.asarray(np.asarray(weight))
        w = w * wt.astype(input.dtype)[safe]
    picked = _ops.getitem(x, (B.xp.arange(x.shape[0]), safe))
    rows = -picked * w
    if reduction == "none":
        return _ops.reshape(rows, batch_shape)
    total = _ops.sum(rows)
    return total / B.xp.sum(w) if reduction == "mean" else total


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or none) of (input - target)^2."""
    input, target = _pair_operands(input, target, "mse_loss")
    return _reduce(_ops.square(input - target), reduction, "mse_loss")


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or none) of |input - target|."""
    input, target = _pair_operands(input, target, "l1_loss")
    return _reduce(_ops.abs(input - target), reduction, "l1_loss")


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) for probabilities p; each log clamped at -100 as in PyTorch."""
    input, target = _pair_operands(input, target, "binary_cross_entropy")
    log_p = _ops.clip(_ops.log(input), -100.0, None)
    log_q = _ops.clip(_ops.log(1 - input), -100.0, None)
    loss = -(target * log_p + (1 - target) * log_q)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Sigmoid + binary cross-entropy, computed stably from logits x:
    (1 - t) x + (1 + (pw - 1) t) (log1p(exp(-|x|)) + max(-x, 0)) (PyTorch's formula; pw = pos_weight or 1)."""
    input, target = _pair_operands(input, target, "binary_cross_entropy_with_logits")
    softplus_neg = _ops.log1p(_ops.exp(-_ops.abs(input))) + _ops.relu(-input)  # log(1 + exp(-x)), stable
    if pos_weight is not None:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * softplus_neg
    else:
        loss = (1 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


# ---- attention ---------------------------------------------------------------------------------


def causal_mask(length: int, source_length: int | None = None, device: str = "cpu") -> Any:
    """Boolean (L, S) array, True where query i may attend key j <= i (PyTorch's is_causal mask)."""
    xp = backend_for(device).xp
    s = length if source_length is None else source_length
    return xp.tril(xp.ones((length, s), dtype=bool))


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale + mask) v over the last two axes, as PyTorch's.

    q (..., L, E), k (..., S, E), v (..., S, Ev); ``scale`` defaults to 1/sqrt(E). ``attn_mask``:
    boolean (True = may attend) or additive float, broadcast to (..., L, S); ``is_causal``: a
    lower-triangular mask (not combined with ``attn_mask``, as in PyTorch). Dropout on the
    attention weights with probability ``dropout_p``. A row with no allowed key gives NaN.

    Example: ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``.
    """
    query = as_tensor_operand(query)
    key = as_tensor_operand(key, query)
    value = as_tensor_operand(value, query)
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError("scaled_dot_product_attention: query, key and value must be at least 2-D")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: incompatible shapes query {query.shape}, key {key.shape}, "
                         f"value {value.shape} (need query[-1] == key[-1] and key[-2] == value[-2])")
    if is_causal and attn_mask is not None:
        raise ArgumentError("scaled_dot_product_attention: give either attn_mask or is_causal=True, not both")
    e = query.shape[-1]
    sc = 1.0 / math.sqrt(e) if scale is None else float(scale)
    scores = _ops.matmul(query * sc, _ops.swapaxes(key, -1, -2))
    length, source = query.shape[-2], key.shape[-2]
    if is_causal:
        scores = _ops.where(causal_mask(length, source, query.device), scores, -math.inf)
    elif attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
        if getattr(mask, "dtype", None) is not None and mask.dtype == np.bool_:
            scores = _ops.where(mask, scores, -math.inf)
        else:
            scores = scores + attn_mask
    attn = _ops.softmax(scores, -1)
    if dropout_p > 0.0:
        attn = _nn.dropout(attn, dropout_p, True)
    return _ops.matmul(attn, value)
