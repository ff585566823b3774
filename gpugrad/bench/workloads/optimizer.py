"""Optimiser step over 100 parameter tensors: one Adam step (lr 1e-2, betas (0.9, 0.999),
eps 1e-8, no weight decay) with fixed gradients, timed alone. The 100 tensors alternate
matrices (h, h) and vectors (h,) with h cycling over four sizes. Bytes per step: read p, g,
m, v and write p, m, v: 7 elements per parameter element. The check compares the parameter
change of the first step with the float64 reference.

gpugrad uses ``gpugrad.optim.Adam`` (needs gpugrad.optim); PyTorch ``torch.optim.Adam`` with its
defaults; JAX and NumPy a hand-written Adam over the list of arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Impl, Inputs, Skip, Workload, register
from gpugrad.bench.env import Env, host
from gpugrad.bench.workloads._common import needs

COUNT = 100
LR, B1, B2, EPS = 1e-2, 0.9, 0.999, 1e-8


def _shapes(hs: list[int]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for i in range(COUNT):
        h = hs[(i // 2) % len(hs)]
        out.append((h, h) if i % 2 == 0 else (h,))
    return out


def _cases(settings: Any) -> list[Case]:
    if settings.gpu:
        hs = [256, 512, 1024, 2048]
    else:
        hs = [16, 32, 64, 128] if settings.quick else [32, 64, 128, 256]
    n = sum(int(np.prod(s)) for s in _shapes(hs))
    return [Case("optimizer", f"Adam {COUNT} tensors {n / 1e6:.2f}M params f32", {"hs": tuple(hs)}, size=n,
                 bytes=7.0 * n * 4, bytes_floor=7.0 * n * 4, dtype="float32", series="adam",
                 size_label="parameters")]


def _shared(case: Case, rng: np.random.Generator) -> dict[str, np.ndarray]:
    d = {}
    for i, s in enumerate(_shapes(list(case.params["hs"]))):
        d[f"p{i:02d}"] = rng.standard_normal(s, dtype=np.float32)
        d[f"g{i:02d}"] = rng.standard_normal(s, dtype=np.float32)
    return d


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    return {}


def _split(ins: Inputs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    keys = sorted(k for k in ins.shared if k.startswith("p"))
    return [ins.shared[k] for k in keys], [ins.shared["g" + k[1:]] for k in keys]


def _delta(params: list[Any], init: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {"delta": np.concatenate([(host(p).astype(np.float64) - i0.astype(np.float64)).ravel()
                                     for p, i0 in zip(params, init)])}


def _gg(case: Case, env: Env, ins: Inputs) -> Impl:
    import gpugrad.optim

    ps, gs = _split(ins)
    params = [env.gg(p, requires_grad=True) for p in ps]
    for p, g in zip(params, gs):
        p.grad = env.gg(g)
    opt = gpugrad.optim.Adam(params, lr=LR, betas=(B1, B2), eps=EPS)
    return Impl(lambda i: opt.step(), lambda: _delta(params, ps))


def _torch(case: Case, env: Env, ins: Inputs) -> Impl:
    torch = env.torch
    ps, gs = _split(ins)
    params = [env.th(p, requires_grad=True) for p in ps]
    for p, g in zip(params, gs):
        p.grad = env.th(g)
    opt = torch.optim.Adam(params, lr=LR, betas=(B1, B2), eps=EPS)
    return Impl(lambda i: opt.step(), lambda: _delta(params, ps))


def _jax(jit: bool) -> Any:
    def build(case: Case, env: Env, ins: Inputs) -> Impl:
        import jax
        import jax.numpy as jnp

        ps, gs = _split(ins)

        def adam(params: list, m: list, v: list, t: Any, grads: list) -> tuple:
            t = t + 1
            m = [B1 * mi + (1 - B1) * g for mi, g in zip(m, grads)]
            v = [B2 * vi + (1 - B2) * g * g for vi, g in zip(v, grads)]
            c1 = 1 - B1**t
            c2 = 1 - B2**t
            params = [p - LR * (mi / c1) / (jnp.sqrt(vi / c2) + EPS) for p, mi, vi in zip(params, m, v)]
            return params, m, v, t

        fn = env.jax_precise(jax.jit(adam, donate_argnums=(0, 1, 2) if env.gpu else ()) if jit else adam)
        state = [[env.jx(p) for p in ps], [env.jx(np.zeros_like(p)) for p in ps],
                 [env.jx(np.zeros_like(p)) for p in ps], env.jx(np.zeros((), np.float32))]
        grads = [env.jx(g) for g in gs]

        def step(i: int) -> Any:
            state[:] = list(fn(*state, grads))
            return state[0]

        return Impl(step, lambda: _delta(state[0], ps))

    return build


def _numpy(case: Case, env: Env, ins: Inputs) -> Impl:
    xp = env.xp
    ps, gs = _split(ins)
    params = [env.hand(p) for p in ps]
    grads = [env.hand(g) for g in gs]
    m = [xp.zeros_like(p) for p in params]
    v = [xp.zeros_like(p) for p in params]
    t = [0]

    def step(i: int) -> None:
        t[0] += 1
        c1 = 1 - B1 ** t[0]
        c2 = 1 - B2 ** t[0]
        for p, g, mi, vi in zip(params, grads, m, v):
            mi *= B1
            mi += (1 - B1) * g
            vi *= B2
            vi += (1 - B2) * (g * g)
            p -= (LR / c1) * mi / (xp.sqrt(vi / c2) + EPS)

    return Impl(step, lambda: _delta(params, ps))


def _autograd(case: Case, env: Env, ins: Inputs) -> Impl:
    raise Skip("HIPS autograd has no optimiser step API (autograd.misc.optimizers runs a whole loop)")


register(Workload("optimizer", "optimizer", "Adam step over 100 parameter tensors", _cases, _inputs,
                  {"gpugrad": _gg, "torch": _torch, "jax": _jax(False), "jax.jit": _jax(True),
                   "autograd": _autograd, "numpy": _numpy},
                  shared=_shared, needs=needs("gpugrad.optim.Adam")))
