"""Every CUDA source gpugrad compiles at run time compiles with NVRTC alone.

A ``pip install cupy-cuda13x`` user has NVRTC (the ``nvidia-cuda-nvrtc`` wheel, part of the
``test`` extra) but no CUDA toolkit headers. So every source the CUDA backend hands to
``cupy.RawModule`` is compiled here exactly as CuPy's RawModule has NVRTC compile it (CuPy's
options: gpugrad.testing.cuda_emulator.nvrtc.cupy_options), without a GPU:

* every elementwise kernel variant the backend can request (all ops, float16/32/64, every
  operand pattern and layout, forward and backward), in the translation units CMake builds,
  to PTX (``-arch=compute_75``: the whole front end; ptxas adds nothing for them);
* the hand-written kernels (reductions, softmax, cross-entropy, scatter-add, optimiser steps)
  with CuPy's exact options for sm_75 and sm_90, the run through ptxas included (they hold the
  inline PTX);
* and a source including ``cuda_fp16.h`` fails, as it does for such a user.

CI installs the wheel and sets GPUGRAD_REQUIRE_NVRTC=1, so these never skip there.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from gpugrad.backends import cuda_codegen as cg
from gpugrad.testing.cuda_emulator import nvrtc

if os.environ.get("GPUGRAD_REQUIRE_NVRTC") and nvrtc.library() is None:
    raise RuntimeError("GPUGRAD_REQUIRE_NVRTC is set but NVRTC was not found (pip install nvidia-cuda-nvrtc)")
pytestmark = pytest.mark.skipif(nvrtc.library() is None,
                                reason="NVRTC is not installed (pip install nvidia-cuda-nvrtc; the test extra has it)")


def _compile(code: str, arch: str, ptx_only: bool = False) -> tuple[bool, str]:
    opts = nvrtc.cupy_options(cg.runtime_options(), arch)
    if ptx_only:
        opts = tuple(f"-arch=compute_{arch}" if o.startswith("-arch=") else o for o in opts)
    return nvrtc.compile_source(cg.runtime_code(code), opts)


def test_every_elementwise_variant_compiles_with_nvrtc_alone():
    units = cg.elementwise_units()
    n_kernels = sum(len(k) for _, _, k in units)
    assert n_kernels > 1000
    # NVRTC releases the GIL: two programs at a time on CI's two cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda u: (u[0], *_compile(u[1], "75", ptx_only=True)), units))
    failed = [f"{unit}:\n{log[:3000]}" for unit, ok, log in results if not ok]
    assert not failed, "\n".join(failed)
    # each unit holds exactly the variants that the backend compiles one by one
    for _, text, kernels in units:
        for kname, standalone in kernels:
            assert f"void {kname}(" in text and f"void {kname}(" in standalone


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("filename", sorted(cg.HANDWRITTEN))
def test_handwritten_kernels_compile_with_cupys_exact_options(filename, arch):
    ok, log = _compile(cg.handwritten_source(filename), arch)
    assert ok, log


def test_one_standalone_variant_per_dtype_compiles_as_the_backend_compiles_it():
    """What the backend hands to RawModule for one kernel (not a whole unit) compiles too."""
    for unit, _, kernels in cg.elementwise_units()[::4]:
        kname, standalone = kernels[-1]
        ok, log = _compile(standalone, "90")
        assert ok, f"{kname} ({unit}): {log}"


def test_a_toolkit_header_does_not_compile_with_nvrtc_alone():
    """The check would catch the mistake it exists for (kernels/optim.cu once included this)."""
    ok, log = _compile('#include <cuda_fp16.h>\nextern "C" __global__ void k(__half* x) {}\n', "75")
    assert not ok and "cuda_fp16.h" in log
