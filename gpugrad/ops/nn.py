"""Neural-network primitives with fused rules: softmax and log_softmax.

Their backward rules are single expressions over the saved output (no exp/sum/div chain on the
tape), and the backends may run them as one kernel.
"""

from __future__ import annotations

from typing import Any

from gpugrad.ops._util import as_tensor_operand, normalize_one_axis
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor


class Softmax(Op):
    name = "softmax"
    save_inputs = False
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.softmax(args[0], params["axis"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        a = params["axis"]
        return (out * (g - ns.sum(g * out, a, True)),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        t = tangents[0]
        return out * (t - ns.sum(t * out, params["axis"], True))


class LogSoftmax(Op):
    name = "log_softmax"
    save_inputs = False
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.log_softmax(args[0], params["axis"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (g - ns.exp(out) * ns.sum(g, params["axis"], True),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        t = tangents[0]
        return t - ns.sum(ns.exp(out) * t, params["axis"], True)


SOFTMAX = Softmax()
LOG_SOFTMAX = LogSoftmax()


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed stably. Example: ``gg.softmax(logits, axis=-1)``."""
    x = as_tensor_operand(x)
    return apply(SOFTMAX, (x,), {"axis": normalize_one_axis(axis, x.ndim, "softmax")})


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along ``axis``, computed stably."""
    x = as_tensor_operand(x)
    return apply(LOG_SOFTMAX, (x,), {"axis": normalize_one_axis(axis, x.ndim, "log_softmax")})
