"""Builders for the two shapes most workloads take, so a workload only writes its math.

* :func:`grad_builders`: differentiate a function of the inputs (a scalar loss, or a
  non-scalar output pulled back with a cotangent input) with respect to some of them;
  outputs ``out`` and ``d<name>`` per differentiated input.
* :func:`train_builders`: a training step (loss, backward, SGD update) on parameters kept
  across steps, with batches rotated; outputs ``loss`` and ``d<param>`` of the first step.

Each takes a function ``spec(case) -> GradSpec | TrainSpec`` whose fields hold one version of
the math per library (None where a library has no version: that cell is skipped with
``spec.skip[lib]`` or a generic note).

Example::

    def spec(case):
        return GradSpec(diff=("x",),
                        gg=lambda x: (gg.tanh(x) * gg.sigmoid(x)).sum(),
                        torch=lambda x: (torch.tanh(x) * torch.sigmoid(x)).sum(), ...)
    builders = grad_builders(spec)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpugrad.bench.core import Case, Impl, Inputs, Skip
from gpugrad.bench.env import Env, host


@dataclass
class GradSpec:
    """One differentiable function written once per library.

    ``gg``, ``torch``: called with tensors as keyword arguments (one per input), return the
    output tensor. ``jax``, ``autograd``: called with ``jax.numpy`` / ``autograd.numpy`` arrays as
    keyword arguments. ``numpy``: the hand-written forward and backward, called as
    ``numpy(xp, **inputs)`` and returning ``(out, {name: gradient})``. ``cotangent`` names the
    input used as the output's gradient when the output is not a scalar.
    """

    diff: tuple[str, ...]
    gg: Callable[..., Any] | None = None
    torch: Callable[..., Any] | None = None
    jax: Callable[..., Any] | None = None
    autograd: Callable[..., Any] | None = None
    numpy: Callable[..., Any] | None = None
    cotangent: str | None = None
    skip: dict[str, str] = field(default_factory=dict)


def _missing(spec: Any, lib: str, fn: Any) -> None:
    if lib in spec.skip:
        raise Skip(spec.skip[lib])
    if fn is None:
        raise Skip(f"no {lib} version of this workload")


def grad_builders(make: Callable[[Case], GradSpec]) -> dict[str, Callable[[Case, Env, Inputs], Impl]]:
    """Builders for gpugrad, torch, jax, jax.jit, autograd and numpy from ``make(case)``."""

    def tape_builder(library: str, attr: str, convert: str) -> Callable[[Case, Env, Inputs], Impl]:
        """gpugrad and PyTorch: the same tape-based step, with each library's tensors."""

        def build(case: Case, env: Env, ins: Inputs) -> Impl:
            spec = make(case)
            fn = getattr(spec, attr)
            _missing(spec, library, fn)
            to_tensor = getattr(env, convert)
            sets = [{k: to_tensor(v, requires_grad=k in spec.diff) for k, v in s.items()} for s in ins.sets]
            diff, cot = spec.diff, spec.cotangent
            last: list[Any] = [None, None]

            def step(i: int) -> None:
                d = sets[i]
                for k in diff:
                    d[k].grad = None
                out = fn(**d)
                if cot is None:
                    out.backward()
                else:
                    out.backward(d[cot])
                last[0], last[1] = out, d

            def outputs() -> dict:
                out, d = last
                return {"out": host(out), **{f"d{k}": host(d[k].grad) for k in diff}}

            return Impl(step, outputs)

        return build

    gg_builder = tape_builder("gpugrad", "gg", "gg")
    torch_builder = tape_builder("torch", "torch", "th")

    def jax_builder(jit: bool) -> Callable[[Case, Env, Inputs], Impl]:
        def build(case: Case, env: Env, ins: Inputs) -> Impl:
            spec = make(case)
            _missing(spec, "jax", spec.jax)
            _jax_dtype_ok(ins)
            import jax

            diff, cot, f = spec.diff, spec.cotangent, spec.jax
            const = [k for k in ins.sets[0] if k not in diff and k != cot]

            def wrapped(dvals: tuple, cvals: dict) -> Any:
                return f(**dict(zip(diff, dvals)), **cvals)

            if cot is None:
                fn = jax.value_and_grad(wrapped)
            else:
                def fn(dvals: tuple, cvals: dict, g: Any) -> Any:
                    out, pull = jax.vjp(lambda dv: wrapped(dv, cvals), dvals)
                    return out, pull(g)[0]
            if jit:
                fn = jax.jit(fn)
            fn = env.jax_precise(fn)
            sets = []
            for s in ins.sets:
                args: tuple = (tuple(env.jx(s[k]) for k in diff), {k: env.jx(s[k]) for k in const})
                if cot is not None:
                    args = args + (env.jx(s[cot]),)
                sets.append(args)
            last: list[Any] = [None]

            def step(i: int) -> Any:
                r = fn(*sets[i])
                last[0] = r
                return r

            def outputs() -> dict:
                out, grads = last[0]
                return {"out": host(out), **{f"d{k}": host(g) for k, g in zip(diff, grads)}}

            return Impl(step, outputs)

        return build

    def autograd_builder(case: Case, env: Env, ins: Inputs) -> Impl:
        spec = make(case)
        _missing(spec, "autograd", spec.autograd)
        from autograd import make_vjp, value_and_grad

        diff, cot, f = spec.diff, spec.cotangent, spec.autograd
        const = [k for k in ins.sets[0] if k not in diff and k != cot]

        def wrapped(dvals: tuple, cvals: dict) -> Any:
            return f(**dict(zip(diff, dvals)), **cvals)

        vg = value_and_grad(wrapped)
        vjp_maker = make_vjp(wrapped)
        sets = [(tuple(s[k].copy() for k in diff), {k: s[k].copy() for k in const}, s.get(cot)) for s in ins.sets]
        last: list[Any] = [None]

        def step(i: int) -> None:
            dv, cv, g = sets[i]
            if cot is None:
                last[0] = vg(dv, cv)
            else:
                pull, out = vjp_maker(dv, cv)
                last[0] = (out, pull(g))

        def outputs() -> dict:
            out, grads = last[0]
            return {"out": host(out), **{f"d{k}": host(g) for k, g in zip(diff, grads)}}

        return Impl(step, outputs)

    def numpy_builder(case: Case, env: Env, ins: Inputs) -> Impl:
        spec = make(case)
        _missing(spec, "numpy", spec.numpy)
        xp = env.xp
        sets = [{k: env.hand(v) for k, v in s.items()} for s in ins.sets]
        fn = spec.numpy
        last: list[Any] = [None]

        def step(i: int) -> None:
            last[0] = fn(xp, **sets[i])

        def outputs() -> dict:
            out, grads = last[0]
            return {"out": host(out), **{f"d{k}": host(grads[k]) for k in spec.diff}}

        return Impl(step, outputs)

    return {"gpugrad": gg_builder, "torch": torch_builder, "jax": jax_builder(False),
            "jax.jit": jax_builder(True), "autograd": autograd_builder, "numpy": numpy_builder}


