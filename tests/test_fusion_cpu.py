"""Fused chains on NumPy arrays: forward and backward equal the unfused ops (random programs,
float32 and float64), gradients equal finite differences, and the evaluators (compiled host
code, blocked NumPy, its thread pool, the pure-NumPy fallback) agree."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings

import gpugrad as gg
from gpugrad import fusion
from gpugrad.fusion import host, numpy_eval
from gpugrad.fusion.lower import backward_program, forward_program
from gpugrad.ops.elementwise import OPS
from tests.fusion_programs import programs, run_fused, run_unfused
from tests.numeric import fd_grad

RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def _close(got, want, dt, what):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size and np.isfinite(want).any() else 1.0
    r = RTOL[np.dtype(dt)]
    np.testing.assert_allclose(got, want, rtol=r, atol=r * scale, equal_nan=True, err_msg=what)


def _grads_out(program, seed=1):
    shape, leaves, _, outputs, _ = program
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(leaves[0].dtype) for _ in outputs]


@pytest.fixture
def numpy_only(monkeypatch):
    """The pure-NumPy fallback: no compiled code, and a compiler call would fail the test."""
    monkeypatch.setattr(host.Settings, "enabled", False)

    def refuse(*a, **k):
        raise AssertionError("the fallback must not compile")

    monkeypatch.setattr(host, "build", refuse)


@settings(deadline=None, max_examples=30)
@given(programs())
def test_random_programs_match_unfused_ops(program):
    gouts = _grads_out(program)
    outs, red, grads, _ = run_fused(program, gouts)
    want_outs, want_red, want_grads = run_unfused(program, gouts)
    dt = program[1][0].dtype
    for k, (o, w) in enumerate(zip(outs, want_outs)):
        assert o.dtype == w.dtype
        _close(o, w, dt, f"output {k}")
    if want_red is not None:
        assert red.dtype == want_red.dtype and red.shape == ()
        _close(red, want_red, dt, "reduction")
    for k, (g, w) in enumerate(zip(grads, want_grads)):
        g = np.zeros_like(w) if g is None else g
        assert g.shape == w.shape and g.dtype == w.dtype
        _close(g, w, dt, f"gradient of leaf {k}")


@settings(deadline=None, max_examples=8)
@given(programs(dtypes=("float64",), max_steps=5))
def test_random_program_gradients_match_finite_differences(program):
    shape, leaves, steps, outputs, reduction = program
    gouts = _grads_out(program)
    _, _, grads, _ = run_fused(program, gouts)

    def scalar(k):
        def f(x):
            prog = (shape, [x if i == k else a for i, a in enumerate(leaves)], steps, outputs, reduction)
            outs, red, _, _ = run_fused(prog, gouts, backward=False)
            total = sum(float(np.sum(o * g)) for o, g in zip(outs, gouts))
            return total + (float(red) if red is not None else 0.0)
        return f

    for k, a in enumerate(leaves):
        want = fd_grad(scalar(k), a.copy())
        g = np.zeros_like(a) if grads[k] is None else grads[k]
        # kinks (relu, maximum, where) are avoided by the data only with high probability
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5, err_msg=f"leaf {k}")


def _tanh_sigmoid(x, kind="sum"):
    c = fusion.Chain()
    xr = c.leaf(x)
    y = c.apply(OPS["multiply"], [c.apply(OPS["tanh"], [xr]), c.apply(OPS["sigmoid"], [xr])])
    c.reduce(y, kind)
    return c


def _bias_relu(x, b, w):
    c = fusion.Chain()
    h = c.apply(OPS["relu"], [c.apply(OPS["add"], [x, b])])
    c.output(h)
    c.reduce(c.apply(OPS["multiply"], [h, w]), "mean")
    return c


def test_signature_ignores_sizes_and_values_but_not_dtypes():
    a = _tanh_sigmoid(np.ones(5, np.float32)).signature
    assert a == _tanh_sigmoid(np.ones((7, 3), np.float32)).signature
    assert a != _tanh_sigmoid(np.ones(5, np.float64)).signature
    assert a != _tanh_sigmoid(np.ones(5, np.float32), "mean").signature
    c1, c2 = fusion.Chain(), fusion.Chain()
    c1.apply(OPS["multiply"], [np.ones(3), 2.0])
    c2.apply(OPS["multiply"], [np.ones(3), 5.0])
    assert c1.signature == c2.signature
    hash(a)


def test_shared_subexpressions_are_computed_once():
    c = fusion.Chain()
    x = c.leaf(np.ones(3))
    t1, t2 = c.apply(OPS["tanh"], [x]), c.apply(OPS["tanh"], [x])
    c.reduce(c.apply(OPS["multiply"], [t1, t2]), "sum")
    p = backward_program(c.signature, (True,), (True,))
    calls = [ins for ins in p.instrs if ins[0] == "call" and ins[2] == "tanh"]
    assert len(calls) == 1
    # silu's value and derivative share sigmoid(x)
    c = fusion.Chain()
    c.reduce(c.apply(OPS["silu"], [np.ones(3)]), "sum")
    p = backward_program(c.signature, (True,), (True,))
    live = p.live([g for g in p.grads if g is not None])
    assert sum(1 for i, ins in enumerate(p.instrs) if live[i] and ins[0] == "call" and ins[2] == "sigmoid") == 1


def test_shape_errors_name_the_op_at_its_call():
    c = fusion.Chain()
    x = c.leaf(np.ones((2, 3)))
    with pytest.raises(gg.ShapeError, match="multiply"):
        c.apply(OPS["multiply"], [x, np.ones(4)])


def test_integer_arithmetic_is_not_fused_but_integer_leaves_are():
    c = fusion.Chain()
    with pytest.raises(fusion.NotFusable):
        c.apply(OPS["add"], [np.arange(3), np.arange(3)])
    c = fusion.Chain()
    i = np.arange(4, dtype=np.int32)
    x = np.linspace(0, 1, 4).astype(np.float32)
    y = c.apply(OPS["multiply"], [c.apply(OPS["tanh"], [i]), x])
    c.output(y)
    (out,), _ = fusion.forward(c)
    np.testing.assert_allclose(out, np.tanh(i) * x, rtol=1e-12)
    assert out.dtype == (np.tanh(i) * x).dtype
    gi, gx = fusion.backward(c, [np.ones(4, out.dtype)], [True, True])
    assert gi is None and gx.dtype == np.float32
    np.testing.assert_allclose(gx, np.tanh(i), rtol=1e-6)


def test_float16_rounds_like_the_unfused_ops():
    x = np.linspace(-2, 2, 37).astype(np.float16)
    c = _tanh_sigmoid(x)
    _, red = fusion.forward(c)
    (gx,) = fusion.backward(c, [np.float16(1)], [True])
    t = gg.tensor(x, requires_grad=True)
    loss = (gg.tanh(t) * gg.sigmoid(t)).sum()
    loss.backward()
    assert red.dtype == np.float16 and gx.dtype == np.float16
    np.testing.assert_allclose(gx.astype(np.float32), t.grad.numpy().astype(np.float32), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(float(red), float(loss.item()), rtol=2e-3)


def _eval_both(chain, grads_in, needs):
    """(forward, backward) with the NumPy evaluator and with compiled host code."""
    got = []
    for compiled in (False, True):
        old = host.Settings.enabled, host.Settings.compile_after
        host.Settings.enabled, host.Settings.compile_after = compiled, 1
        try:
            fwd = fusion.forward(chain)
            bwd = fusion.backward(chain, grads_in, needs)
        finally:
            host.Settings.enabled, host.Settings.compile_after = old
        got.append((fwd, bwd))
    return got


HOST_CASES = ["tanh_sigmoid_f32", "bias_relu_f64", "leaky_f16_scalar", "column_broadcast"]


def _host_case(name):
    rng = np.random.default_rng(3)
    if name == "tanh_sigmoid_f32":
        return _tanh_sigmoid(rng.standard_normal(1000).astype(np.float32)), [np.float32(1)], [True]
    if name == "bias_relu_f64":
        x, b, w = rng.standard_normal((16, 8)), rng.standard_normal(8), rng.standard_normal((16, 8))
        return _bias_relu(x, b, w), [rng.standard_normal((16, 8)), np.float64(0.5)], [True, True, True]
    if name == "leaky_f16_scalar":
        c = fusion.Chain()
        x = rng.standard_normal((5, 6)).astype(np.float16)
        y = c.apply(OPS["leaky_relu"], [c.apply(OPS["multiply"], [x, 1.5])], {"negative_slope": 0.2})
        c.output(y)
        return c, [np.ones((5, 6), np.float16)], [True, False, False]
    # a column and a transposed (strided) operand
    c = fusion.Chain()
    a = rng.standard_normal((6, 1)).astype(np.float32)
    b = rng.standard_normal((5, 6)).astype(np.float32).T
    y = c.apply(OPS["divide"], [c.apply(OPS["sin"], [a]), c.apply(OPS["add"], [c.apply(OPS["square"], [b]), 1.0])])
    c.reduce(y, "sum")
    return c, [np.float32(2)], [True, True, False]


@pytest.mark.skipif(not host.available(), reason="no C++ compiler")
@pytest.mark.parametrize("case", HOST_CASES)
def test_compiled_host_code_equals_the_numpy_evaluator(case):
    chain, gin, needs = _host_case(case)
    (np_fwd, np_bwd), (c_fwd, c_bwd) = _eval_both(chain, gin, needs)
    dt = chain.leaf_refs[0].dtype
    tol = {np.dtype(np.float16): 1e-3, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-13}[dt]
    for a, b in zip(np_fwd[0], c_fwd[0]):
        np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64), rtol=tol, atol=tol)
    if np_fwd[1] is not None:
        np.testing.assert_allclose(float(c_fwd[1]), float(np_fwd[1]), rtol=max(tol, 1e-6))
    for a, b in zip(np_bwd, c_bwd):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(a, np.float64), rtol=tol, atol=tol)


@pytest.mark.skipif(not host.available(), reason="no C++ compiler")
def test_host_code_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUGRAD_FUSION_CACHE", str(tmp_path))
    monkeypatch.setattr(host, "_LIBS", {})
    chain, _, _ = _host_case("tanh_sigmoid_f32")
    src = host.source(forward_program(chain.signature), "11")
    host.build(src)
    libs = list((tmp_path / "host").glob("fz*.so"))
    assert len(libs) == 1
    # a fresh process would load it: no compiler run
    monkeypatch.setattr(host, "_LIBS", {})
    monkeypatch.setattr(host.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("compiled")))
    assert host.build(src) is not None


def test_compilation_waits_for_a_second_use(monkeypatch):
    calls = []
    monkeypatch.setattr(host.Settings, "compile_after", 2)
    monkeypatch.setattr(host, "build", lambda src, wide=False: calls.append(src) or (lambda *a: 0.0))
    chain = _tanh_sigmoid(np.ones(3, np.float32) * 0.25)
    p = forward_program(chain.signature)
    p.__dict__.pop("_host_functions", None)
    assert host.function(p, "11") is None and not calls
    assert host.function(p, "11") is not None and len(calls) == 1


@pytest.mark.skipif(not host.available(), reason="needs a C++ compiler")
def test_large_chains_are_built_for_the_widest_vectors_when_asked(monkeypatch):
    # GPUGRAD_FUSION_WIDE_MIN: from that many elements the pass is its own build (WIDE_FLAGS);
    # below, and by default, the narrower one
    assert host.WIDE_MIN == int(os.environ.get("GPUGRAD_FUSION_WIDE_MIN", "0"))
    monkeypatch.setattr(host, "WIDE_MIN", 1 << 16)
    built = []
    real = host.build
    monkeypatch.setattr(host, "build", lambda src, wide=False: built.append(wide) or real(src, wide))
    rng = np.random.default_rng(5)
    for n in (host.WIDE_MIN // 2, host.WIDE_MIN):
        x = (rng.standard_normal(n) * 2).astype(np.float32)
        chain = _tanh_sigmoid(x)
        p = forward_program(chain.signature)
        p.__dict__.pop("_host_functions", None)
        _, total = fusion.run.forward(chain, threads=1)
        want = np.sum(np.tanh(x.astype(np.float64)) / (1 + np.exp(-x.astype(np.float64))))
        np.testing.assert_allclose(float(total), want, rtol=1e-5)
        keys = [k for k in p.__dict__["_host_functions"] if k[0] != "seen"]
        assert keys == [(keys[0][0], n >= host.WIDE_MIN)]
    assert built == [False, True]


def test_pure_numpy_fallback(numpy_only):
    for case in HOST_CASES:
        chain, gin, needs = _host_case(case)
        for _ in range(3):  # past compile_after: still NumPy
            outs, red = fusion.forward(chain)
            grads = fusion.backward(chain, gin, needs)
        assert all(g is None or np.isfinite(g).all() for g in grads)
    x = np.linspace(-3, 3, 11)
    _, red = fusion.forward(_tanh_sigmoid(x))
    assert float(red) == pytest.approx(float(np.sum(np.tanh(x) / (1 + np.exp(-x)))), rel=1e-14)


@pytest.mark.parametrize("threads", [1, 2])
def test_blocked_evaluation_with_broadcasting(threads, monkeypatch, numpy_only):
    monkeypatch.setattr(numpy_eval, "BLOCK", 64)
    rng = np.random.default_rng(5)
    x, b, w = rng.standard_normal((30, 17)), rng.standard_normal(17), rng.standard_normal((30, 1))
    chain = _bias_relu(x, b, w)
    gh = rng.standard_normal((30, 17))
    (h,), red = fusion.forward(chain, threads=threads)
    gx, gb, gw = fusion.backward(chain, [gh, np.float64(2.0)], [True, True, True], threads=threads)
    xt, bt, wt = (gg.tensor(a, requires_grad=True) for a in (x, b, w))
    ht = gg.relu(xt + bt)
    loss = (ht * gg.tensor(gh)).sum() + 2.0 * (ht * wt).mean()
    loss.backward()
    np.testing.assert_allclose(h, ht.numpy(), rtol=1e-14)
    np.testing.assert_allclose(float(red), float((ht * wt).mean().item()), rtol=1e-13)
    for g, t in ((gx, xt), (gb, bt), (gw, wt)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not host.available(), reason="no C++ compiler")
def test_a_toolchain_without_vector_math_still_compiles(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUGRAD_FUSION_CACHE", str(tmp_path))
    monkeypatch.setattr(host, "_LIBS", {})
    monkeypatch.setattr(host, "SIMD_FLAGS", ("-fno-such-flag-gpugrad",))
    monkeypatch.setattr(host.Settings, "vectorized", True)
    chain, gin, needs = _host_case("tanh_sigmoid_f32")
    fn = host.build(host.source(forward_program(chain.signature), "11"))
    assert fn is not None and host.Settings.vectorized is False


def test_leaves_with_the_same_gradient_share_one_pass_output_but_not_arrays(numpy_only):
    x, y = np.ones((2, 3)), np.full((2, 3), 2.0)
    c = fusion.Chain()
    c.output(c.apply(OPS["add"], [x, y]))
    p = backward_program(c.signature, (True,), (True, True))
    assert len(p.written) == 1 and p.grad_slot == [0, 0]
    gx, gy = fusion.backward(c, [np.full((2, 3), 3.0)], [True, True])
    assert gx is not gy and (gx == 3).all() and (gy == 3).all()


def test_a_chain_over_channel_major_arrays_keeps_their_memory_order(compiled_fusion):
    # a convolution's output is (N, C, H, W) stored channel-major: the fused passes write their
    # results in that order (as NumPy's ufuncs do) and walk every operand in memory order
    from gpugrad.backends.shapes import merged

    rng = np.random.default_rng(3)
    base = rng.standard_normal((8, 4, 5, 6)).astype(np.float32)  # (C, N, H, W) in memory
    x = gg.tensor(base.transpose(1, 0, 2, 3), requires_grad=True)
    assert not x.data.flags.c_contiguous
    assert len(merged(x.shape, [x.data], reorder=True)) == 1 and len(merged(x.shape, [x.data])) == 3
    g = rng.standard_normal((8, 4, 5, 6)).astype(np.float32).transpose(1, 0, 2, 3)
    for _ in range(2):  # the first call plans and caches the compiled call; the second reuses it
        x.grad = None
        y = gg.relu(x * 2.0 + 1.0)
        assert y.data.strides == x.data.strides
        y.backward(g)
        assert x.grad.data.strides == x.data.strides
        np.testing.assert_allclose(y.numpy(), np.maximum(x.numpy() * 2 + 1, 0), rtol=1e-6)
        np.testing.assert_allclose(x.grad.numpy(), 2 * g * (x.numpy() * 2 + 1 > 0), rtol=1e-6)
    for _ in range(2):  # a loss over it: value and gradient in one pass, the gradient in x's order
        x.grad = None
        loss = (gg.tanh(x) * 3.0).sum()
        fast = loss.grad_fn.params["program"].compiled.fast
        loss.backward()
        assert x.grad.data.strides == x.data.strides
        assert any(k[0] == "value_and_grad" for k in fast)  # its compiled call is kept for the next step
        np.testing.assert_allclose(x.grad.numpy(), 3 * (1 - np.tanh(x.numpy()) ** 2), rtol=1e-5, atol=1e-6)


def test_one_op_runs_as_itself_but_one_op_and_its_sum_are_one_pass(compiled_fusion):
    x = gg.tensor(np.linspace(-1, 1, 50, dtype=np.float32), requires_grad=True)
    y = gg.tanh(x)
    assert type(y.grad_fn.op).__name__ == "ElementwiseOp" and y.grad_fn.name == "tanh"  # not compiled
    loss = gg.tanh(x).sum()
    assert type(loss.grad_fn.op).__name__ == "FusedElementwise"  # the reduction joins: one pass
    two = gg.tanh(x) * 2.0
    assert type(two.grad_fn.op).__name__ == "FusedElementwise"


def test_plain_arithmetic_compiles_from_a_larger_size_than_transcendental_chains(compiled_fusion, monkeypatch):
    from gpugrad.fusion import kernels

    monkeypatch.setattr(kernels.Settings, "cpu_min_elements_cheap", 1000)
    x = gg.tensor(np.linspace(-1, 1, 100, dtype=np.float32), requires_grad=True)
    b = gg.tensor(np.float32(0.25), requires_grad=True)
    assert type(gg.relu(x + b).grad_fn.op).__name__ == "ElementwiseOp"  # op by op: add, relu
    assert type((gg.tanh(x) * 2.0).grad_fn.op).__name__ == "FusedElementwise"
    # closed by a sum (a loss), plain arithmetic is one pass at any size: value and gradients
    loss = gg.relu(x + b).sum()
    assert type(loss.grad_fn.op).__name__ == "FusedElementwise"
    loss.backward()
    np.testing.assert_allclose(b.grad.numpy(), np.sum(x.numpy() + 0.25 > 0), rtol=1e-6)
    big = gg.tensor(np.linspace(-1, 1, 1000, dtype=np.float32), requires_grad=True)
    assert type(gg.relu(big + b).grad_fn.op).__name__ == "FusedElementwise"


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("dt", [np.float32, np.float64, np.float16])
def test_a_loss_chain_makes_its_gradients_in_its_forward_pass(compiled_fusion, reduce, dt):
    # sum/mean closing a chain that requires grad: one pass computes the value and the inputs'
    # gradients (kept for backward); backward hands them out (scaled by an incoming gradient
    # other than 1), and a second backward through the retained graph computes them again
    rng = np.random.default_rng(5)
    xv = rng.standard_normal((6, 7)).astype(dt)
    bv = rng.standard_normal(7).astype(dt)

    def loss_of(x, b):
        y = gg.tanh(x) * gg.sigmoid(x + b)
        return y.sum() if reduce == "sum" else y.mean()

    def grads(scale, fuse):
        x = gg.tensor(xv, requires_grad=True)
        b = gg.tensor(bv, requires_grad=True)
        if fuse:
            loss = loss_of(x, b)
            assert loss.grad_fn.params["value_grads"][0] == (True, True)  # made in the forward pass
        else:
            with gg.no_fusion():
                loss = loss_of(x, b)
        out = loss * scale if scale != 1 else loss
        out.backward(retain_graph=True)
        first = (x.grad.numpy().copy(), b.grad.numpy().copy())
        x.grad = b.grad = None
        out.backward()  # the kept gradients were handed out once: computed again
        return loss, first, (x.grad.numpy(), b.grad.numpy())

    tol = 2e-3 if dt == np.float16 else 1e-5
    for scale in (1, 2.5):
        loss, first, second = grads(scale, True)
        assert type(loss.grad_fn.op).__name__ == "FusedElementwise"
        assert "value_grads" not in loss.grad_fn.params
        _, want, _ = grads(scale, False)
        for got, again, ref in zip(first, second, want):
            np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
            np.testing.assert_allclose(again, ref, rtol=tol, atol=tol)


def test_the_default_cpu_policy_compiles_small_transcendental_and_loss_chains():
    # the library's defaults (the suite raises the bars): a chain with tanh/sigmoid, or closed by
    # a sum, compiles at any size; plain arithmetic alone waits for 2^18 elements; one op never
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUGRAD_FUSION_CPU_MIN")}
    code = """
