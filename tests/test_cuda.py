"""The CUDA backend against the NumPy backend, and the device errors.

Tests marked ``gpu`` run on a GPU, or on the emulated CUDA device where there is none
(tests/conftest.py); ``tools/gpu_check.sh`` builds the kernels and runs them on a real GPU. Tolerances are those of the
issue: float32 relative error 1e-5 for elementwise ops and 1e-4 for reductions and matmul,
float64 1e-12. The device-error tests at the end run anywhere (CuPy is faked or hidden).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from hypothesis import given

import gpugrad as gg
from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends import numpy_backend as npb
from gpugrad.ops.elementwise import OPS
from gpugrad.ops.nn import LOG_SOFTMAX, SOFTMAX
from tests.op_specs import SPECS, Spec
from tests.test_kernels_host import PARAMS, _inputs
from tests.test_lowerings import cross_entropy_reference

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
# the elementwise specs come first in the table, up to the first reduction
EW_NAMES = {s.name for s in SPECS[: next(i for i, s in enumerate(SPECS) if s.name == "sum")]}


def _tol(dt: np.dtype, elementwise: bool) -> float:
    if dt == F64:
        return 1e-12
    return 1e-5 if elementwise else 1e-4


def _close(got, want, rtol: float, what: str) -> None:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size and np.isfinite(want).any() else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)


def _backend():
    from gpugrad.backends import backend_for

    return backend_for("cuda:0")


# ---------------------------------------------------------------------------------------------
# every op, forward and backward (gpu)


def _compare_spec(spec: Spec, case, dt: np.dtype) -> None:
    arrays = [np.array(a, dtype=dt) for a in case.arrays]  # C order; 0-d stays 0-d
    elementwise = spec.name in EW_NAMES
    rtol = _tol(dt, elementwise)

    def run(device: str):
        ts = [gg.tensor(a, device=device, requires_grad=True) for a in arrays]
        out = spec.fn(*ts, **case.kwargs)
        g = np.random.default_rng(7).uniform(0.5, 1.5, out.shape).astype(out.dtype)
        out.backward(gg.tensor(g, device=device))
        return out.numpy(), [None if t.grad is None else t.grad.numpy() for t in ts]

    out_c, grads_c = run("cpu")
    out_g, grads_g = run("cuda")
    _close(out_g, out_c, rtol, f"{spec.name} forward {dt}")
    for k, (a, b) in enumerate(zip(grads_g, grads_c)):
        if b is None:
            assert a is None
            continue
        _close(a, b, rtol, f"{spec.name} d/d input {k} {dt}")


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_op_forward_and_backward_matches_numpy(spec: Spec, dt: np.dtype) -> None:
    @given(spec.strategy)
    def check(case) -> None:
        _compare_spec(spec, case, dt)

    check()


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_op_table_kernels_match_numpy_backend(dt: np.dtype) -> None:
    """Every op of the op table, forward and fused backward, contiguous / broadcast / scalar /
    strided operands, written and accumulated, against the NumPy backend's evaluation."""
    B = _backend()
    rng = np.random.default_rng(11)
    rtol = {F16: 2e-3, F32: 1e-5, F64: 1e-12}[dt]
    for name, op in sorted(OPS.items()):
        params = PARAMS.get(name, {})
        base = _inputs(op, 4096, dt, rng)
        cases = [[x.reshape(64, 64) for x in base]]
        if len(op.inputs) >= 2:
            b = [x.reshape(64, 64) for x in base]
            b[1] = np.ascontiguousarray(b[1][:1])
            cases.append(b)
            s = [x.reshape(64, 64) for x in base]
            s[-1] = float(s[-1].flat[0])
            cases.append(s)
        for xs in cases:
            dev = [B.from_host(x) if isinstance(x, np.ndarray) else x for x in xs]
            odt = op.result_dtype(xs)
            want = npb.ew_forward(op, odt, xs, params)
            got = B.ew_forward(op, odt, dev, params)
            if op.kind == "bool":
                np.testing.assert_array_equal(got.get(), want, err_msg=name)
                continue
            _close(got.get(), want, rtol, f"{name} forward {dt}")
            if not op.differentiable:
                continue
            needs = tuple(isinstance(x, np.ndarray) and op.inputs[k] in op.d for k, x in enumerate(xs))
            g = rng.uniform(0.5, 1.5, want.shape).astype(dt)
            ref = op.vjp(npb, g, xs, want, params, needs)
            acc = [B.from_host(np.full(want.shape, 0.25, dt)) if nd else None for nd in needs]
            grads, _ = B.ew_vjp_acc(op, B.from_host(g), dev, got, params, needs, acc, False)
            for k, (r, w) in enumerate(zip(grads, ref)):
                if w is not None:
                    _close(r.get(), np.broadcast_to(w, want.shape).astype(np.float64) + 0.25, rtol, f"{name} d{k} {dt}")


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F32, F64], ids=["float32", "float64"])
def test_hand_written_kernels_match_numpy(dt: np.dtype) -> None:
    B = _backend()
    rng = np.random.default_rng(12)
    rtol = _tol(dt, False)
    for shape, axes in [((1 << 20,), None), ((512, 1024), 0), ((512, 1024), 1), ((7, 300, 9), (0, 2)),
                        ((3, 100000), 1), ((100000, 3), 0), ((2, 3, 4, 5), (1, 3))]:
        x = rng.standard_normal(shape).astype(dt)
        _close(B.sum(B.from_host(x), axes).get(), np.sum(x.astype(np.float64), axis=axes), rtol, f"sum {shape}")
        _close(B.mean(B.from_host(x), axes).get(), np.mean(x.astype(np.float64), axis=axes), rtol, f"mean {shape}")
    for shape, axis in [((512, 10), 1), ((64, 5000), 1), ((8, 7, 9), 1), ((6, 4), 0)]:
        x = (rng.standard_normal(shape) * 4).astype(dt)
        for fn in ("softmax", "log_softmax"):
            y = getattr(B, fn)(B.from_host(x), axis)
            _close(y.get(), getattr(npb, fn)(x, axis), _tol(dt, True), f"{fn} {shape}")
            g = rng.standard_normal(shape).astype(dt)
            gx = getattr(B, fn + "_backward")(B.from_host(g), y, axis)
            rule = SOFTMAX if fn == "softmax" else LOG_SOFTMAX  # the one rule the kernel implements
            (want,) = rule.vjp(npb, g, (None,), y.get(), {"axis": axis}, (True,))
            _close(gx.get(), want, rtol, f"{fn} backward {shape}")
    for n, c, eps in [(512, 10, 0.0), (256, 5000, 0.1)]:
        x = rng.standard_normal((n, c)).astype(dt)
        labels = rng.integers(0, c, n)
        labels[::17] = -100
        loss, stats = B.cross_entropy_logits(B.from_host(x), B.from_host(labels), -100, eps)
        wl, wdx = cross_entropy_reference(x, labels, eps)  # the op's rule on the CPU
        _close(loss.get(), wl, rtol, "cross_entropy")
        dx = B.cross_entropy_logits_backward(B.from_host(np.asarray(1.0, dt)), B.from_host(x), B.from_host(labels),
                                             stats, -100, eps)
        _close(dx.get(), wdx, rtol, "cross_entropy bwd")
    vals = rng.standard_normal((1000, 16)).astype(dt)
    idx = rng.integers(-50, 50, 1000)
    got = B.index_scatter(B.from_host(vals), (50, 16), (B.from_host(idx),))
    _close(got.get(), npb.index_scatter(vals, (50, 16), (idx,)), rtol, "index_scatter")


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_matmul_forward_and_both_gradients(dt: np.dtype) -> None:
    rng = np.random.default_rng(13)
    for sa, sb in [((64, 48), (48, 32)), ((3, 16, 8), (3, 8, 5)), ((5, 7), (7,)), ((7,), (7, 4)),
                   ((2, 1, 6, 4), (3, 4, 2))]:
        a = rng.standard_normal(sa).astype(dt)
        b = rng.standard_normal(sb).astype(dt)
        res = {}
        for device in ("cpu", "cuda"):
            ta = gg.tensor(a.astype(np.float64) if dt == F16 else a, device=device, requires_grad=True)
            tb = gg.tensor(b.astype(np.float64) if dt == F16 else b, device=device, requires_grad=True)
            if dt == F16 and device == "cuda":
                ta, tb = [gg.tensor(v, device="cuda", requires_grad=True) for v in (a, b)]
            out = ta @ tb
            out.sum().backward()
            res[device] = (out.numpy(), ta.grad.numpy(), tb.grad.numpy())
        rtol = 1e-2 if dt == F16 else _tol(dt, False)
        for what, got, want in zip(("out", "da", "db"), res["cuda"], res["cpu"]):
            _close(got, want, rtol, f"matmul {sa}@{sb} {what} {dt}")


