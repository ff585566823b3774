"""The CUDA kernel code, tested on the CPU (no GPU needed; CI runs this after the CMake build).

* The host library (``libgg_host.so``): every elementwise op's rendered element functions,
  forward and each partial derivative, against the NumPy backend, float32 and float64, and the
  float16 conversions against NumPy's.
* The CUDA backend on the emulated CUDA device (gpugrad.testing.cuda_emulator, switched on by
  tests/conftest.py when there is no GPU), compiling every kernel at run time (no fatbins): the
  backend's real code path (operand classification, broadcasting geometry, argument packing
  checked against each kernel's C++ parameter types, fused backward with accumulation,
  reductions, softmax, cross-entropy, scatter-add) against the NumPy backend, and whole
  forward/backward passes through the engine on ``device="cuda"``.

The host library comes from ``cmake --build build``; its tests skip, saying so, when it has not run.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends import numpy_backend as npb
from gpugrad.ops.elementwise import OPS
from gpugrad.ops.nn import LOG_SOFTMAX, SOFTMAX
from tests.test_lowerings import cross_entropy_reference


def host_lib_dir():
    """``$GPUGRAD_HOST_LIB_DIR`` (set by .ci/run) or build/kernels of this checkout, if built."""
    from pathlib import Path

    env = os.environ.get("GPUGRAD_HOST_LIB_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "build" / "kernels"
    return path if (path / "libgg_host.so").is_file() else None


LIB_DIR = host_lib_dir()
needs_host_lib = pytest.mark.skipif(
    LIB_DIR is None,
    reason="host kernel libraries not built: run `cmake -S . -B build && cmake --build build -j2` "
    "(or set GPUGRAD_HOST_LIB_DIR to the folder holding libgg_host.so and libgg_emu.so)",
)

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
RTOL = {F16: 2e-3, F32: 1e-5, F64: 1e-12}
PARAMS = {"leaky_relu": {"negative_slope": 0.01}, "softplus": {"beta": 1.5, "threshold": 20.0}}


def _inputs(op, n: int, dt: np.dtype, rng: np.random.Generator) -> list[np.ndarray]:
    """Arguments inside each op's domain (and away from its kinks where the derivative jumps)."""
    name = op.name

    def u(lo, hi):
        return rng.uniform(lo, hi, n).astype(dt)

    def away(lo=0.3, hi=2.5):
        return (rng.choice([-1.0, 1.0], n) * rng.uniform(lo, hi, n)).astype(dt)

    if name in ("log", "log2", "log10", "sqrt", "rsqrt"):
        return [u(0.2, 3.0)]
    if name == "log1p":
        return [u(-0.8, 3.0)]
    if name in ("arcsin", "arccos", "arctanh"):
        return [u(-0.9, 0.9)]
    if name == "arccosh":
        return [u(1.2, 4.0)]
    if name in ("cbrt", "reciprocal", "abs", "sign", "relu", "leaky_relu"):
        return [away()]
    if name == "tan":
        return [u(-1.2, 1.2)]
    if name == "softplus":
        x = away()
        x[:4] = np.array([14.0, 13.0, 20.0, -30.0], dt)[: min(4, n)]  # both sides of threshold / beta
        return [x]
    if name in ("divide", "floordiv", "mod"):
        return [away(0.1, 5.0), away(0.3, 2.0)]
    if name == "pow":
        return [u(0.3, 2.0), u(-2.0, 2.0)]
    if name in ("maximum", "minimum"):
        a, b = away(), away()
        b[::5] = a[::5]  # ties share the gradient
        return [a, b]
    if name == "clip":
        return [u(-2.0, 2.0), u(-1.0, -0.2), u(0.2, 1.0)]
    if name in ("clip_min", "clip_max"):
        return [u(-2.0, 2.0), u(-0.5, 0.5)]
    if name == "where":
        return [(rng.random(n) > 0.5).astype(dt), u(-2, 2), u(-2, 2)]
    if name in ("erfinv", "logit"):
        return [u(-0.95, 0.95) if name == "erfinv" else u(0.05, 0.95)]
    if name == "erfcinv":
        return [u(0.05, 1.95)]
    if name in ("y0", "y1"):
        return [u(0.3, 12.0)]
    if name in ("i0", "i1", "j0", "j1"):
        return [u(-12.0, 12.0)]
    if name in ("jn", "yn"):  # integer orders (given as floats), x > 0 for Y_n
        return [rng.integers(-3, 5, n).astype(dt), u(0.5, 12.0)]
    if name in ("floor", "ceil", "rint", "trunc"):
        return [u(-4.0, 4.0)]
    if name in ("logical_and", "logical_or", "logical_xor", "logical_not"):
        return [(rng.random(n) > 0.5).astype(dt) for _ in op.inputs]
    if name in ("isnan", "isinf", "isfinite"):
        x = u(-2, 2)
        x[:3] = np.array([np.nan, np.inf, -np.inf], dt)
        return [x]
    if name in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
        a, b = u(-1, 1), u(-1, 1)
        b[::3] = a[::3]
        return [a, b]
    return [u(-2.5, 2.5) for _ in op.inputs]


