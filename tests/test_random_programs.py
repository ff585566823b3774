"""The random-program differential test (issue 10, item 7): hypothesis writes straight-line programs
over gpugrad's op set (elementwise ops with broadcasting, reductions over random axes, softmax and
logsumexp, indexing with repeated indices, slicing, shape ops, matmul, where, forks: values used
several times), and each is run by gpugrad and by PyTorch in float64. Values, gradients,
Hessian-vector products (grad-of-grad and jvp-of-grad) and a nested-closure variant must agree.
A failing program is printed as runnable code (hypothesis shows it as a note).

CI runs a modest number of programs; ``GPUGRAD_HYPOTHESIS=thorough`` runs many more (see
tests/conftest.py for the profiles; ``GPUGRAD_PROGRAMS`` sets the count directly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as onp
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.numpy as gnp

torch = pytest.importorskip("torch")

_PROFILE = os.environ.get("GPUGRAD_HYPOTHESIS", "ci")
N_PROGRAMS = int(os.environ.get("GPUGRAD_PROGRAMS", "2000" if _PROFILE == "thorough" else "25"))


@dataclass
class Program:
    shapes: list[tuple]  # of the inputs x0, x1, ...
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (name, gpugrad expr, torch expr)
    consts: list[tuple] = field(default_factory=list)  # shapes of c0, c1, ... (values from a fixed seed)
    out: str = ""

    def source(self, lib: str) -> str:
        args = ", ".join(f"x{i}" for i in range(len(self.shapes)))
        body = [f"def f({args}):"]
        for name, ours, theirs in self.lines:
            body.append(f"    {name} = {ours if lib == 'gg' else theirs}")
        body.append(f"    return {self.out}")
        return "\n".join(body)

    def runnable(self) -> str:
        consts = "\n".join(f"c{i} = onp.random.default_rng({i}).normal(size={s})" for i, s in enumerate(self.consts))
        inputs = ", ".join(f"onp.random.default_rng({10 + i}).normal(size={s})" for i, s in enumerate(self.shapes))
        return ("import numpy as onp, torch, gpugrad as gg, gpugrad.numpy as np\n" + consts + "\n" + self.source("gg")
                + f"\nprint(gg.grad(f, tuple(range({len(self.shapes)}))) ({inputs}))\n# PyTorch's version:\n"
                + self.source("torch").replace("def f(", "def f_torch(") + "\n")


# ---------------------------------------------------------------------------------------------
# the generator


def _axis_expr(axes: tuple | None, lib: str) -> str:
    if axes is None:
        return "None" if lib == "gg" else "tuple()"
    return str(axes)


UNARY = [
    ("np.tanh({a})", "torch.tanh({a})"), ("gg.sigmoid({a})", "torch.sigmoid({a})"),
    ("np.sin({a})", "torch.sin({a})"), ("np.cos({a})", "torch.cos({a})"),
    ("np.exp(np.tanh({a}))", "torch.exp(torch.tanh({a}))"),
    ("np.log(1.5 + np.tanh({a}))", "torch.log(1.5 + torch.tanh({a}))"),
    ("np.sqrt({a} * {a} + 1.0)", "torch.sqrt({a} * {a} + 1.0)"), ("{a} ** 2", "{a} ** 2"),
    ("gg.relu({a})", "torch.relu({a})"), ("np.abs({a})", "torch.abs({a})"), ("-{a}", "-{a}"),
    ("gg.softplus({a})", "torch.nn.functional.softplus({a})"), ("np.arctan({a})", "torch.arctan({a})"),
    ("np.clip({a}, -0.5, 0.8)", "torch.clamp({a}, -0.5, 0.8)"),
]
BINARY = [
    ("{a} + {b}", "{a} + {b}"), ("{a} - {b}", "{a} - {b}"), ("{a} * {b}", "{a} * {b}"),
    ("{a} / ({b} * {b} + 1.0)", "{a} / ({b} * {b} + 1.0)"), ("np.maximum({a}, {b})", "torch.maximum({a}, {b})"),
    ("np.where({a} > {b}, {a}, {b} * 0.5)", "torch.where({a} > {b}, {a}, {b} * 0.5)"),
    ("np.logaddexp({a}, {b})", "torch.logaddexp({a}, {b})"),
]


def _broadcastable(s1: tuple, s2: tuple) -> bool:
    try:
        onp.broadcast_shapes(s1, s2)
    except ValueError:
        return False
    return True


@st.composite
def programs(draw: st.DrawFn) -> Program:
    dims = st.integers(1, 3)
    n_inputs = draw(st.integers(1, 2))
    shapes = [tuple(draw(st.lists(dims, min_size=1, max_size=3))) for _ in range(n_inputs)]
    prog = Program(shapes)
    pool: list[tuple[str, tuple]] = [(f"x{i}", s) for i, s in enumerate(shapes)]

    def add(ours: str, theirs: str, shape: tuple) -> None:
        name = f"v{len(prog.lines)}"
        prog.lines.append((name, ours, theirs))
        pool.append((name, shape))

    def const(shape: tuple) -> str:
        prog.consts.append(shape)
        return f"c{len(prog.consts) - 1}"

    for _ in range(draw(st.integers(2, 8))):
        a, sa = pool[draw(st.integers(0, len(pool) - 1))]  # any earlier value: forks happen
        kind = draw(st.sampled_from(["unary", "binary", "reduce", "softmax", "index", "shape", "matmul", "concat"]))
        nd = len(sa)
        if nd == 0 and kind not in ("unary", "binary"):
            kind = "unary"  # a 0-d value (a full reduction): elementwise ops only
        if kind == "unary":
            ours, theirs = draw(st.sampled_from(UNARY))
            add(ours.format(a=a), theirs.format(a=a), sa)
        elif kind == "binary":
            partners = [(n, s) for n, s in pool if _broadcastable(s, sa)]
            if draw(st.booleans()) or not partners:  # a constant of a broadcastable shape
                cs = tuple(1 if draw(st.booleans()) else d for d in sa[draw(st.integers(0, nd)):])
                b, sb = const(cs), cs
            else:
                b, sb = partners[draw(st.integers(0, len(partners) - 1))]
            if draw(st.booleans()):
                a, b, sa, sb = b, a, sb, sa
            ours, theirs = draw(st.sampled_from(BINARY))
            add(ours.format(a=a, b=b), theirs.format(a=a, b=b), onp.broadcast_shapes(sa, sb))
        elif kind == "reduce":
            axes = None if draw(st.booleans()) else tuple(sorted(draw(st.sets(st.integers(0, nd - 1), min_size=1))))
            keep = draw(st.booleans())
            red = draw(st.sampled_from(["sum", "mean", "amax", "amin", "var", "std", "logsumexp", "prod"]))
            ax_g = _axis_expr(axes, "gg")
            if red == "logsumexp":
                ours = f"gg.logsumexp({a}, {ax_g}, {keep})"
                theirs = (f"torch.logsumexp({a}, {axes}, {keep})" if axes is not None else
                          f"torch.logsumexp({a}.reshape(-1), 0).reshape({(1,) * nd if keep else ()})")
            elif red in ("var", "std"):
                # std's derivatives where a group's values are all equal (one element, broadcast copies):
                # 0 in gpugrad, NaN in PyTorch's double backward; a constant offset keeps groups apart
                c = const(sa)
                ours = f"np.{red}({a} + {c}, axis={ax_g}, keepdims={keep})"
                theirs = f"torch.{red}({a} + {c}, dim={axes}, unbiased=False, keepdim={keep})"
                if axes is not None and all(sa[i] == 1 for i in axes) or not any(d > 1 for d in sa):
                    continue
            elif red == "prod":
                ours = f"np.prod({a}, axis={ax_g}, keepdims={keep})"
                theirs = (f"torch.prod({a}, {axes[0]}, keepdim={keep})" if axes is not None and len(axes) == 1 else
                          f"torch.prod({a}.reshape(-1)).reshape({(1,) * nd if keep else ()})" if axes is None else None)
                if theirs is None:
                    continue
            else:
                ours = f"np.{red}({a}, axis={ax_g}, keepdims={keep})"
                theirs = f"torch.{red}({a}, dim={_axis_expr(axes, 'torch')}, keepdim={keep})"
            shape = tuple(1 if axes is None or i in axes else d for i, d in enumerate(sa)) if keep else (
                () if axes is None else tuple(d for i, d in enumerate(sa) if i not in axes))
            add(ours, theirs, shape)
        elif kind == "softmax":
            ax = draw(st.integers(0, nd - 1))
            fn = draw(st.sampled_from(["softmax", "log_softmax"]))
            add(f"gg.{fn}({a}, axis={ax})", f"torch.{fn}({a}, dim={ax})", sa)
        elif kind == "index":
            if draw(st.booleans()):  # integer-array indexing along axis 0, repeated indices included
                idx = draw(st.lists(st.integers(0, sa[0] - 1), min_size=1, max_size=4))
                add(f"{a}[{idx}]", f"{a}[{idx}]", (len(idx),) + sa[1:])
            else:
                start = draw(st.integers(0, sa[0] - 1))
                step = draw(st.integers(1, 2))
                n = len(range(start, sa[0], step))
                add(f"{a}[{start}::{step}]", f"{a}[{start}::{step}]", (n,) + sa[1:])
        elif kind == "shape":
            op = draw(st.sampled_from(["reshape", "transpose", "expand", "flip", "broadcast"]))
            if op == "reshape":
                add(f"np.reshape({a}, (-1,))", f"torch.reshape({a}, (-1,))", (int(onp.prod(sa)),))
            elif op == "transpose":
                perm = tuple(draw(st.permutations(range(nd))))
                add(f"np.transpose({a}, {perm})", f"torch.permute({a}, {perm})", tuple(sa[p] for p in perm))
            elif op == "expand":
                ax = draw(st.integers(0, nd))
                add(f"np.expand_dims({a}, {ax})", f"torch.unsqueeze({a}, {ax})", sa[:ax] + (1,) + sa[ax:])
            elif op == "flip":
                ax = draw(st.integers(0, nd - 1))
                add(f"np.flip({a}, {ax})", f"torch.flip({a}, ({ax},))", sa)
            else:
                target = (2,) + sa
                add(f"np.broadcast_to({a}, {target})", f"torch.broadcast_to({a}, {target})", target)
        elif kind == "matmul":
            k = draw(st.integers(1, 3))
            b = const((sa[-1], k))
            add(f"{a} @ {b}", f"{a} @ {b}", sa[:-1] + (k,))
        else:  # concatenate with a value of a compatible shape (or itself: a fork)
            ax = draw(st.integers(0, nd - 1))
            partners = [n for n, s in pool if len(s) == nd and all(s[i] == sa[i] for i in range(nd) if i != ax)]
            b = partners[draw(st.integers(0, len(partners) - 1))]
            sb = dict(pool)[b]
            add(f"np.concatenate([{a}, {b}], {ax})", f"torch.cat([{a}, {b}], {ax})",
                sa[:ax] + (sa[ax] + sb[ax],) + sa[ax + 1:])
    last, shape = pool[-1]
    w = const(shape)
    prog.out = f"({last} * {w}).sum() + " + " + ".join(f"(x{i} * x{i}).sum() * 0.1" for i in range(n_inputs))
    return prog


# ---------------------------------------------------------------------------------------------
# running a program both ways


def _compile(prog: Program) -> tuple:
    consts = [onp.random.default_rng(i).normal(size=s) for i, s in enumerate(prog.consts)]
    ns_gg = {"np": gnp, "gg": gg, **{f"c{i}": c for i, c in enumerate(consts)}}
    ns_t = {"torch": torch, **{f"c{i}": torch.tensor(c) for i, c in enumerate(consts)}}
    exec(prog.source("gg"), ns_gg)  # noqa: S102 (our own generated source)
    exec(prog.source("torch"), ns_t)  # noqa: S102
    inputs = [onp.random.default_rng(10 + i).normal(size=s) for i, s in enumerate(prog.shapes)]
    return ns_gg["f"], ns_t["f"], inputs


def _close(got: object, want: object) -> None:
    onp.testing.assert_allclose(onp.asarray(got, dtype=onp.float64), want, rtol=1e-7, atol=1e-9)


def _check(prog: Program, variant: str) -> None:
    note(prog.runnable())
    f, ft, xs = _compile(prog)
    nums = tuple(range(len(xs)))
    xts = [torch.tensor(x, requires_grad=True) for x in xs]
    value = ft(*xts)
    _close(f(*xs), value.detach().numpy())
    grads_t = torch.autograd.grad(value, xts, create_graph=True)
    grads = gg.grad(f, nums)(*xs)
    for g, gt in zip(grads, grads_t):
        _close(g, gt.detach().numpy())
    if variant == "first":
        return
    vs = [onp.random.default_rng(20 + i).normal(size=x.shape) for i, x in enumerate(xs)]
    hvp_t = torch.autograd.grad(sum((gt * torch.tensor(v)).sum() for gt, v in zip(grads_t, vs)), xts,
                                allow_unused=True)
    if variant == "hvp":  # Hessian-vector products: grad of (grad . v), and jvp of grad
        by_grad = gg.grad(lambda *a: sum(gnp.sum(g * v) for g, v in zip(gg.grad(f, nums)(*a), vs)), nums)(*xs)
        _, by_jvp = gg.jvp(lambda *a: gg.grad(f, nums)(*a), xs, vs)
        for h, hj, ht in zip(by_grad, by_jvp, hvp_t):
            want = onp.zeros_like(xs[0]) if ht is None else ht.numpy()
            _close(h, want)
            _close(hj, want)
        return
    # nested closure: the inner gradient closes over the outer arguments
    ones = onp.ones_like(xs[0])

    def nested(*a):  # noqa: ANN002, ANN202
        inner = gg.grad(lambda y: f(a[0] * y, *a[1:]))(ones)
        return gnp.sum(inner * a[0]) + f(*a)

    def nested_t(*a):  # noqa: ANN002, ANN202
        inner = torch.func.grad(lambda y: ft(a[0] * y, *a[1:]))(torch.ones_like(a[0]))
        return (inner * a[0]).sum() + ft(*a)

    want = torch.func.grad(nested_t, argnums=nums)(*[torch.tensor(x) for x in xs])
    for g, gt in zip(gg.grad(nested, nums)(*xs), want):
        _close(g, gt.numpy())


_SETTINGS = settings(max_examples=N_PROGRAMS, deadline=None, derandomize=_PROFILE != "thorough",
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.func's own imports
@pytest.mark.parametrize("variant", ["first", "hvp", "nested"])
def test_random_programs_agree_with_pytorch(variant: str) -> None:
    @_SETTINGS
    @given(programs())
    def check(prog: Program) -> None:
        _check(prog, variant)

    check()