@pytest.mark.gpu
@gg.no_fusion()  # each op's own kernels (the fused chain's are counted in test_fusion_eager)
def test_fused_backward_launches_and_owned_gradients() -> None:
    B = _backend()
    x = gg.randn(1 << 16, device="cuda", requires_grad=True)
    loss = (gg.tanh(x) * gg.sigmoid(x)).sum()
    before = B.launches
    loss.backward()
    assert B.launches - before == 4  # root ones, multiply's, tanh's, sigmoid's (accumulating) kernels
    xc = x.cpu().detach().requires_grad_()
    (gg.tanh(xc) * gg.sigmoid(xc)).sum().backward()
    _close(x.grad.numpy(), xc.grad.numpy(), 1e-5, "chain gradient")


@pytest.mark.gpu
def test_to_cpu_cuda_round_trips_and_gradients_cross_devices() -> None:
    a = gg.randn(4, 5, dtype=gg.float64, requires_grad=True)
    b = a.cuda()
    assert b.device == "cuda:0" and b.dtype == np.float64
    assert a.to("cuda:0").device == "cuda:0" and a.to("cuda").cpu().device == "cpu"
    np.testing.assert_array_equal(b.cpu().numpy(), a.numpy())
    np.testing.assert_array_equal(b.to(gg.float32).numpy(), a.numpy().astype(np.float32))
    c = gg.exp(b).to("cpu").sum()
    c.backward()
    np.testing.assert_allclose(a.grad.numpy(), np.exp(a.numpy()), rtol=1e-12)
    g = gg.tensor([1.0, 2.0], device="cuda")
    assert g.device == "cuda:0" and g.dtype == np.float32 and g.tolist() == [1.0, 2.0]
    with pytest.raises(gg.DeviceError, match="cpu.*cuda:0|cuda:0.*cpu"):
        gg.tensor([1.0, 2.0]) * g
    if gg.cuda.device_count() > 1:
        h = g.to("cuda:1")
        assert h.device == "cuda:1" and h.tolist() == [1.0, 2.0]
        with pytest.raises(gg.DeviceError):
            g + h
    gg.cuda.synchronize()


