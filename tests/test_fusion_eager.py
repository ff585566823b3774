"""Eager fusion (gpugrad.fusion.lazy, API.md "Fusion"): chains of elementwise ops wait and run as one
op; nothing a program means changes. Each semantic rule of the contract has its test here; the rest of
the suite runs with fusion on (the default), and tests/test_fusion_*.py check the compiled passes."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad.autograd.node import Node
from gpugrad.fusion import lazy
from gpugrad.ops.elementwise import OPS
from tests.op_specs import SPECS

RNG = np.random.default_rng(7)


def _pending(t: gg.Tensor) -> bool:
    return t._lazy is not None


def test_elementwise_results_wait_and_a_reduction_joins_the_chain(compiled_fusion: None) -> None:
    x = gg.tensor(RNG.normal(size=(4, 5)), requires_grad=True)
    y = gg.tanh(x) * gg.sigmoid(x)
    assert _pending(y) and y.shape == (4, 5) and y.dtype == np.float64 and y.requires_grad
    loss = y.sum()
    assert not _pending(loss) and _pending(y)  # the sum ran in the chain's pass; y is still pending
    name = loss.grad_fn.op.name
    assert name.startswith("fused chain of") and all(op in name for op in ("tanh", "sigmoid", "multiply"))
    loss.backward()
    xv = x.numpy()
    s = 1 / (1 + np.exp(-xv))
    t = np.tanh(xv)
    np.testing.assert_allclose(loss.item(), np.sum(t * s), rtol=1e-13)
    np.testing.assert_allclose(x.grad.numpy(), (1 - t * t) * s + t * s * (1 - s), rtol=1e-12)
    np.testing.assert_allclose(y.numpy(), t * s, rtol=1e-13)  # materialised on demand


def test_no_fusion_context_decorator_and_environment() -> None:
    x = gg.tensor([1.0, 2.0])
    with gg.no_fusion():
        assert not _pending(x * 2) and not lazy.enabled()
    assert lazy.enabled() and _pending(x * 2)

    @gg.no_fusion()
    def f() -> gg.Tensor:
        return gg.exp(x)

    assert not _pending(f())
    code = "import gpugrad as gg; print(gg.tensor([1.0]).__mul__(2)._lazy is None)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "GPUGRAD_FUSION": "0"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_errors_are_raised_at_the_op_the_user_called() -> None:
    a = gg.tensor(np.ones((3, 4)), requires_grad=True)
    b = gg.tanh(a) * 2.0
    with pytest.raises(gg.ShapeError) as fused:
        b + gg.ones(5)
    with gg.no_fusion(), pytest.raises(gg.ShapeError) as plain:
        gg.tanh(a) * 2.0 + gg.ones(5)
    assert str(fused.value) == str(plain.value) and str(fused.value).startswith("add: ")
    b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * (1 - np.tanh(1.0) ** 2))


def test_anomaly_mode_names_the_op_that_made_the_nan() -> None:
    x = gg.tensor([1.0, -1.0], requires_grad=True)
    with gg.detect_anomaly():
        y = x * 2.0
        assert not _pending(y)  # anomaly checks need each op's value: nothing fuses
        with pytest.raises(gg.AnomalyError, match="log produced NaN"):
            gg.log(y)


def test_a_hook_and_retain_grad_on_an_intermediate_behave_as_without_fusion() -> None:
    def run() -> tuple:
        x = gg.tensor([0.5, -1.5, 2.0], requires_grad=True)
        h = gg.tanh(x) * 3.0
        h.register_hook(lambda g: g * 2)
        m = gg.sigmoid(h)
        m.retain_grad()
        (m * m + h).sum().backward()
        return x.grad.numpy(), m.grad.numpy()

    fused = run()
    with gg.no_fusion():
        plain = run()
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_in_place_changes_to_chain_inputs() -> None:
    # a pending chain reads the values its operands had when the ops were called
    w = gg.tensor([1.0, 2.0])
    y = w * 10.0
    w += 1.0
    np.testing.assert_array_equal(y.numpy(), [10.0, 20.0])
    # rebinding .data after the call does not change what the chain computes either
    z = w * 2.0
    w.data = np.array([100.0, 100.0])
    np.testing.assert_array_equal(z.numpy(), [4.0, 6.0])
    # a saved input changed in place before backward is detected, naming the op
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2.0
    b = a * a
    b.sum()  # b's chain has run
    a += 1
    with pytest.raises(gg.InplaceError, match="multiply.*modified in place"):
        (b * 1.0).sum().backward()


def test_a_short_chain_of_small_arrays_runs_op_by_op_as_without_fusion() -> None:
    x = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = gg.exp(x * 2.0)
    loss = y.sum()
    assert loss.grad_fn.name == "sum" and loss.grad_fn.next[0].name == "exp"  # the unfused tape
    y += 1  # y's value was saved by exp's rule as without fusion: the change is detected
    with pytest.raises(gg.InplaceError):
        loss.backward()


def test_ops_of_a_chain_replayed_op_by_op_run_at_once_next_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "LEARN", True)
    monkeypatch.setattr(lazy, "_EAGER", {})
    x = gg.tensor(RNG.standard_normal(37).astype(np.float32), requires_grad=True)

    def f() -> tuple[gg.Tensor, gg.Tensor]:
        y = gg.tanh(x) * gg.sigmoid(x)
        return y, y.sum()

    y, first = f()
    first.backward()
    g1 = x.grad.numpy().copy()
    assert lazy._EAGER  # the chain (tanh, sigmoid, multiply) was replayed op by op and learned
    x.grad = None
    y2, second = f()
    assert not _pending(y2) and y2.grad_fn.name == "multiply"  # ran at once: no chain this time
    second.backward()
    np.testing.assert_array_equal(second.numpy(), first.numpy())  # the same bits
    np.testing.assert_array_equal(x.grad.numpy(), g1)
    # another shape, or a chain that heads with another op, still waits
    assert _pending(gg.tanh(gg.tensor(np.ones(38, np.float32))) * 2.0)
    assert _pending(gg.exp(x))


def test_compiled_chains_are_not_learned(compiled_fusion: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "LEARN", True)
    monkeypatch.setattr(lazy, "_EAGER", {})
    x = gg.tensor(RNG.standard_normal(37).astype(np.float32), requires_grad=True)
    (gg.tanh(x) * gg.sigmoid(x)).sum().backward()  # compiled: one pass each way
    assert not lazy._EAGER and _pending(gg.tanh(x))


@pytest.mark.gpu
def test_chains_on_cuda_are_not_learned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "LEARN", True)
    monkeypatch.setattr(lazy, "_EAGER", {})
    x = gg.tensor(RNG.standard_normal(37).astype(np.float32), device="cuda", requires_grad=True)
    (gg.tanh(x) * gg.sigmoid(x)).sum().backward()  # (the suite replays CUDA chains op by op)
    assert not lazy._EAGER and _pending(gg.tanh(x))


def test_a_chain_longer_than_the_bound_is_cut() -> None:
    x = gg.tensor(RNG.normal(size=8), requires_grad=True)
    h = x
    for i in range(3 * lazy.MAX_OPS):
        h = gg.sin(h) if i % 2 else h * 1.001
    loss = h.sum()
    nodes = 0
    node = loss.grad_fn
    while node is not None:
        nodes += 1
        node = next((e for e in node.next if isinstance(e, Node)), None)
    assert nodes >= 3  # several fused ops, each at most MAX_OPS long
    loss.backward()
    g = x.grad.numpy()
    x.grad = None
    with gg.no_fusion():
        h = x
        for i in range(3 * lazy.MAX_OPS):
            h = gg.sin(h) if i % 2 else h * 1.001
        h.sum().backward()
    np.testing.assert_allclose(g, x.grad.numpy(), rtol=1e-10)


def test_a_pending_chain_keeps_only_its_inputs_alive(compiled_fusion: None) -> None:
    x = gg.randn(50_000, dtype=gg.float64, requires_grad=True)  # 400 kB
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        h = x
        for _ in range(50):
            h = gg.tanh(h) * 1.5
        during = tracemalloc.get_traced_memory()[0]
        loss = h.sum()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert during - before < x.nbytes  # 100 pending ops: no array of x's size yet
    assert after - before < 3 * x.nbytes  # the compiled pass keeps no intermediate either
    loss.backward()
    assert x.grad.shape == x.shape


def test_no_grad_inside_a_chain_stops_the_gradient() -> None:
    x = gg.tensor([0.3, 0.7], requires_grad=True)
    with gg.no_grad():
        c = x * 3.0
    y = (c * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.9, 2.1])  # c is a constant


def test_fusion_and_second_order_and_forward_mode() -> None:
    def f(x: gg.Tensor) -> gg.Tensor:
        return (gg.tanh(x) * gg.exp(-x * x)).sum()

    x0 = np.array([0.2, -0.4, 1.1])
    h = gg.hessian(f)(x0)
    with gg.no_fusion():
        h0 = gg.hessian(f)(x0)
    np.testing.assert_allclose(h, h0, rtol=1e-12)
    v = np.array([1.0, 0.5, -2.0])
    _, t = gg.jvp(f, (x0,), (v,))
    np.testing.assert_allclose(float(t), np.asarray(gg.grad(f)(x0)) @ v, rtol=1e-12)


_UNARY = ["tanh", "sigmoid", "exp", "sin", "softplus_", "relu", "square"]


@st.composite
def _programs(draw: st.DrawFn) -> list:
    n = draw(st.integers(1, 12))
    return [(draw(st.sampled_from(["unary", "binary", "scalar", "fork"])), draw(st.sampled_from(_UNARY)),
             draw(st.sampled_from(["add", "multiply", "subtract", "maximum", "divide"])),
             draw(st.floats(0.5, 2.0)), draw(st.integers(0, 10))) for _ in range(n)]


def _run(program: list, x: gg.Tensor, y: gg.Tensor) -> gg.Tensor:
    vals = [x, y, x * y]
    for kind, un, bi, c, k in program:
        a = vals[-1]
        b = vals[k % len(vals)]
        if kind == "unary":
            v = gg.nn.functional.softplus(a) if un == "softplus_" else getattr(gg, un)(a)
        elif kind == "binary":
            v = getattr(gg, bi)(a, gg.tanh(b) + 2.0 if bi == "divide" else b)
        elif kind == "scalar":
            v = a * c + c
        else:
            v = a * b + a  # a fork: a used twice
        vals.append(v)
    return vals[-1]


@given(program=_programs(), broadcast=st.booleans())
def test_random_chains_fused_equal_unfused(program: list, broadcast: bool) -> None:
    xv = RNG.normal(size=(3, 4))
    yv = RNG.normal(size=(1, 4) if broadcast else (3, 4))
    results = []
    for fuse in (True, False):
        x = gg.tensor(xv, requires_grad=True)
        y = gg.tensor(yv, requires_grad=True)
        if fuse:
            out = _run(program, x, y)
            (out * out).mean().backward()
        else:
            with gg.no_fusion():
                out = _run(program, x, y)
                (out * out).mean().backward()
        results.append((out.numpy(), x.grad.numpy(), None if y.grad is None else y.grad.numpy()))
    for a, b in zip(*results):
        if a is None or b is None:
            assert a is None or not np.any(a)
            continue
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fused_gradients_against_finite_differences() -> None:
    def f(x: gg.Tensor, y: gg.Tensor) -> gg.Tensor:
        return (gg.sigmoid(x * y + 0.5) * gg.tanh(y) - x / (1.5 + gg.sin(x))).sum()

    x = gg.tensor(RNG.normal(size=(2, 3)), requires_grad=True)
    y = gg.tensor(RNG.normal(size=(3,)), requires_grad=True)
    assert gg.gradcheck(f, (x, y))


def _chain100(x: gg.Tensor) -> gg.Tensor:
    h = x
    for i in range(100):
        h = h * 1.01 if i % 2 else gg.tanh(h)
    return h.sum()


def test_compiled_passes_run_eager_chains(compiled_fusion: None) -> None:
    from gpugrad.fusion.kernels import _Template

    x = gg.tensor(RNG.normal(size=(3, 64)).astype(np.float32), requires_grad=True)
    b = gg.tensor(RNG.normal(size=64).astype(np.float32), requires_grad=True)
    loss = (gg.relu(x + b) * gg.sigmoid(x)).mean()
    assert isinstance(loss.grad_fn.op.program.compiled, _Template)
    loss.backward()
    got = (loss.item(), x.grad.numpy(), b.grad.numpy())
    x.grad = b.grad = None
    with gg.no_fusion():
        loss = (gg.relu(x + b) * gg.sigmoid(x)).mean()
        loss.backward()
    want = (loss.item(), x.grad.numpy(), b.grad.numpy())
    for a, w in zip(got, want):
        np.testing.assert_allclose(a, w, rtol=2e-5, atol=1e-7)


@pytest.mark.gpu
def test_a_chain_on_cuda_is_one_kernel_each_way(compiled_fusion: None) -> None:
    x = gg.tensor(RNG.normal(size=64).astype(np.float32), device="cuda", requires_grad=True)
    _chain100(x).backward()  # warm-up: the chain's kernels are compiled here
    x.grad = None
    gg.cuda.reset_counters()
    loss = _chain100(x)
    loss.backward()
    counts = gg.cuda.counters()
    assert counts["compilations"] == 0 and counts["syncs"] == 0
    assert counts["launches"] <= 4, counts  # forward (with its reduction) and backward
    g = x.grad.numpy()
    x.grad = None
    with gg.no_fusion():
        _chain100(x).backward()
    np.testing.assert_allclose(g, x.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_a_materialised_chain_is_freed_without_the_cycle_collector() -> None:
    import weakref

    x = gg.tensor(RNG.normal(size=8), requires_grad=True)
    gc.collect()
    gc.disable()
    try:
        mid = gg.tanh(x) * 2.0
        ref = weakref.ref(mid)
        loss = (gg.sigmoid(mid) + 1.0).sum()
        del mid
        assert ref() is None  # nothing (no reference cycle) holds the chain once it has run
    finally:
        gc.enable()
    loss.backward()
    assert x.grad.shape == (8,)


def test_compiled_calls_are_reused_across_geometries(compiled_fusion: None) -> None:
    """A chain's compiled call is cached per operand strides: repeated runs, a strided operand,
    a broadcast bias (its gradient summed), two operands with the same gradient, op parameters
    and numbers all give what the unfused ops give."""
    from gpugrad.fusion.kernels import _Template

    base = RNG.normal(size=(6, 16)).astype(np.float32)
    b = gg.tensor(RNG.normal(size=16).astype(np.float32), requires_grad=True)

    def step(x: gg.Tensor, y: gg.Tensor, slope: float) -> tuple:
        x.grad = y.grad = b.grad = None
        h = gg.nn.functional.leaky_relu(x + b, slope) * 0.5 + y
        loss = (gg.softplus(h, beta=2.0) - slope).mean()
        loss.backward()
        return loss.item(), x.grad.numpy(), y.grad.numpy(), b.grad.numpy(), loss.grad_fn

    cases = [(base, base[::-1] * 1.0), (base.T.copy().T, base), (np.asfortranarray(base), base[:, ::-1])]
    for slope in (0.1, 0.2, 0.1):
        for xa, ya in cases:
            x = gg.tensor(xa, requires_grad=True)
            y = gg.tensor(np.asarray(ya), requires_grad=True)
            got = step(x, y, slope)
            with gg.no_fusion():
                want = step(x, y, slope)
            for a, w in zip(got[:4], want[:4]):
                np.testing.assert_allclose(a, w, rtol=2e-5, atol=1e-6)
    template = got[4].op.program.compiled
    assert isinstance(template, _Template) and template.fast  # calls were cached and reused
    xs = gg.tensor(base, requires_grad=True)
    loss = (xs + xs * 1.0).sum()  # one operand twice: its gradients add
    loss.backward()
    np.testing.assert_allclose(xs.grad.numpy(), np.full(base.shape, 2.0, np.float32))


def test_array_addresses_match_numpy() -> None:
    from gpugrad.fusion import host

    a = np.arange(24.0).reshape(4, 6)

    class Sub(np.ndarray):
        pass

    for arr in (a, a[1:], a.T, a[::2, 3:], np.float32(2.0) * np.ones(()), a.view(Sub)):
        assert host.address(arr) == arr.__array_interface__["data"][0]
    arrays = [a, None, a[1:], a.view(Sub), np.empty(0)]
    assert host.addresses(arrays) == [0 if x is None else x.__array_interface__["data"][0] for x in arrays]


def _loss_and_grads(spec: Any, case: Any) -> tuple:
    from tests.op_specs import to_tensors

    xs = to_tensors(case)
    out = spec.fn(*xs, **case.kwargs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    loss = sum(((gg.tanh(o) * 1.5 + o) * o).sum() for o in outs if o.dtype.kind == "f")
    if not isinstance(loss, gg.Tensor) or not loss.requires_grad:
        return None, []
    loss.backward()
    return loss.item(), [None if x.grad is None else x.grad.numpy() for x in xs]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_op_gives_the_same_values_and_gradients_with_and_without_fusion(spec: Any) -> None:
    """The op-spec table with each op's result fed into an elementwise chain: fused and unfused
    agree (to reassociation) in value and in every input's gradient."""
    from hypothesis import HealthCheck, settings

    @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec.strategy)
    def check(case: Any) -> None:
        fused = _loss_and_grads(spec, case)
        with gg.no_fusion():
            plain = _loss_and_grads(spec, case)
        if plain[0] is None:
            return
        np.testing.assert_allclose(fused[0], plain[0], rtol=1e-10, atol=1e-12)
        for a, b in zip(fused[1], plain[1]):
            if a is None or b is None:
                assert a is None and b is None or not np.any(a if b is None else b)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)

    check()


