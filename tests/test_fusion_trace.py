"""Chains recorded in call order (gpugrad.fusion.lazy: the trie of steps, ``run``'s short path).

An op extending a chain is found as a step of a trie; computing the chain reads its program and
inputs off its last step, without walking the DAG. Every case here checks that this bookkeeping
changes nothing a program means: values and gradients as without fusion, the gradient through a
tensor computed since, inputs rebound, bounds, and the fall-backs to the DAG walk."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.fusion import lazy
from gpugrad.tensor import PendingTensor, Tensor

RNG = np.random.default_rng(11)


def _traced(t: Tensor) -> bool:
    return t._lazy is not None and t._lazy.node is not None


def _both(fn, *arrays: np.ndarray) -> tuple[list, list]:
    """(values, gradients) of ``fn(*tensors).sum()`` with fusion on and off."""
    out = []
    for fused in (True, False):
        xs = [gg.tensor(a, requires_grad=True) for a in arrays]
        if fused:
            loss = fn(*xs).sum()
        else:
            with gg.no_fusion():
                loss = fn(*xs).sum()
        loss.backward()
        out.append(([loss.item()], [x.grad.numpy() for x in xs]))
    return out[0], out[1]


def _same(fn, *arrays: np.ndarray) -> None:
    (v1, g1), (v2, g2) = _both(fn, *arrays)
    np.testing.assert_allclose(v1, v2, rtol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def _no_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    def walk(*_: object) -> None:
        raise AssertionError("the DAG was walked")

    monkeypatch.setattr(lazy, "_linearise", walk)


def test_a_chain_recorded_in_order_is_computed_from_its_last_step(compiled_fusion: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    x = gg.tensor(RNG.normal(size=(3, 4)), requires_grad=True)
    y = 2.0 - gg.tanh(x) * 3  # a first op f(x), then y op int, number op y
    y = gg.sigmoid(y) / 1.5
    assert _traced(y) and y._lazy.node.depth == 5 and y.shape == (3, 4) and y.dtype == np.float64
    _no_walk(monkeypatch)
    loss = y.sum()
    loss.backward()
    xv = x.numpy()
    t = np.tanh(xv)
    s = 1 / (1 + np.exp(-(2.0 - t * 3)))
    np.testing.assert_allclose(loss.item(), np.sum(s / 1.5), rtol=1e-13)
    np.testing.assert_allclose(x.grad.numpy(), s * (1 - s) / 1.5 * -3 * (1 - t * t), rtol=1e-12)
    # the same chain again is the same program (found by its step), on other inputs
    x2 = gg.tensor(RNG.normal(size=(3, 4)), requires_grad=True)
    y2 = gg.sigmoid(2.0 - gg.tanh(x2) * 3) / 1.5
    assert y2._lazy.node is y._lazy.node


def test_shared_operands_on_the_chain_and_a_repeated_input(compiled_fusion: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def f(x: Tensor) -> Tensor:
        s = gg.sigmoid(x)
        y = s * (1.0 - s)  # s is on the chain of (1 - s): one chain, s computed once
        return y * x + x  # x read again: the chain's one array input
    x = gg.tensor(RNG.normal(size=7), requires_grad=True)
    y = f(x)
    assert _traced(y) and len(y._lazy.arrs) == 1
    _same(f, RNG.normal(size=7))
    _no_walk(monkeypatch)
    loss = f(x).sum()
    program = loss.grad_fn.op.program
    assert len(program.arrays) == 1 and len(program.steps) == 5


def test_an_input_rebound_between_two_ops_is_two_inputs(compiled_fusion: None) -> None:
    want = np.exp([1.0, 2.0]) * 2.0 + [10.0, 20.0]
    x = gg.tensor([1.0, 2.0], dtype=gg.float64)
    a = gg.exp(x) * 2.0
    x.data = np.array([10.0, 20.0])  # a rebinding, not an in-place write: a keeps the old array
    b = a + x
    assert _traced(b) and len(b._lazy.arrs) == 2 and b._lazy.arrs[0][0] is b._lazy.arrs[1][0]
    np.testing.assert_allclose(b.numpy(), want, rtol=1e-13)
    with gg.no_fusion():
        x = gg.tensor([1.0, 2.0], dtype=gg.float64)
        a = gg.exp(x) * 2.0
        x.data = np.array([10.0, 20.0])
        np.testing.assert_allclose((a + x).numpy(), want, rtol=1e-13)


def test_a_tensor_of_the_chain_computed_since_is_read_not_recomputed(compiled_fusion: None) -> None:
    x = gg.tensor(RNG.normal(size=5), requires_grad=True)
    a = gg.tanh(x)
    b = a * 3.0
    c = b + 1.0
    seen = []
    a.register_hook(lambda g: seen.append(g.numpy().copy()))  # computes a: its chain is marked
    assert not isinstance(a, PendingTensor) and c._lazy.trace[0]
    a.retain_grad()
    c.sum().backward()
    np.testing.assert_allclose(seen[0], np.full(5, 3.0))  # the gradient went through a
    np.testing.assert_allclose(a.grad.numpy(), np.full(5, 3.0))
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * (1 - np.tanh(x.numpy()) ** 2), rtol=1e-12)
    d = c * 2.0  # extending a marked chain: recorded with its DAG
    assert d._lazy.node is None
    np.testing.assert_allclose(d.numpy(), (np.tanh(x.numpy()) * 3 + 1) * 2, rtol=1e-13)


def test_forks_and_two_chains_meeting_fall_back_to_the_dag_walk() -> None:
    def f(x: Tensor, w: Tensor) -> Tensor:
        a = gg.tanh(x)
        b = a * 2.0  # on a's chain
        c = a * w  # a fork of it: also recorded along a's chain
        d = gg.sigmoid(w) + 1.0  # another chain
        return (b + c) * d  # b and c: a fork; then d: two chains meet
    x, w = RNG.normal(size=6), RNG.normal(size=6)
    tx, tw = gg.tensor(x), gg.tensor(w)
    a = gg.tanh(tx)
    assert _traced(a * 2.0) and _traced(a * tw)
    b, c = a * 2.0, a * tw
    assert (b + c)._lazy.node is None  # c is not on b's chain
    _same(f, x, w)


def test_an_operand_computed_under_no_grad_stops_the_gradient_on_a_chain() -> None:
    z = gg.tensor([0.2, -0.4], dtype=gg.float64, requires_grad=True)
    w = gg.tensor([1.5, 2.5], dtype=gg.float64, requires_grad=True)
    with gg.no_grad():
        c = gg.tanh(z) * 2.0
    assert not c.requires_grad
    y = c * w + 1.0
    assert y.requires_grad and y._lazy.node is None  # not c's chain: the gradient stops at c
    y.sum().backward()
    assert z.grad is None
    np.testing.assert_allclose(w.grad.numpy(), np.tanh([0.2, -0.4]) * 2.0, rtol=1e-13)


def test_a_chain_past_the_bound_is_cut_on_the_short_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "MAX_OPS", 5)

    def f(x: Tensor) -> Tensor:
        for _ in range(4):
            x = gg.sigmoid(gg.tanh(x) * 1.1) + 0.1
        return x
    x = gg.tensor(RNG.normal(size=4))
    y = f(x)
    assert y._lazy.node.depth <= 5
    _same(f, RNG.normal(size=4))


def test_ops_with_parameters_keep_their_own_on_the_chain(compiled_fusion: None) -> None:
    def f(x: Tensor) -> Tensor:
        y = gg.leaky_relu(gg.tanh(x) * 2.0, negative_slope=0.3)
        y = y - 0.5
        return gg.leaky_relu(y, negative_slope=0.05) * 3.0
    x = gg.tensor(RNG.normal(size=9))
    y = f(x)
    assert _traced(y) and [j for j, _ in y._lazy.pars] == [2, 4]
    _same(f, RNG.normal(size=9))


def test_the_trie_is_bounded_and_forgets_its_programs_with_the_learned_ops(compiled_fusion: None,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "MAX_TRIE", 4)
    for n in range(2, 9):  # chains of ever new shapes start the tries again past the bound
        _same(lambda x: gg.exp(x) * 0.5 - 1.0, RNG.normal(size=n))
    assert lazy._TRIE[0] <= 4
    x = gg.tensor(RNG.normal(size=3))
    y = gg.tanh(x) + 2.0
    y.sum()  # y's step now keeps its program
    node = y._lazy.node
    assert node.programs
    lazy._forget_learned()  # what registering a kernel does
    np.testing.assert_allclose(y.sum().item(), np.sum(np.tanh(x.numpy()) + 2.0), rtol=1e-13)
    assert node.gen == lazy._TRIE[1]  # (its programs were made again)


def test_dead_pending_tensors_do_not_pile_up() -> None:
    x = gg.tensor(RNG.normal(size=8), requires_grad=True)
    for _ in range(300):
        y = x
        for _ in range(10):
            y = gg.tanh(y) * 0.9
        y.sum().backward()
    del y
    gc.collect()
    assert len(lazy._LIVE) <= 20  # each op made looks at the oldest reference
    keep = gg.exp(x) + 1.0  # a live one stays, and an in-place write computes it first
    for _ in range(50):
        gg.tanh(x) * 2.0
    with gg.no_grad():
        x.mul_(0.0) if hasattr(x, "mul_") else x.__imul__(0.0)
    assert not isinstance(keep, PendingTensor)
    assert not np.allclose(keep.numpy(), 2.0)  # computed from x before the write


def test_a_pending_tensor_reads_its_unset_slots_as_a_tensor_would() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = gg.exp(x) * 2.0
    assert type(y) is PendingTensor and y.grad is None and y._tangents is None and y._extra is None
    assert y._version == [0]
    y.retain_grad()
    assert type(y) is Tensor and y._version == [0] and y._extra is None and y._node.extra["retained"]() is y
    y.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0])
    z = gg.tanh(x) + 1.0
    z.grad = gg.tensor([5.0, 5.0])  # set while pending: kept when it is computed
    z.numpy()
    assert type(z) is Tensor and z.grad.numpy().tolist() == [5.0, 5.0] and z._tangents is None


def test_a_pending_tensor_keeps_the_slots_set_or_read_before_it_is_computed() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = gg.exp(x) * 2.0
    assert y._version == [0]  # read while pending
    y.numpy()
    assert type(y) is Tensor and y._version == [0]
    fresh = [gg.exp(x) * float(k) for k in range(4)]
    fresh[1].grad = gg.tensor([3.0, 4.0])  # set while pending
    for t in fresh:
        t.numpy()
    assert [t.grad is None for t in fresh] == [True, False, True, True]
    assert all(t._extra is None and t._tangents is None and t._version == [0] for t in fresh)
    del fresh[1]
    gc.collect()
    touched = sys.modules["gpugrad.tensor"]._TOUCHED  # (gpugrad.tensor is also the function)
    assert all(ref() is not None for ref in touched.values())  # a dead tensor leaves no entry


def test_a_kernel_registered_for_fused_chains_computes_a_chain_recorded_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gpugrad.backends import lowerings
    from gpugrad.fusion import kernels

    monkeypatch.setattr(kernels.Settings, "cpu_min_elements", 0)
    monkeypatch.setattr(kernels.Settings, "cpu_min_ops", 1)
    key = ("fused_elementwise", "forward")
    ours = lowerings.CPU[key]
    calls: list = []

    def registered(B: object, args: list, params: dict) -> object:
        calls.append(params["program"])
        return ours(B, args, params)

    monkeypatch.setitem(lowerings.CPU, key, registered)
    x = gg.tensor(np.arange(1000.0))
    y = gg.tanh(x) * 2.0 + 1.0
    assert type(y) is PendingTensor
    np.testing.assert_allclose(y.numpy(), np.tanh(np.arange(1000.0)) * 2.0 + 1.0)
    assert len(calls) == 1  # the backend's kernel, not the compiler's pass behind its back
