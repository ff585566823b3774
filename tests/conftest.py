"""Shared test configuration: hypothesis profiles, and the ``gpu`` marker's device.

Tests marked ``gpu`` run on a real GPU when CuPy sees one, else on the emulated CUDA device
(:mod:`gpugrad.testing.cuda_emulator`): the real CUDA backend and the real kernels, compiled for
the host. Its prebuilt kernels come from the CMake build in ``build/`` (``.ci/run`` makes it);
when that is missing, the session builds the host libraries (``cmake --build build --target
gg_emu gg_host``, about a minute on 2 cores) or, without cmake, compiles each kernel on first use.
``GPUGRAD_TEST_DEVICE=none`` skips the ``gpu`` tests instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

# The suite makes thousands of distinct fused chains, most run once: compiling each (host code,
# or a CUDA kernel built for the emulated device) would cost more than the suite, so they run op
# by op (fusion's rule). The compiled passes are tested where they are the subject
# (tests/test_fusion_*.py; the `compiled_fusion` fixture below).
os.environ.setdefault("GPUGRAD_FUSION_CPU_MIN_ELEMENTS", str(1 << 24))
os.environ.setdefault("GPUGRAD_FUSION_CPU_MIN_OPS", "1000")
os.environ.setdefault("GPUGRAD_FUSION_CUDA", "0")
# Likewise an op's compiled backward (gpugrad.fusion.host_vjp) and forward (host_forward): their
# own tests lower the bar.
os.environ.setdefault("GPUGRAD_HOST_VJP_MIN_ELEMENTS", str(1 << 24))
os.environ.setdefault("GPUGRAD_HOST_FORWARD_MIN_ELEMENTS", str(1 << 24))
# Chains the CPU replays op by op are not learned as ones to run at once: the suite keeps testing
# fusion's semantics on every chain (tests/test_fusion_eager.py tests the learning itself).
os.environ.setdefault("GPUGRAD_FUSION_LEARN", "0")


@pytest.fixture
def compiled_fusion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fused chain runs as the fusion compiler's passes (host code, CUDA kernels)."""
    from gpugrad.fusion import host, kernels

    monkeypatch.setattr(kernels.Settings, "cpu_min_elements", 0)
    monkeypatch.setattr(kernels.Settings, "cpu_min_elements_cheap", 0)
    monkeypatch.setattr(kernels.Settings, "cuda", True)
    monkeypatch.setattr(host.Settings, "compile_after", 1)

# CI runs on 2 cores: keep example counts modest; GPUGRAD_HYPOTHESIS=thorough explores more.
settings.register_profile(
    "ci", max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("GPUGRAD_HYPOTHESIS", "ci"))

GPU_DEVICE: dict[str, str] = {"kind": "none", "why": ""}


def _real_gpu() -> bool:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:
        return False


def _build_host_kernels() -> Path | None:
    """build/kernels with the emulator's prebuilt kernels, built now if cmake is there."""
    env = os.environ.get("GPUGRAD_HOST_LIB_DIR")
    out = Path(env) if env else ROOT / "build" / "kernels"
    if (out / "emu_index.json").is_file() and (out / "libgg_emu.so").is_file():
        return out
    if env or shutil.which("cmake") is None or not (ROOT / "CMakeLists.txt").is_file():
        return None
    build = ROOT / "build"
    print("\ngpugrad tests: building the host kernel libraries for the emulated CUDA device (cmake) ...",
          file=sys.stderr, flush=True)
    try:
        if not (build / "CMakeCache.txt").is_file():
            subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}",
                            "-DGPUGRAD_BUILD_FATBINS=OFF"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "gg_emu", "gg_host", "-j2"], check=True,
                       capture_output=True)
    except subprocess.CalledProcessError as exc:
        print(f"gpugrad tests: the CMake build failed:\n{exc.stderr.decode()[-2000:]}", file=sys.stderr)
        return None
    return out if (out / "emu_index.json").is_file() else None


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("GPUGRAD_TEST_DEVICE") == "none":
        GPU_DEVICE.update(kind="none", why="GPUGRAD_TEST_DEVICE=none")
        return
    if os.environ.get("GPUGRAD_CUDA_EMULATOR"):
        GPU_DEVICE.update(kind="emulated")
        return  # already on (gpugrad switched it on at import)
    if _real_gpu():
        GPU_DEVICE.update(kind="gpu")
        return
    from gpugrad.testing import cuda_emulator

    kernels = _build_host_kernels()
    if kernels is None and shutil.which(os.environ.get("CXX", "g++")) is None:
        GPU_DEVICE.update(kind="none", why="no GPU, and no C++ compiler to build the emulated CUDA device's kernels")
        return
    cuda_emulator.enable(kernels)
    GPU_DEVICE.update(kind="emulated", kernels=str(kernels or "compiled on first use"))


def pytest_report_header(config: pytest.Config) -> str:
    kind = GPU_DEVICE["kind"]
    if kind == "emulated":
        return f"gpu tests: on the emulated CUDA device (kernels: {GPU_DEVICE.get('kernels', 'build/kernels')})"
    if kind == "gpu":
        return "gpu tests: on the GPU"
    return f"gpu tests: skipped ({GPU_DEVICE['why']})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if GPU_DEVICE["kind"] != "none":
        return
    skip = pytest.mark.skip(reason=f"needs a GPU or the emulated CUDA device: {GPU_DEVICE['why']}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


_GPU_COUNTS = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "gpu" in report.keywords and (report.when == "call" or report.outcome == "skipped"):
        _GPU_COUNTS[report.outcome] = _GPU_COUNTS.get(report.outcome, 0) + 1


@pytest.fixture
def no_cuda():
    """A machine without CuPy or a GPU for the duration of a test (the emulated device off)."""
    from gpugrad.backends import _BACKENDS
    from gpugrad.testing import cuda_emulator
    from gpugrad.testing.cuda_emulator import _kernels

    was_on, kernel_dir = cuda_emulator.is_enabled(), _kernels.Config.kernel_dir
    cuda_emulator.disable()
    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if k.split(".")[0] in ("cupy", "cupyx")]}
    sys.modules["cupy"] = None  # import cupy raises ImportError
    try:
        yield
    finally:
        del sys.modules["cupy"]
        sys.modules.update(saved)
        for key in [k for k in _BACKENDS if k != "cpu"]:
            del _BACKENDS[key]
        if was_on:
            cuda_emulator.enable(kernel_dir)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


TORCH_CPU_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def _skipped_for_torch(report: pytest.TestReport) -> bool:
    """A test skipped by ``pytest.importorskip("torch")`` (a comparison with PyTorch)."""
    longrepr = report.longrepr
    return isinstance(longrepr, tuple) and len(longrepr) == 3 and "could not import 'torch'" in str(longrepr[2])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> Any:
    """Lines after pytest's own summary: where the ``gpu`` tests ran, and how many PyTorch
    comparisons were skipped and how to run them."""
    yield
    where = {"emulated": "on the emulated CUDA device", "gpu": "on the GPU"}.get(GPU_DEVICE["kind"], "nowhere")
    c = _GPU_COUNTS
    terminalreporter.write_line(f"gpu-marked tests {where}: {c['passed']} passed, {c['failed']} failed, "
                                f"{c['skipped']} skipped")
    skipped = sum(1 for r in terminalreporter.stats.get("skipped", []) if _skipped_for_torch(r))
    if skipped:
        terminalreporter.write_line(f"{skipped} tests that compare with PyTorch were skipped because PyTorch is not "
                                    f"installed; to run them: {TORCH_CPU_INSTALL}", yellow=True)
