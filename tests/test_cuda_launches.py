"""Kernel launches of training steps on the CUDA backend (issue 12: an MLP step in at least 40%
fewer launches than op by op), and the in-place update that makes the last few of them: a pending
operand joins ``x op= other``'s chain and the fused kernel writes into x's storage. Counted on the
emulated device, whose counts are exact."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.bench.runner import first_step

pytestmark = pytest.mark.gpu


def _launches(fn):
    gg.cuda.synchronize()
    before = gg.cuda.counters()
    fn()
    gg.cuda.synchronize()
    after = gg.cuda.counters()
    return after["launches"] - before["launches"], after["bytes"] - before["bytes"]


def test_mlp_training_step_launches(compiled_fusion) -> None:
    """The bench's MLP step (64-256-256-10, batch 256: forward, backward, SGD by hand) was 46
    launches op by op before fusion (benchmarks/results/emulated-cuda-2026-12-05-before.json);
    fused, at most 27, 40% fewer (three matmuls, two bias+ReLU kernels, the logits' bias,
    cross-entropy in two, the loss's seed gradient, cross-entropy's backward, five matmuls,
    two bias+ReLU backwards, three bias sums, one update kernel per parameter)."""
    case, impl = first_step("mlp", "cuda:0")
    assert case.params["dims"] == (64, 256, 256, 10)
    for _ in range(2):  # warm-up: kernels built
        impl.step(0)
    fused, fused_bytes = _launches(lambda: impl.step(0))
    with gg.no_fusion():
        unfused, unfused_bytes = _launches(lambda: impl.step(0))
    assert fused <= 27 and fused < unfused, (fused, unfused)
    assert fused_bytes < unfused_bytes


def test_inplace_update_of_a_pending_operand_is_one_kernel(compiled_fusion) -> None:
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((64, 32)).astype(np.float32)
    g0 = rng.standard_normal((64, 32)).astype(np.float32)
    p = gg.tensor(p0, device="cuda")
    g = gg.tensor(g0, device="cuda")
    view = p[3]  # a view sees the update: the storage is written, not replaced
    version = p._version[0]

    def update():
        nonlocal p
        p -= 0.1 * g

    update()  # warm-up (the kernel is built)
    n, _ = _launches(update)
    assert n == 1
    assert p._version[0] == version + 2
    want = p0 - np.float32(0.1) * g0
    want = want - np.float32(0.1) * g0
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(view.numpy(), want[3], rtol=1e-6, atol=1e-6)


def test_inplace_update_reading_the_target(compiled_fusion) -> None:
    """The chain reads x itself (at the index it writes), a transposed view of x (the kernel
    cannot write into x then: the value is computed first), and a pending chain made before
    the update keeps reading the old values."""
    rng = np.random.default_rng(2)
    a0 = rng.standard_normal((16, 16)).astype(np.float32)
    a = gg.tensor(a0, device="cuda")
    a *= gg.tanh(a) + 1.0
    want = a0 * (np.tanh(a0) + 1.0)
    np.testing.assert_allclose(a.numpy(), want, rtol=1e-5, atol=1e-6)
    before = a.numpy()
    a -= 0.5 * a.T
    np.testing.assert_allclose(a.numpy(), before - np.float32(0.5) * before.T, rtol=1e-5, atol=1e-6)
    before = a.numpy()
    b = gg.tensor(rng.standard_normal((16, 16)).astype(np.float32), device="cuda")
    old = a * 3.0  # pending, reads a's storage
    a += b * 2.0
    np.testing.assert_allclose(old.numpy(), before * np.float32(3.0), rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), before + b.numpy() * np.float32(2.0), rtol=1e-6)


def test_inplace_update_falls_back_where_it_must(compiled_fusion) -> None:
    """Another dtype or a broadcast operand bigger than x: the operand is computed first, as any."""
    x = gg.tensor(np.ones((4, 3), np.float32), device="cuda")
    y = gg.tensor(np.full((4, 3), 2.0), device="cuda")  # float64
    x -= y * 0.25
    np.testing.assert_allclose(x.numpy(), np.full((4, 3), 0.5, np.float32))
    v = gg.tensor(np.ones(3, np.float32), device="cuda")
    with pytest.raises(gg.ShapeError):
        v += x * 1.0
    np.testing.assert_allclose(v.numpy(), np.ones(3, np.float32))
