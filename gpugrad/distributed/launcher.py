"""Which MPI launcher started this process, read from the environment it sets.

Reading the environment needs no MPI library, so a process started without ``mpirun`` runs
as world size 1 without importing mpi4py at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """What the launcher told this process: who started it, its rank, and its place on the node."""

    launcher: str
    rank: int
    world_size: int
    local_rank: int
    local_size: int


# (launcher, world size, rank, local rank, local size). Open MPI sets OMPI_COMM_WORLD_*; MPICH
# and Intel MPI (both Hydra) set PMI_SIZE / PMI_RANK and MPI_LOCALRANKID / MPI_LOCALNRANKS.
_LAUNCHERS = (
    ("Open MPI", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"),
    ("MPICH/Intel MPI", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
)


def detect(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch this process is part of, or None when no MPI launcher started it.

    Example::

        detect({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}).rank   # 1
    """
    env = os.environ if environ is None else environ
    for name, size_key, rank_key, local_key, local_size_key in _LAUNCHERS:
        if size_key not in env or rank_key not in env:
            continue
        size = _int(env, size_key)
        rank = _int(env, rank_key)
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"{name} launch: {rank_key}={rank} and {size_key}={size} are inconsistent")
        local_rank = _int(env, local_key) if local_key in env else rank
        local_size = _int(env, local_size_key) if local_size_key in env else size
        if name.startswith("MPICH") and "I_MPI_ROOT" in env:
            name = "Intel MPI"
        return Launch(name, rank, size, local_rank, local_size)
    return None


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ValueError(f"the launcher's {key}={env[key]!r} is not an integer") from None
