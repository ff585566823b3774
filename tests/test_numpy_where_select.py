"""The NumPy backend's branch-free select gives np.where's result bit for bit."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.backends import numpy_backend as nb


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_select_against_zero_matches_np_where_bitwise(dtype: type) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1000).astype(dtype)
    a[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, -np.nan]
    c = rng.random(1000) > 0.5
    c[:6] = [False, False, True, True, False, True]
    zero = np.zeros((), dtype=dtype)
    for got, want in ((nb._where(c, a, zero), np.where(c, a, zero)), (nb._where(c, zero, a), np.where(c, zero, a))):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


def test_other_selects_fall_back_to_np_where() -> None:
    c = np.arange(300) % 3 == 0
    a = np.arange(300, dtype=np.float32)
    minus_zero = np.array(-0.0, dtype=np.float32)
    assert nb._where(c, a, minus_zero).tobytes() == np.where(c, a, minus_zero).tobytes()
    assert np.array_equal(nb._where(c, a, np.float32(2.0)), np.where(c, a, np.float32(2.0)))


def test_relu_and_its_gradient_unchanged() -> None:  # finite inputs: NaN handling is the op's own choice
    x = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    x[0, :2] = [-0.0, 0.0]
    t = gg.tensor(x, requires_grad=True)
    y = gg.relu(t)
    g = np.random.default_rng(2).standard_normal((64, 64)).astype(np.float32)
    y.backward(g)
    np.testing.assert_array_equal(y.numpy(), np.where(x > 0, x, np.float32(0)))
    np.testing.assert_array_equal(t.grad.numpy(), np.where(x > 0, g, np.float32(0)))
