"""Recurrent layers with PyTorch's constructors, parameter names, initialisation, shapes and
results: ``RNN``, ``LSTM``, ``GRU`` (``num_layers``, ``batch_first``, ``bidirectional``,
``dropout``) and the single-step cells ``RNNCell``, ``LSTMCell``, ``GRUCell``.

One time step is a composition of differentiable ops: two matmuls (input and hidden
projections) and the gate arithmetic in the op table's elementwise ops (sigmoid, tanh, +, *),
so the gradients, higher-order gradients and forward-mode tangents follow from those ops, and a
fusing backend runs each step's gate arithmetic as one elementwise chain. Each cell's step
function below is the only definition of its math: the layers and the cells both call it.

    lstm = nn.LSTM(input_size=64, hidden_size=128, num_layers=2, batch_first=True)
    output, (h_n, c_n) = lstm(x)              # x (N, L, 64) -> output (N, L, 128)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from gpugrad import ops
from gpugrad.errors import ArgumentError, ShapeError
from gpugrad.nn import functional as F
from gpugrad.nn import init
from gpugrad.nn.module import Module, Parameter
from gpugrad.ops._util import as_tensor_operand
from gpugrad.tensor import Tensor

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

State = Any  # a Tensor h, or a pair (h, c) for the LSTM


# ---- one time step per cell kind: gi = x W_ih^T + b_ih (input projection, computed by the caller) ----


def _tanh_step(gi: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    """Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return ops.tanh(_hidden_sum(gi, h, w_hh_t, b_hh))


def _relu_step(gi: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    """Elman RNN with ReLU: h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return ops.relu(_hidden_sum(gi, h, w_hh_t, b_hh))


def _hidden_sum(gi: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    s = gi + ops.matmul(h, w_hh_t)
    return s if b_hh is None else s + b_hh


def _lstm_step(gi: Tensor, state: tuple[Tensor, Tensor], w_hh_t: Tensor,
               b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    """LSTM (gate order i, f, g, o as PyTorch): c' = sigmoid(f) c + sigmoid(i) tanh(g),
    h' = sigmoid(o) tanh(c')."""
    h, c = state
    i, f, g, o = ops.split(_hidden_sum(gi, h, w_hh_t, b_hh), 4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def _gru_step(gi: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    """GRU (gate order r, z, n as PyTorch): r = sigmoid(i_r + h_r), z = sigmoid(i_z + h_z),
    n = tanh(i_n + r h_n), h' = (1 - z) n + z h, with h_* = h W_h*^T + b_h*."""
    gh = ops.matmul(h, w_hh_t)
    if b_hh is not None:
        gh = gh + b_hh
    i_r, i_z, i_n = ops.split(gi, 3, axis=-1)
    h_r, h_z, h_n = ops.split(gh, 3, axis=-1)
    r = ops.sigmoid(i_r + h_r)
    z = ops.sigmoid(i_z + h_z)
    n = ops.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


_STEPS: dict[str, tuple[int, Callable[..., Any]]] = {  # mode: (gates per hidden unit, step)
    "RNN_TANH": (1, _tanh_step),
    "RNN_RELU": (1, _relu_step),
    "LSTM": (4, _lstm_step),
    "GRU": (3, _gru_step),
}


