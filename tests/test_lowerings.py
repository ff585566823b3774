"""The CUDA backend's registered kernels (``lowerings``, gpugrad.backends.cuda.nn) against the one
rule they implement: the op's own forward / vjp evaluated through the NumPy backend.

Also: the dispatcher picks them (one launch), they decline (NotImplemented) where their kernels do
not apply, and the NumPy backend registers none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.backends import backend_for
from gpugrad.backends import numpy_backend as npb
from gpugrad.ops.nn import LAYER_NORM, LOG_SOFTMAX, SOFTMAX

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
RTOL = {F16: 5e-3, F32: 2e-5, F64: 1e-12}


def cross_entropy_reference(x: np.ndarray, labels: np.ndarray, eps: float, g: float = 1.0,
                            ignore_index: int = -100) -> tuple[np.ndarray, np.ndarray]:
    """Loss and g * d loss / d x by the cross-entropy op's rule on the CPU (float64)."""
    xt = gg.tensor(x.astype(np.float64), requires_grad=True)
    loss = gg.nn.functional.cross_entropy(xt, gg.tensor(labels), ignore_index=ignore_index, label_smoothing=eps)
    loss.backward(gg.tensor(np.asarray(g, np.float64)))
    return loss.numpy(), xt.grad.numpy()


def _close(got: Any, want: Any, rtol: float, what: str) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err} (scale {scale})"


def test_the_numpy_backend_registers_only_the_host_compilers_kernels() -> None:
    # NumPy runs every op's own rule, but for the fusion compiler's passes: a fused chain's
    # (gpugrad.fusion.kernels), an elementwise op's backward (gpugrad.fusion.host_vjp), and the
    # host kernels of cross-entropy, layer norm, an embedding's and max pooling's gradients
    # (gpugrad.fusion.host_ops)
    assert {name for name, _ in npb.lowerings} == {"fused_elementwise", "elementwise", "cross_entropy",
                                                   "layer_norm", "embedding", "max_pool2d"}


@pytest.fixture
def cuda() -> Any:
    return backend_for("cuda:0")


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
@pytest.mark.parametrize("op", [SOFTMAX, LOG_SOFTMAX], ids=["softmax", "log_softmax"])
def test_softmax_kernels_match_the_rule(cuda: Any, op: Any, dt: np.dtype) -> None:
    B = cuda
    fwd, vjp = B.lowerings[(op.name, "forward")], B.lowerings[(op.name, "vjp")]
    rng = np.random.default_rng(5)
    for shape, axis in [((6, 10), 1), ((3, 300), 1), ((4, 5, 3), 1), ((5, 4), 0), ((7,), 0), ((2, 3, 4), 2)]:
        x = (rng.standard_normal(shape) * 3).astype(dt)
        params = {"axis": axis}
        y = fwd(B, [B.from_host(x)], params)
        want = op.forward(npb, [x.astype(np.float64)], params)
        _close(y.get(), want, RTOL[dt], f"{op.name} forward {shape} axis {axis}")
        g = rng.standard_normal(shape).astype(dt)
        y_host = y.get()
        (gx,) = vjp(B, B.from_host(g), (None,), y, params, (True,))
        (want_gx,) = op.vjp(npb, g.astype(np.float64), (None,), y_host.astype(np.float64), params, (True,))
        _close(gx.get(), want_gx, RTOL[dt] * 10, f"{op.name} vjp {shape} axis {axis}")


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_cross_entropy_kernels_match_the_rule(cuda: Any, dt: np.dtype) -> None:
    B = cuda
    rng = np.random.default_rng(9)
    for n, c, eps in [(7, 5, 0.0), (9, 300, 0.1), (4, 3, 0.0), (33, 17, 0.25)]:
        x = (rng.standard_normal((n, c)) * 2).astype(dt)
        labels = rng.integers(0, c, n).astype(np.int64)
        labels[1] = -100
        xt = gg.tensor(x, device="cuda", requires_grad=True)
        before = B.counters["launches"]
        loss = gg.nn.functional.cross_entropy(xt, gg.tensor(labels, device="cuda"), label_smoothing=eps)
        loss.backward(gg.tensor(np.asarray(1.5, dt), device="cuda"))
        want_loss, want_gx = cross_entropy_reference(x, labels, eps, 1.5)
        _close(loss.numpy(), want_loss, RTOL[dt], f"cross_entropy {n}x{c} eps={eps}")
        _close(xt.grad.numpy(), want_gx, RTOL[dt], f"cross_entropy grad {n}x{c} eps={eps}")
        assert not xt.grad.numpy()[1].any()
        launches = B.counters["launches"] - before
        assert launches <= 5, launches  # the kernels ran (2 forward, 1 backward), not the rule (10)


@pytest.mark.gpu
def test_the_dispatcher_runs_one_softmax_kernel_each_way(cuda: Any) -> None:
    B = cuda
    x = gg.tensor(np.random.default_rng(0).standard_normal((64, 33)).astype(np.float32), device="cuda",
                  requires_grad=True)
    before = B.counters["launches"]
    y = gg.softmax(x, axis=1)
    assert B.counters["launches"] - before == 1
    g = gg.ones((64, 33), device="cuda")
    before = B.counters["launches"]
    y.backward(g)
    assert B.counters["launches"] - before <= 2  # the backward kernel (and nothing of the rule's sums)
    _close(x.grad.numpy(), np.zeros((64, 33)), 1e-6, "softmax grad of a constant upstream")


