"""Transforms compose through closures at any depth (issue 10, item 1): an inner gg.grad / vjp /
jvp / jacobian / hessian whose function closes over (or is passed, as a non-differentiated
argument) a value an outer transform tracks stays connected to it. Checked against closed forms
and against PyTorch's torch.func (skipped without PyTorch)."""

from __future__ import annotations

import numpy as onp
import pytest

import gpugrad as gg
import gpugrad.numpy as np


def test_issue_examples() -> None:
    assert gg.grad(lambda x: x * gg.grad(lambda y: x * y)(1.0))(2.0) == 4.0
    assert gg.grad(lambda x: gg.grad(lambda a, b: a * b, 1)(x, 3.0))(2.0) == 1.0
    assert gg.grad(lambda x: gg.grad(lambda a, b: a * b * b, 1)(x, 3.0))(2.0) == 6.0


def inner_product(x):  # noqa: ANN001, ANN201
    return x * gg.grad(lambda y: x * y * y)(1.5)  # x * 2 x y  -> 2 * 1.5 * x**2


@pytest.mark.parametrize("outer", ["grad", "vjp", "jvp", "jacobian", "hessian", "backward", "value_and_grad"])
def test_every_outer_transform_sees_through_an_inner_grad(outer: str) -> None:
    x0 = 2.0
    d1, d2 = 6.0 * x0, 6.0  # d/dx and d2/dx2 of 3 x**2
    if outer == "grad":
        assert gg.grad(inner_product)(x0) == d1
    elif outer == "value_and_grad":
        assert gg.value_and_grad(inner_product)(x0) == (3.0 * x0**2, d1)
    elif outer == "vjp":
        value, pull = gg.vjp(inner_product, x0)
        assert value == 3.0 * x0**2 and pull(1.0)[0] == d1
    elif outer == "jvp":
        assert gg.jvp(inner_product, (x0,), (1.0,)) == (3.0 * x0**2, d1)
    elif outer == "jacobian":
        x = onp.array([1.0, 2.0])
        onp.testing.assert_allclose(gg.jacobian(lambda v: v * gg.grad(lambda y: (v * y * y).sum())(onp.ones(2)))(x),
                                    onp.diag(4.0 * x))
    elif outer == "hessian":
        x = onp.array([1.0, 2.0])
        H = gg.hessian(lambda v: (v * gg.grad(lambda y: (v * y * y).sum())(onp.ones(2))).sum())(x)
        onp.testing.assert_allclose(H, 4.0 * onp.eye(2))
        assert gg.hessian(inner_product)(x0) == d2
    else:
        x = gg.tensor(x0, dtype=gg.float64, requires_grad=True)
        inner_product(x).backward()
        assert x.grad.item() == d1


@pytest.mark.parametrize("inner", ["vjp", "jvp", "jacobian", "hessian", "elementwise_grad", "hvp"])
def test_outer_grad_sees_through_every_inner_transform(inner: str) -> None:
    # each inner result equals 2 x (times a constant), so the outer derivative of x * inner is 4 x
    def f(x):  # noqa: ANN001, ANN202
        if inner == "vjp":
            return x * gg.vjp(lambda y: x * y * y, 1.0)[1](1.0)[0]
        if inner == "jvp":
            return x * gg.jvp(lambda y: x * y * y, (1.0,), (1.0,))[1]
        if inner == "jacobian":
            return x * np.sum(gg.jacobian(lambda y: x * y * y)(onp.ones(1)))
        if inner == "hessian":
            return x * gg.hessian(lambda y: x * y * y)(1.0)
        if inner == "elementwise_grad":
            return x * np.sum(gg.elementwise_grad(lambda y: x * y * y)(onp.ones(1)))
        return x * np.sum(gg.hvp(lambda y: np.sum(x * y * y), (onp.ones(1),), (onp.ones(1),)))

    assert gg.grad(f)(3.0) == pytest.approx(12.0)


def test_three_levels_deep() -> None:
    def f(x):  # noqa: ANN001, ANN202
        return x * gg.grad(lambda y: y * gg.grad(lambda z: x * y * z * z)(1.0))(1.0)  # = 4 x**2

    assert gg.grad(f)(2.0) == 16.0
    assert gg.grad(gg.grad(f))(2.0) == 8.0


