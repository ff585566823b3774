"""Per-op overhead: 25 repetitions of ``tanh -> *1.01 -> sigmoid -> +0.1`` on a 64-element
float32 vector (100 ops), then ``.sum()`` and backward, reported in microseconds per op
(step time / 100). The op mix is fixed so numbers compare with earlier measurements.

At 64 elements the arithmetic is nothing: this measures what each library spends per op on
recording, dispatch and the backward walk.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Workload, register
from gpugrad.bench.patterns import GradSpec, grad_builders
from gpugrad.bench.workloads._common import ag_sigmoid, np_sigmoid

REPS = 25
SCALE = 1.01
SHIFT = 0.1


def _cases(settings: Any) -> list[Case]:
    return [Case("chain", "100 ops n=64 f32", {"n": 64}, size=64, per=4 * REPS, unit="us/op",
                 dtype="float32", size_label="elements")]


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal(case.params["n"]).astype(np.float32)}


def _spec(case: Case) -> GradSpec:
    def gg_f(x: Any) -> Any:
        import gpugrad as gg

        y = x
        for _ in range(REPS):
            y = gg.sigmoid(gg.tanh(y) * SCALE) + SHIFT
        return y.sum()

    def torch_f(x: Any) -> Any:
        import torch

        y = x
        for _ in range(REPS):
            y = torch.sigmoid(torch.tanh(y) * SCALE) + SHIFT
        return y.sum()

    def jax_f(x: Any) -> Any:
        import jax
        import jax.numpy as jnp

        y = x
        for _ in range(REPS):
            y = jax.nn.sigmoid(jnp.tanh(y) * SCALE) + SHIFT
        return jnp.sum(y)

    def ag_f(x: Any) -> Any:
        import autograd.numpy as anp

        sigmoid = ag_sigmoid()
        y = x
        for _ in range(REPS):
            y = sigmoid(anp.tanh(y) * SCALE) + SHIFT
        return anp.sum(y)

    def np_f(xp: Any, x: Any) -> tuple[Any, dict]:
        ts, ss = [], []
        y = x
        for _ in range(REPS):
            t = xp.tanh(y)
            s = np_sigmoid(xp, t * SCALE)
            ts.append(t)
            ss.append(s)
            y = s + SHIFT
        out = y.sum()
        g = xp.ones_like(x)
        for t, s in zip(reversed(ts), reversed(ss)):
            g = g * s * (1 - s) * SCALE
            g = g * (1 - t * t)
        return out, {"x": g}

    return GradSpec(diff=("x",), gg=gg_f, torch=torch_f, jax=jax_f, autograd=ag_f, numpy=np_f)


register(Workload("chain", "overhead", "per-op overhead: (tanh, *1.01, sigmoid, +0.1) x25 on 64 floats, fwd+bwd",
                  _cases, _inputs, grad_builders(_spec)))