def _close(got, want, dt, what: str, rtol: float | None = None) -> None:
    got = np.asarray(got, dtype=np.float64)
    want = np.broadcast_to(np.asarray(want, dtype=np.float64), got.shape)
    rtol = RTOL[dt] if rtol is None else rtol
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size and np.isfinite(want).any() else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)


# ---------------------------------------------------------------------------------------------
# the host library: element functions vs the NumPy backend


@pytest.fixture(scope="module")
def host():
    if LIB_DIR is None:
        pytest.skip("host kernel libraries not built")
    return ctypes.CDLL(str(LIB_DIR / "libgg_host.so"))


def _ptrs(arrays):
    arr = (ctypes.c_void_p * max(1, len(arrays)))()
    for i, a in enumerate(arrays):
        arr[i] = a.ctypes.data
    return arr


@needs_host_lib
@pytest.mark.parametrize("dt", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_host_element_functions_match_numpy(host, name, dt):
    op = OPS[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    n = 257
    xs = [np.ascontiguousarray(x) for x in _inputs(op, n, dt, rng)]
    params = PARAMS.get(name, {})
    pvals = np.array([params[p] for p in op.param_names] or [0.0], dtype=dt)
    sfx = cg.SUFFIX[dt.name]
    ct = ctypes.c_float if dt == F32 else ctypes.c_double

    numpy_fn = npb.forward_function(op, dt)
    numpy_fn = getattr(numpy_fn, "__wrapped__", numpy_fn)  # NumPy's own, not gpugrad.fusion.host_forward's pass
    want = numpy_fn(*xs, *[params[p] for p in op.param_names])
    out = np.empty(n, dtype=np.bool_ if op.kind == "bool" else dt)
    fn = getattr(host, f"gg_host_{name}_fwd_{sfx}")
    fn(ctypes.c_longlong(n), _ptrs(xs), pvals.ctypes.data_as(ctypes.POINTER(ct)), out.ctypes.data_as(ctypes.c_void_p))
    if op.kind == "bool":
        np.testing.assert_array_equal(out, want, err_msg=f"{name} forward")
        return
    _close(out, want, dt, f"{name} forward ({dt})")

    g = rng.uniform(0.5, 1.5, n).astype(dt)
    outv = np.ascontiguousarray(np.broadcast_to(want, (n,)).astype(dt))
    vjps = npb.vjp_functions(op, dt)
    for k in cg.kernel_inputs(op):
        ref = vjps[k](g, *xs, outv, *[params[p] for p in op.param_names])
        res = np.empty(n, dtype=dt)
        fn = getattr(host, f"gg_host_{name}_d{k}_{sfx}")
        fn(ctypes.c_longlong(n), g.ctypes.data_as(ctypes.c_void_p), _ptrs(xs), outv.ctypes.data_as(ctypes.c_void_p),
           pvals.ctypes.data_as(ctypes.POINTER(ct)), res.ctypes.data_as(ctypes.c_void_p))
        _close(res, ref, dt, f"{name} d/d{op.inputs[k]} ({dt})")


@needs_host_lib
def test_half_conversions_match_numpy(host):
    host.gg_host_h2f.restype = ctypes.c_float
    host.gg_host_h2f.argtypes = [ctypes.c_ushort]
    host.gg_host_f2h.restype = ctypes.c_ushort
    host.gg_host_f2h.argtypes = [ctypes.c_float]
    bits = np.arange(0, 65536, 97, dtype=np.uint16)
    bits = np.concatenate([bits, np.array([0, 1, 0x3ff, 0x400, 0x7bff, 0x7c00, 0x7e00, 0x8001, 0xfc00], np.uint16)])
    want = bits.view(np.float16).astype(np.float32)
    got = np.array([host.gg_host_h2f(int(b)) for b in bits], dtype=np.float32)
    np.testing.assert_array_equal(got, want)
    rng = np.random.default_rng(0)
    fs = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-9, 6, 2000),
                         [0.0, -0.0, 65504.0, 65519.9, 65520.0, 1e9, -1e9, 2.0**-24, 2.0**-25, 3 * 2.0**-26,
                          np.inf, -np.inf, np.nan]]).astype(np.float32)
    with np.errstate(over="ignore"):  # values beyond float16's range round to inf, as they should
        want_bits = fs.astype(np.float16).view(np.uint16)
    got_bits = np.array([host.gg_host_f2h(float(f)) for f in fs], dtype=np.uint16)
    nan = np.isnan(fs)
    np.testing.assert_array_equal(got_bits[~nan], want_bits[~nan])
    assert np.isnan(got_bits[nan].view(np.float16)).all()