import numpy as np, gpugrad as gg
from gpugrad.fusion import host
assert host.available()
kind = lambda t: type(t.grad_fn.op).__name__
x = gg.tensor(np.linspace(-1, 1, 64, dtype=np.float32), requires_grad=True)
b = gg.tensor(np.float32(0.25), requires_grad=True)
print(kind(gg.tanh(x) * gg.sigmoid(x)), kind((gg.tanh(x) * gg.sigmoid(x)).sum()),
      kind(gg.relu(x + b)), kind(gg.relu(x + b).sum()), kind(gg.tanh(x)))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["FusedElementwise", "FusedElementwise", "ElementwiseOp", "FusedElementwise",
                                  "ElementwiseOp"]


@pytest.mark.parametrize("compiled", [True, False])
def test_hooks_and_retain_grad_added_after_the_loss_took_the_chain(compiled, monkeypatch, request):
    # loss = y.sum() computes y's chain and the sum in one pass and leaves y pending; a hook or
    # retain_grad on y afterwards must still see y's gradient and change what reaches x, b
    if compiled:
        request.getfixturevalue("compiled_fusion")

    def run():
        x = gg.tensor(np.linspace(-1, 1, 64, dtype=np.float32), requires_grad=True)
        b = gg.tensor(np.float32(0.25), requires_grad=True)
        y = gg.tanh(x + b) * 2.0
        z = gg.relu(x - b)
        loss = y.sum() + y.mean() * 3.0 + z.sum()
        calls = []
        y.retain_grad()
        y.register_hook(lambda g: (calls.append(1), g * 3.0)[1])
        z.retain_grad()
        loss.backward()
        return x.grad.numpy(), b.grad.numpy(), y.grad.numpy(), z.grad.numpy(), len(calls)

    fused = run()
    with gg.no_fusion():
        plain = run()
    for got, want in zip(fused[:4], plain[:4]):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert fused[4] == plain[4] == 1