@pytest.mark.gpu
def test_the_kernels_decline_what_they_do_not_cover(cuda: Any) -> None:
    B = cuda
    xi = B.from_host(np.arange(6).reshape(2, 3))
    assert B.lowerings[("softmax", "forward")](B, [xi], {"axis": 1}) is NotImplemented
    xc = B.from_host(np.ones((2, 3), np.complex128))
    assert B.lowerings[("log_softmax", "vjp")](B, xc, (None,), xc, {"axis": 1}, (True,)) is NotImplemented
    x = B.from_host(np.ones((4, 3), np.float32))
    labels = B.from_host(np.array([0, 1, 2, 0]))
    weighted = {"raw_labels": labels, "weight": B.from_host(np.ones(3, np.float32)), "reduction": "mean",
                "ignore_index": -100, "smoothing": 0.0}
    assert B.lowerings[("cross_entropy", "forward")](B, [x, None], weighted) is NotImplemented
    summed = dict(weighted, weight=None, reduction="sum")
    assert B.lowerings[("cross_entropy", "forward")](B, [x, None], summed) is NotImplemented
    mean = dict(weighted, weight=None)
    g = B.from_host(np.asarray(1.0, np.float32))
    assert B.lowerings[("cross_entropy", "vjp")](B, g, (x, None), None, mean, (True, False)) is NotImplemented
    # ... and the op's rule gives the same answers through the public functions there
    xt = gg.tensor(np.arange(6.0).reshape(2, 3), device="cuda", requires_grad=True)
    w = gg.tensor([1.0, 2.0, 0.5], device="cuda")
    loss = gg.nn.functional.cross_entropy(xt, gg.tensor([0, 2], device="cuda"), weight=w)
    loss.backward()
    wt = gg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    want = gg.nn.functional.cross_entropy(wt, gg.tensor([0, 2]), weight=gg.tensor([1.0, 2.0, 0.5]))
    want.backward()
    _close(loss.numpy(), want.numpy(), 1e-12, "weighted cross_entropy")
    _close(xt.grad.numpy(), wt.grad.numpy(), 1e-12, "weighted cross_entropy grad")


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_layer_norm_kernels_match_the_rule(cuda: Any, dt: np.dtype) -> None:
    B = cuda
    fwd, vjp = B.lowerings[("layer_norm", "forward")], B.lowerings[("layer_norm", "vjp")]
    rng = np.random.default_rng(11)
    for shape, k in [((6, 10), 1), ((4, 5, 300), 1), ((3, 4, 5), 2), ((1, 7), 1)]:
        x = (rng.standard_normal(shape) * 2 + 1).astype(dt)
        w, b = (rng.standard_normal(shape[-k:]).astype(dt) for _ in range(2))
        params = {"axes": tuple(range(len(shape) - k, len(shape))), "eps": 1e-5}
        y = fwd(B, [B.from_host(x), B.from_host(w), B.from_host(b)], params)
        h = [a.astype(np.float64) for a in (x, w, b)]
        _close(y.get(), LAYER_NORM.forward(npb, h, dict(params)), RTOL[dt], f"layer_norm forward {shape}")
        g = rng.standard_normal(shape).astype(dt)
        got = vjp(B, B.from_host(g), (B.from_host(x), B.from_host(w), None), None, params, (True, True, True))
        want = LAYER_NORM.vjp(npb, g.astype(np.float64), (h[0], h[1], None), None, params, (True, True, True))
        for name, a, e in zip(("x", "weight", "bias"), got, want):
            _close(a.get(), e, RTOL[dt] * 10, f"layer_norm grad {name} {shape}")
    # the dispatcher runs them: one launch forward, two backward (and .grad takes the arrays)
    x = gg.tensor(rng.standard_normal((8, 32)).astype(np.float32), device="cuda", requires_grad=True)
    w = gg.tensor(np.ones(32, np.float32), device="cuda", requires_grad=True)
    b = gg.tensor(np.zeros(32, np.float32), device="cuda", requires_grad=True)
    before = B.counters["launches"]
    y = gg.nn.functional.layer_norm(x, (32,), w, b)
    assert B.counters["launches"] - before == 1
    g = gg.tensor(rng.standard_normal((8, 32)).astype(np.float32), device="cuda")
    before = gg.cuda.counters()["launches"]
    y.backward(g)
    assert gg.cuda.counters()["launches"] - before == 2
    # they decline what they do not cover: no weight or bias, another dtype
    xs = B.from_host(np.ones((2, 3), np.float32))
    assert fwd(B, [xs, None, None], {"axes": (1,), "eps": 1e-5}) is NotImplemented
    assert fwd(B, [xs, B.from_host(np.ones(3)), B.from_host(np.ones(3))], {"axes": (1,), "eps": 1e-5}) \
        is NotImplemented
    assert vjp(B, xs, (xs, B.from_host(np.ones(3, np.float32)), None), None, {"axes": (1,), "eps": 1e-5},
               (True, True, True)) is NotImplemented  # no statistics from a forward kernel
