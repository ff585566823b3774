"""PyTorch's spellings: dim=/keepdim= wherever axis=/keepdims= are taken (functions, Tensor
methods, F.*), both at once is an error, NumPy's meaning where the libraries collide; gg.cat,
gg.from_numpy, Tensor.numel, gg.inference_mode."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gpugrad as gg
import gpugrad.nn.functional as F

REDUCTIONS = ["sum", "mean", "max", "min", "prod", "logsumexp", "var", "std", "argmax", "argmin"]


def _public_functions():
    for owner, names in ((gg, dir(gg)), (F, dir(F)), (gg.Tensor, dir(gg.Tensor))):
        for name in names:
            if name.startswith("_"):
                continue
            fn = getattr(owner, name)
            if not callable(fn) or isinstance(fn, type):
                continue
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):
                continue
            yield owner, name, fn, params


def test_every_function_taking_axis_also_takes_dim():
    missing = [f"{getattr(owner, '__name__', owner)}.{name}" for owner, name, fn, params in _public_functions()
               if ("axis" in params or "keepdims" in params) and not hasattr(fn, "__wrapped__")]
    assert missing == []


@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
                    elements=st.floats(-3, 3)),
       data=st.data(), keepdim=st.booleans(), name=st.sampled_from(REDUCTIONS))
def test_reductions_dim_equals_axis(x, data, keepdim, name):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    t = gg.tensor(x)
    by_axis = getattr(gg, name)(t, axis=dim, keepdims=keepdim)
    by_dim = getattr(gg, name)(t, dim=dim, keepdim=keepdim)
    method = getattr(t, name)(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(by_dim.numpy(), by_axis.numpy())
    np.testing.assert_array_equal(method.numpy(), by_axis.numpy())


@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
                    elements=st.floats(-3, 3)),
       data=st.data(), keepdim=st.booleans())
def test_dim_results_match_torch(x, data, keepdim):
    torch = pytest.importorskip("torch")
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    t, tt = gg.tensor(x), torch.tensor(x)
    for name in ("sum", "mean", "prod", "logsumexp", "amax", "amin"):
        np.testing.assert_allclose(getattr(gg, name)(t, dim=dim, keepdim=keepdim).numpy(),
                                   getattr(torch, name)(tt, dim=dim, keepdim=keepdim).numpy(), rtol=1e-12)
    np.testing.assert_allclose(gg.softmax(t, dim=dim).numpy(), torch.softmax(tt, dim=dim).numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(t, dim=dim).numpy(), torch.log_softmax(tt, dim=dim).numpy(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(t.argmax(dim=dim, keepdim=keepdim).numpy(),
                                  tt.argmax(dim=dim, keepdim=keepdim).numpy())
    np.testing.assert_allclose(t.cumsum(dim=dim).numpy(), tt.cumsum(dim=dim).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(gg.cat([t, t], dim=dim).numpy(), torch.cat([tt, tt], dim=dim).numpy())
    np.testing.assert_array_equal(gg.stack([t, t], dim=dim).numpy(), torch.stack([tt, tt], dim=dim).numpy())


def test_shape_functions_take_dim():
    x = gg.arange(6.0).reshape(1, 2, 3)
    assert x.squeeze(dim=0).shape == (2, 3)
    assert gg.expand_dims(x, dim=0).shape == (1, 1, 2, 3)
    assert gg.flip(x, dim=2)[0, 0].tolist() == [2.0, 1.0, 0.0]
    assert gg.roll(x, 1, dim=2)[0, 0].tolist() == [2.0, 0.0, 1.0]
    assert [p.shape for p in gg.split(x, 3, dim=2)] == [(1, 2, 1)] * 3
    assert gg.take(x, gg.tensor([0, 2]), dim=2).shape == (1, 2, 2)
    assert x.repeat(2, dim=1).shape == (1, 4, 3)
    assert x.norm(dim=2, keepdim=True).shape == (1, 2, 1)
    assert x.any(dim=1).shape == (1, 3) and x.all(dim=1, keepdim=True).shape == (1, 1, 3)


def test_gradients_flow_through_dim_spellings():
    x = gg.randn(3, 4, dtype=gg.float64, requires_grad=True)
    x.softmax(dim=0).sum(dim=1).var(dim=0).backward()
    assert x.grad.shape == (3, 4)
    assert gg.gradcheck(lambda v: gg.logsumexp(v, dim=1, keepdim=True).sum(), [x])


@pytest.mark.parametrize("call", [
    lambda x: x.sum(1, dim=0),
    lambda x: x.sum(axis=1, dim=0),
    lambda x: gg.mean(x, axis=0, dim=0),
    lambda x: gg.sum(x, keepdims=True, keepdim=True),
    lambda x: gg.softmax(x, 0, dim=1),
    lambda x: gg.cat([x, x], 0, dim=0),
])
def test_both_spellings_at_once_is_an_error(call):
    with pytest.raises(gg.ArgumentError, match="both .* give one"):
        call(gg.ones((2, 3)))


def test_numpy_meaning_wins_where_the_libraries_collide():
    x = gg.arange(24.0).reshape(2, 3, 4)
    assert x.size == 24 and x.numel() == 24  # an int, not torch's method
    assert x.transpose().shape == (4, 3, 2)  # all axes reversed, not torch's swap of two
    assert x.max(dim=1).shape == (2, 4)  # values only, not torch's (values, indices)
    assert [p.shape[1] for p in x.split(3, dim=1)] == [1, 1, 1]  # 3 sections, not sections of size 3
    v = gg.tensor([1.0, 2.0, 3.0, 4.0])
    assert v.var(dim=0).item() == pytest.approx(1.25)  # ddof=0, not torch's unbiased default


def test_cat_is_concatenate():
    a, b = gg.ones((2, 3)), gg.zeros((1, 3))
    np.testing.assert_array_equal(gg.cat([a, b]).numpy(), gg.concatenate([a, b]).numpy())
    assert gg.cat((a, a), dim=-1).shape == (2, 6)


def test_from_numpy_shares_memory_and_keeps_dtype():
    a = np.arange(4, dtype=np.int32)
    t = gg.from_numpy(a)
    assert t.dtype == np.int32 and t.device == "cpu"
    a[0] = 7
    assert t[0].item() == 7
    t[1] = 9
    assert a[1] == 9
    with pytest.raises(gg.DTypeError, match="numpy.ndarray"):
        gg.from_numpy([1.0, 2.0])
    with pytest.raises(gg.DTypeError):
        gg.from_numpy(np.array(["a"]))


def test_inference_mode_records_nothing_and_nests():
    w = gg.randn(3, requires_grad=True)
    with gg.inference_mode():
        assert not (w * 2).requires_grad
        with gg.enable_grad():
            assert (w * 2).requires_grad
    with gg.inference_mode(False):
        assert (w * 2).requires_grad
    assert (w * 2).requires_grad

    @gg.inference_mode()
    def f(v):
        return v * 2

    @gg.inference_mode
    def g(v):
        return v * 2

    assert not f(w).requires_grad and not g(w).requires_grad
    assert gg.is_grad_enabled()