def test_forward_over_reverse_and_reverse_over_forward_through_closures() -> None:
    f = lambda x: gg.grad(lambda y: np.sum(np.sin(x * y)))(onp.ones(3))  # noqa: E731  x cos(x)
    x = onp.array([0.3, -0.7, 1.1])
    t = onp.array([1.0, 2.0, -1.0])
    want = (onp.cos(x) - x * onp.sin(x)) * t
    onp.testing.assert_allclose(gg.jvp(f, (x,), (t,))[1], want, rtol=1e-12)
    g = lambda x: gg.jvp(lambda y: np.sum(np.sin(x * y)), (onp.ones(3),), (t,))[1]  # noqa: E731
    onp.testing.assert_allclose(gg.grad(g)(x), want, rtol=1e-12)


def test_results_of_an_untracked_inner_transform_keep_the_callers_kind() -> None:
    out = gg.grad(lambda x: x * gg.grad(lambda y: 3.0 * y * y)(1.0))(2.0)
    assert isinstance(out, float) and out == 6.0
    inner = gg.grad(lambda y: np.sum(3.0 * y * y))(onp.ones(2))
    assert type(inner) is onp.ndarray


# ---------------------------------------------------------------------------------------------
# against torch.func


def _torch():  # noqa: ANN202
    return pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.func's own imports
def test_nested_closures_match_torch_func() -> None:
    torch = _torch()
    from torch.func import grad as tgrad
    from torch.func import jvp as tjvp
    from torch.func import vjp as tvjp

    x0 = onp.array([0.4, -1.2, 0.9])
    w = onp.array([1.5, -0.5, 2.0])

    def ours(x):  # noqa: ANN001, ANN202
        inner = gg.grad(lambda y: np.sum(np.tanh(x * y) * w))(onp.ones(3))
        tangent = gg.jvp(lambda y: np.sum(np.exp(x * y)), (onp.ones(3),), (w,))[1]
        pulled = gg.vjp(lambda y: np.sin(x * y), onp.ones(3))[1](w)[0]
        return np.sum(inner * x) + tangent * np.sum(x) + np.sum(pulled**2)

    def theirs(x):  # noqa: ANN001, ANN202
        wt = torch.tensor(w)
        inner = tgrad(lambda y: torch.sum(torch.tanh(x * y) * wt))(torch.ones(3, dtype=torch.float64))
        tangent = tjvp(lambda y: torch.sum(torch.exp(x * y)), (torch.ones(3, dtype=torch.float64),), (wt,))[1]
        pulled = tvjp(lambda y: torch.sin(x * y), torch.ones(3, dtype=torch.float64))[1](wt)[0]
        return torch.sum(inner * x) + tangent * torch.sum(x) + torch.sum(pulled**2)

    xt = torch.tensor(x0)
    onp.testing.assert_allclose(gg.grad(ours)(x0), tgrad(theirs)(xt).numpy(), rtol=1e-10)
    onp.testing.assert_allclose(gg.hessian(ours)(x0), torch.func.hessian(theirs)(xt).numpy(), rtol=1e-9)
    t = onp.array([1.0, 0.5, -2.0])
    onp.testing.assert_allclose(gg.jvp(gg.grad(ours), (x0,), (t,))[1],
                                tjvp(tgrad(theirs), (xt,), (torch.tensor(t),))[1].numpy(), rtol=1e-9)


def test_backward_around_inner_grad_matches_torch() -> None:
    torch = _torch()
    x0 = onp.array([0.4, -1.2, 0.9])
    x = gg.tensor(x0, requires_grad=True)
    y = np.sum(x * gg.grad(lambda v: np.sum(np.cos(x * v) * x))(onp.ones(3)))
    y.backward()
    xt = torch.tensor(x0, requires_grad=True)
    v = torch.ones(3, dtype=torch.float64, requires_grad=True)
    (gv,) = torch.autograd.grad(torch.sum(torch.cos(xt * v) * xt), v, create_graph=True)
    torch.sum(xt * gv).backward()
    onp.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10)
