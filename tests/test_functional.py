"""Functional transforms: grad, value_and_grad, vjp, jvp (true forward mode), jacobian,
hessian, nesting, pytrees, argnums, input kinds, custom rules."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.numpy as gnp
from gpugrad.autograd import functional
from gpugrad.ops.elementwise import ElementwiseOp
from tests.numeric import fd_grad


def test_grad_numpy_in_numpy_out() -> None:
    f = lambda x: gnp.sum(gnp.sin(x) ** 2)  # noqa: E731
    x = np.linspace(0, 1, 5)
    g = gg.grad(f)(x)
    assert type(g) is np.ndarray and g.dtype == np.float64
    np.testing.assert_allclose(g, 2 * np.sin(x) * np.cos(x), rtol=1e-13)


def test_grad_input_kinds() -> None:
    f = lambda x: x * x * 3.0  # noqa: E731
    g = gg.grad(f)(2.0)
    assert type(g) is float and g == 12.0
    t = gg.tensor(2.0, dtype=gg.float64)
    gt = gg.grad(f)(t)
    assert isinstance(gt, gg.Tensor) and gt.item() == 12.0
    assert t.grad is None  # no .grad left behind


def test_argnums_and_value_and_grad() -> None:
    def f(a, b, c):  # noqa: ANN001, ANN202
        return gnp.sum(a * b) + c

    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    ga = gg.grad(f)(a, b, 1.0)
    np.testing.assert_array_equal(ga, b)
    ga, gb = gg.grad(f, argnums=(0, 1))(a, b, 1.0)
    np.testing.assert_array_equal(gb, a)
    v, (gb, gc) = gg.value_and_grad(f, argnums=(1, 2))(a, b, 1.0)
    assert v == 12.0 and gc == 1.0
    np.testing.assert_array_equal(gb, a)
    gl = gg.grad(f, argnums=-1)(a, b, 5.0)
    assert gl == 1.0
    with pytest.raises(gg.GpugradError, match="argnums 3"):
        gg.grad(f, argnums=3)(a, b, 1.0)


def test_pytrees() -> None:
    def loss(params, x):  # noqa: ANN001, ANN202
        h = gnp.tanh(gnp.dot(x, params["w"]) + params["b"])
        return gnp.sum(h ** 2) + params["extra"][0] ** 2

    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 2)), "b": np.zeros(2), "extra": [np.array(1.5)]}
    x = rng.normal(size=(4, 3))
    v, g = gg.value_and_grad(loss)(params, x)
    assert set(g) == {"w", "b", "extra"} and isinstance(g["extra"], list)
    assert g["w"].shape == (3, 2) and g["extra"][0] == pytest.approx(3.0)
    fd = fd_grad(lambda w: loss({**params, "w": w}, x).item(), params["w"])
    np.testing.assert_allclose(g["w"], fd, rtol=1e-6)
    out, pullback = gg.vjp(lambda p: (p["w"] * 2, gnp.sum(p["b"])), params)
    (ct,) = pullback((np.ones((3, 2)), 1.0))
    np.testing.assert_array_equal(ct["w"], 2 * np.ones((3, 2)))
    np.testing.assert_array_equal(ct["b"], np.ones(2))


def test_has_aux() -> None:
    def f(x):  # noqa: ANN001, ANN202
        y = gnp.sum(x ** 2)
        return y, {"mean": gnp.mean(x)}

    (v, aux), g = gg.value_and_grad(f, has_aux=True)(np.array([1.0, 3.0]))
    assert v == 10.0 and aux["mean"] == 2.0
    g2, aux2 = gg.grad(f, has_aux=True)(np.array([1.0, 3.0]))
    np.testing.assert_array_equal(g2, [2.0, 6.0])


def test_grad_of_grad_of_grad() -> None:
    d3 = gg.grad(gg.grad(gg.grad(gnp.sin)))
    assert d3(0.3) == pytest.approx(-np.cos(0.3), rel=1e-12)
    d4 = gg.grad(gg.grad(gg.grad(gg.grad(lambda x: x ** 5))))
    assert d4(2.0) == pytest.approx(120 * 2.0, rel=1e-12)
    # on tensors, nested through a user tape
    x = gg.tensor(0.7, dtype=gg.float64, requires_grad=True)
    g = gg.grad(gnp.tanh)(x)
    g.backward()
    t = np.tanh(0.7)
    assert x.grad.item() == pytest.approx(-2 * t * (1 - t * t))


def test_vjp_multiple_calls_and_cotangent_shape_check() -> None:
    out, pullback = gg.vjp(lambda a, b: a * b, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    np.testing.assert_array_equal(out, [3.0, 8.0])
    for _ in range(2):
        da, db = pullback(np.array([1.0, 1.0]))
        np.testing.assert_array_equal(da, [3.0, 4.0])
    with pytest.raises(gg.ShapeError):
        pullback(np.ones(3))


def test_jvp_is_forward_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    original = ElementwiseOp.__call__

    def counting(self, *args, **kw):  # noqa: ANN001, ANN202
        calls["n"] += 1
        return original(self, *args, **kw)

    def f(x):  # noqa: ANN001, ANN202
        for _ in range(20):
            x = gg.tanh(x)
        return x

    monkeypatch.setattr(ElementwiseOp, "__call__", counting)
    f(gg.tensor([0.3, 0.5]))
    forward_ops = calls["n"]
    calls["n"] = 0
    import gpugrad.autograd.engine as engine

    def no_reverse(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("jvp must not run a reverse pass")

    monkeypatch.setattr(engine, "run_backward", no_reverse)
    y, t = gg.jvp(f, (np.array([0.3, 0.5]),), (np.array([1.0, 0.0]),))
    assert calls["n"] <= 4 * forward_ops  # a small constant times the forward pass
    fd = (f(gg.tensor([0.3 + 1e-6, 0.5], dtype=gg.float64)).numpy()
          - f(gg.tensor([0.3 - 1e-6, 0.5], dtype=gg.float64)).numpy()) / 2e-6
    np.testing.assert_allclose(t, fd, rtol=1e-6)


def test_nested_jvp_second_derivative() -> None:
    f = lambda x: gnp.sin(x) * x  # noqa: E731
    df = lambda x: gg.jvp(f, (x,), (1.0,))[1]  # noqa: E731
    d2 = gg.jvp(df, (0.4,), (1.0,))[1]
    assert d2 == pytest.approx(2 * np.cos(0.4) - 0.4 * np.sin(0.4), rel=1e-12)
    # reverse over forward
    assert gg.grad(df)(0.4) == pytest.approx(d2, rel=1e-12)


def test_jacobian_modes_agree() -> None:
    A = np.random.default_rng(1).normal(size=(2, 3))
    f = lambda x: gnp.tanh(gnp.dot(A, x))  # noqa: E731  (2 outputs < 3 inputs: reverse)
    x = np.array([0.1, -0.2, 0.3])
    J = gg.jacobian(f)(x)
    assert J.shape == (2, 3)
    np.testing.assert_allclose(J, gg.jacobian(f, mode="fwd")(x), rtol=1e-12)
    expected = (1 - np.tanh(A @ x) ** 2)[:, None] * A
    np.testing.assert_allclose(J, expected, rtol=1e-12)
    g = lambda v: gnp.outer(v, v)  # noqa: E731  (9 outputs > 3 inputs: forward)
    Jg = gg.jacobian(g)(x)
    assert Jg.shape == (3, 3, 3)
    np.testing.assert_allclose(Jg, gg.jacobian(g, mode="rev")(x), rtol=1e-12)


def rosenbrock(x):  # noqa: ANN001, ANN201
    return gnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def logsumexp(x):  # noqa: ANN001, ANN201
    return gg.logsumexp(x)


def small_mlp_loss(w):  # noqa: ANN001, ANN201
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 3))
    y = rng.normal(size=6)
    W1 = w[:6].reshape(3, 2)
    W2 = w[6:8]
    pred = gnp.dot(gnp.tanh(gnp.dot(X, W1)), W2)
    return gnp.mean((pred - y) ** 2)


@pytest.mark.parametrize("f,n", [(rosenbrock, 4), (logsumexp, 5), (small_mlp_loss, 8)])
def test_hessian_matches_finite_differences_of_gradient(f, n) -> None:  # noqa: ANN001
    x = np.random.default_rng(2).normal(size=n) * 0.5
    H = gg.hessian(f)(x)
    fd = np.stack([fd_grad(lambda v, j=j: gg.grad(f)(v)[j], x) for j in range(n)])
    np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-10)
    v = np.random.default_rng(3).normal(size=n)
    np.testing.assert_allclose(gg.hvp(f, (x,), (v,)), H @ v, rtol=1e-10, atol=1e-10)


def test_rosenbrock_hessian_closed_form() -> None:
    x = np.array([1.2, 0.8, 1.1])
    H = gg.hessian(rosenbrock)(x)
    assert H[0, 0] == pytest.approx(1200 * 1.2 ** 2 - 400 * 0.8 + 2)
    assert H[0, 1] == pytest.approx(-400 * 1.2)


def test_custom_vjp() -> None:
    @gg.custom_vjp
    def clip_gradient(x):  # noqa: ANN001, ANN202
        return x

    clip_gradient.defvjp(lambda x: (x * 1.0, None), lambda res, g: (gg.clip(g, -1.0, 1.0),))
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    (clip_gradient(x) * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    g = gg.grad(lambda v: gnp.sum(clip_gradient(v) * 0.5))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [0.5, 0.5])

    @gg.custom_vjp
    def undefined(x):  # noqa: ANN001, ANN202
        return x

    with pytest.raises(gg.GpugradError, match="defvjp"):
        undefined(x)


def test_custom_jvp() -> None:
    @gg.custom_jvp
    def softplus(x):  # noqa: ANN001, ANN202
        return gg.log1p(gg.exp(x))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):  # noqa: ANN001, ANN202
        (x,), (t,) = primals, tangents
        return softplus(x), t * gg.sigmoid(x)

    x = np.array([-1.0, 0.0, 2.0])
    y, t = gg.jvp(softplus, (x,), (np.ones(3),))
    np.testing.assert_allclose(t, 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(gg.grad(lambda v: gnp.sum(softplus(v)))(x), 1 / (1 + np.exp(-x)), rtol=1e-12)


def test_autograd_grad_does_not_accumulate() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 2).sum()
    (g,) = gg.autograd.grad(y, x)
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])
    assert x.grad is None
    z = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(gg.GraphError, match="allow_unused"):
        gg.autograd.grad((x * 2).sum(), [x, z])
    gx, gz = gg.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None


# --- results are never aliases: a fresh gradient is handed out as it is, anything else copied ---

_COUNTS = pytest.mark.skipif(not functional._COUNTS_REFERENCES,
                             reason="reference counts unlike CPython 3.10-3.13's: results are copies")


@_COUNTS
def test_fresh_gradient_is_handed_out_without_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    copies = []
    numpy_of = gg.Tensor.numpy
    x = np.linspace(-2, 2, 4096, dtype=np.float32)
    monkeypatch.setattr(gg.Tensor, "numpy", lambda t: (t.shape == x.shape and copies.append(t)) or numpy_of(t))
    for _ in range(3):  # the interpreter specialises calls after a few runs: counts must not change
        g = gg.grad(lambda x: (gg.tanh(x) * gg.sigmoid(x)).sum())(x)
        assert not copies and g.flags.writeable and g.base is None and not np.shares_memory(g, x)
        t, s = np.tanh(x.astype(np.float64)), 1 / (1 + np.exp(-x.astype(np.float64)))
        np.testing.assert_allclose(g, s * (1 - t * t) + t * s * (1 - s), rtol=1e-5, atol=1e-6)


def _logsumexp_of_sum(x, y):  # noqa: ANN001, ANN202
    return gg.logsumexp(x + y)


def _exp_of_sum_unfused(x, y):  # noqa: ANN001, ANN202
    with gg.no_fusion():
        return gg.exp(x + y).sum()


@pytest.mark.parametrize("f", [lambda x, y: (x + y).sum(), lambda x, y: (x - y).sum(), _logsumexp_of_sum,
                               _exp_of_sum_unfused], ids=["broadcast view", "negated", "logsumexp", "exp"])
@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_gradients_sharing_one_array_are_copied(f, kind: str) -> None:  # noqa: ANN001
    # add's rule passes one gradient to both inputs: a broadcast view for a sum, one fresh array
    # (owned by the backward pass, base None) under logsumexp or exp
    x, y = np.arange(3.0), np.arange(3.0) + 1
    if kind == "tensor":
        x, y = gg.tensor(x), gg.tensor(y)
    for _ in range(3):
        gx, gy = gg.grad(f, argnums=(0, 1))(x, y)
        ax, ay = (gx.data, gy.data) if kind == "tensor" else (gx, gy)
        assert not np.shares_memory(ax, ay)
        expect = ay.copy()
        ax += 100  # writing to one result leaves the other alone
        np.testing.assert_array_equal(ay, expect)


def test_gradient_a_hook_keeps_is_copied() -> None:
    kept = []

    def f(x):  # noqa: ANN001, ANN202
        x.register_hook(lambda g: kept.append(g))
        return (x * 2.0).sum()

    g = gg.grad(f)(np.ones(4))
    assert len(kept) == 1 and not np.shares_memory(g, kept[0].data)
    g[:] = -1
    np.testing.assert_array_equal(kept[0].numpy(), np.full(4, 2.0))


@_COUNTS
def test_vjp_hands_out_a_fresh_gradient_without_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.linspace(-1, 1, 64)
    out, pullback = gg.vjp(lambda x: gg.tanh(x) * 3.0, x)
    copies = []
    numpy_of = gg.Tensor.numpy
    monkeypatch.setattr(gg.Tensor, "numpy", lambda t: copies.append(t) or numpy_of(t))
    for _ in range(3):
        (g,) = pullback(np.ones(64))
        assert not copies and g.base is None
        np.testing.assert_allclose(g, 3 * (1 - np.tanh(x) ** 2), rtol=1e-12)


def test_values_are_never_the_inputs_themselves() -> None:
    x = np.arange(4.0)
    out, pullback = gg.vjp(lambda x: x, x)
    assert not np.shares_memory(out, x)
    v, g = gg.value_and_grad(lambda x: (x * x).sum())(x)
    assert isinstance(v, float) or not np.shares_memory(v, x)


def test_vjp_never_returns_the_callers_cotangent() -> None:
    out, pullback = gg.vjp(lambda x: x + 1.0, np.zeros(5))  # add's rule passes the cotangent on
    ct = np.arange(5.0)
    for _ in range(3):
        (g,) = pullback(ct)
        np.testing.assert_array_equal(g, ct)
        assert not np.shares_memory(g, ct)
    (g1,), (g2,) = pullback(ct), pullback(ct)
    assert not np.shares_memory(g1, g2)
