"""The backpropagation examples worked by hand in the classic lectures, with their numbers."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg


def test_add_then_multiply_circuit() -> None:
    # f(x, y, z) = (x + y) z at x=-2, y=5, z=-4: q = 3, f = -12, grads (-4, -4, 3).
    x = gg.tensor(-2.0, requires_grad=True)
    y = gg.tensor(5.0, requires_grad=True)
    z = gg.tensor(-4.0, requires_grad=True)
    f = (x + y) * z
    assert f.item() == -12.0
    f.backward()
    assert (x.grad.item(), y.grad.item(), z.grad.item()) == (-4.0, -4.0, 3.0)


def test_two_input_sigmoid_neuron() -> None:
    # f(w, x) = sigmoid(w0 x0 + w1 x1 + w2) with w = [2, -3, -3], x = [-1, -2].
    w = gg.tensor([2.0, -3.0, -3.0], dtype=gg.float64, requires_grad=True)
    x = gg.tensor([-1.0, -2.0], dtype=gg.float64, requires_grad=True)
    f = gg.sigmoid(w[0] * x[0] + w[1] * x[1] + w[2])
    f.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.3932, -0.5898], atol=5e-5)
    np.testing.assert_allclose(w.grad.numpy(), [-0.1966, -0.3932, 0.1966], atol=5e-5)
    # the same through a dot product
    w2 = gg.tensor([2.0, -3.0], dtype=gg.float64, requires_grad=True)
    f2 = gg.sigmoid(gg.dot(w2, x.detach()) - 3.0)
    f2.backward()
    np.testing.assert_allclose(w2.grad.numpy(), [-0.1966, -0.3932], atol=5e-5)


def _staged(x: float, y: float) -> float:
    sy = 1.0 / (1 + math.exp(-y))
    sx = 1.0 / (1 + math.exp(-x))
    return (x + sy) / (sx + (x + y) ** 2)


def test_staged_computation_matches_finite_differences() -> None:
    # f = (x + sigmoid(y)) / (sigmoid(x) + (x + y)^2) at x=3, y=-4.
    x = gg.tensor(3.0, dtype=gg.float64, requires_grad=True)
    y = gg.tensor(-4.0, dtype=gg.float64, requires_grad=True)
    f = (x + gg.sigmoid(y)) / (gg.sigmoid(x) + (x + y) ** 2)
    f.backward()
    h = 1e-6
    dx = (_staged(3 + h, -4) - _staged(3 - h, -4)) / (2 * h)
    dy = (_staged(3, -4 + h) - _staged(3, -4 - h)) / (2 * h)
    assert abs(f.item() - _staged(3, -4)) < 1e-15
    np.testing.assert_allclose([x.grad.item(), y.grad.item()], [dx, dy], rtol=1e-8)
    assert gg.gradcheck(lambda a, b: (a + gg.sigmoid(b)) / (gg.sigmoid(a) + (a + b) ** 2), (x, y))


def test_gradients_add_up_at_forks() -> None:
    # x is used three times: df/dx = 2x + 3 + cos(x)
    x = gg.tensor([0.5, -1.5], dtype=gg.float64, requires_grad=True)
    f = (x * x + 3 * x + gg.sin(x)).sum()
    f.backward()
    xv = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * xv + 3 + np.cos(xv), rtol=1e-14)


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_matmul_rule(n: int, d: int, m: int, seed: int) -> None:
    # D = W X  =>  dW = dD X^T and dX = W^T dD.
    rng = np.random.default_rng(seed)
    W = gg.tensor(rng.normal(size=(n, d)), requires_grad=True)
    X = gg.tensor(rng.normal(size=(d, m)), requires_grad=True)
    dD = rng.normal(size=(n, m))
    D = W @ X
    D.backward(dD)
    np.testing.assert_allclose(W.grad.numpy(), dD @ X.numpy().T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(X.grad.numpy(), W.numpy().T @ dD, rtol=1e-12, atol=1e-12)
