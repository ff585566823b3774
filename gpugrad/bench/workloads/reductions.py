"""Reductions forward+backward: sum, mean and softmax over rows (axis=1, along each row) and
over columns (axis=0) of an R x C float32 matrix.

The loss makes the gradient non-trivial: ``sum(reduce(x, axis) * w)`` with a random ``w`` of
the reduced shape, and ``sum(softmax(x, axis) * W)`` with a random ``W`` of x's shape.
Bytes per step, one kernel per op, in units of N = R*C elements: sum/mean 2 (read x; write the
broadcast gradient into x.grad); softmax 11 (softmax 2, the product with W 3, its sum 1;
backward: the product's gradient 2, softmax's fused rule 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Workload, register
from gpugrad.bench.patterns import GradSpec, grad_builders
from gpugrad.bench.workloads._common import SHORT

OPS = ("sum", "mean", "softmax")
UNITS = {"sum": 2, "mean": 2, "softmax": 11}


def _cases(settings: Any) -> list[Case]:
    if settings.gpu:
        r = c = 4096 if settings.quick else 8192
    else:
        r = c = 512 if settings.quick else 2048
    dt = "float32"
    item = np.dtype(dt).itemsize
    out = []
    for op in OPS:
        for axis in (1, 0):
            n = r * c
            out.append(Case("reductions", f"{op} axis={axis} {r}x{c} {SHORT[dt]}", {"op": op, "axis": axis,
                            "shape": (r, c)}, size=n, bytes=UNITS[op] * n * item,
                            bytes_floor=(3 if op == "softmax" else 2) * n * item, dtype=dt,
                            series=f"{op} axis={axis}", size_label="elements"))
    return out


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    r, c = case.params["shape"]
    x = rng.standard_normal((r, c), dtype=np.float32)
    if case.params["op"] == "softmax":
        w = rng.standard_normal((r, c), dtype=np.float32)
    else:
        w = rng.standard_normal(r if case.params["axis"] == 1 else c, dtype=np.float32)
    return {"x": x, "w": w}


def _spec(case: Case) -> GradSpec:
    op, axis = case.params["op"], case.params["axis"]
    r, c = case.params["shape"]
    count = c if axis == 1 else r

    def gg_f(x: Any, w: Any) -> Any:
        import gpugrad as gg

        if op == "softmax":
            return (gg.softmax(x, axis=axis) * w).sum()
        return (getattr(gg, op)(x, axis=axis) * w).sum()

    def torch_f(x: Any, w: Any) -> Any:
        import torch

        if op == "softmax":
            return (torch.softmax(x, dim=axis) * w).sum()
        return (getattr(torch, op)(x, dim=axis) * w).sum()

    def jax_f(x: Any, w: Any) -> Any:
        import jax
        import jax.numpy as jnp

        if op == "softmax":
            return jnp.sum(jax.nn.softmax(x, axis=axis) * w)
        return jnp.sum(getattr(jnp, op)(x, axis=axis) * w)

    def ag_f(x: Any, w: Any) -> Any:
        import autograd.numpy as anp

        if op == "softmax":
            e = anp.exp(x - anp.max(x, axis=axis, keepdims=True))
            return anp.sum(e / anp.sum(e, axis=axis, keepdims=True) * w)
        return anp.sum(getattr(anp, op)(x, axis=axis) * w)

    def np_f(xp: Any, x: Any, w: Any) -> tuple[Any, dict]:
        if op == "softmax":
            e = xp.exp(x - x.max(axis=axis, keepdims=True))
            s = e / e.sum(axis=axis, keepdims=True)
            out = (s * w).sum()
            gx = s * (w - (w * s).sum(axis=axis, keepdims=True))
            return out, {"x": gx}
        red = x.sum(axis=axis) if op == "sum" else x.mean(axis=axis)
        out = (red * w).sum()
        g = xp.expand_dims(w if op == "sum" else w / count, axis)
        return out, {"x": xp.broadcast_to(g, x.shape).copy()}

    return GradSpec(diff=("x",), gg=gg_f, torch=torch_f, jax=jax_f, autograd=ag_f, numpy=np_f)


register(Workload("reductions", "reductions", "sum / mean / softmax over rows and columns, fwd+bwd",
                  _cases, _inputs, grad_builders(_spec)))
