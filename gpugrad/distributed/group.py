"""The process group of this job: created by ``init``, read by every collective, ended by ``destroy``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from gpugrad.distributed import launcher
from gpugrad.distributed.deadline import resolve_timeout
from gpugrad.distributed.errors import DistributedError
from gpugrad.errors import ArgumentError

BACKENDS = ("mpi", "nccl")


@dataclass
class Group:
    """Who this process is in the job, and the backends that carry its collectives."""

    backend: str  # "mpi", "nccl", or "local" (one process without a launcher)
    rank: int
    world_size: int
    local_rank: int
    local_size: int
    launcher: str | None
    timeout: float
    mpi: Any = None  # MpiBackend: CPU tensors, and CUDA tensors unless NCCL carries them
    nccl: Any = None  # NcclBackend, with backend="nccl"
    previous_excepthook: Any = None

    def backend_for(self, device: str) -> Any:
        if self.nccl is not None and device != "cpu":
            return self.nccl
        return self.mpi


_GROUP: Group | None = None


def init(backend: str | None = None, *, timeout: float | None = None, device: str | None = None) -> None:
    """Join the job that started this process (see gpugrad.distributed's docstring)."""
    global _GROUP
    if backend is not None and backend not in BACKENDS:
        raise ArgumentError(f"init: backend must be one of {', '.join(BACKENDS)} or None, got {backend!r}")
    if _GROUP is not None:
        if backend is not None and backend != _GROUP.backend and _GROUP.backend != "local":
            raise DistributedError(f"init: already initialised with backend {_GROUP.backend!r}; call destroy() "
                                   f"before init(backend={backend!r})")
        return
    seconds = resolve_timeout(timeout)
    launch = launcher.detect()
    if launch is None:
        _GROUP = Group("local", 0, 1, 0, 1, None, seconds)
        return
    from gpugrad.distributed.mpi_backend import MpiBackend

    mpi = MpiBackend(seconds)
    if (mpi.rank, mpi.world_size) != (launch.rank, launch.world_size):
        mpi.close()
        raise DistributedError(
            f"{launch.launcher} says rank {launch.rank} of {launch.world_size} but MPI says rank {mpi.rank} of "
            f"{mpi.world_size}: mpi4py was built for a different MPI than the mpirun that started this process "
            "(use the mpirun of the MPI that mpi4py uses; see mpi4py.get_config())"
        )
    group = Group(backend or "mpi", mpi.rank, mpi.world_size, launch.local_rank, launch.local_size,
                  launch.launcher, seconds, mpi)
    if backend == "nccl":
        from gpugrad.distributed.nccl_backend import NcclBackend

        try:
            group.nccl = NcclBackend(mpi, device or default_device(group, require_cuda=True), seconds)
        except BaseException:
            mpi.close()
            raise
    if group.world_size > 1:
        group.previous_excepthook = sys.excepthook
        sys.excepthook = _abort_job_on_uncaught_exception
    _GROUP = group


def current(what: str) -> Group:
    """The group, or DistributedError when ``init`` has not been called."""
    if _GROUP is None:
        raise DistributedError(f"{what}: gpugrad.distributed is not initialised; call gpugrad.distributed.init() "
                               "first (it works with and without mpirun)")
    return _GROUP


def is_initialized() -> bool:
    return _GROUP is not None


def destroy() -> None:
    """Leave the group (free its communicators); ``init`` may be called again afterwards."""
    global _GROUP
    group, _GROUP = _GROUP, None
    if group is None:
        return
    if group.previous_excepthook is not None and sys.excepthook is _abort_job_on_uncaught_exception:
        sys.excepthook = group.previous_excepthook
    if group.nccl is not None:
        group.nccl.close()
    if group.mpi is not None:
        group.mpi.close()


def default_device(group: Group, require_cuda: bool = False) -> str:
    """``cuda:<local rank modulo the GPUs present>`` when a GPU is usable, else ``cpu``."""
    from gpugrad.backends.cuda_runtime import device_count

    count = device_count()
    if count == 0:
        if require_cuda:
            from gpugrad.backends.cuda_runtime import require_device

            require_device(0)  # raises DeviceError saying what is missing
        return "cpu"
    return f"cuda:{group.local_rank % count}"


def _abort_job_on_uncaught_exception(exc_type: Any, exc: Any, tb: Any) -> None:
    """An uncaught exception on one rank ends every rank (MPI_Abort), as ``python -m mpi4py``
    does, instead of leaving the others waiting for it in their next collective."""
    group = _GROUP
    previous = group.previous_excepthook if group is not None else sys.__excepthook__
    previous(exc_type, exc, tb)
    if group is None or group.mpi is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    print(f"gpugrad.distributed: rank {group.rank} stopped on {exc_type.__name__}; aborting the job",
          file=sys.stderr, flush=True)
    group.mpi.abort(130 if issubclass(exc_type, KeyboardInterrupt) else 1)