@pytest.mark.gpu
def test_ahead_of_time_and_runtime_kernels_agree(monkeypatch) -> None:
    """When the CMake-built fatbins are present, kernels loaded from them and kernels compiled
    at run time (NVRTC) give the same results."""
    from gpugrad.backends.cuda import CupyBackend, aot_dir

    path = aot_dir()
    if path is None or not any(path.glob("*.fatbin")):
        pytest.skip("no CMake build of the kernels with nvcc: run `cmake -S . -B build && cmake --build build -j` "
                    "(or set GPUGRAD_AOT_DIR); tools/gpu_check.sh does")
    monkeypatch.setenv("GPUGRAD_AOT_DIR", str(path))
    aot = CupyBackend(0)
    monkeypatch.setenv("GPUGRAD_AOT_DIR", "")
    jit = CupyBackend(0)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((300, 70)).astype(np.float32)
    y = rng.standard_normal(70).astype(np.float32)
    results = []
    for B in (aot, jit):
        xd, yd = B.from_host(x), B.from_host(y)
        out = []
        for name in ("tanh", "gelu", "sigmoid", "exp", "softplus"):
            op = OPS[name]
            o = B.ew_forward(op, F32, [xd], PARAMS.get(name, {"beta": 1.0, "threshold": 20.0}))
            out.append(o.get())
            out += [r.get() for r in B.ew_vjp(op, B.from_host(np.ones_like(x)), [xd], o, PARAMS.get(
                name, {"beta": 1.0, "threshold": 20.0}), (True,))]
        out.append(B.ew_forward(OPS["multiply"], F32, [xd, yd], {}).get())
        out.append(B.sum(xd, 0).get())
        out.append(B.log_softmax(xd, 1).get())
        results.append(out)
    assert aot.aot_loaded > 0 and aot.runtime_compiled == 0, "the fatbins were not used"
    assert jit.aot_loaded == 0 and jit.runtime_compiled > 0
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
def test_every_elementwise_kernel_variant_compiles_at_run_time() -> None:
    """NVRTC accepts the standalone source of one variant per op and dtype."""
    B = _backend()
    for op in OPS.values():
        for dt in cg.FLOAT_DTYPES:
            name, src = cg.all_kernels(op, dt)[-1]
            B.load_kernel(name, cg.standalone_source(op, src))


# ---------------------------------------------------------------------------------------------
# device errors (no GPU needed)


@pytest.fixture
def fresh_backends():
    from gpugrad.backends import _BACKENDS

    before = dict(_BACKENDS)
    yield
    for key in [k for k in _BACKENDS if k not in before]:
        del _BACKENDS[key]


