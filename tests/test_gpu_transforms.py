"""Issue 4's checks on CUDA: every op's gradient and tangent on the GPU against the CPU, the
functional transforms with CuPy arrays (CuPy in, CuPy out), Hessians, and the lecture examples.
Skipped with a reason where no GPU is usable (see conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import gpugrad as gg
import gpugrad.numpy as gnp
from tests.op_specs import SPECS, Spec

pytestmark = pytest.mark.gpu


def _cupy():  # noqa: ANN202
    return pytest.importorskip("cupy")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_gradients_and_tangents_on_gpu_match_cpu(spec: Spec) -> None:
    cp = _cupy()

    @settings(max_examples=5)
    @given(spec.strategy)
    def check(case):  # noqa: ANN001, ANN202
        rng = np.random.default_rng(3)
        xs = [np.array(a, dtype=np.float64) for a in case.arrays]
        ts = [rng.normal(size=a.shape) for a in xs]

        def f(*ys):  # noqa: ANN002, ANN202
            return spec.fn(*ys, **case.kwargs)

        out_cpu, pull_cpu = gg.vjp(f, *xs)
        g = rng.normal(size=np.shape(out_cpu))
        out_gpu, pull_gpu = gg.vjp(f, *[cp.asarray(x) for x in xs])
        assert isinstance(out_gpu, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(out_gpu), out_cpu, rtol=1e-12, atol=1e-12)
        for a, b in zip(pull_gpu(cp.asarray(g)), pull_cpu(g)):
            np.testing.assert_allclose(cp.asnumpy(a), b, rtol=1e-11, atol=1e-12)
        _, t_cpu = gg.jvp(f, tuple(xs), tuple(ts))
        _, t_gpu = gg.jvp(f, tuple(cp.asarray(x) for x in xs), tuple(cp.asarray(t) for t in ts))
        np.testing.assert_allclose(cp.asnumpy(t_gpu), t_cpu, rtol=1e-11, atol=1e-12)

    check()


def test_gradcheck_on_gpu() -> None:
    x = gg.randn(3, 4, dtype=gg.float64, device="cuda", requires_grad=True)
    w = gg.randn(4, 2, dtype=gg.float64, device="cuda", requires_grad=True)
    assert gg.gradcheck(lambda a, b: gg.logsumexp(gg.tanh(a @ b), axis=1), (x, w))


def test_hessian_and_nested_grad_on_gpu() -> None:
    cp = _cupy()

    def rosenbrock(v):  # noqa: ANN001, ANN202
        return gnp.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2)

    x = np.array([1.2, 0.8, 1.1])
    H_gpu = gg.hessian(rosenbrock)(cp.asarray(x))
    assert isinstance(H_gpu, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(H_gpu), gg.hessian(rosenbrock)(x), rtol=1e-12)
    d3 = gg.grad(gg.grad(gg.grad(lambda v: gnp.sum(gnp.sin(v)))))
    np.testing.assert_allclose(cp.asnumpy(d3(cp.asarray([0.3]))), -np.cos([0.3]), rtol=1e-12)


def test_logistic_regression_on_gpu_matches_cpu() -> None:
    cp = _cupy()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X @ np.array([1.5, -2.0, 0.5]) > 0).astype(float)

    def loss(w, X, y):  # noqa: ANN001, ANN202
        z = gnp.dot(X, w)
        return gnp.mean(gnp.logaddexp(0.0, z) - y * z)

    w_cpu = np.zeros(3)
    w_gpu = cp.zeros(3)
    Xg, yg = cp.asarray(X), cp.asarray(y)
    for _ in range(50):
        w_cpu = w_cpu - gg.grad(loss)(w_cpu, X, y)
        w_gpu = w_gpu - gg.grad(loss)(w_gpu, Xg, yg)
    np.testing.assert_allclose(cp.asnumpy(w_gpu), w_cpu, rtol=1e-10)


def test_lecture_circuit_on_gpu() -> None:
    x = gg.tensor(-2.0, device="cuda", requires_grad=True)
    y = gg.tensor(5.0, device="cuda", requires_grad=True)
    z = gg.tensor(-4.0, device="cuda", requires_grad=True)
    ((x + y) * z).backward()
    assert (x.grad.item(), y.grad.item(), z.grad.item()) == (-4.0, -4.0, 3.0)
    assert x.grad.device == "cuda:0"


def test_cupy_results_are_never_aliases() -> None:
    cp = _cupy()
    x, y = cp.arange(3.0), cp.arange(3.0) + 1
    for _ in range(3):
        gx, gy = gg.grad(lambda x, y: (x + y).sum(), argnums=(0, 1))(x, y)
        assert isinstance(gx, cp.ndarray) and not cp.shares_memory(gx, gy)
    out, pullback = gg.vjp(lambda x: x + 1.0, cp.zeros(3))
    ct = cp.arange(3.0)
    (g,) = pullback(ct)
    assert not cp.shares_memory(g, ct)
    np.testing.assert_array_equal(cp.asnumpy(g), [0.0, 1.0, 2.0])
    x = cp.arange(3.0)
    out, _ = gg.vjp(lambda x: x, x)  # values too: never the input itself
    assert not cp.shares_memory(out, x)
    out, t_out = gg.jvp(lambda x: x, (x,), (ct,))
    assert not cp.shares_memory(out, x) and not cp.shares_memory(t_out, ct)
    (v, aux), gx = gg.value_and_grad(lambda x: ((x * x).sum(), x), has_aux=True)(x)
    assert not cp.shares_memory(aux, x)
