"""Fused chains on the CUDA backend: one kernel forward (plus one adding a reduction's partial
sums), one backward, rendered from the same statements as the host code. Run on the emulated
device (every source is checked with NVRTC as CuPy would compile it) against the CPU evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from gpugrad import fusion
from gpugrad.fusion import cuda
from gpugrad.ops.elementwise import OPS
from gpugrad.testing.cuda_emulator import nvrtc


def _chains(xp, dt):
    """(name, chain, incoming gradients, needs) built on module ``xp`` arrays."""
    rng = np.random.default_rng(7)

    def arr(*shape):
        return xp.asarray(rng.uniform(-1.5, 1.5, shape).astype(dt))

    out = []
    c = fusion.Chain()
    x = c.leaf(arr(1000))
    c.reduce(c.apply(OPS["multiply"], [c.apply(OPS["tanh"], [x]), c.apply(OPS["sigmoid"], [x])]), "sum")
    out.append(("tanh_sigmoid_sum", c, [xp.asarray(np.array(1.0, dt))], [True]))
    # bias + relu with an escaping activation, a column operand (strided layout), a mean
    c = fusion.Chain()
    h = c.apply(OPS["relu"], [c.apply(OPS["add"], [arr(33, 20), arr(20)])])
    c.output(h)
    c.reduce(c.apply(OPS["multiply"], [h, arr(33, 1)]), "mean")
    out.append(("bias_relu_mean", c, [arr(33, 20), xp.asarray(np.array(0.5, dt))], [True, True, True]))
    # a long chain with scalars and a parameter, forks and a where
    c = fusion.Chain()
    x = c.leaf(arr(64))
    v = x
    for i in range(12):
        v = c.apply(OPS["leaky_relu" if i % 3 == 0 else "sin"], [c.apply(OPS["multiply"], [v, 0.9])],
                    {"negative_slope": 0.1} if i % 3 == 0 else None)
        v = c.apply(OPS["where"], [c.apply(OPS["greater"], [v, x]), v, c.apply(OPS["add"], [v, x])])
    c.output(v)
    out.append(("long_chain", c, [arr(64)], [True] + [False] * (len(c.leaves) - 1)))
    return out


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


@pytest.mark.gpu
@pytest.mark.parametrize("dt", ["float16", "float32", "float64"])
def test_fused_kernels_equal_the_cpu_evaluator(dt):
    import cupy as cp

    import gpugrad as gg
    from gpugrad.backends import backend_for

    B = backend_for("cuda:0")
    tol = {"float16": 4e-3, "float32": 1e-5, "float64": 1e-12}[dt]
    for (name, gc, ggin, needs), (_, hc, hgin, _) in zip(_chains(cp, dt), _chains(np, dt)):
        before = gg.cuda.counters()["launches"]
        outs, red = fusion.forward(gc, B)
        grads = fusion.backward(gc, ggin, needs, B)
        launches = gg.cuda.counters()["launches"] - before
        assert launches <= 3 + sum(1 for k, g in enumerate(grads) if g is not None and g.shape != gc.shape), name
        want_outs, want_red = fusion.forward(hc)
        want_grads = fusion.backward(hc, hgin, needs)
        for o, w in zip(outs, want_outs):
            assert o.dtype == w.dtype
            np.testing.assert_allclose(_host(o), w, rtol=tol, atol=tol, err_msg=name)
        if want_red is not None:
            assert red.dtype == want_red.dtype and red.shape == ()
            np.testing.assert_allclose(float(_host(red)), float(want_red), rtol=max(tol, 1e-5), err_msg=name)
        for g, w in zip(grads, want_grads):
            assert (g is None) == (w is None), name
            if w is not None:
                assert g.dtype == w.dtype and g.shape == w.shape
                np.testing.assert_allclose(_host(g), w, rtol=tol, atol=tol, err_msg=name)


def test_kernel_sources_compile_with_nvrtc_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUGRAD_FUSION_CACHE", str(tmp_path))
    specs = [(c, tuple(True for _ in gin), tuple(needs)) for _, c, gin, needs in _chains(np, "float32")]
    specs += [(c, None, None) for _, c, _, _ in _chains(np, "float16")]
    kernels = cuda.kernels_for(specs)
    assert len(kernels) == 3 * 2 * 2 + 3 * 2
    for name, src in kernels.items():
        assert f"void {name}(" in src
    # every listed kernel was recorded on disk for the ahead-of-time build
    assert set(cuda.recorded()) == set(kernels)
    if nvrtc.library() is None:
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    from gpugrad.backends import cuda_codegen as cg

    opts = nvrtc.cupy_options(cg.runtime_options(), "75")
    opts = tuple("-arch=compute_75" if o.startswith("-arch=") else o for o in opts)
    unit = '#include "gg_elementwise.cuh"\n' + "".join(s.split("\n", 1)[1] for s in kernels.values())
    ok, log = nvrtc.compile_source(cg.runtime_code(unit), opts)
    assert ok, log[:3000]
