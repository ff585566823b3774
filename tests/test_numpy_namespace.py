"""``import gpugrad.numpy as np``: NumPy in, NumPy out; differentiable on tensors; a clear error
for anything not provided; and the lecture-note examples written in plain NumPy style."""

from __future__ import annotations

import numpy as onp
import pytest

import gpugrad as gg
import gpugrad.numpy as np
from tests.numeric import fd_grad

LISTED = (
    "array asarray zeros ones empty_like full arange linspace eye dot vdot inner outer tensordot einsum "
    "matmul sum mean prod max min amax amin maximum minimum clip where abs sign exp log log2 log10 sqrt "
    "square power sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh floor ceil round concatenate stack "
    "hstack vstack split reshape ravel transpose squeeze expand_dims flip roll diag trace tril triu cumsum "
    "cumprod sort argsort logaddexp var std isfinite isnan allclose newaxis pi e inf nan"
).split()


def test_every_listed_name_exists() -> None:
    missing = [n for n in LISTED if not hasattr(np, n)]
    assert not missing
    for name in ("norm", "inv", "det", "solve", "slogdet"):
        assert callable(getattr(np.linalg, name))


def test_missing_function_is_a_clear_error() -> None:
    with pytest.raises(AttributeError, match="gpugrad.numpy.lexsort is not provided"):
        np.lexsort  # noqa: B018
    with pytest.raises(AttributeError, match="fft.hfft is not provided"):
        np.fft.hfft  # noqa: B018
    with pytest.raises(AttributeError, match="linalg.eigvals is not provided"):
        np.linalg.eigvals  # noqa: B018


def test_plain_arrays_stay_plain() -> None:
    a = onp.arange(6.0).reshape(2, 3)
    for out in (np.exp(a), np.sum(a, axis=0), np.dot(a, a.T), np.concatenate([a, a]), np.linalg.inv(a @ a.T + 1),
                np.sort(a[:, ::-1]), np.clip(a, 1, 2)):
        assert type(out) is onp.ndarray
    onp.testing.assert_array_equal(np.split(a, 3, axis=1)[1], a[:, 1:2])
    assert np.allclose(a, a + 1e-12)


def test_values_match_numpy_on_tensors() -> None:
    rng = onp.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    t = gg.tensor(a)
    pairs = [
        (np.var(t, axis=0), onp.var(a, axis=0)), (np.std(t), onp.std(a)), (np.cumsum(t, 1), onp.cumsum(a, 1)),
        (np.sort(t, axis=1), onp.sort(a, axis=1)), (np.round(t, 1), onp.round(a, 1)),
        (np.tril(t), onp.tril(a)), (np.flip(t, 0), onp.flip(a, 0)), (np.hstack([t, t]), onp.hstack([a, a])),
        (np.linalg.norm(t, axis=1), onp.linalg.norm(a, axis=1)), (np.logaddexp(t, 0.5), onp.logaddexp(a, 0.5)),
        (np.amax(t, 1), onp.amax(a, 1)), (np.tensordot(t, t.T, 1), onp.tensordot(a, a.T, 1)),
    ]
    for got, want in pairs:
        assert isinstance(got, gg.Tensor)
        onp.testing.assert_allclose(got.numpy(), want, rtol=1e-12)




def test_sort_and_linalg_gradients() -> None:
    rng = onp.random.default_rng(1)
    x = rng.normal(size=5)
    f = lambda v: np.sum(np.sort(v) * onp.arange(5.0))  # noqa: E731
    onp.testing.assert_allclose(gg.grad(f)(x), fd_grad(lambda v: float(f(v)), x), rtol=1e-6)
    A = rng.normal(size=(3, 3)) + 3 * onp.eye(3)
    b = rng.normal(size=3)
    g = lambda M: np.sum(np.linalg.solve(M, b)) + np.linalg.det(M) + np.linalg.slogdet(M)[1]  # noqa: E731
    onp.testing.assert_allclose(gg.grad(g)(A), fd_grad(lambda M: float(g(M)), A), rtol=1e-6)
    h = lambda M: np.sum(np.linalg.inv(M) ** 2)  # noqa: E731
    onp.testing.assert_allclose(gg.grad(h)(A), fd_grad(lambda M: float(h(M)), A), rtol=1e-6)


