"""The emulated CUDA device itself: it must not accept what real CuPy or a GPU would refuse, and
it must expose what a GPU would (races, divergent barriers, reads of unwritten memory,
out-of-bounds accesses) instead of hiding it.

The stand-in's names are checked against real CuPy's (cupy_api.json, recorded from the
cupy-cuda13x wheel; .ci/run re-records it from the real wheel and fails on any difference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.testing.cuda_emulator import _api, sanitize

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gpu


@pytest.fixture
def cp():
    if not gg.cuda.is_emulated():
        pytest.skip("checks the emulated device (a real GPU is in use)")
    import cupy

    return cupy


# ---- the stand-in has only real CuPy's names, with real CuPy's signatures ---------------------------------
def _public(obj) -> set[str]:
    return {n for n in vars(obj) if not n.startswith("_")} if not isinstance(obj, type) else {
        n for c in obj.__mro__ if c is not object for n in vars(c) if not (n.startswith("_") and not n.startswith("__"))
    }


def test_every_exposed_name_exists_in_real_cupy(cp):
    import cupyx

    mods = {"cupy": cp, "cupy.cuda": cp.cuda, "cupy.cuda.runtime": cp.cuda.runtime, "cupy.linalg": cp.linalg,
            "cupy.fft": cp.fft, "cupy.random": cp.random, "cupyx": cupyx, "cupyx.scipy.special": cupyx.scipy.special,
            "cupy.cuda.compiler": cp.cuda.compiler, "cupy.lib.stride_tricks": cp.lib.stride_tricks}
    for modname, mod in mods.items():
        real = _api.module_names(modname)
        extra = sorted(n for n in _public(mod) if n not in real and n not in ("annotations",))
        assert not extra, f"{modname} exposes names real CuPy lacks: {extra}"
    classes = {"cupy.ndarray": cp.ndarray, "cupy.RawModule": cp.RawModule, "cupy.RawKernel": cp.RawKernel,
               "cupy.cuda.Device": cp.cuda.Device, "cupy.cuda.Stream": cp.cuda.Stream, "cupy.cuda.Event": cp.cuda.Event,
               "cupy.random.RandomState": cp.random.RandomState, "cupy.cuda.MemoryPool": cp.cuda.MemoryPool}
    allowed_dunder = {"__module__", "__slots__", "__dict__", "__weakref__", "__doc__", "__annotations__",
                      "__firstlineno__", "__static_attributes__", "__qualname__"}
    for qual, cls in classes.items():
        real = _api.class_members(qual)
        extra = sorted(n for n in _public(cls) if n not in real and n not in allowed_dunder)
        assert not extra, f"{qual} has members real CuPy's lacks: {extra}"
    # a CuPy name the emulator lacks says so
    with pytest.raises(AttributeError, match="does not implement"):
        cp.fuse  # noqa: B018


def test_calls_are_bound_to_cupys_signatures(cp):
    x = cp.arange(6.0)
    with pytest.raises(TypeError, match="unexpected keyword|CuPy's signature"):
        cp.zeros(3, dtyp=np.float32)
    with pytest.raises(TypeError):
        cp.sum(x, axs=0)
    with pytest.raises(TypeError):
        x.reshape(2, 3, orderr="C")
    with pytest.raises(TypeError):  # options must be a tuple (a Cython-typed argument in CuPy)
        cp.RawModule(code="", options=["-std=c++17"])


def test_behaves_as_cupy_not_as_numpy(cp):
    x = cp.arange(6.0).reshape(2, 3)
    assert type(x).__module__ == "cupy" and type(x).__name__ == "ndarray" and not isinstance(x, np.ndarray)
    s = cp.sum(x)
    assert isinstance(s, cp.ndarray) and s.shape == ()  # 0-d arrays, not NumPy scalars
    assert isinstance(x[0, 1], cp.ndarray) and x[0, 1].shape == ()
    assert isinstance(x.max(), cp.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.add(x, np.ones((2, 3)))
    with pytest.raises(TypeError):
        x + np.ones((2, 3))
    with pytest.raises(TypeError):
        np.ones((2, 3)) + x
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.maximum(x, [1.0, 2.0, 3.0])  # CuPy's ufuncs take no lists
    assert isinstance(np.float32(2) * x, cp.ndarray)  # NumPy scalars are fine
    assert isinstance(np.sum(x), cp.ndarray)  # NumPy's functions dispatch to CuPy's (__array_function__)
    root = cp.arange(6.0)
    y = root.reshape(2, 3).T  # a view of a view: its base is the array that owns the memory, as in CuPy
    assert y.base is root and not y.flags.c_contiguous
    assert x.get().tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert not hasattr(x.flags, "writeable")  # CuPy's flags have no writeable (gpugrad used to ask)


def test_fresh_memory_is_poisoned_and_zeros_are_zero(cp):
    e = cp.empty(5, dtype=np.float32)
    assert np.isnan(e.get()).all()  # a GPU gives whatever was there: never rely on it
    assert (cp.empty(3, dtype=np.int64).get() == -1).all()
    assert (cp.zeros(4).get() == 0).all()


def test_counters_count_launches_bytes_and_syncs(cp):
    from gpugrad.testing import cuda_emulator

    x = cp.ones(1000, dtype=np.float32)
    cuda_emulator.reset_counters()
    y = x * 2  # one kernel: reads 4000 bytes, writes 4000
    z = y.reshape(10, 100)  # a view: no kernel
    assert cuda_emulator.counters()["launches"] == 1 and cuda_emulator.counters()["bytes"] == 8000
    float(z[0, 0])
    y.get()
    assert cuda_emulator.counters()["syncs"] == 2
    gg.cuda.reset_counters()
    assert gg.cuda.counters() == {"launches": 0, "bytes": 0, "syncs": 0, "compilations": 0}


# ---- kernels: CUDA's launch rules and argument types --------------------------------------------------------
KERNELS = r'''
extern "C" __global__ void axpy(float* y, const float* x, float a, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}
extern "C" __global__ void count(float* total) { atomicAdd(total, 1.0f); }
extern "C" __global__ void shared_unwritten(float* y) {
    __shared__ float buf[64];
    if (threadIdx.x < 32) buf[threadIdx.x] = 1.0f;
    __syncthreads();
    y[threadIdx.x] = buf[threadIdx.x];  // threads 32..63 read what nobody wrote
}
extern "C" __global__ void divergent(float* y) {
    if (threadIdx.x == 5) return;  // returns while the others wait below
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}
'''


@pytest.fixture
def module(cp):
    return cp.RawModule(code=KERNELS)


def test_launch_rules_of_cuda_and_cupy(cp, module):
    from gpugrad.testing.cuda_emulator._kernels import LaunchError

    k = module.get_function("axpy")
    y, x = cp.zeros(100, dtype=np.float32), cp.ones(100, dtype=np.float32)
    k((1,), (128,), (y, x, np.float32(2.0), np.int64(100)))
    assert (y.get() == 2.0).all()
    with pytest.raises(TypeError, match="expected tuple"):
        k(1, (128,), (y, x, np.float32(2.0), np.int64(100)))
    with pytest.raises(LaunchError, match="at most 1024"):
        k((1,), (2048,), (y, x, np.float32(2.0), np.int64(100)))
    with pytest.raises(LaunchError, match="at most 1024"):
        k((1,), (64, 32), (y, x, np.float32(2.0), np.int64(100)))
    with pytest.raises(LaunchError, match="shared memory"):
        k((1,), (128,), (y, x, np.float32(2.0), np.int64(100)), shared_mem=100_000)
    with pytest.raises(LaunchError, match="3 arguments for 4 parameters"):
        k((1,), (128,), (y, x, np.float32(2.0)))
    # C types are checked by type, not size: a Python float is a double, a Python int an int64
    with pytest.raises(TypeError, match="double.*parameter is float"):
        k((1,), (128,), (y, x, 2.0, np.int64(100)))
    with pytest.raises(TypeError, match="double.*parameter is long long"):
        k((1,), (128,), (y, x, np.float32(2.0), np.float64(100)))
    with pytest.raises(TypeError, match="double\\*.*parameter is float\\*"):
        k((1,), (128,), (y, cp.ones(100), np.float32(2.0), np.int64(100)))
    with pytest.raises(TypeError, match="Only numpy.ndarrays of size one"):
        k((1,), (128,), (y, np.ones(100, np.float32), np.float32(2.0), np.int64(100)))
    with pytest.raises(LaunchError, match="named symbol not found"):
        module.get_function("nope")


def test_atomics_are_real_in_concurrent_threads(cp, module, monkeypatch):
    from gpugrad.testing.cuda_emulator import _kernels

    for threads in ("fibers", "os"):
        monkeypatch.setattr(_kernels.Config, "threads", threads)
        mod = cp.RawModule(code=KERNELS + f"// {threads}\n")
        total = cp.zeros(1, dtype=np.float32)
        mod.get_function("count")((3,), (256,), (total,))
        assert total.get()[0] == 768.0


def test_shared_memory_is_poisoned_before_each_block(cp, module):
    y = cp.zeros(64, dtype=np.float32)
    module.get_function("shared_unwritten")((2,), (64,), (y,))
    got = y.get()
    assert (got[:32] == 1.0).all() and np.isnan(got[32:]).all()


@pytest.mark.parametrize("threads", ["fibers", "os"])
def test_a_divergent_barrier_is_reported_not_hung(cp, threads, monkeypatch):
    from gpugrad.testing.cuda_emulator import _kernels

    monkeypatch.setattr(_kernels.Config, "threads", threads)
    mod = cp.RawModule(code=KERNELS + f"// {threads}\n")
    with pytest.raises(_kernels.LaunchError, match="divergent __syncthreads"):
        mod.get_function("divergent")((1,), (32,), (cp.zeros(32, dtype=np.float32),))


def test_a_barrier_in_a_sequentially_run_kernel_is_reported(cp, tmp_path):
    """Prebuilt barrier-free kernels (GG_EMU_EXPORT_SEQ) run their threads one after another; a
    __syncthreads there cannot be honoured and is reported instead of silently doing nothing."""
    import ctypes

    from gpugrad.backends.cuda_codegen import kernels_dir
    from gpugrad.testing.cuda_emulator import _kernels

    src = tmp_path / "k.cpp"
    src.write_text('#include "gg_host_emu.h"\nextern "C" __global__ void k(float* y) { __syncthreads(); '
                   'y[threadIdx.x] = 1; }\nGG_EMU_EXPORT_SEQ(k)\n')
    lib = tmp_path / "k.so"
    subprocess.run(["g++", "-std=c++20", "-shared", "-fPIC", "-pthread", f"-I{kernels_dir()}", str(src), "-o",
                    str(lib)], check=True)
    kernel = cp.RawKernel("", "k")
    kernel._native = _kernels._Native(ctypes.CDLL(str(lib)), "k")
    with pytest.raises(_kernels.LaunchError, match="sequential mode"):
        kernel((1,), (8,), (cp.zeros(8, dtype=np.float32),))


def test_source_that_nvrtc_rejects_is_rejected(cp):
    from gpugrad.testing.cuda_emulator import nvrtc

    if nvrtc.library() is None:
        pytest.skip("NVRTC is not installed")
    with pytest.raises(cp.cuda.compiler.CompileException, match="cuda_fp16.h"):
        cp.RawModule(code='#include <cuda_fp16.h>\nextern "C" __global__ void k(__half* x) {}\n').get_function("k")


def test_float16_scatter_add_touches_only_its_elements(cp):
    """Odd-length float16 gradients: the atomic add stays inside the array (the sanitizer run
    below checks the same under AddressSanitizer)."""
    from gpugrad.backends import backend_for

    B = backend_for("cuda:0")
    vals = cp.asarray(np.arange(15, dtype=np.float16).reshape(5, 3))
    out = B.index_scatter(vals, (5, 3), (cp.asarray(np.array([4, 4, 0, 1, 4])),))
    want = np.zeros((5, 3), np.float32)
    np.add.at(want, np.array([4, 4, 0, 1, 4]), np.arange(15, dtype=np.float32).reshape(5, 3))
    np.testing.assert_array_equal(out.get().astype(np.float32), want)


# ---- the sanitizer runs: clean on gpugrad's kernels, and each one catches a broken kernel ----------------
def _sanitized(kind: str, code: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = sanitize.environment(kind)
    env["GPUGRAD_CUDA_EMULATOR"] = str(ROOT / "build" / "kernels") if (ROOT / "build" / "kernels" /
                                                                       "emu_index.json").is_file() else "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


_BROKEN = '''
import numpy as np, gpugrad, cupy as cp
src = r"""
extern "C" __global__ void off_by_one(float* x, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) x[i] = 1.0f;  // writes x[n]
}
extern "C" __global__ void racy(float* total) {
    total[0] += 1.0f;  // every thread, no atomicAdd
}
"""
m = cp.RawModule(code=src)
KERNEL_CALL
print("kernel ran")
'''


@pytest.mark.parametrize("kind,call,report", [
    ("address", 'x = cp.zeros(10, dtype=np.float32); m.get_function("off_by_one")((1,), (32,), (x, np.int64(10)))',
     "AddressSanitizer: heap-buffer-overflow"),
    ("thread", 'y = cp.zeros(64, dtype=np.float32); m.get_function("racy")((1,), (64,), (y,))',
     "ThreadSanitizer: data race"),
])
def test_each_sanitizer_catches_a_broken_kernel(cp, kind, call, report):
    proc = _sanitized(kind, _BROKEN.replace("KERNEL_CALL", call))
    assert proc.returncode != 0 and report in proc.stderr, proc.stderr[-3000:]


_CLEAN = '''
import numpy as np, gpugrad as gg, cupy as cp
from gpugrad.backends import backend_for
B = backend_for("cuda:0")
rng = np.random.default_rng(0)
for dt in (np.float16, np.float32, np.float64):
    x = cp.asarray(rng.standard_normal((5, 3)).astype(dt))
    B.index_scatter(x, (5, 3), (cp.asarray(np.array([4, 4, 0, 1, 4])),))      # odd float16 sizes
    B.take_scatter(x, (2, 3), cp.asarray(np.array([1, 0, 1, 1, 0])), 0)
    B.sum(x, 0), B.sum(x, 1), B.mean(x, None)
    for ax in (0, 1):
        y = B.softmax(x, ax); B.softmax_backward(x, y, ax)
        y = B.log_softmax(x, ax); B.log_softmax_backward(x, y, ax)
    labels = cp.asarray(np.array([0, 2, 1, -100, 2]))
    loss, stats = B.cross_entropy_logits(x, labels, -100, 0.1)
    B.cross_entropy_logits_backward(cp.asarray(np.asarray(1.0, dt)), x, labels, stats, -100, 0.1)
    for rule, state, hyper in [
        ("sgd", {"buf": None}, dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, first=True)),
        ("adam", {"exp_avg": cp.zeros(15, np.float64 if dt == np.float64 else np.float32),
                  "exp_avg_sq": cp.zeros(15, np.float64 if dt == np.float64 else np.float32), "max_exp_avg_sq": None},
         dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=True, step=1))]:
        B.optimizer_step(rule, x.reshape(-1).copy(), x.reshape(-1).copy(), state, hyper)
w = gg.randn(7, 5, dtype=gg.float64, device="cuda", requires_grad=True)
loss = gg.log_softmax(gg.tanh(w @ w.T), axis=1).sum() + (w[np.array([0, 3, 3])] ** 2).sum()
loss.backward()
print("clean", float(loss))
'''


@pytest.mark.parametrize("kind", ["address", "thread"])
def test_gpugrads_kernels_are_clean_under_each_sanitizer(cp, kind):
    proc = _sanitized(kind, _CLEAN, timeout=900)
    assert proc.returncode == 0 and "clean" in proc.stdout and "Sanitizer" not in proc.stderr, proc.stderr[-3000:]


def test_the_recorded_api_is_cupy_cuda13x():
    api = json.loads((Path(_api.__file__).with_name("cupy_api.json")).read_text())
    assert api["cupy_version"].startswith("14.") and len(api["modules"]["cupy"]) > 400
