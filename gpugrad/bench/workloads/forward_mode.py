"""Forward mode and second order on ``f(x) = tanh(x @ W)`` with x (B, n), W (n, n):

* ``jvp``: ``(f(x), J_f(x) v)`` in one forward-mode pass (gg.jvp, torch.func.jvp, jax.jvp,
  autograd.make_jvp); 2 products, 4 B n^2 FLOPs.
* ``hvp``: the Hessian-vector product of ``sum(f(x))`` forward-over-reverse (gg.hvp,
  torch.func.jvp of torch.func.grad, jax.jvp of jax.grad, autograd.make_hvp); 4 products,
  8 B n^2 FLOPs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.bench.core import Case, Impl, Inputs, Workload, register
from gpugrad.bench.env import Env, host
from gpugrad.bench.patterns import _jax_dtype_ok
from gpugrad.bench.workloads._common import SHORT


def _cases(settings: Any) -> list[Case]:
    if settings.gpu:
        b, n = (1024, 2048) if settings.quick else (1024, 4096)
    else:
        b, n = (32, 256) if settings.quick else (64, 512)
    out = []
    for kind, products in (("jvp", 4), ("hvp", 8)):
        out.append(Case(kind, f"tanh(x@W) B={b} n={n} {SHORT['float32']}", {"B": b, "n": n}, size=b * n,
                        flops=float(products) * b * n * n, dtype="float32", series=kind,
                        size_label="elements of x"))
    return out


def _inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    b, n = case.params["B"], case.params["n"]
    return {"x": rng.standard_normal((b, n), dtype=np.float32),
            "w": (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32),
            "v": rng.standard_normal((b, n), dtype=np.float32)}


def _builders(kind: str) -> dict[str, Any]:
    names = ("out", "tangent") if kind == "jvp" else ("hv",)

    def wrap(step_fn: Any, sets: list, to_host: Any = host) -> Impl:
        last: list[Any] = [None]

        def step(i: int) -> Any:
            r = step_fn(*sets[i])
            last[0] = r
            return r

        def outputs() -> dict:
            r = last[0]
            r = r if isinstance(r, tuple) else (r,)
            return {k: to_host(a) for k, a in zip(names, r)}

        return Impl(step, outputs)

    def gg_b(case: Case, env: Env, ins: Inputs) -> Impl:
        import gpugrad as gg

        sets = [(env.gg(s["x"]), env.gg(s["w"]), env.gg(s["v"])) for s in ins.sets]
        if kind == "jvp":
            def fn(x: Any, w: Any, v: Any) -> Any:
                return gg.jvp(lambda z: gg.tanh(z @ w), (x,), (v,))
        else:
            def fn(x: Any, w: Any, v: Any) -> Any:
                hv = gg.hvp(lambda z: gg.tanh(z @ w).sum(), (x,), (v,))
                return hv[0] if isinstance(hv, tuple) else hv  # a 1-tuple in older builds
        return wrap(fn, sets)

    def torch_b(case: Case, env: Env, ins: Inputs) -> Impl:
        torch = env.torch
        from torch.func import grad, jvp

        sets = [(env.th(s["x"]), env.th(s["w"]), env.th(s["v"])) for s in ins.sets]
        if kind == "jvp":
            def fn(x: Any, w: Any, v: Any) -> Any:
                return jvp(lambda z: torch.tanh(z @ w), (x,), (v,))
        else:
            def fn(x: Any, w: Any, v: Any) -> Any:
                return jvp(grad(lambda z: torch.tanh(z @ w).sum()), (x,), (v,))[1]
        return wrap(fn, sets)

    def jax_b(jit: bool) -> Any:
        def build(case: Case, env: Env, ins: Inputs) -> Impl:
            _jax_dtype_ok(ins)
            import jax
            import jax.numpy as jnp

            if kind == "jvp":
                def fn(x: Any, w: Any, v: Any) -> Any:
                    return jax.jvp(lambda z: jnp.tanh(z @ w), (x,), (v,))
            else:
                def fn(x: Any, w: Any, v: Any) -> Any:
                    return jax.jvp(jax.grad(lambda z: jnp.sum(jnp.tanh(z @ w))), (x,), (v,))[1]
            sets = [(env.jx(s["x"]), env.jx(s["w"]), env.jx(s["v"])) for s in ins.sets]
            return wrap(env.jax_precise(jax.jit(fn) if jit else fn), sets)

        return build

    def ag_b(case: Case, env: Env, ins: Inputs) -> Impl:
        import autograd.numpy as anp
        from autograd import make_hvp, make_jvp

        sets = [(s["x"].copy(), s["w"].copy(), s["v"].copy()) for s in ins.sets]
        if kind == "jvp":
            def fn(x: Any, w: Any, v: Any) -> Any:
                return make_jvp(lambda z: anp.tanh(anp.dot(z, w)))(x)(v)
        else:
            def fn(x: Any, w: Any, v: Any) -> Any:
                return make_hvp(lambda z: anp.sum(anp.tanh(anp.dot(z, w))))(x)[0](v)
        return wrap(fn, sets)

    def np_b(case: Case, env: Env, ins: Inputs) -> Impl:
        xp = env.xp
        sets = [(env.hand(s["x"]), env.hand(s["w"]), env.hand(s["v"])) for s in ins.sets]
        if kind == "jvp":
            def fn(x: Any, w: Any, v: Any) -> Any:
                t = xp.tanh(x @ w)
                return t, (1 - t * t) * (v @ w)
        else:
            def fn(x: Any, w: Any, v: Any) -> Any:
                t = xp.tanh(x @ w)
                return (-2 * t * (1 - t * t) * (v @ w)) @ w.T
        return wrap(fn, sets)

    return {"gpugrad": gg_b, "torch": torch_b, "jax": jax_b(False), "jax.jit": jax_b(True),
            "autograd": ag_b, "numpy": np_b}


register(Workload("jvp", "forward-mode", "forward-mode jvp of tanh(x @ W)",
                  lambda s: [c for c in _cases(s) if c.workload == "jvp"], _inputs, _builders("jvp")))
register(Workload("hvp", "forward-mode", "Hessian-vector product of sum(tanh(x @ W)), forward-over-reverse",
                  lambda s: [c for c in _cases(s) if c.workload == "hvp"], _inputs, _builders("hvp")))
