"""The layers of ``gpugrad.nn``, with PyTorch's constructor arguments, parameter names, default
initialisations and train/eval behaviour. Each forwards to :mod:`gpugrad.nn.functional`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gpugrad import ops as _ops
from gpugrad.errors import ArgumentError, ShapeError
from gpugrad.nn import functional as F
from gpugrad.nn import init
from gpugrad.nn.module import Module, Parameter
from gpugrad.ops._util import as_tensor_operand
from gpugrad.tensor import Tensor


def _empty(shape: tuple, device: Any, dtype: Any) -> Parameter:
    from gpugrad.factories import zeros

    return Parameter(zeros(shape, dtype=dtype, device=device))


def _check_positive(cls: str, **values: int) -> None:
    for name, v in values.items():
        if int(v) <= 0:
            raise ArgumentError(f"{cls}: {name} must be positive, got {v}")


class Linear(Module):
    """y = x W^T + b with W (out_features, in_features); W and b ~ U(-1/sqrt(in), 1/sqrt(in))
    (PyTorch's kaiming_uniform(a=sqrt(5)) default). Example: ``nn.Linear(64, 256)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        _check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = _empty((self.out_features, self.in_features), device, dtype)
        self.bias = _empty((self.out_features,), device, dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Any) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(i) for i in v)  # type: ignore


class _ConvNd(Module):
    """Shared by Conv1d and Conv2d: weight (out, in/groups, *kernel) and bias initialised as
    Linear's with fan_in = in/groups * prod(kernel) (PyTorch's defaults); padding_mode 'zeros'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, ...], stride: Any, padding: Any,
                 dilation: Any, groups: int, bias: bool, padding_mode: str, device: Any, dtype: Any) -> None:
        super().__init__()
        name = type(self).__name__
        _check_positive(name, in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ArgumentError(f"{name}: groups={groups} must divide in_channels={in_channels} and "
                                f"out_channels={out_channels}")
        if padding_mode != "zeros":
            raise ArgumentError(f"{name}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = kernel_size
        self.stride, self.dilation, self.groups = stride, dilation, int(groups)
        self.padding = padding
        self.weight = _empty((self.out_channels, self.in_channels // self.groups) + self.kernel_size, device, dtype)
        if bias:
            self.bias = _empty((self.out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}")


class Conv2d(_ConvNd):
    """2-D convolution (PyTorch's Conv2d): weight (out, in/groups, kh, kw).
    Example: ``nn.Conv2d(1, 16, 3, padding=1)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, _pair(kernel_size), stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)

    def forward(self, x: Any) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _single(v: Any) -> tuple[int]:
    return (int(v[0]),) if isinstance(v, (tuple, list)) else (int(v),)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) (PyTorch's Conv1d): weight (out, in/groups, k).
    Example: ``nn.Conv1d(16, 32, 3, padding=1)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, _single(kernel_size), _single(stride),
                         padding if isinstance(padding, str) else _single(padding), _single(dilation), groups, bias,
                         padding_mode, device, dtype)

    def forward(self, x: Any) -> Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2d(Module):
    """Max pooling (stride defaults to kernel_size). Example: ``nn.MaxPool2d(2)``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        if return_indices:
            raise ArgumentError("MaxPool2d: return_indices=True is not supported")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Any) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling, PyTorch's defaults (count_include_pad=True). Example: ``nn.AvgPool2d(2)``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool1d(Module):
    """Max pooling over (N, C, L) (stride defaults to kernel_size). Example: ``nn.MaxPool1d(2)``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        if return_indices:
            raise ArgumentError("MaxPool1d: return_indices=True is not supported")
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = stride if stride is not None else kernel_size
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Any) -> Tensor:
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool1d(Module):
    """Average pooling over (N, C, L), PyTorch's defaults. Example: ``nn.AvgPool1d(3, stride=2)``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (an int, or a pair whose None entries keep the
    input's size). Example: ``nn.AdaptiveAvgPool2d(1)`` (global average pooling)."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        from gpugrad.factories import ones, tensor, zeros

        _check_positive(type(self).__name__, num_features=num_features)
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ones(self.num_features, dtype=dtype, device=device))
            self.bias = Parameter(zeros(self.num_features, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(self.num_features, dtype=dtype, device=device))
            self.register_buffer("running_var", ones(self.num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=np.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: Any) -> Tensor:
        x = as_tensor_operand(x)
        if x.ndim not in self._dims:
            raise ShapeError(f"{type(self).__name__}: expected a {' or '.join(f'{d}-D' for d in self._dims)} "
                             f"input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ShapeError(f"{type(self).__name__}({self.num_features}): input {x.shape} has {x.shape[1]} channels")
        use_batch = self.training or self.running_mean is None
        if self.training and self.num_batches_tracked is not None:
            nbt = self.num_batches_tracked
            nbt.data[...] = nbt.data + 1  # counted before the cumulative-average factor is read
            nbt._version[0] += 1
        running = self.training and self.running_mean is not None
        return F.batch_norm(x, self.running_mean if running or not use_batch else None,
                            self.running_var if running or not use_batch else None, self.weight, self.bias,
                            use_batch, self.momentum, self.eps, self.num_batches_tracked)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs; running statistics with momentum 0.1 and
    the unbiased batch variance, used in eval mode (PyTorch's BatchNorm1d)."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs per channel (PyTorch's BatchNorm2d)."""

    _dims = (4,)


