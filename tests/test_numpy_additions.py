"""The NumPy names issue 10 adds, against PyTorch's gradients where PyTorch has the op (their values
and finite-difference gradients are checked for every name in tests/test_numpy_exits.py), the
einsum sublist form and np.r_, and every edge case the issue lists, each with its test."""

from __future__ import annotations

import numpy as onp
import pytest

import gpugrad as gg
import gpugrad.numpy as np

RNG = onp.random.default_rng(3)
A = RNG.normal(size=(3, 4))
B = RNG.normal(size=(2, 3))

# name -> (our function of a (3, 4) array, PyTorch's)
TORCH = {
    "kron": (lambda a: np.kron(a, B), lambda t, a: t.kron(a, t.tensor(B))),
    "cross": (lambda a: np.cross(a[:, :3], a[:, 1:]), lambda t, a: t.linalg.cross(a[:, :3], a[:, 1:])),
    "diff": (lambda a: np.diff(a, 2, axis=1), lambda t, a: t.diff(a, 2, dim=1)),
    "diff_prepend": (lambda a: np.diff(a, axis=0, prepend=1.0), lambda t, a: t.diff(a, dim=0, prepend=t.ones(1, 4,
                                                                                                        dtype=a.dtype))),
    "cumsum": (lambda a: np.cumsum(a, 0), lambda t, a: t.cumsum(a, 0)),
    "cumprod": (lambda a: np.cumprod(a, 1), lambda t, a: t.cumprod(a, 1)),
    "sort": (lambda a: np.sort(a, 1) * onp.arange(4.0), lambda t, a: t.sort(a, 1).values * t.arange(4.0)),
    "median": (lambda a: np.median(a, axis=1), lambda t, a: t.quantile(a, 0.5, dim=1)),
    "trace": (lambda a: np.trace(a, 1), lambda t, a: t.diagonal(a, 1).sum()),
    "tril": (lambda a: np.tril(a, -1), lambda t, a: t.tril(a, -1)),
    "triu": (lambda a: np.triu(a, 1), lambda t, a: t.triu(a, 1)),
    "roll": (lambda a: np.roll(a, (1, -2), (0, 1)), lambda t, a: t.roll(a, (1, -2), (0, 1))),
    "diag": (lambda a: np.diag(a[0]), lambda t, a: t.diag(a[0])),
    "take_along_axis": (lambda a: np.take_along_axis(a, onp.array([[0, 3], [1, 1], [2, 0]]), 1),
                        lambda t, a: t.take_along_dim(a, t.tensor([[0, 3], [1, 1], [2, 0]]), 1)),
    "nansum": (lambda a: np.nansum(np.where(a > 1.0, onp.nan, a), 1),
               lambda t, a: t.nansum(t.where(a > 1.0, t.nan, a), 1)),
    "nanmean": (lambda a: np.nanmean(np.where(a > 1.0, onp.nan, a), 0),
                lambda t, a: t.nanmean(t.where(a > 1.0, t.nan, a), 0)),
    "nan_to_num": (lambda a: np.nan_to_num(np.log(a), neginf=-5.0),
                   lambda t, a: t.nan_to_num(t.log(a), neginf=-5.0)),
    "meshgrid": (lambda a: np.meshgrid(a[0], a[1, :2])[0] * np.meshgrid(a[0], a[1, :2])[1],
                 lambda t, a: (lambda g: g[0] * g[1])(t.meshgrid(a[0], a[1, :2], indexing="xy"))),
    "pad": (lambda a: np.pad(a, ((1, 2), (0, 1))), lambda t, a: t.nn.functional.pad(a, (0, 1, 1, 2))),
    "convolve": (lambda a: np.convolve(a[0], a[1, :3]),
                 lambda t, a: t.nn.functional.conv1d(a[0].reshape(1, 1, -1), t.flip(a[1, :3], (0,)).reshape(1, 1, -1),
                                                     padding=2).reshape(-1)),
    "average": (lambda a: np.average(a, 0, onp.array([1.0, 2.0, 3.0])),
                lambda t, a: (a * t.tensor([[1.0], [2.0], [3.0]], dtype=a.dtype)).sum(0) / 6.0),
    "hstack_dstack": (lambda a: np.dstack([a, np.column_stack([a[:, 0], a[:, 1]])[:, :1] * a]),
                      lambda t, a: t.dstack([a, t.column_stack([a[:, 0], a[:, 1]])[:, :1] * a])),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_gradients_match_torch(name: str) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = TORCH[name]
    a = onp.abs(A) + 0.1 if name == "nan_to_num" else A
    w = RNG.normal(size=onp.shape(ours(a)))
    at = torch.tensor(a, requires_grad=True)
    value = theirs(torch, at)
    onp.testing.assert_allclose(onp.asarray(ours(a)), value.detach().numpy(), rtol=1e-10, atol=1e-12)
    (value * torch.tensor(w)).sum().backward()
    onp.testing.assert_allclose(gg.grad(lambda v: np.sum(ours(v) * w))(a), at.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_einsum_sublist_form() -> None:
    x, y = RNG.normal(size=(2, 3)), RNG.normal(size=(3, 4))
    onp.testing.assert_allclose(np.einsum(gg.tensor(x), [0, 1], y, [1, 2], [0, 2]).numpy(), x @ y)
    onp.testing.assert_allclose(np.einsum(gg.tensor(x), [Ellipsis, 1], y, [1, 2]).numpy(),
                                onp.einsum(x, [Ellipsis, 1], y, [1, 2]))
    g = gg.grad(lambda a: np.sum(np.einsum(a, [0, 1], y, [1, 2], [0, 2]) ** 2))(x)
    onp.testing.assert_allclose(g, 2 * (x @ y) @ y.T, rtol=1e-12)


def test_r_and_c() -> None:
    x = onp.array([1.0, 2.0])
    onp.testing.assert_array_equal(np.r_[gg.tensor(x), 0:3, 7.0].numpy(), onp.r_[x, 0:3, 7.0])
    onp.testing.assert_array_equal(np.c_[gg.tensor(x), x].numpy(), onp.c_[x, x])
    onp.testing.assert_allclose(gg.grad(lambda v: np.sum(np.r_[v, v * v, 1.0]))(x), 1 + 2 * x)


def test_median_average_interp_values() -> None:
    for shape, axis in (((5,), None), ((4, 6), 1), ((3, 4, 2), (0, 2))):
        a = RNG.normal(size=shape)
        onp.testing.assert_allclose(np.median(gg.tensor(a), axis=axis, keepdims=True).numpy(),
                                    onp.median(a, axis=axis, keepdims=True))
    a = RNG.normal(size=(3, 4))
    avg, wsum = np.average(gg.tensor(a), axis=1, weights=onp.arange(1.0, 5.0), returned=True)
    onp.testing.assert_allclose(avg.numpy(), onp.average(a, 1, onp.arange(1.0, 5.0)))
    onp.testing.assert_allclose(wsum.numpy(), [10.0, 10.0, 10.0])
    x = onp.array([-2.0, 0.3, 1.7, 5.0])
    xp, fp = onp.array([0.0, 1.0, 2.0]), onp.array([1.0, 3.0, -1.0])
    onp.testing.assert_allclose(np.interp(gg.tensor(x), xp, fp, left=-7.0).numpy(), onp.interp(x, xp, fp, left=-7.0))
    onp.testing.assert_allclose(gg.grad(lambda v: np.sum(np.interp(v, xp, fp)))(x), [0.0, 2.0, -4.0, 0.0])
    assert gg.gradcheck(lambda p: np.interp(x[1:3], xp, p), (fp,))


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("sizes", [(5, 3), (3, 5), (4, 4), (1, 3)])
def test_convolve_and_correlate_match_numpy(mode: str, sizes: tuple) -> None:
    a = RNG.normal(size=sizes[0]) + 1j * RNG.normal(size=sizes[0])
    v = RNG.normal(size=sizes[1]) + 1j * RNG.normal(size=sizes[1])
    for name in ("convolve", "correlate"):
        got = getattr(np, name)(gg.tensor(a), v, mode)
        onp.testing.assert_allclose(got.numpy(), getattr(onp, name)(a, v, mode), rtol=1e-12, atol=1e-12)
        assert gg.gradcheck(lambda x, w, n=name: getattr(np, n)(x, w, mode), (a, v))


# ---------------------------------------------------------------------------------------------
# the edge cases


def test_power_edge_cases() -> None:
    assert gg.grad(lambda x: x**0.0)(0.0) == 0.0
    assert gg.grad(gg.grad(lambda x: x**0.0))(0.0) == 0.0
    assert gg.grad(lambda y: np.power(0.0, y))(2.0) == 0.0  # finite, as HIPS autograd
    assert gg.grad(lambda y: np.power(0.0, y))(0.0) == 0.0
    assert onp.isfinite(gg.grad(gg.grad(lambda y: np.power(0.0, y)))(0.5))
    assert gg.grad(lambda x: x**2.0)(0.0) == 0.0 and gg.grad(lambda x: x**3.0)(2.0) == 12.0


def test_std_and_norm_of_constants_have_zero_gradient_as_torch() -> None:
    torch = pytest.importorskip("torch")
    x = onp.full(4, 2.0)
    for ours, theirs in ((lambda v: np.std(v), lambda v: v.std(unbiased=False)),
                         (lambda v: np.linalg.norm(v - 2.0), lambda v: (v - 2.0).norm()),
                         (lambda v: np.linalg.norm(v - 2.0, 3), lambda v: (v - 2.0).norm(3))):
        xt = torch.tensor(x, requires_grad=True)
        theirs(xt).backward()
        onp.testing.assert_array_equal(gg.grad(ours)(x), xt.grad.numpy())
        assert onp.all(gg.grad(ours)(x) == 0)


def test_dot_shape_error_names_dot_and_both_shapes() -> None:
    with pytest.raises(gg.ShapeError) as info:
        np.dot(gg.tensor(onp.ones(3)), onp.ones(4))
    message = str(info.value)
    assert message.startswith("dot:") and "(3,)" in message and "(4,)" in message
    assert "matmul" not in message and "gufunc" not in message
    with pytest.raises(gg.ShapeError, match=r"^matmul: shapes \(2, 3\) and \(2, 3\)"):
        gg.tensor(onp.ones((2, 3))) @ gg.tensor(onp.ones((2, 3)))


def test_ragged_tensor_is_refused() -> None:
    with pytest.raises(gg.ShapeError, match="ragged|inhomogeneous|do not form"):
        gg.tensor([[1.0, 2.0], [3.0]])


def test_tensor_of_a_list_holding_a_traced_tensor_is_refused() -> None:
    with pytest.raises(gg.GraphError, match="gg.stack"):
        gg.grad(lambda x: gg.tensor([x, 1.0]).sum())(2.0)
    assert gg.tensor([gg.tensor(2.0), 1.0]).tolist() == [2.0, 1.0]  # values of a constant tensor: fine


def test_grad_of_a_boolean_is_a_type_error() -> None:
    with pytest.raises(gg.DTypeError):
        gg.grad(lambda x: np.allclose(x, x * 3.0 / 3.0))(onp.ones(3))


def test_elementwise_grad() -> None:
    x = onp.linspace(-2.0, 2.0, 5)
    onp.testing.assert_allclose(gg.elementwise_grad(np.tanh)(x), 1 - onp.tanh(x) ** 2)
    onp.testing.assert_allclose(gg.elementwise_grad(lambda a, b: a * np.sin(b), 1)(2.0, x), 2.0 * onp.cos(x))
    onp.testing.assert_allclose(gg.elementwise_grad(gg.elementwise_grad(np.sin))(x), -onp.sin(x))


def test_gradcheck_on_numpy_float_and_float32_inputs() -> None:
    assert gg.gradcheck(lambda x: np.tanh(x) * 3, (onp.array([0.1, -0.4]),))
    assert gg.gradcheck(lambda x: x**3, 1.5)
    x32 = gg.tensor([0.3, 1.7, -2.2], requires_grad=True)  # float32
    with pytest.warns(UserWarning, match="float32.*float64"):
        assert gg.gradcheck(lambda v: np.exp(v) * np.sin(v * 40.0), (x32,))
    with pytest.raises(gg.GradcheckError, match="input 0"):
        gg.gradcheck(lambda v: gg.custom_vjp_wrong(v) if False else _wrong_gradient(v), (onp.ones(2),))
    with pytest.raises(gg.GpugradError, match="nothing to check"):
        gg.gradcheck(lambda v: v, (gg.tensor([1.0]),))


@gg.custom_vjp
def _wrong_gradient(x):  # noqa: ANN001, ANN202
    return x * 2


_wrong_gradient.defvjp(lambda x: (x * 2, None), lambda res, g: (g * 3,))


def test_checkpoint_recomputes_and_matches() -> None:
    from gpugrad.utils.checkpoint import checkpoint

    w = gg.tensor(RNG.normal(size=(4, 4)), requires_grad=True)
    w2 = w * 2.0  # closed over, and not a leaf: its gradient flows on to w
    x = gg.tensor(RNG.normal(size=(3, 4)))
    calls = []

    def block(v):  # noqa: ANN001, ANN202
        calls.append(1)
        h = np.tanh(v @ w2)
        return h @ w, h.sum()

    (out, aux) = gg.checkpoint(block)(x)
    assert len(calls) == 1
    loss = (out**2).sum() + aux
    loss.backward(retain_graph=True)
    assert len(calls) == 2  # recomputed during backward
    g1 = w.grad.numpy()
    w.grad = None
    out2, aux2 = block(x)
    ((out2**2).sum() + aux2).backward()
    onp.testing.assert_allclose(g1, w.grad.numpy(), rtol=1e-12)
    y = checkpoint(lambda v: np.sin(v) @ w, x)
    assert y.shape == (3, 4) and y.requires_grad
    # second order and forward mode through a checkpoint
    f = lambda v: np.sum(np.tanh(v) ** 3)  # noqa: E731
    v0 = onp.array([0.3, -0.2])
    onp.testing.assert_allclose(gg.hessian(gg.checkpoint(f))(v0), gg.hessian(f)(v0), rtol=1e-12)


def test_checkpoint_replays_dropout() -> None:
    gg.manual_seed(0)
    w = gg.tensor(RNG.normal(size=(8,)), requires_grad=True)
    drop = gg.nn.Dropout(0.5)
    out = gg.checkpoint(lambda v: drop(v * w))(gg.ones(8, dtype=gg.float64))
    out.sum().backward()
    kept = out.detach().numpy() != 0
    onp.testing.assert_allclose(w.grad.numpy(), onp.where(kept, 2.0, 0.0))
