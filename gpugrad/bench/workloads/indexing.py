"""Indexing and its scatter-add backward: gather rows of a V x D table at B random indices
(``T[idx]``, embedding-like, repeats included) and pull back a random cotangent G, which adds
G's rows into dT at the indices (repeated indices accumulate).

Bytes, one kernel per op: the gather reads and writes B*D elements; the backward zero-fills
dT (V*D), reads G (B*D) and reads and writes the indexed rows of dT (2 B*D): 5 B*D + V*D
elements, plus the indices read twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Workload, register
from gpugrad.bench.patterns import GradSpec, grad_builders
from gpugrad.bench.workloads._common import SHORT, add_at, human


def _cases(settings: Any) -> list[Case]:
    if settings.gpu:
        shapes = [(100_000, 256, 65_536)] if settings.quick else [(1_000, 256, 65_536), (100_000, 256, 65_536)]
    else:
        shapes = [(10_000, 64, 4_096)] if settings.quick else [(1_000, 64, 16_384), (100_000, 64, 16_384)]
    dt = "float32"
    item = np.dtype(dt).itemsize
    return [Case("indexing", f"V={human(v) if v % 1024 == 0 else v} D={d} B={b} {SHORT[dt]}",
                 {"V": v, "D": d, "B": b}, size=b * d,
                 bytes=(5 * b * d + v * d) * item + 16 * b, bytes_floor=(b * d + v * d) * item + 8 * b,
                 dtype=dt, series=f"gather/scatter-add V={v}", size_label="gathered elements (B x D)")
            for v, d, b in shapes]


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    v, d, b = case.params["V"], case.params["D"], case.params["B"]
    return {"t": rng.standard_normal((v, d), dtype=np.float32),
            "idx": rng.integers(0, v, size=b, dtype=np.int64),
            "g": rng.standard_normal((b, d), dtype=np.float32)}


def _spec(case: Case) -> GradSpec:
    def gather(t: Any, idx: Any, g: Any = None) -> Any:
        return t[idx]

    def np_f(xp: Any, t: Any, idx: Any, g: Any) -> tuple[Any, dict]:
        out = t[idx]
        dt = xp.zeros_like(t)
        add_at(xp, dt, idx, g)
        return out, {"t": dt}

    return GradSpec(diff=("t",), cotangent="g", gg=gather, torch=gather, jax=gather, autograd=gather,
                    numpy=np_f)


register(Workload("indexing", "indexing", "T[idx] gather fwd + scatter-add bwd",
                  _cases, _inputs, grad_builders(_spec)))