# ---------------------------------------------------------------------------------------------
# the emulated kernels behind a CuPy stand-in


@pytest.fixture
def cuda(monkeypatch):
    """The CUDA backend compiling every kernel at run time (GPUGRAD_AOT_DIR empty)."""
    from gpugrad.backends import _BACKENDS, backend_for

    monkeypatch.setenv("GPUGRAD_AOT_DIR", "")
    saved = {k: _BACKENDS.pop(k) for k in [k for k in _BACKENDS if k != "cpu"]}
    yield backend_for("cuda:0")
    for key in [k for k in _BACKENDS if k != "cpu"]:
        del _BACKENDS[key]
    _BACKENDS.update(saved)


def _dev(B, x):
    return B.from_host(np.asarray(x))


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_emulated_elementwise_kernels_match_numpy(cuda, dt):
    """Every op's forward and fused backward kernels, with contiguous, broadcast, transposed and
    scalar operands, writing and accumulating, against the NumPy backend."""
    B = cuda
    rng = np.random.default_rng(1)
    for name, op in sorted(OPS.items()):
        params = PARAMS.get(name, {})
        base = _inputs(op, 24, dt, rng)
        cases = [("contiguous", [x.reshape(4, 6) for x in base])]
        if len(op.inputs) >= 2:
            bcast = [x.reshape(4, 6) for x in base]
            bcast[1] = np.ascontiguousarray(bcast[1][:1, :])  # (1, 6): broadcast along rows
            cases.append(("broadcast", bcast))
            scal = [x.reshape(4, 6) for x in base]
            scal[-1] = float(scal[-1].flat[0])  # a Python scalar operand
            cases.append(("scalar", scal))
        cases.append(("transposed", [x.reshape(6, 4).T for x in base]))
        for label, xs in cases:
            what = f"{name} {label} {dt}"
            dev = [_dev(B, x) if isinstance(x, np.ndarray) else x for x in xs]
            if label == "transposed":
                dev = [d.T.copy().T if hasattr(d, "T") else d for d in dev]  # a non-contiguous view
            odt = op.result_dtype(xs)
            want = npb.ew_forward(op, odt, xs, params)
            got = B.ew_forward(op, odt, dev, params)
            if op.kind == "bool" or odt.kind != "f":
                np.testing.assert_array_equal(got.get(), want, err_msg=what)
                continue
            _close(got.get(), want, dt, what + " forward")
            if not op.differentiable:
                continue
            g = rng.uniform(0.5, 1.5, want.shape).astype(dt)
            needs = tuple(isinstance(x, np.ndarray) and k in cg.kernel_inputs(op) or (
                isinstance(x, np.ndarray) and op.inputs[k] in op.d) for k, x in enumerate(xs))
            if op.name == "where":
                needs = (False,) + needs[1:]
            ref = op.vjp(npb, g, xs, want, params, needs)
            grads = B.ew_vjp(op, _dev(B, g), dev, got, params, needs)
            for k, (r, w) in enumerate(zip(grads, ref)):
                if w is None:
                    continue
                _close(np.broadcast_to(r.get(), w.shape), w, dt, f"{what} d/d{op.inputs[k]}")
            # accumulate into owned buffers: acc + g * d
            acc = [(_dev(B, np.full(want.shape, 0.25, dt)) if nd else None) for nd in needs]
            grads2, fresh = B.ew_vjp_acc(op, _dev(B, g), dev, got, params, needs, acc, False)
            for k, (r, w) in enumerate(zip(grads2, ref)):
                if w is None:
                    continue
                assert r is acc[k] and fresh[k], f"{what}: gradient {k} not accumulated in place"
                _close(r.get(), np.broadcast_to(w, want.shape).astype(np.float64) + 0.25, dt, f"{what} acc {k}")


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_emulated_reductions(cuda, dt):
    B = cuda
    rng = np.random.default_rng(2)
    rtol = {F16: 5e-3, F32: 1e-5, F64: 1e-12}[dt]
    for shape, axes in [((37,), None), ((5, 7), 0), ((5, 7), 1), ((3, 4, 5), (0, 2)), ((2, 3, 4, 5), (1, 3)),
                        ((3, 20000), 1), ((6000, 3), 0), ((2, 3000, 40), 1), ((1, 5, 1), (0, 2)), ((4, 1, 3), 1)]:
        x = rng.standard_normal(shape).astype(dt)
        xd = _dev(B, x)
        want = np.sum(x.astype(np.float64), axis=axes)
        _close(B.sum(xd, axes).get(), want, dt, f"sum {shape} {axes}", rtol)
        _close(B.sum(xd, axes, True).get(), np.sum(x.astype(np.float64), axis=axes, keepdims=True), dt,
               f"sum keepdims {shape} {axes}", rtol)
        _close(B.mean(xd, axes).get(), np.mean(x.astype(np.float64), axis=axes), dt, f"mean {shape} {axes}", rtol)
    # sum_to: the broadcast gradient summed back
    for big, small in [((8, 6), (6,)), ((8, 6), (8, 1)), ((2, 3, 4), (3, 1)), ((5, 4), ()), ((3, 4), (1, 4))]:
        x = rng.standard_normal(big).astype(dt)
        got = B.sum_to(_dev(B, x), small).get()
        assert got.shape == small
        _close(got, npb.sum_to(x.astype(np.float64), small), dt, f"sum_to {big}->{small}", rtol)
    # a broadcast (zero-stride) operand is summed correctly too
    g = B.broadcast_to(_dev(B, np.asarray(2.0, dt)), (4, 3))
    _close(B.sum_to(g, (3,)).get(), np.full(3, 8.0), dt, "sum_to of a broadcast view", rtol)


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_emulated_softmax_and_cross_entropy(cuda, dt):
    B = cuda
    rng = np.random.default_rng(3)
    rtol = {F16: 5e-3, F32: 1e-5, F64: 1e-12}[dt]
    for shape, axis in [((6, 10), -1), ((3, 300), 1), ((4, 5, 3), 1), ((5, 4), 0)]:
        x = (rng.standard_normal(shape) * 3).astype(dt)
        x64 = x.astype(np.float64)
        for fn in ("softmax", "log_softmax"):
            y = getattr(B, fn)(_dev(B, x), axis).get()
            want = getattr(npb, fn)(x64, axis)
            _close(y, want, dt, f"{fn} {shape} {axis}", rtol)
            g = rng.standard_normal(shape).astype(dt)
            gx = getattr(B, fn + "_backward")(_dev(B, g), _dev(B, y), axis).get()
            rule = SOFTMAX if fn == "softmax" else LOG_SOFTMAX  # the one rule the kernel implements
            (want_gx,) = rule.vjp(npb, g.astype(np.float64), (None,), y.astype(np.float64), {"axis": axis}, (True,))
            _close(gx, want_gx, dt, f"{fn} backward {shape} {axis}", rtol * 10)
    for n, c, eps in [(7, 5, 0.0), (9, 300, 0.1), (4, 3, 0.0)]:
        x = (rng.standard_normal((n, c)) * 2).astype(dt)
        labels = rng.integers(0, c, n).astype(np.int64)
        labels[1] = -100
        loss, stats = B.cross_entropy_logits(_dev(B, x), _dev(B, labels), -100, eps)
        wl, wdx = cross_entropy_reference(x, labels, eps, 1.5)  # the op's rule on the CPU, float64
        _close(loss.get(), wl, dt, f"cross_entropy {n}x{c} eps={eps}", rtol)
        g = np.asarray(1.5, dt)
        dx = B.cross_entropy_logits_backward(_dev(B, g), _dev(B, x), _dev(B, labels), stats, -100, eps).get()
        _close(dx, wdx, dt, f"cross_entropy backward {n}x{c}", rtol)
        assert not dx[1].any()
    # every row ignored: NaN loss (as PyTorch), zero gradient
    loss, stats = B.cross_entropy_logits(_dev(B, np.ones((2, 3), dt)), _dev(B, np.array([-1, -1])), -1, 0.0)
    assert np.isnan(loss.get())


