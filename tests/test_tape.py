"""The tape and the backward pass: reachability, iteration, forks, freeing saved values,
retain_graph, create_graph, hooks, retain_grad, grad mode."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import gpugrad as gg


def test_chain_of_100k_ops_backpropagates_iteratively() -> None:
    x = gg.tensor([1.0, 2.0], dtype=gg.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


@gg.no_fusion()  # unfused, every op saves its output; a fused chain saves only its input
def test_saved_arrays_are_freed_after_backward() -> None:
    x = gg.randn(20_000, dtype=gg.float64, requires_grad=True)  # 160 kB per intermediate
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = x
        for _ in range(20):
            y = gg.tanh(y) * 1.5  # each step saves its output: 20 arrays kept by the tape
        loss = y.sum()
        del y
        during = tracemalloc.get_traced_memory()[0]
        assert during - before > 20 * x.nbytes  # the tape holds the saved intermediates
        loss.backward()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # What remains: x.grad (one array) and small bookkeeping; every saved array is gone.
    assert after - before < 1.5 * x.nbytes, (before, during, after)


def test_retain_graph_and_second_backward() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    y.backward()  # accumulates
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1, rtol=1e-6)
    with pytest.raises(gg.GraphError, match="second time"):
        y.backward()


def test_ops_without_saved_values_can_backward_twice() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_leaf_grads_accumulate_until_reset() -> None:
    x = gg.tensor([3.0], requires_grad=True)
    for _ in range(3):
        (x * x).sum().backward()
    assert x.grad.item() == pytest.approx(18.0)
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.item() == pytest.approx(6.0)


def test_grads_of_two_leaves_are_independent_arrays() -> None:
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data[0] = 100.0
    assert b.grad.numpy()[0] == 1.0


def test_create_graph_gives_higher_derivatives() -> None:
    x = gg.tensor(2.0, dtype=gg.float64, requires_grad=True)
    y = x ** 3
    (g,) = gg.autograd.grad(y, x, create_graph=True)
    assert g.item() == pytest.approx(12.0)
    (g2,) = gg.autograd.grad(g, x, create_graph=True)
    assert g2.item() == pytest.approx(12.0)
    (g3,) = gg.autograd.grad(g2, x)
    assert g3.item() == pytest.approx(6.0)
    # backward(create_graph=True) leaves a differentiable .grad
    z = gg.tensor(1.5, dtype=gg.float64, requires_grad=True)
    (gg.sin(z) * z).backward(create_graph=True)
    first = z.grad
    assert first.requires_grad
    z.grad = None
    first.backward()
    assert z.grad.item() == pytest.approx(2 * np.cos(1.5) - 1.5 * np.sin(1.5))


def test_hooks_on_leaves_and_intermediates() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    remove = x.register_hook(lambda g: seen.append(g.numpy().copy()))
    h = x * 3
    h.register_hook(lambda g: g * 10)  # replaces the gradient flowing into h
    h.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [30.0, 30.0])
    np.testing.assert_array_equal(seen[0], [30.0, 30.0])
    remove()
    x.grad = None
    (x * 1).sum().backward()
    assert len(seen) == 1
    with pytest.raises(gg.GraphError, match="hook must return a Tensor"):
        y = x * 2
        y.register_hook(lambda g: 5)
        y.sum().backward()


def test_retain_grad_keeps_intermediate_gradient() -> None:
    x = gg.tensor([1.0, -2.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())
    assert (x * 5).grad is None  # non-leaf without retain_grad


def test_no_grad_and_enable_grad() -> None:
    x = gg.tensor([1.0], requires_grad=True)
    with gg.no_grad():
        y = x * 2
        with gg.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @gg.no_grad()
    def f(t):  # noqa: ANN001, ANN202
        return t * 3

    assert not f(x).requires_grad
    assert gg.is_grad_enabled()
    with gg.set_grad_enabled(False):
        assert not (x * 1).requires_grad


def test_unreachable_branches_are_not_visited() -> None:
    x = gg.tensor([1.0], requires_grad=True)
    other = gg.tensor([1.0], requires_grad=True)
    _unused = other * 2  # recorded, but not part of y
    y = (x * 4).sum()
    y.backward()
    assert other.grad is None and x.grad.item() == 4.0


def test_backward_with_explicit_gradient_is_a_vjp() -> None:
    x = gg.tensor([1.0, 2.0, 3.0], dtype=gg.float64, requires_grad=True)
    y = x * x
    y.backward(gg.tensor([1.0, 0.5, 2.0], dtype=gg.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 12.0])


def test_detach_stops_gradients() -> None:
    x = gg.tensor([2.0], requires_grad=True)
    y = x * x.detach()
    y.sum().backward()
    assert x.grad.item() == 2.0


def test_broadcast_gradient_is_summed_back() -> None:
    b = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = gg.ones(4, 3)
    (x * b).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [4.0, 4.0, 4.0])
    s = gg.tensor(2.0, requires_grad=True)
    (x * s).sum().backward()
    assert s.grad.shape == () and s.grad.item() == 12.0


def test_setitem_is_differentiable() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    buf = gg.zeros(4)
    buf[1:3] = x * 3
    buf[0] = x[0]
    (buf * gg.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0 + 6.0, 9.0])


def test_inplace_ops_are_recorded_when_not_saved() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y += 1
    y *= 3
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    assert y.version == 2


@pytest.mark.parametrize("numpy_state", [True, False])
def test_backward_ignores_floating_point_errors_and_restores_the_callers_state(
        numpy_state: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from gpugrad.autograd import engine

    if not numpy_state:  # NumPy without the context variable: np.errstate itself
        monkeypatch.setattr(engine, "_NP_ERRSTATE", None)
    x = gg.tensor(np.array([1e30, 0.0, 2.0], np.float32), requires_grad=True)
    seen = {}

    def hook(g: gg.Tensor) -> gg.Tensor:
        seen["err"], seen["bufsize"] = np.geterr(), np.getbufsize()
        return g

    before_buf = np.getbufsize()
    with np.errstate(all="ignore"):  # the forward overflows too: that is the caller's business
        y = x * x
        y.register_hook(hook)
        loss = (y * np.float32(1e10)).sum()
    with warnings.catch_warnings(), np.errstate(over="raise", divide="warn", invalid="ignore"):
        warnings.simplefilter("error")
        np.setbufsize(16384)
        try:
            loss.backward()  # the backward's 2 * x * g overflows float32
            assert np.geterr()["over"] == "raise" and np.geterr()["divide"] == "warn"  # restored
            assert np.getbufsize() == 16384
        finally:
            np.setbufsize(before_buf)
    assert set(seen["err"].values()) == {"ignore"} and seen["bufsize"] == 16384  # the caller's buffer size kept
    assert np.isinf(x.grad.numpy()[0])
