"""``gpugrad.distributed``: collectives across the processes of an MPI job, for data-parallel
training (see :class:`gpugrad.nn.parallel.DistributedDataParallel`).

    import gpugrad as gg
    import gpugrad.distributed as dist

    dist.init()                       # under mpirun: joins the job; alone: world size 1
    t = gg.tensor([float(dist.rank())])
    dist.all_reduce(t, op="sum")      # in place: 0 + 1 + ... on every rank

Run with ``mpirun -n 2 python script.py``; the same script runs without ``mpirun`` (one
process, world size 1, every collective the identity).

Backends: ``"mpi"`` (the default; mpi4py, ``pip install 'gpugrad[mpi]'``) carries CPU tensors,
and CUDA tensors too (directly when the MPI is CUDA-aware, through host copies otherwise;
``GPUGRAD_MPI_CUDA_AWARE=0/1`` overrides the detection). ``"nccl"`` (CuPy's NCCL binding,
bootstrapped over MPI) carries CUDA tensors of the process's GPU, ``cuda:<local rank>`` by
default; CPU tensors still go through MPI.

The launcher is recognised from its environment: Open MPI (``OMPI_COMM_WORLD_*``), MPICH and
Intel MPI (``PMI_RANK``/``PMI_SIZE``, ``MPI_LOCALRANKID``).

Timeouts: a collective that has not completed after ``GPUGRAD_DIST_TIMEOUT`` seconds (600 by
default, or ``init(timeout=...)``) raises DistributedTimeoutError on MPI (the NCCL watchdog aborts
the job), so a rank that died or hung ends the job instead of blocking it forever. Under a
launcher with more than one rank, an uncaught exception on any rank ends the whole job
(MPI_Abort), as ``python -m mpi4py`` does.
"""

from __future__ import annotations

from gpugrad.distributed import group as _group
from gpugrad.distributed.collectives import all_gather, all_reduce, barrier, broadcast
from gpugrad.distributed.deadline import TIMEOUT_ENV
from gpugrad.distributed.errors import DistributedError, DistributedTimeoutError
from gpugrad.distributed.group import destroy, init, is_initialized


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1."""
    return _group.current("rank").rank


def world_size() -> int:
    """The number of processes in the job (1 without a launcher)."""
    return _group.current("world_size").world_size


def local_rank() -> int:
    """This process's rank among those on its machine (picks its GPU)."""
    return _group.current("local_rank").local_rank


def get_backend() -> str:
    """"mpi", "nccl", or "local" (one process without a launcher)."""
    return _group.current("get_backend").backend


def device() -> str:
    """This rank's device: ``cuda:<local rank modulo the GPU count>`` with a GPU, else ``cpu``.
    Under the nccl backend, the GPU its communicator uses."""
    g = _group.current("device")
    return g.nccl.device if g.nccl is not None else _group.default_device(g)


__all__ = [
    "init", "is_initialized", "rank", "world_size", "local_rank", "get_backend", "device", "barrier",
    "all_reduce", "broadcast", "all_gather", "destroy", "DistributedError", "DistributedTimeoutError",
    "TIMEOUT_ENV",
]