@pytest.mark.gpu
@pytest.mark.parametrize("dt", [F16, F32, F64], ids=["float16", "float32", "float64"])
def test_emulated_scatter_add(cuda, dt):
    B = cuda
    rng = np.random.default_rng(4)
    vals = rng.standard_normal((6, 3)).astype(dt)
    idx = np.array([0, 2, 2, -1, 4, 0])
    got = B.index_scatter(_dev(B, vals), (5, 3), (_dev(B, idx),)).get()
    _close(got, npb.index_scatter(vals.astype(np.float64), (5, 3), (idx,)), dt, "index_scatter rows")
    # a general advanced index (two arrays and a slice)
    v2 = rng.standard_normal((4, 2)).astype(dt)
    i0, i1 = np.array([0, 1, 1, 0]), np.array([2, 0, 0, 2])
    index = (_dev(B, i0), slice(None), _dev(B, i1))
    got = B.index_scatter(_dev(B, np.ascontiguousarray(v2)), (2, 2, 3), index).get()
    _close(got, npb.index_scatter(v2.astype(np.float64), (2, 2, 3), (i0, slice(None), i1)), dt, "index_scatter mixed")
    # take's transpose along a middle axis
    v3 = rng.standard_normal((2, 4, 3)).astype(dt)
    ind = np.array([1, 1, 0, 3])
    got = B.take_scatter(_dev(B, v3), (2, 5, 3), _dev(B, ind), 1).get()
    _close(got, npb.take_scatter(v3.astype(np.float64), (2, 5, 3), ind, 1), dt, "take_scatter")