@pytest.mark.skipif(not host.available(), reason="needs a C++ compiler")
@pytest.mark.parametrize("threads", [2, 3])
def test_compiled_passes_on_threads_give_one_threads_values(threads, monkeypatch):
    # host.run splits the outer dim into slices, the calling thread running the first: the
    # outputs and the closing sum are those of one pass (rows, and one long row)
    monkeypatch.setattr(host.Settings, "compile_after", 1)
    rng = np.random.default_rng(8)
    for shape in ((31, 17), (1001,)):
        x = rng.standard_normal(shape)
        b = rng.standard_normal(shape[-1:])
        w = rng.standard_normal(shape)
        monkeypatch.setattr(host, "PARALLEL_MIN", 1 << 30)
        (h1,), r1 = fusion.run.forward(_bias_relu(x, b, w), threads=threads)
        monkeypatch.setattr(host, "PARALLEL_MIN", 0)
        (h2,), r2 = fusion.run.forward(_bias_relu(x, b, w), threads=threads)
        np.testing.assert_array_equal(h2, h1)
        np.testing.assert_allclose(float(r2), float(r1), rtol=1e-12)
        np.testing.assert_allclose(float(r2), float(np.mean(np.maximum(x + b, 0) * w)), rtol=1e-12)


@pytest.mark.skipif(not host.available(), reason="needs a C++ compiler")
def test_a_changed_header_is_never_served_by_the_old_library(monkeypatch, tmp_path):
    # the on-disk cache's key holds every header a pass may include, the hand-written host
    # kernels' too: an upgrade that changes one builds anew
    from gpugrad.backends.cuda_codegen import kernels_dir

    for name in ("gg_cross_entropy_host.h", "gg_host_emu.h", "gg_math.cuh"):
        assert (kernels_dir() / name).read_text() in host._headers()
    monkeypatch.setenv("GPUGRAD_FUSION_CACHE", str(tmp_path))
    src = 'extern "C" __attribute__((visibility("default"))) double gg_fz_host(long long, long long, ' \
          'void* const*, const long long*, const long long*, const double*) { return 42; }\n'
    monkeypatch.setattr(host, "_LIBS", {})
    assert host.build(src)(1, 1, None, None, None, None) == 42
    monkeypatch.setattr(host, "_LIBS", {})
    monkeypatch.setattr(host, "_headers", lambda: "a header as a later version has it")
    assert host.build(src)(1, 1, None, None, None, None) == 42
    assert len(list((tmp_path / "host").glob("fz*.so"))) == 2