def _jax_dtype_ok(ins: Inputs) -> None:
    import jax

    if jax.config.jax_enable_x64:
        return
    for d in [*ins.sets[:1], ins.shared]:
        for v in d.values():
            if v.dtype.itemsize == 8 and v.dtype.kind == "f":
                raise Skip("jax computes float64 as float32 unless jax_enable_x64 is set")


@dataclass
class TrainSpec:
    """A training step written once per library: loss functions of ``(params, batch)`` dicts,
    and the hand-written ``numpy(xp, params, batch) -> (loss, grads)``; the pattern adds the
    SGD update (``p -= lr * grad``).

    ``gg_optimizer``: "manual" updates under ``gg.no_grad()`` with raw ops; "optim" uses
    ``gg.optim.SGD``. PyTorch always uses ``torch.optim.SGD`` (its default, foreach, path).
    """

    lr: float
    gg: Callable[..., Any] | None = None
    torch: Callable[..., Any] | None = None
    jax: Callable[..., Any] | None = None
    autograd: Callable[..., Any] | None = None
    numpy: Callable[..., Any] | None = None
    gg_optimizer: str = "manual"
    skip: dict[str, str] = field(default_factory=dict)


def train_builders(make: Callable[[Case], TrainSpec]) -> dict[str, Callable[[Case, Env, Inputs], Impl]]:
    """Builders for a training step (parameters in ``Inputs.shared``, batches in ``Inputs.sets``)."""

    def gg_builder(case: Case, env: Env, ins: Inputs) -> Impl:
        spec = make(case)
        _missing(spec, "gpugrad", spec.gg)
        import gpugrad as gg

        params = {k: env.gg(v, requires_grad=True) for k, v in ins.shared.items()}
        plist = list(params.values())
        batches = [{k: env.gg(v) for k, v in s.items()} for s in ins.sets]
        lr, loss_fn = spec.lr, spec.gg
        last: list[Any] = [None, None]
        if spec.gg_optimizer == "optim":
            opt = gg.optim.SGD(plist, lr=lr)

            def step(i: int) -> None:
                opt.zero_grad()
                loss = loss_fn(params, batches[i])
                loss.backward()
                if last[1] is None:
                    last[1] = {k: host(p.grad).copy() for k, p in params.items()}
                opt.step()
                last[0] = loss
        else:
            def step(i: int) -> None:
                for p in plist:
                    p.grad = None
                loss = loss_fn(params, batches[i])
                loss.backward()
                with gg.no_grad():
                    for p in plist:
                        p -= lr * p.grad
                last[0] = loss

        def outputs() -> dict:
            grads = last[1] if last[1] is not None else {k: host(p.grad) for k, p in params.items()}
            return {"loss": host(last[0]), **{f"d{k}": g for k, g in grads.items()}}

        return Impl(step, outputs)

    def torch_builder(case: Case, env: Env, ins: Inputs) -> Impl:
        spec = make(case)
        _missing(spec, "torch", spec.torch)
        torch = env.torch
        params = {k: env.th(v, requires_grad=True) for k, v in ins.shared.items()}
        batches = [{k: env.th(v) for k, v in s.items()} for s in ins.sets]
        opt = torch.optim.SGD(list(params.values()), lr=spec.lr)
        loss_fn = spec.torch
        last: list[Any] = [None, None]

        def step(i: int) -> None:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(params, batches[i])
            loss.backward()
            if last[1] is None:
                last[1] = {k: host(p.grad).copy() for k, p in params.items()}
            opt.step()
            last[0] = loss

        def outputs() -> dict:
            return {"loss": host(last[0]), **{f"d{k}": g for k, g in last[1].items()}}

        return Impl(step, outputs)

    def jax_builder(jit: bool) -> Callable[[Case, Env, Inputs], Impl]:
        def build(case: Case, env: Env, ins: Inputs) -> Impl:
            spec = make(case)
            _missing(spec, "jax", spec.jax)
            _jax_dtype_ok(ins)
            import jax

            lr, loss_fn = spec.lr, spec.jax

            def train_step(params: dict, batch: dict) -> Any:
                loss, grads = jax.value_and_grad(loss_fn)(params, batch)
                new = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
                return new, loss, grads

            fn = jax.jit(train_step, donate_argnums=(0,) if env.gpu else ()) if jit else train_step
            fn = env.jax_precise(fn)
            state = [{k: env.jx(v) for k, v in ins.shared.items()}]
            batches = [{k: env.jx(v) for k, v in s.items()} for s in ins.sets]
            last: list[Any] = [None, None]

            def step(i: int) -> Any:
                new, loss, grads = fn(state[0], batches[i])
                state[0] = new
                if last[1] is None:
                    last[1] = {k: host(g).copy() for k, g in grads.items()}
                last[0] = loss
                return new, loss

            def outputs() -> dict:
                return {"loss": host(last[0]), **{f"d{k}": g for k, g in last[1].items()}}

            return Impl(step, outputs)

        return build

    def autograd_builder(case: Case, env: Env, ins: Inputs) -> Impl:
        spec = make(case)
        _missing(spec, "autograd", spec.autograd)
        from autograd import value_and_grad

        vg = value_and_grad(spec.autograd)
        lr = spec.lr
        state = [{k: v.copy() for k, v in ins.shared.items()}]
        batches = [{k: v.copy() for k, v in s.items()} for s in ins.sets]
        last: list[Any] = [None, None]

        def step(i: int) -> None:
            params = state[0]
            loss, grads = vg(params, batches[i])
            state[0] = {k: params[k] - lr * grads[k] for k in params}
            if last[1] is None:
                last[1] = {k: host(g).copy() for k, g in grads.items()}
            last[0] = loss

        def outputs() -> dict:
            return {"loss": host(last[0]), **{f"d{k}": g for k, g in last[1].items()}}

        return Impl(step, outputs)

    def numpy_builder(case: Case, env: Env, ins: Inputs) -> Impl:
        spec = make(case)
        _missing(spec, "numpy", spec.numpy)
        xp = env.xp
        params = {k: env.hand(v) for k, v in ins.shared.items()}
        batches = [{k: env.hand(v) for k, v in s.items()} for s in ins.sets]
        lr, fn = spec.lr, spec.numpy
        last: list[Any] = [None, None]

        def step(i: int) -> None:
            loss, grads = fn(xp, params, batches[i])
            if last[1] is None:
                last[1] = {k: host(g).copy() for k, g in grads.items()}
            for k, p in params.items():
                p -= lr * grads[k]
            last[0] = loss

        def outputs() -> dict:
            return {"loss": host(last[0]), **{f"d{k}": g for k, g in last[1].items()}}

        return Impl(step, outputs)

    return {"gpugrad": gg_builder, "torch": torch_builder, "jax": jax_builder(False),
            "jax.jit": jax_builder(True), "autograd": autograd_builder, "numpy": numpy_builder}
