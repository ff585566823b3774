"""NVRTC, the CUDA run-time compiler, through ctypes: compile CUDA source exactly as CuPy's
``RawModule`` has NVRTC compile it, without a GPU and without CUDA toolkit headers.

A ``pip install cupy-cuda13x`` user has NVRTC (the ``nvidia-cuda-nvrtc`` wheel) but no toolkit
headers, so every source gpugrad compiles at run time must compile with NVRTC alone. This
module finds that NVRTC (``$GPUGRAD_NVRTC``, else the ``nvidia-cuda-nvrtc`` wheel, else the
system's ``libnvrtc.so``) and compiles with the options CuPy adds (:func:`cupy_options`).

Example::

    from gpugrad.testing.cuda_emulator import nvrtc
    ok, log = nvrtc.compile_source('extern "C" __global__ void k(float* x) { x[0] = 1; }', ())
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import cache
from pathlib import Path

# The architectures the checks compile for: the oldest CUDA 13 supports and the data-centre GPUs
# gpugrad is tuned for (CuPy passes -arch=sm_<the GPU's compute capability>).
ARCHS = ("75", "90")


@cache
def library() -> ctypes.CDLL | None:
    """The NVRTC shared library, or None when none is installed."""
    candidates = []
    env = os.environ.get("GPUGRAD_NVRTC")
    if env:
        candidates.append(env)
    try:
        import nvidia  # the namespace package of NVIDIA's pip wheels

        for base in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(base, "*", "lib", "libnvrtc.so*")), reverse=True)
            candidates += sorted(glob.glob(os.path.join(base, "cuda_nvrtc", "lib", "libnvrtc.so*")), reverse=True)
    except ImportError:
        pass
    candidates += ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]
    for c in candidates:
        if "builtins" in c:
            continue
        try:
            lib = ctypes.CDLL(c)
        except OSError:
            continue
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        return lib
    return None


def location() -> str | None:
    lib = library()
    return None if lib is None else lib._name


def version() -> tuple[int, int] | None:
    lib = library()
    if lib is None:
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def cupy_options(user_options: tuple, arch: str) -> tuple[str, ...]:
    """The options CuPy's ``RawModule(code=..., options=user_options)`` passes to NVRTC on a GPU
    of compute capability ``arch`` (cupy/_core/_compile_with_cache.pyx and cupy/cuda/compiler.py,
    CuPy 14): the user's options, ``--std=c++14`` unless they name a standard, ``-ftz=true``,
    ``-arch=sm_<arch>`` and ``--device-as-default-execution-space``. CuPy also adds its own
    bundled include folders (CCCL, cupy/_core/include) and ``$CUDA_PATH/include`` when a toolkit
    is installed; gpugrad's kernels include none of those, and a pip-only user has no toolkit."""
    opts = tuple(user_options)
    if not any("-std=" in o for o in opts):
        opts += ("--std=c++14",)
    return opts + ("-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space")


def compile_source(source: str, options: tuple, name: str = "kern.cu") -> tuple[bool, str]:
    """Compile ``source`` with ``options`` (exactly as given). Returns (success, compiler log)."""
    lib = library()
    if lib is None:
        raise RuntimeError("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if rc:
        raise RuntimeError(f"nvrtcCreateProgram: {lib.nvrtcGetErrorString(rc).decode()}")
    try:
        opts = [o.encode() for o in options]
        arr = (ctypes.c_char_p * max(1, len(opts)))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value + 1)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        if rc:
            return False, f"{lib.nvrtcGetErrorString(rc).decode()}\n{log}"
        return True, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def include_dirs(options: tuple) -> list[Path]:
    out = []
    for o in options:
        if o.startswith("-I"):
            out.append(Path(o[2:]))
        elif o.startswith("--include-path="):
            out.append(Path(o.split("=", 1)[1]))
    return out
