"""Issue 10's additions on CUDA (cuFFT and cuSOLVER through CuPy, complex dtypes through CuPy's
ufuncs, checkpointing, the array protocols): values and gradients on the GPU against the CPU.
Skipped with a reason where no GPU (or emulated device) is usable, see conftest.py."""

from __future__ import annotations

import numpy as onp
import pytest

import gpugrad as gg
import gpugrad.numpy as np
from tests.test_linalg_fft import CASES
from tests.test_numpy_exits import FFT, INPUTS, LINALG

pytestmark = pytest.mark.gpu


def _cupy():  # noqa: ANN202
    return pytest.importorskip("cupy")


def _outputs(result: object) -> list:
    if isinstance(result, (list, tuple)):
        return [r for item in result for r in _outputs(item)]
    return [result]


def _compare_on_gpu(call, x) -> None:  # noqa: ANN001
    cp = _cupy()

    def f(v):  # noqa: ANN001, ANN202
        return tuple(_outputs(call(v)))

    out_cpu, pull_cpu = gg.vjp(f, x)
    out_gpu, pull_gpu = gg.vjp(f, cp.asarray(x))
    cots = []
    for o_cpu, o_gpu in zip(out_cpu, out_gpu):
        assert isinstance(o_gpu, cp.ndarray)
        onp.testing.assert_allclose(cp.asnumpy(o_gpu), o_cpu, rtol=1e-9, atol=1e-10)
        cots.append(onp.ones_like(o_cpu))
    (g_cpu,) = pull_cpu(tuple(cots))
    (g_gpu,) = pull_gpu(tuple(cp.asarray(c) for c in cots))
    onp.testing.assert_allclose(cp.asnumpy(g_gpu), g_cpu, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", sorted(FFT))
def test_fft_on_gpu_matches_cpu(name: str) -> None:
    kind, call = FFT[name]
    _compare_on_gpu(call, INPUTS[kind]())


@pytest.mark.parametrize("name", sorted(LINALG))
def test_linalg_on_gpu_matches_cpu(name: str) -> None:
    kind, call = LINALG[name]
    _compare_on_gpu(call, INPUTS[kind]())


@pytest.mark.parametrize("name", sorted(CASES))
def test_decomposition_losses_on_gpu_match_cpu(name: str) -> None:
    cp = _cupy()
    a, ours, _ = CASES[name]
    v_cpu, g_cpu = gg.value_and_grad(ours)(a)
    v_gpu, g_gpu = gg.value_and_grad(ours)(cp.asarray(a))
    onp.testing.assert_allclose(float(v_gpu), float(v_cpu), rtol=1e-9)
    onp.testing.assert_allclose(cp.asnumpy(g_gpu), g_cpu, rtol=1e-7, atol=1e-9)


def test_complex_elementwise_reductions_and_matmul_on_gpu() -> None:
    rng = onp.random.default_rng(0)
    z = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
    w = rng.normal(size=(4, 2)) + 1j * rng.normal(size=(4, 2))

    def loss(v):  # noqa: ANN001, ANN202
        h = np.exp(v) * np.conj(v) / (v + 3.0) + np.abs(v) ** 2 + np.angle(v)
        return np.real(np.sum(h @ w)) + np.var(v) + np.imag(np.mean(np.sin(v)))

    _compare_on_gpu(lambda v: loss(v), z)
    t = gg.tensor(z, device="cuda", requires_grad=True)
    loss(t).backward()
    onp.testing.assert_allclose(t.grad.numpy(), gg.grad(loss)(z), rtol=1e-9)


def test_checkpoint_and_protocols_on_gpu() -> None:
    w = gg.tensor(onp.random.default_rng(1).normal(size=(4, 4)), device="cuda", requires_grad=True)
    x = gg.randn(3, 4, dtype=gg.float64, device="cuda")
    gg.checkpoint(lambda v: np.tanh(v @ w) @ w)(x).sum().backward()
    g = w.grad.numpy()
    w.grad = None
    (np.tanh(x @ w) @ w).sum().backward()
    onp.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-12)
    with pytest.raises(gg.GraphError):
        onp.asarray(w)
    onp.testing.assert_array_equal(onp.asarray(w.detach()), w.numpy())
