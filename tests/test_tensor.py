"""Tensor attributes, factories, dtypes and promotion, operators, indexing, conversions."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg


def test_creation_dtypes() -> None:
    assert gg.tensor([[1.0, 2.0]]).dtype == np.float32  # Python floats -> float32
    assert gg.tensor(np.arange(3.0)).dtype == np.float64  # arrays keep their dtype
    assert gg.tensor([1, 2]).dtype == np.int64
    assert gg.tensor([True, False]).dtype == np.bool_
    assert gg.tensor([1.0, 2.0], dtype=gg.float16).dtype == np.float16
    assert gg.tensor(3.5).shape == ()
    src = np.ones(3)
    copy, shared = gg.tensor(src), gg.as_tensor(src)
    src[0] = 7
    assert copy.numpy()[0] == 1 and shared.numpy()[0] == 7
    t = gg.tensor([1.0])
    assert gg.as_tensor(t) is t


def test_attributes() -> None:
    x = gg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and isinstance(x.size, int)
    assert x.dtype == gg.float32 and isinstance(x.dtype, np.dtype)
    assert x.device == "cpu" and x.is_leaf and x.grad is None
    assert isinstance(x.data, np.ndarray)
    assert x.T.shape == (3, 2) and gg.ones(2, 3, 4).T.shape == (4, 3, 2)
    y = x * 2
    assert not y.is_leaf and y.grad_fn is not None and y.requires_grad


def test_factories() -> None:
    assert gg.zeros((2, 3)).shape == (2, 3) and gg.zeros(2, 3).shape == (2, 3)
    assert gg.ones(4).dtype == gg.float32
    assert gg.full((2,), 7).dtype == np.int64 and gg.full((2,), 7.0).numpy().tolist() == [7.0, 7.0]
    assert gg.zeros_like(gg.ones(2, dtype=gg.float64)).dtype == gg.float64
    assert gg.ones_like(gg.zeros(3)).numpy().tolist() == [1.0, 1.0, 1.0]
    assert gg.arange(5).dtype == np.int64 and gg.arange(0.0, 1.0, 0.25).dtype == gg.float32
    np.testing.assert_allclose(gg.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(gg.eye(3).numpy(), np.eye(3))
    assert gg.randn(2, 3).dtype == gg.float32 and gg.rand(4).shape == (4,)
    r = gg.randint(0, 5, (100,))
    assert r.dtype == np.int64 and 0 <= r.numpy().min() and r.numpy().max() < 5
    w = gg.randn(3, requires_grad=True, dtype=gg.float64)
    assert w.requires_grad and w.dtype == gg.float64
    with pytest.raises(gg.GpugradError, match="negative"):
        gg.zeros(-1)


def test_manual_seed_repeats() -> None:
    gg.manual_seed(3)
    a = (gg.randn(5).numpy(), gg.rand(2).numpy(), gg.randint(10, size=(3,)).numpy())
    gg.manual_seed(3)
    b = (gg.randn(5).numpy(), gg.rand(2).numpy(), gg.randint(10, size=(3,)).numpy())
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_type_promotion() -> None:
    x32 = gg.ones(2)
    assert (x32 * 2.0).dtype == gg.float32  # a Python scalar never upcasts
    assert (x32 + 1).dtype == gg.float32
    assert (2.5 - x32).dtype == gg.float32
    assert (x32 + gg.ones(2, dtype=gg.float64)).dtype == gg.float64
    assert (x32 + gg.ones(2, dtype=gg.float16)).dtype == gg.float32
    i = gg.tensor([1, 2])
    assert (i + 1).dtype == np.int64 and (i / 2).dtype == np.float64 and (i * 1.5).dtype == np.float64
    assert gg.exp(i).dtype == np.float64  # NumPy: integer inputs of float functions -> float64


def test_operators() -> None:
    a = gg.tensor([6.0, -7.0])
    b = gg.tensor([4.0, 2.0])
    np.testing.assert_array_equal((a // b).numpy(), [1.0, -4.0])
    np.testing.assert_array_equal((a % b).numpy(), [2.0, 1.0])  # NumPy's sign convention
    np.testing.assert_array_equal((b ** 2).numpy(), [16.0, 4.0])
    np.testing.assert_array_equal((-a).numpy(), [-6.0, 7.0])
    np.testing.assert_array_equal(abs(a).numpy(), [6.0, 7.0])
    np.testing.assert_array_equal((2 ** b).numpy(), [16.0, 4.0])
    m = gg.tensor([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal((m @ m).numpy(), m.numpy() @ m.numpy())
    np.testing.assert_array_equal((np.eye(2) @ m).numpy(), m.numpy())  # ndarray on the left
    assert isinstance(np.ones(2) * a, gg.Tensor)


def test_comparisons_return_bool_tensors_without_grad() -> None:
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = x > 1.5
    assert c.dtype == np.bool_ and not c.requires_grad
    assert (x == 2.0).numpy().tolist() == [False, True, False]
    assert ((x >= 2) & (x < 3)).numpy().tolist() == [False, True, False]
    assert (~(x < 2)).numpy().tolist() == [False, True, True]


def test_indexing() -> None:
    x = gg.tensor(np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(x[1].numpy(), [4, 5, 6, 7])
    np.testing.assert_array_equal(x[:, ::2].numpy(), [[0, 2], [4, 6], [8, 10]])
    np.testing.assert_array_equal(x[[0, 2], [1, 3]].numpy(), [1, 11])
    np.testing.assert_array_equal(x[x > 9].numpy(), [10, 11])
    np.testing.assert_array_equal(x[gg.tensor([2, 0])].numpy(), x.numpy()[[2, 0]])
    np.testing.assert_array_equal(x[None, 1, ..., -1].numpy(), [7])
    assert x[1, 2].shape == ()


def test_advanced_index_backward_accumulates_repeats() -> None:
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_views_share_version_counters() -> None:
    x = gg.tensor([1.0, 2.0, 3.0, 4.0])
    v = x.reshape(2, 2)
    x += 1
    assert v.version == x.version == 1
    np.testing.assert_array_equal(v.numpy(), [[2, 3], [4, 5]])


def test_conversions() -> None:
    x = gg.tensor([[1.5, 2.0]])
    assert x.tolist() == [[1.5, 2.0]]
    assert gg.tensor([3.0]).item() == 3.0 and float(gg.tensor(2.0)) == 2.0 and int(gg.tensor(7)) == 7
    assert x.astype(gg.float64).dtype == gg.float64 and x.to(gg.float16).dtype == gg.float16
    assert x.to("cpu") is x and x.cpu() is x
    assert np.asarray(x).shape == (1, 2)
    assert len(x) == 1 and [t.shape for t in x] == [(2,)]
    assert "tensor(" in repr(x) and "requires_grad=True" in repr(gg.ones(1, requires_grad=True))
    assert bool(gg.tensor([1.0])) is True
    with pytest.raises(gg.GpugradError, match="ambiguous"):
        bool(gg.ones(2))


def test_astype_is_differentiable_between_floats() -> None:
    x = gg.tensor([1.0, 2.0], dtype=gg.float64, requires_grad=True)
    y = (x.astype(gg.float32) * 2).sum()
    y.backward()
    assert x.grad.dtype == gg.float64
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    assert not x.astype(np.int32).requires_grad


def test_tensor_methods_mirror_functions() -> None:
    x = gg.tensor(np.random.default_rng(0).normal(size=(2, 3)))
    for name in ("exp", "tanh", "sigmoid", "relu", "abs", "sin", "square"):
        np.testing.assert_array_equal(getattr(x, name)().numpy(), getattr(gg, name)(x).numpy())
    np.testing.assert_allclose(x.sum(axis=1).numpy(), x.numpy().sum(axis=1))
    np.testing.assert_allclose(x.mean(0, keepdims=True).numpy(), x.numpy().mean(0, keepdims=True))
    np.testing.assert_allclose(x.var(ddof=1).numpy(), x.numpy().var(ddof=1))
    assert x.permute(1, 0).shape == (3, 2) and x.transpose().shape == (3, 2)
    assert x.unsqueeze(0).shape == (1, 2, 3) and x.flatten().shape == (6,)
    assert x.argmax().item() == int(np.argmax(x.numpy()))
    np.testing.assert_allclose(x.clip(-0.5, 0.5).numpy(), np.clip(x.numpy(), -0.5, 0.5))
    np.testing.assert_array_equal(x.repeat(2, axis=0).numpy(), np.repeat(x.numpy(), 2, axis=0))
    assert [p.shape for p in x.split(3, axis=1)] == [(2, 1)] * 3


def test_forward_values_match_numpy() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 4))
    t = gg.tensor(a)
    cases = {
        "logsumexp": (gg.logsumexp(t, axis=1), np.log(np.exp(a).sum(1))),
        "norm": (gg.norm(t), np.linalg.norm(a)),
        "norm_1": (gg.norm(t, 1, axis=0), np.linalg.norm(a, 1, axis=0)),
        "cumprod": (gg.cumprod(t, 1), np.cumprod(a, 1)),
        "einsum": (gg.einsum("ij,kj->ik", t, t), np.einsum("ij,kj->ik", a, a)),
        "pad": (gg.pad(t, 1, mode="reflect"), np.pad(a, 1, mode="reflect")),
        "softmax": (gg.softmax(t, 0), np.exp(a) / np.exp(a).sum(0)),
        "tile": (gg.tile(t, (2, 1, 2)), np.tile(a, (2, 1, 2))),
        "roll": (gg.roll(t, 2), np.roll(a, 2)),
    }
    for name, (got, want) in cases.items():
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, err_msg=name)
