"""conv2d forward+backward: ``y = conv2d(x, W, b, padding=1)`` (3x3, stride 1, NCHW, PyTorch's
cross-correlation) pulled back with a random cotangent: dx, dW and db. FLOPs: three
convolution-sized products, 6 N F H W C k^2. Needs ``gpugrad.nn.functional.conv2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Workload, register
from gpugrad.bench.patterns import GradSpec, grad_builders
from gpugrad.bench.workloads import _hand as H
from gpugrad.bench.workloads._common import NO_CONV, SHORT, needs

K = 3
PAD = 1


def _cases(settings: Any) -> list[Case]:
    if settings.gpu:
        shapes = [(32, 64, 64, 32)] if settings.quick else [(32, 64, 64, 32), (64, 64, 128, 56)]
    else:
        shapes = [(8, 8, 16, 16)] if settings.quick else [(8, 8, 16, 16), (32, 16, 32, 32)]
    dt = "float32"
    out = []
    for n, c, f, hw in shapes:
        flops = 6.0 * n * f * hw * hw * c * K * K
        out.append(Case("conv2d", f"N={n} C={c} F={f} {hw}x{hw} k={K} {SHORT[dt]}",
                        {"N": n, "C": c, "F": f, "HW": hw}, size=flops / 6, flops=flops, dtype=dt, series="conv2d",
                        size_label="multiply-adds (forward)"))
    return out


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    p = case.params
    n, c, f, hw = p["N"], p["C"], p["F"], p["HW"]
    return {"x": rng.standard_normal((n, c, hw, hw), dtype=np.float32),
            "w": (rng.standard_normal((f, c, K, K)) / np.sqrt(c * K * K)).astype(np.float32),
            "b": rng.standard_normal(f, dtype=np.float32),
            "g": rng.standard_normal((n, f, hw, hw), dtype=np.float32)}


def _spec(case: Case) -> GradSpec:
    def gg_f(x: Any, w: Any, b: Any, g: Any = None) -> Any:
        import gpugrad.nn.functional as F

        return F.conv2d(x, w, b, padding=PAD)

    def torch_f(x: Any, w: Any, b: Any, g: Any = None) -> Any:
        import torch.nn.functional as F

        return F.conv2d(x, w, b, padding=PAD)

    def jax_f(x: Any, w: Any, b: Any) -> Any:
        import jax

        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((PAD, PAD), (PAD, PAD)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def np_f(xp: Any, x: Any, w: Any, b: Any, g: Any) -> tuple[Any, dict]:
        out, cols = H.conv2d(xp, x, w, b, PAD)
        dx, dw, db = H.conv2d_backward(xp, g, cols, w, PAD)
        return out, {"x": dx, "w": dw, "b": db}

    return GradSpec(diff=("x", "w", "b"), cotangent="g", gg=gg_f, torch=torch_f, jax=jax_f, numpy=np_f,
                    skip={"autograd": NO_CONV})


register(Workload("conv2d", "conv", "conv2d 3x3 fwd+bwd (dx, dW, db)", _cases, _inputs, grad_builders(_spec),
                  needs=needs("gpugrad.nn.functional.conv2d")))