def test_a_pending_tensor_is_a_tensor_and_a_plain_one_once_computed():
    import copy
    import pickle

    from gpugrad.tensor import PendingTensor, Tensor

    x = gg.tensor(np.linspace(-1, 1, 12), requires_grad=True)
    y = gg.tanh(x) * 2.0
    assert _pending(y) and isinstance(y, Tensor) and type(y) is PendingTensor
    assert y.shape == (12,) and y.dtype == np.float64  # known without computing
    want = np.tanh(np.linspace(-1, 1, 12)) * 2.0
    np.testing.assert_allclose(y.numpy(), want)
    assert type(y) is Tensor and not _pending(y)  # computed: an ordinary tensor again
    z = gg.sigmoid(x) + 1.0
    w = copy.deepcopy(z)  # copy and pickle compute the chain first
    np.testing.assert_allclose(w.numpy(), 1 / (1 + np.exp(-np.linspace(-1, 1, 12))) + 1.0)
    p = pickle.loads(pickle.dumps(gg.exp(x.detach())))
    np.testing.assert_allclose(p.numpy(), np.exp(np.linspace(-1, 1, 12)))


def test_an_op_with_a_parameter_operand_is_learned_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "LEARN", True)
    monkeypatch.setattr(lazy, "_EAGER", {})
    x = gg.tensor(RNG.standard_normal((4, 3)).astype(np.float32))
    b = gg.nn.Parameter(gg.tensor(RNG.standard_normal(3).astype(np.float32)))
    first = gg.relu(x + b)
    assert _pending(first)
    first.numpy()  # replayed op by op: add and relu learned
    again = x + b
    assert not _pending(again) and type(b) is not gg.Tensor  # a Tensor subclass operand matches


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_a_learned_op_runs_with_its_resolved_forward_and_gives_the_unfused_result(
        monkeypatch: pytest.MonkeyPatch, dtype: type) -> None:
    monkeypatch.setattr(lazy, "LEARN", True)
    monkeypatch.setattr(lazy, "_EAGER", {})
    monkeypatch.setattr(lazy, "_PROGRAMS", {})
    x = gg.tensor(RNG.standard_normal((5, 3)).astype(dtype), requires_grad=True)
    b = gg.tensor(RNG.standard_normal(3).astype(dtype), requires_grad=True)

    def f() -> gg.Tensor:
        return gg.leaky_relu(gg.tanh(x * 0.5 + b), negative_slope=0.1)

    f().sum().backward()  # replayed op by op, then learned
    ch = np.dtype(dtype).char  # (keyed as the trie's first steps: operands' dtype characters and shapes, then the op)
    add = lazy._EAGER[(ch, (5, 3), ch, (3,), OPS["add"])]
    assert callable(add)  # the NumPy function of add for this dtype, resolved once
    assert lazy._EAGER[(ch, (5, 3), float, OPS["multiply"])] is not True
    # an op with parameters takes the general path (True): it never waits, and runs through apply
    leaky = [v for k, v in lazy._EAGER.items() if k[-1].name == "leaky_relu"]
    assert leaky == [True]
    g_learned = (x.grad.numpy().copy(), b.grad.numpy().copy())
    x.grad = b.grad = None
    y = f()
    assert not _pending(y) and y.grad_fn.name == "leaky_relu"
    y.sum().backward()
    with gg.no_fusion():
        x2, b2 = x.detach().requires_grad_(), b.detach().requires_grad_()
        want = gg.leaky_relu(gg.tanh(x2 * 0.5 + b2), negative_slope=0.1)
        want.sum().backward()
    np.testing.assert_array_equal(y.numpy(), want.numpy())  # the same bits as without fusion
    for got, ref in zip((x.grad, b.grad), (x2.grad, b2.grad)):
        np.testing.assert_array_equal(got.numpy(), ref.numpy())
    np.testing.assert_array_equal(g_learned[0], x.grad.numpy())
    # a broadcast error is still raised at the op, by the same rule
    with pytest.raises(gg.ShapeError, match="add"):
        _ = x + gg.tensor(np.ones(4, dtype))


def test_a_kernel_registered_after_an_op_was_learned_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpugrad.backends import backend_for

    monkeypatch.setattr(lazy, "LEARN", True)
    monkeypatch.setattr(lazy, "_EAGER", {})
    monkeypatch.setattr(lazy, "_PROGRAMS", {})  # (a program learned in an earlier test is not learned again)
    B = backend_for("cpu")
    x = gg.tensor(np.arange(3.0, dtype=np.float32))
    (x * 2.0).numpy()  # multiply learned, with its resolved NumPy function
    assert lazy._EAGER
    calls = []

    def declining(B_: Any, args: list, params: dict) -> Any:
        calls.append(args)
        return NotImplemented  # the rule runs after all

    key = ("multiply", "forward")
    B.lowerings[key] = declining
    try:
        assert not lazy._EAGER  # registering forgets what was resolved
        y = x * 2.0
        np.testing.assert_array_equal(y.numpy(), [0.0, 2.0, 4.0])
        assert len(calls) == 1  # the kernel was asked
    finally:
        del B.lowerings[key]
