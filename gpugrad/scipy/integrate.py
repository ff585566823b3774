"""``odeint`` as SciPy's, differentiable with respect to the initial state ``y0``, the times ``t``
and the numeric ``args`` by the adjoint method (as HIPS autograd's ``autograd.scipy.integrate``).

The forward is ``scipy.integrate.odeint`` (LSODA). The gradient integrates, backwards from each
output time to the previous one, the state together with its adjoint a = dL/dy and the
accumulated parameter and time gradients:

    dy/dt = f(y, t, p),   da/dt = -a^T df/dy,   d(p_bar)/dt = -a^T df/dp,   d(t_bar)/dt = -a^T df/dt,

with the vector-Jacobian products of ``f`` taken by ``gg.vjp``; that backward pass is itself an
odeint of the same kind, so second derivatives work too. ``f`` receives NumPy arrays in the
forward (write it with ``gpugrad.numpy``, as for ``gg.grad``) and tensors while differentiating.
CPU only (SciPy's integrator).

Example::

    import gpugrad as gg
    import gpugrad.numpy as np
    from gpugrad.scipy.integrate import odeint

    def decay(y, t, k):
        return -k * y
    dk = gg.grad(lambda k: odeint(decay, np.ones(2), np.linspace(0, 1, 5), (k,))[-1].sum())(0.5)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.autograd import pytree
from gpugrad.errors import ArgumentError, DeviceError, ShapeError
from gpugrad.ops.base import Op, apply
from gpugrad.ops.namespace import tensor_namespace
from gpugrad.ops.special import operand, rule_call, scipy_module
from gpugrad.scipy._dispatch import dual
from gpugrad.tensor import Tensor

__all__ = ["odeint"]


def _plain(v: Any) -> np.ndarray:
    return v.numpy() if isinstance(v, Tensor) else np.asarray(v, dtype=np.float64)


class OdeInt(Op):
    """(y0, t, *p) -> y at each time in t (shape (len(t), y0.size)); ``params["func"]`` is
    f(y, t, *p) with the numeric arguments p flat."""

    name = "odeint"
    save_inputs = True
    save_out = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        if B.xp is not np:
            raise DeviceError("odeint: SciPy's integrator runs on the CPU; move y0, t and args there with .cpu()")
        y0, t, *p = args
        func = params["func"]

        def f(y: np.ndarray, tt: float) -> np.ndarray:
            return _plain(func(y, tt, *p)).reshape(-1)

        out = scipy_module("integrate").odeint(f, np.reshape(y0, -1), t, **params["kwargs"])
        return np.asarray(out, dtype=np.float64)

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        y0, t, *p = args
        func = params["func"]
        n_t, dim = out.shape
        sizes = [int(np.size(v)) for v in p]
        aug = _augmented(func, dim, sizes)
        a = ns.getitem(g, n_t - 1)  # the adjoint dL/dy at the last time
        t_bars = []
        t_bar0 = None  # the gradient of the first time, accumulated (None: zero)
        p_bar = None  # the parameters' gradients, flat (None: zero)
        for i in range(n_t - 1, 0, -1):
            y_i = ns.getitem(out, i)
            t_i = ns.getitem(t, i)
            # moving t_i moves the output y(t_i) along f(y(t_i), t_i)
            f_i = func(y_i, t_i, *p)
            if ns is not tensor_namespace():
                f_i = _plain(f_i)
            t_bar = ns.sum(ns.reshape(f_i, (-1,)) * ns.getitem(g, i))
            t_bars.append(t_bar)
            t_bar0 = -t_bar if t_bar0 is None else t_bar0 - t_bar
            parts = [y_i, a, ns.reshape(t_bar0, (1,))]
            parts.append(p_bar if p_bar is not None else ns.new_zeros(y_i, (sum(sizes),)))
            state = ns.concatenate(parts, 0)
            span = ns.concatenate([ns.getitem(t, slice(i, i + 1)), ns.getitem(t, slice(i - 1, i))], 0)
            back = rule_call(ns, ODEINT, (state, span, *p), {"func": aug, "kwargs": params["kwargs"]})
            back = ns.getitem(back, 1)
            a = ns.getitem(back, slice(dim, 2 * dim)) + ns.getitem(g, i - 1)
            t_bar0 = ns.getitem(back, 2 * dim)
            p_bar = ns.getitem(back, slice(2 * dim + 1, None))
        t_bars.append(ns.new_zeros(out, ()) if t_bar0 is None else t_bar0)
        grads: list[Any] = [ns.reshape(a, tuple(np.shape(y0))) if needs[0] else None]
        grads.append(ns.concatenate([ns.reshape(v, (1,)) for v in reversed(t_bars)], 0) if needs[1] else None)
        start = 0
        for k, size in enumerate(sizes):
            if needs[2 + k]:
                if p_bar is None:
                    piece = ns.new_zeros(out, (size,))
                else:
                    piece = ns.getitem(p_bar, slice(start, start + size))
                grads.append(ns.reshape(piece, tuple(np.shape(p[k]))))
            else:
                grads.append(None)
            start += size
        return tuple(grads)


ODEINT = OdeInt()


def _augmented(func: Callable[..., Any], dim: int, sizes: list[int]) -> Callable[..., Any]:
    """The backward dynamics of state [y, a, t_bar, p_bar]: [f, -a^T df/dy, -a^T df/dt, -a^T df/dp]."""
    import gpugrad as gg
    import gpugrad.numpy as gnp

    def aug(state: Any, tt: Any, *p: Any) -> Any:
        y = state[:dim]
        a = state[dim:2 * dim]
        fy, pullback = gg.vjp(lambda y_, t_, *p_: gnp.reshape(func(y_, t_, *p_), (-1,)), y, tt, *p)
        gy, gt, *gp = pullback(-a)
        return gnp.concatenate([fy, gy, gnp.reshape(gt, (1,))] + [gnp.reshape(v, (-1,)) for v in gp])

    return aug


def _odeint(func: Callable[..., Any], y0: Any, t: Any, args: tuple = (), **kwargs: Any) -> Tensor:
    """Integrate dy/dt = func(y, t, *args) from y0 and return y at each time in t, as
    ``scipy.integrate.odeint`` (keyword options such as ``rtol``, ``atol``, ``mxstep`` pass through;
    ``full_output`` is not supported). Differentiable in y0, t and every numeric leaf of ``args``
    (arrays, tensors, floats, also inside tuples/lists); other leaves are passed as they are."""
    if kwargs.get("full_output"):
        raise ArgumentError("odeint: full_output=True is not supported (the result must be one array)")
    if not isinstance(args, tuple):
        args = (args,)
    leaves, structure = pytree.flatten(args)
    numeric = [not isinstance(v, (bool, str, type(None))) and (isinstance(v, (Tensor, np.ndarray, float))
               or (isinstance(v, numbers.Number) and not isinstance(v, numbers.Integral))) for v in leaves]
    fixed = [None if m else v for v, m in zip(leaves, numeric)]

    def flat_func(y: Any, tt: Any, *p: Any) -> Any:
        it = iter(p)
        full = [next(it) if m else v for v, m in zip(fixed, numeric)]
        return func(y, tt, *pytree.unflatten(structure, full))

    like = next((v for v in (y0, t, *leaves) if isinstance(v, Tensor)), None)
    y0 = operand(y0, like).astype(np.float64)
    t = operand(t, like).astype(np.float64)
    if t.ndim != 1:
        raise ShapeError(f"odeint: t must be a 1-D sequence of times, got shape {t.shape}")
    p = [operand(v, like).astype(np.float64) for v, m in zip(leaves, numeric) if m]
    return apply(ODEINT, (y0, t, *p), {"func": flat_func, "kwargs": kwargs})


odeint = dual("integrate.odeint", _odeint)
