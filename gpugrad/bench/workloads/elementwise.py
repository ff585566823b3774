"""Elementwise forward+backward throughput over a size sweep: ``y = sum(tanh(x) * sigmoid(x))``
and its gradient, from 1K to 64M float32 elements.

Bytes per step (``Case.bytes``) count the traffic of the ops run one kernel each, every kernel
reading its inputs once and writing its output once, in element-sized units of N elements:
forward tanh 2, sigmoid 2, mul 3, sum 1; backward mul's two gradients 4 (the scalar upstream
gradient is broadcast, never materialised), tanh's and sigmoid's fused rules 3 each, the
accumulation of the two contributions into x.grad 3: 21 N elements in all. A library that fuses
the whole step (JAX's jit) needs only the floor, read x and write x.grad (2 N), so it can pass
100% of the copy bandwidth on this count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Workload, register
from gpugrad.bench.patterns import GradSpec, grad_builders
from gpugrad.bench.workloads._common import SHORT, ag_sigmoid, human, np_sigmoid

FULL = [1 << (10 + 2 * k) for k in range(9)]  # 1K, 4K, ..., 64M


def _cases(settings: Any) -> list[Case]:
    if settings.quick:
        sizes = [1 << 10, 1 << 20, 1 << 26] if settings.gpu else [1 << 10, 1 << 16, 1 << 20]
    else:
        sizes = FULL
    dt = "float32"
    item = np.dtype(dt).itemsize
    return [Case("elementwise", f"n={human(n)} {SHORT[dt]}", {"n": n}, size=n, bytes=21 * n * item,
                 bytes_floor=2 * n * item, dtype=dt, series="tanh*sigmoid f32", size_label="elements") for n in sizes]


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal(case.params["n"], dtype=np.float32)}


def _spec(case: Case) -> GradSpec:
    def gg_f(x: Any) -> Any:
        import gpugrad as gg

        return (gg.tanh(x) * gg.sigmoid(x)).sum()

    def torch_f(x: Any) -> Any:
        import torch

        return (torch.tanh(x) * torch.sigmoid(x)).sum()

    def jax_f(x: Any) -> Any:
        import jax
        import jax.numpy as jnp

        return jnp.sum(jnp.tanh(x) * jax.nn.sigmoid(x))

    def ag_f(x: Any) -> Any:
        import autograd.numpy as anp

        return anp.sum(anp.tanh(x) * ag_sigmoid()(x))

    def np_f(xp: Any, x: Any) -> tuple[Any, dict]:
        t = xp.tanh(x)
        s = np_sigmoid(xp, x)
        out = (t * s).sum()
        gx = s * (1 - t * t) + t * s * (1 - s)
        return out, {"x": gx}

    return GradSpec(diff=("x",), gg=gg_f, torch=torch_f, jax=jax_f, autograd=ag_f, numpy=np_f)


register(Workload("elementwise", "elementwise", "sum(tanh(x) * sigmoid(x)) fwd+bwd over a size sweep",
                  _cases, _inputs, grad_builders(_spec)))
