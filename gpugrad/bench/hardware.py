"""What the run ran on, and the two ceilings measured in the same run.

* the copy bandwidth: a large device-to-device copy (a host memcpy on the CPU), counting bytes
  read plus bytes written;
* the library matmul rate: a large square matrix product through cuBLAS (CuPy) on a GPU, or
  NumPy's BLAS on the CPU, per dtype, on random (not zero) operands.

Example::

    info = device_info("cpu")            # {"kind": "cpu", "name": "AMD EPYC", ...}
    copy_bandwidth("cpu", quick=True)    # bytes per second
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def thread_info() -> dict[str, Any]:
    """Logical CPUs, the threading variables set, and each thread pool's size (threadpoolctl,
    when installed, sees BLAS and OpenMP pools; PyTorch's is read when torch is imported)."""
    info: dict[str, Any] = {"cpus": os.cpu_count()}
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "XLA_FLAGS") if k in os.environ}
    if env:
        info["env"] = env
    try:
        from threadpoolctl import threadpool_info

        info["pools"] = [{"api": p.get("user_api"), "impl": p.get("internal_api"),
                          "threads": p.get("num_threads"), "version": p.get("version"),
                          "library": os.path.basename(os.path.dirname(p.get("filepath", "")))}
                         for p in threadpool_info()]
    except ImportError:
        info["pools"] = None
        info["pools_note"] = "threadpoolctl not installed: BLAS thread count unknown"
    import sys

    if "torch" in sys.modules:
        try:
            info["torch_threads"] = sys.modules["torch"].get_num_threads()
        except Exception:
            pass
    return info


def threads_summary(info: dict[str, Any]) -> str:
    """One line: ``2 CPUs; blas openblas 2 threads; torch 2 threads``."""
    parts = [f"{info.get('affinity', info.get('cpus'))} CPUs"]
    for p in info.get("pools") or []:
        where = f" ({p['library']})" if p.get("library") else ""
        parts.append(f"{p['impl']}{where} {p['threads']} threads")
    if info.get("pools") is None:
        parts.append("BLAS threads unknown (no threadpoolctl)")
    if "torch_threads" in info:
        parts.append(f"torch {info['torch_threads']} threads")
    return "; ".join(parts)


def no_gpu_reason() -> str | None:
    """None when a GPU is usable through CuPy; otherwise what is missing."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'gpugrad[cuda]')"
    except Exception as exc:
        return f"CuPy failed to import ({exc.__class__.__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no usable GPU ({exc.__class__.__name__}: {exc})"
    if n == 0:
        return "no GPU found"
    return None


def emulated() -> bool:
    """True when the CUDA device is gpugrad's emulated one (gpugrad.testing.cuda_emulator)."""
    import gpugrad

    return gpugrad.cuda.is_emulated()


def gpu_info(index: int = 0) -> dict[str, Any]:
    """Name, memory, compute capability, driver and runtime versions of GPU ``index`` (CuPy)."""
    import cupy

    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(index)
    name = props.get("name", b"?")
    name = name.decode() if isinstance(name, bytes) else str(name)

    def cuda_version(v: int) -> str:
        return f"{v // 1000}.{(v % 1000) // 10}"

    info: dict[str, Any] = {
        "kind": "cuda",
        "index": index,
        "name": name,
        "memory_bytes": int(props.get("totalGlobalMem", 0)),
        "compute_capability": f"{props.get('major', '?')}.{props.get('minor', '?')}",
        "multiprocessors": props.get("multiProcessorCount"),
        "l2_bytes": props.get("l2CacheSize"),
        "cuda_driver": cuda_version(rt.driverGetVersion()),
        "cuda_runtime": cuda_version(rt.runtimeGetVersion()),
    }
    if emulated():
        info["emulated"] = True
        return info
    driver = _nvidia_driver()
    if driver:
        info["driver"] = driver
    return info


def _nvidia_driver() -> str | None:
    """The NVIDIA kernel driver's version (from /proc or nvidia-smi), or None."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            first = f.readline()
        for tok in first.split():
            if tok.count(".") >= 1 and tok.replace(".", "").isdigit():
                return tok
    except OSError:
        pass
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except Exception:
            return None
    return None


def device_info(device: str) -> dict[str, Any]:
    """Everything the JSON records about the run's device (CPU facts always included)."""
    info: dict[str, Any] = {"kind": "cpu", "name": cpu_model(), "cpu_model": cpu_model(),
                            "platform": platform.platform()}
    if device.startswith("cuda"):
        gpu = gpu_info(int(device.split(":")[1]))
        gpu["cpu_model"] = info["cpu_model"]
        gpu["platform"] = info["platform"]
        return gpu
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_bytes"] = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return info


