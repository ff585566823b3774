"""User-defined ops with their own derivative rules, as JAX's ``custom_vjp`` / ``custom_jvp``.

``custom_vjp``: the function's reverse-mode rule is the user's ``bwd`` (e.g. a numerically
stable gradient, or a gradient through a non-differentiable solver)::

    @gg.custom_vjp
    def clip_gradient(x):
        return x

    def fwd(x):
        return x, None                 # (output, residuals for bwd)

    def bwd(res, g):
        return (gg.clip(g, -1.0, 1.0),)  # one gradient per positional argument

    clip_gradient.defvjp(fwd, bwd)

``custom_jvp``: the function's forward-mode rule is the user's; reverse mode differentiates
the function's own ops::

    @gg.custom_jvp
    def log1pexp(x):
        return gg.log1p(gg.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), t * gg.sigmoid(x)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from gpugrad.autograd.grad_mode import no_grad
from gpugrad.autograd.state import STATE
from gpugrad.errors import GpugradError
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor, make_tensor


class _CustomVJPOp(Op):
    save_inputs = False

    def __init__(self, owner: custom_vjp) -> None:
        self.owner = owner
        self.name = f"custom_vjp({owner.__name__})"

    def forward(self, B: Any, args: list, params: dict) -> Any:
        tensors = [make_tensor(a, params["device"]) if hasattr(a, "dtype") and hasattr(a, "shape") else a
                   for a in args]
        with no_grad():
            result = self.owner.fwd(*tensors)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise GpugradError(f"{self.name}: fwd must return (output, residuals), got {type(result).__name__}")
        out, res = result
        if not isinstance(out, Tensor):
            raise GpugradError(f"{self.name}: fwd's output must be a Tensor, got {type(out).__name__}")
        params["res"] = res
        return out.data

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        create_graph = isinstance(g, Tensor)
        gt = g if create_graph else make_tensor(g, params["device"])
        grads = self.owner.bwd(params["res"], gt)
        if not isinstance(grads, (tuple, list)) or len(grads) != len(needs):
            raise GpugradError(
                f"{self.name}: bwd must return a tuple with one gradient per positional argument "
                f"({len(needs)}), got {grads!r:.80}"
            )
        result = []
        for gi, need in zip(grads, needs):
            if not need or gi is None:
                result.append(None)
            elif create_graph:
                result.append(gi if isinstance(gi, Tensor) else make_tensor(gi, params["device"]))
            else:
                result.append(gi.data if isinstance(gi, Tensor) else gi)
        return tuple(result)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        raise GpugradError(f"{self.name}: forward mode (jvp) is not defined for a custom_vjp function; "
                           "give it a jvp rule with gg.custom_jvp instead")


class custom_vjp:  # noqa: N801 (JAX's name)
    """Decorate a function whose reverse-mode rule you provide with ``.defvjp(fwd, bwd)``.

    ``fwd(*args) -> (output, residuals)`` runs without recording; ``bwd(residuals, g)`` returns
    one gradient (or None) per positional argument. The output must be a single Tensor.
    """

    def __init__(self, fun: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None
        self.op = _CustomVJPOp(self)

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> custom_vjp:
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise GpugradError(f"custom_vjp function {self.__name__!r} has no rule yet: call .defvjp(fwd, bwd)")
        device = next((a.device for a in args if isinstance(a, Tensor)), "cpu")
        return apply(self.op, args, {"device": device})


class custom_jvp:  # noqa: N801 (JAX's name)
    """Decorate a function whose forward-mode rule you provide with ``@f.defjvp``.

    The rule is called as ``rule(primals, tangents)`` (tuples, one entry per positional
    argument; a tangent is a zero tensor where the argument carries none) and returns
    ``(output, output_tangent)``. Reverse mode differentiates the function's own ops.
    """

    def __init__(self, fun: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.rule: Callable[..., Any] | None = None

    def defjvp(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        self.rule = rule
        return rule

    def __call__(self, *args: Any) -> Any:
        active = STATE.fw_levels
        levels: set[int] = set()
        if active:
            for a in args:
                if isinstance(a, Tensor) and a._tangents:
                    levels.update(lv for lv in a._tangents if lv in active and lv not in STATE.fw_masked)
        if not levels:
            return self.fun(*args)
        if self.rule is None:
            raise GpugradError(f"custom_jvp function {self.__name__!r} has no rule yet: decorate one with @.defjvp")
        masked = STATE.fw_masked
        STATE.fw_masked = masked | levels
        try:
            out = self.fun(*args)  # the primal, without pushing these levels' tangents through it
        finally:
            STATE.fw_masked = masked
        if not isinstance(out, Tensor):
            raise GpugradError(f"custom_jvp function {self.__name__!r} must return a single Tensor")
        from gpugrad.factories import zeros_like

        for level in sorted(levels):
            tangents = tuple(_tangent_or_zeros(a, level, zeros_like) for a in args)
            STATE.fw_masked = masked | {level}
            try:
                _, t_out = self.rule(tuple(args), tangents)
            finally:
                STATE.fw_masked = masked
            if out._tangents is None:
                out._tangents = {}
            out._tangents[level] = t_out if isinstance(t_out, Tensor) else make_tensor(t_out, out.device)
        return out


def _tangent_or_zeros(a: Any, level: int, zeros_like: Callable[[Any], Tensor]) -> Any:
    if not isinstance(a, Tensor):
        return None
    t = a._tangents.get(level) if a._tangents else None
    return zeros_like(a) if t is None else t
