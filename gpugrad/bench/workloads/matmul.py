"""Matrix product forward+backward over a size sweep and dtypes: ``C = A @ B`` pulled back with
a random cotangent G (``C.backward(G)``; JAX's vjp): three n x n x n products, 6 n^3 FLOPs.
Bytes, one kernel per product: 9 n^2 elements (each product reads two matrices, writes one).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Workload, register
from gpugrad.bench.patterns import GradSpec, grad_builders
from gpugrad.bench.workloads._common import SHORT


def _cases(settings: Any) -> list[Case]:
    if settings.gpu:
        sweep = {"float32": [1024, 4096] if settings.quick else [256, 512, 1024, 2048, 4096, 8192]}
        sweep["float16"] = sweep["float32"]
    else:
        sweep = {"float32": [128, 512] if settings.quick else [64, 128, 256, 512, 1024, 2048]}
        if not settings.quick:
            sweep["float64"] = [64, 256, 1024]
    out = []
    for dt, sizes in sweep.items():
        item = np.dtype(dt).itemsize
        for n in sizes:
            out.append(Case("matmul", f"n={n} {SHORT[dt]}", {"n": n}, size=n, flops=6.0 * n**3,
                            bytes=9.0 * n * n * item, dtype=dt, series=f"matmul {SHORT[dt]}",
                            size_label="n (n x n matrices)"))
    return out


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    n = case.params["n"]
    dt = np.dtype(case.dtype)
    return {k2: rng.standard_normal((n, n), dtype=np.float32).astype(dt) for k2 in ("a", "b", "g")}


def _spec(case: Case) -> GradSpec:
    def mm(a: Any, b: Any, g: Any = None) -> Any:
        return a @ b

    def np_f(xp: Any, a: Any, b: Any, g: Any) -> tuple[Any, dict]:
        return a @ b, {"a": g @ b.T, "b": a.T @ g}

    return GradSpec(diff=("a", "b"), cotangent="g", gg=mm, torch=mm, jax=mm, autograd=mm, numpy=np_f)


register(Workload("matmul", "matmul", "A @ B fwd+bwd (three products) over sizes and dtypes",
                  _cases, _inputs, grad_builders(_spec)))