# ---------------------------------------------------------------------------------------------
# whole passes through the engine on device="cuda" (the fused accumulation included)


def _grads(device: str, fn, arrays):
    ts = [gg.tensor(a, device=device, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward()
    return float(out.item()), [t.grad.numpy() for t in ts]


GRAPHS = {
    "chain": lambda x: (gg.tanh(x) * gg.sigmoid(x)).sum(),
    "fork3": lambda x: (gg.exp(x) + gg.sin(x) * x + x * x).sum(),
    "reuse_out": lambda x: (lambda y: (y * y + y).mean())(gg.tanh(x)),
    "bias": lambda x: (gg.relu(x.reshape(4, 6) + x[:6]) ** 2).sum(),
    "add_alias": lambda x: (lambda s: (s * 2.0 + gg.exp(s)).sum())(x + x),
    "mlp": lambda x: gg.log_softmax(gg.tanh(x.reshape(4, 6) @ x.reshape(6, 4)), axis=1).sum(),
    "indexing": lambda x: (x[np.array([0, 3, 3, 5])] * x[2:6]).sum() + gg.softmax(x.reshape(2, 12), 0).max(),
    "reductions": lambda x: x.reshape(2, 3, 4).sum(axis=(0, 2)).prod() + gg.logsumexp(x.reshape(4, 6), axis=1).sum(),
}


@pytest.mark.gpu
@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_engine_on_emulated_cuda_matches_cpu(cuda, graph):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(24) * 0.5).astype(np.float64)
    fn = GRAPHS[graph]
    v_cpu, g_cpu = _grads("cpu", fn, [x])
    v_gpu, g_gpu = _grads("cuda", fn, [x])
    assert abs(v_cpu - v_gpu) <= 1e-10 * max(1.0, abs(v_cpu))
    np.testing.assert_allclose(g_gpu[0], g_cpu[0], rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@gg.no_fusion()  # each op's own kernels (the fused chain's are counted in test_fusion_eager)
def test_fused_backward_launch_count(cuda):
    """sum(tanh(x) * sigmoid(x)): the backward is three kernels (multiply's, tanh's, and
    sigmoid's accumulating into tanh's result); no add, no copy into .grad."""
    B = cuda
    x = gg.tensor(np.linspace(-2, 2, 64).astype(np.float32), device="cuda", requires_grad=True)
    loss = (gg.tanh(x) * gg.sigmoid(x)).sum()
    before = B.launches
    loss.backward()
    assert B.launches - before == 4  # ones_like for the root gradient, then the three kernels
    xc = gg.tensor(np.linspace(-2, 2, 64).astype(np.float32), requires_grad=True)
    (gg.tanh(xc) * gg.sigmoid(xc)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xc.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
def test_gradients_accumulate_across_backwards_and_hooks(cuda):
    x = gg.tensor(np.arange(6.0), device="cuda", requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    for _ in range(2):
        (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * np.arange(6.0) + 1))
    assert len(seen) == 2
    np.testing.assert_allclose(seen[0], 2 * np.arange(6.0) + 1)
    # functional transforms leave no .grad and agree with the CPU
    f = gg.grad(lambda v: (gg.sin(v) * v).sum())
    xc = gg.tensor(np.linspace(0, 1, 5), device="cuda")
    np.testing.assert_allclose(f(xc).numpy(), f(gg.tensor(np.linspace(0, 1, 5))).numpy(), rtol=1e-12)


@pytest.mark.gpu
def test_device_round_trips_on_emulated_cuda(cuda):
    a = gg.randn(3, 4, dtype=gg.float64, requires_grad=True)
    b = a.cuda()
    assert b.device == "cuda:0" and type(b.data).__module__.startswith("cupy")
    c = (b * 2).cpu()
    assert c.device == "cpu"
    c.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 4), 2.0))
    assert a.to("cuda").to("cpu").numpy().tolist() == a.numpy().tolist()
    with pytest.raises(gg.DeviceError, match="cpu and cuda:0|cuda:0 and cpu"):
        a + b