def test_array_of_tensors_is_differentiable() -> None:
    f = lambda v: np.sum(np.array([v[0] * 2, v[1] ** 2, 3.0]))  # noqa: E731
    onp.testing.assert_allclose(gg.grad(f)(onp.array([1.0, 5.0])), [2.0, 10.0])


# ---- the lecture notes' examples, in plain NumPy style ----------------------------------------


def _classification_data(seed: int = 0):  # noqa: ANN202
    rng = onp.random.default_rng(seed)
    X = rng.normal(size=(200, 3))
    w_true = onp.array([1.5, -2.0, 0.5])
    y = (X @ w_true + 0.3 * rng.normal(size=200) > 0).astype(float)
    return X, y


def test_logistic_regression_by_gradient_descent() -> None:
    X, y = _classification_data()

    def loss(w, b):  # noqa: ANN001, ANN202
        z = np.dot(X, w) + b
        return np.mean(np.logaddexp(0.0, z) - y * z)  # cross-entropy of sigmoid(z)

    w, b = onp.zeros(3), 0.0
    g_w, g_b = gg.grad(loss, argnums=(0, 1))(w, b)
    onp.testing.assert_allclose(g_w, fd_grad(lambda v: float(loss(v, b)), w), rtol=1e-6)
    losses = []
    for _ in range(300):
        g_w, g_b = gg.grad(loss, argnums=(0, 1))(w, b)
        w, b = w - 1.0 * g_w, b - 1.0 * g_b
        losses.append(float(loss(w, b)))
    assert losses[-1] < 0.25 < losses[0] + 0.5
    accuracy = onp.mean(((X @ w + b) > 0) == (y > 0.5))
    assert accuracy > 0.9
    assert type(w) is onp.ndarray


def test_two_layer_tanh_regression_network() -> None:
    rng = onp.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(64, 1))
    y = onp.sin(2 * X)

    def predict(params, x):  # noqa: ANN001, ANN202
        (W1, b1), (W2, b2) = params
        return np.dot(np.tanh(np.dot(x, W1) + b1), W2) + b2

    def loss(params):  # noqa: ANN001, ANN202
        return np.mean((predict(params, X) - y) ** 2)

    params = [(rng.normal(size=(1, 16)), onp.zeros(16)), (rng.normal(size=(16, 1)) * 0.3, onp.zeros(1))]
    grads = gg.grad(loss)(params)
    fd = fd_grad(lambda W: float(loss([(W, params[0][1]), params[1]])), params[0][0])
    onp.testing.assert_allclose(grads[0][0], fd, rtol=1e-5)
    first = float(loss(params))
    for _ in range(400):
        grads = gg.grad(loss)(params)
        params = [(W - 0.1 * gW, b - 0.1 * gb) for (W, b), (gW, gb) in zip(params, grads)]
    assert float(loss(params)) < 0.25 * first


def test_saliency_gradient_of_class_score_wrt_input_image() -> None:
    rng = onp.random.default_rng(4)
    image = rng.uniform(0, 1, size=(8, 8))
    W1 = rng.normal(size=(64, 32)) * 0.2
    W2 = rng.normal(size=(32, 10)) * 0.2

    def class_score(img, k=3):  # noqa: ANN001, ANN202
        h = np.maximum(np.dot(np.reshape(img, (1, 64)), W1), 0.0)
        scores = np.dot(h, W2)
        return scores[0, k]

    saliency = gg.grad(class_score)(image)
    assert saliency.shape == image.shape and type(saliency) is onp.ndarray
    onp.testing.assert_allclose(saliency, fd_grad(lambda im: float(class_score(im)), image), rtol=1e-5, atol=1e-8)
    # Feature visualisation: gradient ascent on the input raises the class score.
    img = image.copy()
    before = float(class_score(img))
    for _ in range(20):
        img = img + 0.1 * gg.grad(class_score)(img)
    assert float(class_score(img)) > before + 1.0