def _median_time(fn: Any, reps: int, sync: Any = None) -> float:
    times = []
    for _ in range(reps):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def copy_bandwidth(device: str, quick: bool = False) -> dict[str, Any]:
    """Bytes per second of a large copy on ``device``, read plus written (2 x the buffer size).

    GPU: ``cudaMemcpyAsync`` device to device through CuPy, timed with CUDA events, 1 GiB
    (256 MiB with ``quick``), median of 20 after 3 warm-ups. CPU: ``numpy.copyto`` of 256 MiB
    (64 MiB), median of 9 (5).
    """
    if device.startswith("cuda"):
        import cupy

        index = int(device.split(":")[1])
        nbytes = (256 if quick else 1024) << 20
        with cupy.cuda.Device(index):
            src = cupy.random.random(nbytes // 4, dtype=cupy.float32)
            dst = cupy.empty_like(src)
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            times = []
            for i in range(23):
                cupy.cuda.Device(index).synchronize()
                start.record()
                dst.data.copy_from_device_async(src.data, src.nbytes)
                end.record()
                end.synchronize()
                if i >= 3:
                    times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
            del src, dst
            cupy.get_default_memory_pool().free_all_blocks()
        t = float(np.median(times))
        return {"bytes_per_s": 2 * nbytes / t, "buffer_bytes": nbytes, "method": "cudaMemcpyAsync D2D (CuPy), events"}
    nbytes = (64 if quick else 256) << 20
    src = np.random.default_rng(0).random(nbytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t = _median_time(lambda: np.copyto(dst, src), 5 if quick else 9)
    return {"bytes_per_s": 2 * nbytes / t, "buffer_bytes": nbytes, "method": "numpy.copyto, perf_counter"}


def matmul_rate(device: str, dtype: str, quick: bool = False) -> dict[str, Any]:
    """FLOP/s of large square matmuls in ``dtype`` through the device's BLAS: the best of two
    sizes (a BLAS's best size varies), each the median of several runs on random operands.

    GPU: ``cupy.matmul`` (cuBLAS) at n=4096 and 8192 (4096 alone with ``quick``), CUDA events,
    median of 10. CPU: ``numpy.matmul`` at n=1024 and 2048 (512 and 1024), median of 5 (3).
    float16 is not measured on the CPU (NumPy has no float16 BLAS).
    """
    if device.startswith("cuda"):
        sizes = [4096] if quick else [4096, 8192]
        rates = {n: _gpu_matmul(device, dtype, n) for n in sizes}
        method = "cupy.matmul (cuBLAS), events"
    elif np.dtype(dtype) == np.float16:
        return {"flop_per_s": None, "n": None, "method": "not measured: NumPy has no float16 BLAS"}
    else:
        sizes = [512, 1024] if quick else [1024, 2048]
        rates = {n: _cpu_matmul(dtype, n, 3 if quick else 5) for n in sizes}
        method = "numpy.matmul (BLAS), perf_counter"
    best = max(rates, key=lambda n: rates[n])
    return {"flop_per_s": rates[best], "n": best, "by_size": {str(n): r for n, r in rates.items()},
            "method": method}


def _cpu_matmul(dtype: str, n: int, reps: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = a @ b
    return 2 * n**3 / _median_time(lambda: np.matmul(a, b, out=c), reps)


def _gpu_matmul(device: str, dtype: str, n: int) -> float:
    import cupy

    index = int(device.split(":")[1])
    with cupy.cuda.Device(index):
        rs = cupy.random.RandomState(0)
        a = rs.standard_normal((n, n), dtype=cupy.float32).astype(dtype)
        b = rs.standard_normal((n, n), dtype=cupy.float32).astype(dtype)
        c = cupy.matmul(a, b)
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        times = []
        for i in range(13):
            cupy.cuda.Device(index).synchronize()
            start.record()
            cupy.matmul(a, b, out=c)
            end.record()
            end.synchronize()
            if i >= 3:
                times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
        del a, b, c
        cupy.get_default_memory_pool().free_all_blocks()
    return 2 * n**3 / float(np.median(times))