@pytest.mark.gpu
def test_runtime_kernels_come_from_code_not_fatbins(cuda):
    """With GPUGRAD_AOT_DIR empty, every kernel is compiled from rendered source."""
    cuda.ew_forward(OPS["exp"], F32, [_dev(cuda, np.ones(3, np.float32))], {})
    assert cuda.runtime_compiled > 0 and cuda.aot_loaded == 0


def test_codegen_renders_every_variant_and_kernels_dir_is_found():
    d = cg.kernels_dir()
    for name in (*cg.HEADERS, "gg_host_emu.h", *cg.HANDWRITTEN):
        assert (d / name).is_file(), name
    total = sum(len(cg.all_kernels(op, dt)) for op in OPS.values() for dt in cg.FLOAT_DTYPES)
    assert total > 1000
    name, src = cg.backward_kernel(OPS["multiply"], "float32", (0, 1), "aa", "c")
    assert name == "gg_multiply_f32_b11_aa_c" and "acc0" in src and "acc1" in src


def test_layout_collapses_and_broadcasts():
    from gpugrad.backends.cuda import layout, reduction_plan

    a = np.zeros((4, 6), np.float32)
    assert layout((4, 6), [a, a]) == ("c", (1, 1))
    assert layout((4, 6), [a, np.zeros((1,), np.float32)]) == ("c", (1, 0))
    mode, geom = layout((4, 6), [a, np.zeros((6,), np.float32)])
    assert mode == "s" and int(geom["ndim"][0]) == 2
    assert list(geom["strides"][0, 1, :2]) == [0, 1]
    mode, geom = layout((6, 4), [a.T])
    assert mode == "s" and list(geom["strides"][0, 0, :2]) == [1, 6]
    assert layout((2,) * 8, [np.zeros((2,) * 8)[..., ::2, :]])[0] in ("s", "m")
    assert layout((3, 1, 5), [np.zeros((3, 1, 5))]) == ("c", (1,))
    assert reduction_plan((2, 3, 4), (0, 2)) == [(6, 4, 1), (1, 2, 3)]
    assert reduction_plan((5, 1, 7), (1,)) == []