def _unbind(x: Tensor, axis: int) -> list[Tensor]:
    """The slices of ``x`` along ``axis``, by halving: the backward of slicing allocates the whole
    operand per slice, so halving costs O(size * log(length)) instead of O(size * length)."""
    n = x.shape[axis]
    if n == 1:
        return [ops.squeeze(x, axis)]
    lo, hi = ops.split(x, [n // 2], axis=axis)
    return _unbind(lo, axis) + _unbind(hi, axis)


def _uniform_init(module: Module, hidden_size: int) -> None:
    """PyTorch's initialisation of every recurrent weight and bias: U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


def _new_parameter(shape: tuple[int, ...], device: Any, dtype: Any) -> Parameter:
    from gpugrad.factories import zeros

    return Parameter(zeros(shape, dtype=dtype, device=device))


# ---- the multi-layer sequence models -------------------------------------------------------------


class RNNBase(Module):
    """Shared by RNN, LSTM and GRU: parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (suffix ``_reverse`` for the backward direction) of
    shapes (gates * hidden, input) and (gates * hidden, hidden), as PyTorch's."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        for what, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(v, bool) or int(v) != v or v <= 0:
                raise ArgumentError(f"{name}: {what} must be a positive int, got {v!r}")
        if not 0.0 <= float(dropout) <= 1.0 or isinstance(dropout, bool):
            raise ArgumentError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if proj_size:
            raise ArgumentError(f"{name}: proj_size (LSTM projections) is not supported")
        if float(dropout) > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} and num_layers=1: dropout acts between layers only, so it "
                          "does nothing here", UserWarning, stacklevel=3)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), 0
        gates = _STEPS[mode][0] * self.hidden_size
        directions = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self.hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}", _new_parameter((gates, width), device, dtype))
                self.register_parameter(f"weight_hh_l{layer}{suffix}",
                                        _new_parameter((gates, self.hidden_size), device, dtype))
                if self.bias:
                    self.register_parameter(f"bias_ih_l{layer}{suffix}", _new_parameter((gates,), device, dtype))
                    self.register_parameter(f"bias_hh_l{layer}{suffix}", _new_parameter((gates,), device, dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    def _weights(self, layer: int, suffix: str) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        get = self._parameters.get
        return (get(f"weight_ih_l{layer}{suffix}"), get(f"weight_hh_l{layer}{suffix}"),
                get(f"bias_ih_l{layer}{suffix}"), get(f"bias_hh_l{layer}{suffix}"))

    def _check_input(self, x: Tensor) -> bool:
        """Validate the input's shape; returns whether it is batched."""
        name = type(self).__name__
        if x.ndim not in (2, 3):
            raise ShapeError(f"{name}: expected a 2-D (unbatched) or 3-D (batched) input, got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {x.shape[-1]} features (last axis of {x.shape}), expected "
                             f"input_size={self.input_size}")
        if x.dtype.kind != "f":
            from gpugrad.errors import DTypeError

            raise DTypeError(f"{name}: expected a floating-point input, got dtype {x.dtype}")
        if x.shape[0 if x.ndim == 2 or not self.batch_first else 1] == 0:
            raise ShapeError(f"{name}: the input sequence is empty (shape {x.shape})")
        return x.ndim == 3

    def _initial(self, hx: Any, x: Tensor, batched: bool, batch: int) -> list[Any]:
        """One initial state per (layer, direction): zeros, or the slices of ``hx``."""
        directions = 2 if self.bidirectional else 1
        count = self.num_layers * directions
        expected = (count, batch, self.hidden_size) if batched else (count, self.hidden_size)
        if hx is None:
            from gpugrad.factories import zeros

            z = zeros((batch, self.hidden_size), dtype=x.dtype, device=x.device)
            return [(z, z) if self.mode == "LSTM" else z] * count
        parts = hx if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ArgumentError("LSTM: the initial state must be a pair (h_0, c_0)")
        slices = []
        for what, t in zip(("h_0", "c_0"), parts):
            t = as_tensor_operand(t, x)
            if t.shape != expected:
                raise ShapeError(f"{type(self).__name__}: {what} must have shape {expected} for input {x.shape}, "
                                 f"got {t.shape}")
            if not batched:
                t = ops.expand_dims(t, 1)
            slices.append([t[k] for k in range(count)])
        return list(zip(*slices)) if self.mode == "LSTM" else slices[0]

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Any]:
        """``output, h_n = rnn(input, h_0)`` (LSTM: ``output, (h_n, c_n) = lstm(input, (h_0, c_0))``).

        input (L, N, input_size), or (N, L, input_size) with ``batch_first``, or unbatched
        (L, input_size); h_0 (num_layers * directions, N, hidden_size), zeros when omitted.
        output (L, N, directions * hidden_size): the last layer's hidden state at every step.
        """
        x = as_tensor_operand(input)
        batched = self._check_input(x)
        if not batched:
            x = ops.expand_dims(x, 1)
        time_axis = 1 if (batched and self.batch_first) else 0
        steps = _unbind(x, time_axis)
        state0 = self._initial(hx, x, batched, steps[0].shape[0])
        n_steps, step = len(steps), _STEPS[self.mode][1]
        directions = 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for d, suffix in enumerate(("", "_reverse")[:directions]):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, suffix)
                w_ih_t, w_hh_t = ops.transpose(w_ih), ops.transpose(w_hh)
                if self.mode != "GRU" and b_ih is not None:  # both biases add to the same sum: add them once
                    b_ih, b_hh = b_ih + b_hh, None
                state = state0[layer * directions + d]
                out = [None] * n_steps
                for t in (range(n_steps) if d == 0 else range(n_steps - 1, -1, -1)):
                    gi = ops.matmul(steps[t], w_ih_t)
                    state = step(gi if b_ih is None else gi + b_ih, state, w_hh_t, b_hh)
                    out[t] = state[0] if self.mode == "LSTM" else state
                outputs.append(out)
                finals.append(state)
            steps = outputs[0] if directions == 1 else [ops.concatenate([a, b], -1) for a, b in zip(*outputs)]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                steps = [F.dropout(s, self.dropout, True) for s in steps]
        output = ops.stack(steps, time_axis)
        if self.mode == "LSTM":
            h_n = ops.stack([s[0] for s in finals], 0)
            c_n = ops.stack([s[1] for s in finals], 0)
            if not batched:
                output, h_n, c_n = ops.squeeze(output, 1), ops.squeeze(h_n, 1), ops.squeeze(c_n, 1)
            return output, (h_n, c_n)
        h_n = ops.stack(finals, 0)
        if not batched:
            output, h_n = ops.squeeze(output, 1), ops.squeeze(h_n, 1)
        return output, h_n

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (``nonlinearity="relu"``
    for ReLU), stacked ``num_layers`` deep. Returns ``(output, h_n)``.

    Example: ``out, h_n = nn.RNN(10, 20, num_layers=2)(gg.randn(5, 3, 10))``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ArgumentError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o as PyTorch), stacked ``num_layers`` deep. Returns
    ``(output, (h_n, c_n))``; the initial state is a pair ``(h_0, c_0)`` (zeros when omitted).

    Example::

        lstm = nn.LSTM(64, 128, num_layers=2, batch_first=True, dropout=0.1)
        out, (h, c) = lstm(x)                       # x (N, L, 64) -> out (N, L, 128)
        out, (h, c) = lstm(x_next, (h.detach(), c.detach()))   # carry the state on
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit (gates r, z, n as PyTorch), stacked ``num_layers`` deep. Returns
    ``(output, h_n)``. Example: ``out, h_n = nn.GRU(8, 16, batch_first=True)(gg.randn(2, 5, 8))``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)


