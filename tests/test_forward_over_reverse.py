"""Forward-over-reverse (hvp, hessian) through ops whose backward rule reads their saved output."""

import numpy as np
import pytest

import gpugrad as gg


def _hvp(*args: object) -> object:
    """gg.hvp's result for one primal (a 1-tuple in some builds, the array in others)."""
    hv = gg.hvp(*args)
    return hv[0] if isinstance(hv, tuple) else hv


def test_hvp_through_tanh_matches_closed_form() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 5))
    x = rng.standard_normal(5)
    v = rng.standard_normal(5)
    hv = _hvp(lambda z: gg.tanh(gg.tensor(w) @ z).sum(), (x,), (v,))
    t = np.tanh(w @ x)
    np.testing.assert_allclose(hv, w.T @ (-2 * t * (1 - t * t) * (w @ v)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_hessian_of_output_saving_ops_is_diagonal_second_derivative(name: str) -> None:
    x = np.array([0.5, -0.2, 1.3])
    h = gg.hessian(lambda z: getattr(gg, name)(z).sum())(x)
    second = {
        "exp": np.exp(x),
        "sigmoid": (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s),
        "tanh": -2 * np.tanh(x) * (1 - np.tanh(x) ** 2),
    }[name]
    np.testing.assert_allclose(h, np.diag(second), rtol=1e-10, atol=1e-12)


def test_hvp_with_tensor_inputs() -> None:
    x = gg.tensor([0.3, -0.7], dtype=gg.float64)
    v = gg.tensor([1.0, 2.0], dtype=gg.float64)
    hv = _hvp(lambda z: gg.exp(z).sum(), (x,), (v,))
    np.testing.assert_allclose(hv.numpy(), np.exp(x.numpy()) * v.numpy(), rtol=1e-12)