def test_missing_cupy_is_a_device_error_naming_the_install(monkeypatch, fresh_backends) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    assert gg.cuda.is_available() is False
    assert gg.cuda.device_count() == 0
    gg.cuda.synchronize()  # nothing to wait for
    with pytest.raises(gg.DeviceError, match="CuPy is not installed.*pip install"):
        gg.tensor([1.0], device="cuda")
    with pytest.raises(gg.DeviceError, match="CuPy is not installed"):
        gg.zeros(3).to("cuda")
    with pytest.raises(gg.DeviceError, match="CuPy is not installed"):
        gg.randn(2, device="cuda:1")


def _cupy_without_gpu(count: int | Exception) -> types.ModuleType:
    cp = types.ModuleType("cupy")

    def get_count() -> int:
        if isinstance(count, Exception):
            raise count
        return count

    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count))
    return cp


@pytest.mark.parametrize("count", [0, RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")])
def test_cupy_without_a_gpu_is_a_device_error_naming_the_gpu(monkeypatch, fresh_backends, count) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _cupy_without_gpu(count))
    assert gg.cuda.is_available() is False
    with pytest.raises(gg.DeviceError, match="CuPy is installed, but no GPU"):
        gg.ones(2, device="cuda")


def test_missing_gpu_index_is_a_device_error(monkeypatch, fresh_backends) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _cupy_without_gpu(1))
    with pytest.raises(gg.DeviceError, match="cuda:3 was requested but only 1 GPU"):
        gg.ones(2, device="cuda:3")
    with pytest.raises(gg.DeviceError, match="bad device string"):
        gg.ones(2, device="cuda:x")


@pytest.mark.gpu
def test_mixing_devices_in_one_op_names_both() -> None:
    a = gg.tensor([1.0, 2.0])
    b = gg.tensor([1.0, 2.0], device="cuda")
    assert b.device == "cuda:0"
    for fn in (lambda: a + b, lambda: gg.matmul(b, a), lambda: gg.where(a > 0, a, b), lambda: gg.stack([a, b])):
        with pytest.raises(gg.DeviceError, match="cpu.*cuda:0|cuda:0.*cpu"):
            fn()


# ---------------------------------------------------------------------------------------------
# no host-device synchronisation that is not the user's (counted by the device)


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_gpugrad_train_on_cuda_never_syncs_within_a_step(model) -> None:
    from gpugrad.cli.train import TrainConfig, train

    per_step = []

    def on_step(epoch: int, step: int) -> None:
        per_step.append(gg.cuda.counters())
        gg.cuda.reset_counters()

    cfg = TrainConfig.from_options(model=model, device="cuda", epochs=1, progress=False,
                                   **({"steps_per_epoch": 4} if model == "cnn" else {}))
    gg.cuda.reset_counters()
    result = train(cfg, on_step=on_step, log=lambda s: None)
    assert len(per_step) >= 4
    assert all(c["syncs"] == 0 for c in per_step[1:]), per_step
    assert all(c["compilations"] == 0 for c in per_step[2:]), per_step  # nothing compiles after warm-up
    assert result is not None


@pytest.mark.gpu
def test_cuda_index_checks_wait_for_the_next_sync() -> None:
    w = gg.randn(5, 3, device="cuda", requires_grad=True)
    gg.cuda.reset_counters()
    out = gg.nn.functional.embedding(gg.tensor([0, 4, 2], device="cuda"), w)
    assert gg.cuda.counters()["syncs"] == 0
    out.sum().backward()
    bad = gg.nn.functional.embedding(gg.tensor([1, 7], device="cuda"), w)  # no error yet: nothing synced
    with pytest.raises(gg.ArgumentError, match=r"embedding: indices must be in \[0, 5\), got values in \[0, 7\]"):
        bad.sum().item()
    with pytest.raises(gg.ShapeError, match="take"):
        gg.take(w, gg.tensor([0, -9], device="cuda"), axis=0).numpy()
    assert gg.nn.functional.embedding(gg.tensor([1], device="cuda"), w).sum().item() == pytest.approx(
        float(w.numpy()[1].sum()), rel=1e-6)


@pytest.mark.gpu
def test_batch_norm_cumulative_average_does_not_sync() -> None:
    bn = gg.nn.BatchNorm1d(3, momentum=None).to("cuda")
    ref = gg.nn.BatchNorm1d(3, momentum=None)
    x = np.random.default_rng(0).standard_normal((3, 8, 3)).astype(np.float32)
    for i in range(3):
        gg.cuda.reset_counters()
        bn(gg.tensor(x[i], device="cuda"))
        assert gg.cuda.counters()["syncs"] == 0
        ref(gg.tensor(x[i]))
    np.testing.assert_allclose(bn.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), ref.running_var.numpy(), rtol=1e-6)