class LayerNorm(Module):
    """Normalisation over the trailing ``normalized_shape`` with weight ones and bias zeros.
    Example: ``nn.LayerNorm(128)``."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        from gpugrad.factories import ones, zeros

        shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else tuple(
            int(s) for s in normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, float(eps), elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(shape, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(zeros(shape, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Embedding(Module):
    """A lookup table (num_embeddings, embedding_dim) initialised N(0, 1), row ``padding_idx`` zero.
    Example: ``nn.Embedding(vocab_size, 128)(tokens)``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        _check_positive("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            padding_idx = int(padding_idx)
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ArgumentError(f"Embedding: padding_idx must be in [-{num_embeddings}, {num_embeddings}), "
                                    f"got {padding_idx}")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = _empty((self.num_embeddings, self.embedding_dim), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices: Any) -> Tensor:
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Zero elements with probability ``p`` in training (scaling the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= float(p) <= 1.0:
            raise ArgumentError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Any) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Flatten axes start_dim..end_dim into one (default: all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Any) -> Tensor:
        return _ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class MultiHeadAttention(Module):
    """Multi-head attention with PyTorch's MultiheadAttention parameters (``in_proj_weight`` (3E, E)
    Xavier-uniform, ``in_proj_bias`` zeros, ``out_proj`` a Linear with zero bias) and call signature
    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, weights or None)``.

    Inputs are (L, N, E) by default, (N, L, E) with ``batch_first=True``. Masks as in PyTorch: a
    boolean ``attn_mask`` (L, S) or (N*heads, L, S) is True where attention is *not* allowed, a
    float one is added to the scores; ``key_padding_mask`` (N, S) True marks padding keys.
    ``is_causal=True`` applies the causal mask by itself (PyTorch requires attn_mask with it; here
    a given attn_mask is used as is). Example (a decoder block)::

        attn = nn.MultiHeadAttention(128, 4, batch_first=True)
        y, _ = attn(x, x, x, is_causal=True, need_weights=False)
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        _check_positive("MultiHeadAttention", embed_dim=embed_dim, num_heads=num_heads)
        if embed_dim % num_heads:
            raise ArgumentError(f"MultiHeadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                                f"({num_heads})")
        self.embed_dim, self.num_heads, self.dropout = int(embed_dim), int(num_heads), float(dropout)
        self.head_dim = self.embed_dim // self.num_heads
        self.batch_first = batch_first
        self.in_proj_weight = _empty((3 * self.embed_dim, self.embed_dim), device, dtype)
        if bias:
            self.in_proj_bias = _empty((3 * self.embed_dim,), device, dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(self.embed_dim, self.embed_dim, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x: Tensor, part: int) -> Tensor:
        e = self.embed_dim
        w = self.in_proj_weight[part * e:(part + 1) * e]
        b = None if self.in_proj_bias is None else self.in_proj_bias[part * e:(part + 1) * e]
        return F.linear(x, w, b)

    def _heads(self, t: Tensor) -> Tensor:
        n, length = t.shape[0], t.shape[1]
        return _ops.transpose(_ops.reshape(t, (n, length, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def forward(self, query: Any, key: Any, value: Any, key_padding_mask: Any = None, need_weights: bool = True,
                attn_mask: Any = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        from gpugrad.backends import backend_for

        same_kv = key is query and value is query
        query = as_tensor_operand(query)
        key = query if same_kv else as_tensor_operand(key, query)
        value = query if same_kv else as_tensor_operand(value, query)
        if query.ndim != 3:
            raise ShapeError(f"MultiHeadAttention: expected batched 3-D inputs, got query {query.shape}")
        if not self.batch_first:
            query, key, value = (_ops.swapaxes(t, 0, 1) for t in (query, key, value))
            if same_kv:
                key = value = query
        n, length, e = query.shape
        if e != self.embed_dim:
            raise ShapeError(f"MultiHeadAttention: query has {e} features, expected embed_dim={self.embed_dim}")
        if same_kv:  # self-attention: one matmul for q, k and v
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
            qkv = _ops.transpose(_ops.reshape(qkv, (n, length, 3, self.num_heads, self.head_dim)), (2, 0, 3, 1, 4))
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q = self._heads(self._project(query, 0))
            k = self._heads(self._project(key, 1))
            v = self._heads(self._project(value, 2))
        source = k.shape[2]
        xp = backend_for(query.device).xp
        mask = None  # additive float mask (N or 1, heads or 1, L, S)
        if attn_mask is not None:
            am = attn_mask.data if isinstance(attn_mask, Tensor) else xp.asarray(attn_mask)
            if am.dtype == np.bool_:
                am = xp.where(am, -np.inf, 0.0).astype(query.dtype)
            else:
                am = am.astype(query.dtype)
            if am.ndim == 3:
                am = am.reshape(n, self.num_heads, length, source)
            elif am.ndim != 2:
                raise ShapeError(f"MultiHeadAttention: attn_mask must be (L, S) or (N*num_heads, L, S), got {am.shape}")
            mask = am
        elif is_causal:
            mask = xp.where(xp.tril(xp.ones((length, source), dtype=bool)), 0.0, -np.inf).astype(query.dtype)
        if key_padding_mask is not None:
            kpm = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else xp.asarray(key_padding_mask)
            if kpm.shape != (n, source):
                raise ShapeError(f"MultiHeadAttention: key_padding_mask must be (N, S) = {(n, source)}, "
                                 f"got {kpm.shape}")
            if kpm.dtype == np.bool_:
                kpm = xp.where(kpm, -np.inf, 0.0)
            kpm = kpm.astype(query.dtype).reshape(n, 1, 1, source)
            mask = kpm if mask is None else mask + kpm
        scores = _ops.matmul(q * (1.0 / math.sqrt(self.head_dim)), _ops.swapaxes(k, -1, -2))
        if mask is not None:
            scores = scores + mask
        weights = _ops.softmax(scores, -1)
        attn = F.dropout(weights, self.dropout, self.training) if self.dropout > 0 else weights
        out = _ops.matmul(attn, v)  # (N, heads, L, head_dim)
        out = _ops.reshape(_ops.transpose(out, (0, 2, 1, 3)), (n, length, self.embed_dim))
        out = self.out_proj(out)
        if not self.batch_first:
            out = _ops.swapaxes(out, 0, 1)
        if not need_weights:
            return out, None
        return out, (_ops.mean(weights, 1) if average_attn_weights else weights)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


MultiheadAttention = MultiHeadAttention  # PyTorch's spelling