# ---- single steps ------------------------------------------------------------------------------


class RNNCellBase(Module):
    """Shared by the cells: ``weight_ih`` (gates * hidden, input), ``weight_hh`` (gates * hidden,
    hidden), ``bias_ih``, ``bias_hh``, initialised as the layers'."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool, device: Any, dtype: Any) -> None:
        super().__init__()
        for what, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(v, bool) or int(v) != v or v <= 0:
                raise ArgumentError(f"{type(self).__name__}: {what} must be a positive int, got {v!r}")
        self.mode = mode
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        gates = _STEPS[mode][0] * self.hidden_size
        self.weight_ih = _new_parameter((gates, self.input_size), device, dtype)
        self.weight_hh = _new_parameter((gates, self.hidden_size), device, dtype)
        if self.bias:
            self.bias_ih = _new_parameter((gates,), device, dtype)
            self.bias_hh = _new_parameter((gates,), device, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    def _step(self, input: Any, hx: Any) -> Any:
        name = type(self).__name__
        x = as_tensor_operand(input)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected an input (N, {self.input_size}) or ({self.input_size},), got "
                             f"shape {x.shape}")
        batched = x.ndim == 2
        if not batched:
            x = ops.expand_dims(x, 0)
        expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        if hx is None:
            from gpugrad.factories import zeros

            z = zeros((x.shape[0], self.hidden_size), dtype=x.dtype, device=x.device)
            state = (z, z) if self.mode == "LSTM" else z
        else:
            parts = hx if self.mode == "LSTM" else (hx,)
            if self.mode == "LSTM" and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise ArgumentError("LSTMCell: the state must be a pair (h, c)")
            checked = []
            for t in parts:
                t = as_tensor_operand(t, x)
                if t.shape != expected:
                    raise ShapeError(f"{name}: the hidden state must have shape {expected}, got {t.shape}")
                checked.append(t if batched else ops.expand_dims(t, 0))
            state = tuple(checked) if self.mode == "LSTM" else checked[0]
        b_ih, b_hh = self.bias_ih, self.bias_hh
        if self.mode != "GRU" and b_ih is not None:
            b_ih, b_hh = b_ih + b_hh, None
        gi = ops.matmul(x, ops.transpose(self.weight_ih))
        new = _STEPS[self.mode][1](gi if b_ih is None else gi + b_ih, state, ops.transpose(self.weight_hh), b_hh)
        if batched:
            return new
        return tuple(ops.squeeze(t, 0) for t in new) if self.mode == "LSTM" else ops.squeeze(new, 0)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``h' = cell(x, h)`` (h zeros when omitted). Example:
    ``h = nn.RNNCell(10, 20)(gg.randn(3, 10))``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ArgumentError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, bias, device,
                         dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        return self._step(input, hx)


class LSTMCell(RNNCellBase):
    """One LSTM step: ``h', c' = cell(x, (h, c))`` (zeros when the state is omitted)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        return self._step(input, hx)


class GRUCell(RNNCellBase):
    """One GRU step: ``h' = cell(x, h)`` (h zeros when omitted)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        return self._step(input, hx)