def test_cuda_sources_are_package_data():
    """kernels/ ships inside the installed package as gpugrad.kernels (setup.py maps it)."""
    import tomllib

    root = cg.kernels_dir().parent
    if not (root / "setup.py").is_file():
        pytest.skip("not a source checkout")
    assert '"gpugrad.kernels": "kernels"' in (root / "setup.py").read_text()
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"*.cu", "*.cuh", "*.h"} <= set(data["gpugrad.kernels"])


if os.environ.get("GPUGRAD_REQUIRE_HOST_LIB") and LIB_DIR is None:  # CI built it: a missing library is an error
    raise RuntimeError("GPUGRAD_REQUIRE_HOST_LIB is set but the host kernel libraries were not found")


@pytest.mark.gpu
def test_cuda_backend_provides_the_numpy_backends_names(cuda):
    """Op rules run against either backend: every function of the NumPy backend's namespace
    exists on the CUDA one, except NumPy-only helpers and the nn/optim array helpers that
    gpugrad.ops.nn and gpugrad.optim take from the NumPy backend when a backend lacks them
    (they are written over the array's own module, so they run on CuPy arrays)."""
    import inspect

    fallbacks = {"forward_function", "vjp_functions", "pool_output_size", "im2col", "col2im", "pool2d",
                 "pool_argmax", "pool_scatter", "pool_gather", "state_dtype", "update_function"}
    names = [n for n, v in vars(npb).items()
             if not n.startswith("_") and callable(v) and not inspect.isclass(v) and not inspect.ismodule(v)]
    missing = [n for n in names if not hasattr(cuda, n) and n not in fallbacks]
    assert not missing, f"CupyBackend lacks {missing}"
