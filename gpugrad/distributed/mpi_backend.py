"""The ``mpi`` backend: collectives through mpi4py on CPU arrays, and on CUDA arrays either
directly (CUDA-aware MPI) or through host copies.

Every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ``Iallgather``,
``Ibarrier``) on a private duplicate of ``COMM_WORLD`` and returned as a :class:`Work`, whose
``wait`` polls the request with a deadline (see deadline.py).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from gpugrad.backends import backend_for
from gpugrad.distributed.errors import DistributedError
from gpugrad.distributed.work import Work

INSTALL_HINT = "pip install 'gpugrad[mpi]' (mpi4py and an MPI with mpirun, from PyPI)"
CUDA_AWARE_ENV = "GPUGRAD_MPI_CUDA_AWARE"

# Every dtype MPI reduces natively (through mpi4py's type codes); the others are widened first.
REDUCE_DTYPES = frozenset(np.dtype(t) for t in (
    np.float32, np.float64,
    np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
))


def import_mpi() -> Any:
    """mpi4py's MPI module (initialising MPI), or DistributedError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(f"the mpi backend needs mpi4py ({exc}); {INSTALL_HINT}") from None
    return MPI


class MpiBackend:
    """Collectives over all the processes of the MPI job."""

    name = "mpi"
    reduce_dtypes = REDUCE_DTYPES

    def __init__(self, timeout: float) -> None:
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()  # private: never matches the user's own MPI messages
        self.rank = self.comm.Get_rank()
        self.world_size = self.comm.Get_size()
        self.timeout = timeout
        self.cuda_aware = cuda_aware(MPI)
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    # ---- collectives on contiguous arrays; each returns a started Work ------------------------
    def all_reduce(self, array: Any, device: str, op: str, what: str) -> Work:
        """Reduce ``array`` (contiguous, a dtype of REDUCE_DTYPES) in place with sum, max or min."""
        buf, back = self._wire(array, device, needs_data=True)
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self._ops[op])
        return self._work(req, what, back, buf)

    def broadcast(self, array: Any, device: str, src: int, what: str) -> Work:
        """Overwrite ``array`` (contiguous) on every rank with rank ``src``'s."""
        buf, back = self._wire(array, device, needs_data=self.rank == src)
        req = self.comm.Ibcast([_bytes(buf), self.MPI.BYTE], root=src)
        return self._work(req, what, back if self.rank != src else None, buf)

    def all_gather(self, array: Any, device: str, what: str) -> Work:
        """Every rank's ``array`` (same shape and dtype everywhere); ``result`` is a list of arrays."""
        buf, _ = self._wire(array, device, needs_data=True)
        gathered = np.empty((self.world_size,) + tuple(array.shape), dtype=array.dtype)
        if device != "cpu" and self.cuda_aware:
            gathered = backend_for(device).from_host(gathered)
        req = self.comm.Iallgather([_bytes(buf), self.MPI.BYTE], [_bytes(gathered), self.MPI.BYTE])
        work = self._work(req, what, None, (buf, gathered))

        def split() -> None:
            full = gathered
            if device != "cpu" and not self.cuda_aware:
                full = backend_for(device).from_host(gathered)
            work.result = [full[i] for i in range(self.world_size)]

        return work.then(split)

    def barrier(self, what: str) -> Work:
        return self._work(self.comm.Ibarrier(), what, None, None)

    def abort(self, code: int) -> None:
        """End every process of the job (MPI_Abort)."""
        self.MPI.COMM_WORLD.Abort(code)

    def close(self) -> None:
        if self.comm is not None and self.comm != self.MPI.COMM_NULL:
            self.comm.Free()
        self.comm = None

    # ---- helpers ------------------------------------------------------------------------------
    def _wire(self, array: Any, device: str, needs_data: bool) -> tuple[Any, Any]:
        """(the buffer MPI reads and writes, a step copying it back into ``array`` or None)."""
        if device == "cpu":
            return array, None
        backend = backend_for(device)
        if self.cuda_aware:
            backend.synchronize()  # MPI reads device memory outside CUDA's stream order
            return array, None
        host = backend.to_host(array) if needs_data else np.empty(array.shape, array.dtype)
        host = np.ascontiguousarray(host)

        def back() -> None:
            array[...] = backend.from_host(host)

        return host, back

    def _work(self, req: Any, what: str, back: Any, keep: Any) -> Work:
        test = req.Test

        def done() -> bool:
            _ = keep  # the buffers stay alive until MPI is done with them
            return test()

        return Work(done, what, self.timeout, self.rank, back)


def _bytes(array: Any) -> Any:
    """A contiguous array seen as raw bytes (broadcast and gather move bytes, any dtype)."""
    return array.reshape(-1).view(np.uint8)


def cuda_aware(MPI: Any) -> bool:  # noqa: N803 (mpi4py's module name)
    """Whether this MPI accepts CUDA device memory: ``$GPUGRAD_MPI_CUDA_AWARE`` (0/1) if set, else
    what the library says (Open MPI's MPIX_Query_cuda_support, MPICH's MPIX_GPU_query_support, or
    MPI 4.1's ``mpi_memory_alloc_kinds``), else False (host copies, always correct)."""
    forced = os.environ.get(CUDA_AWARE_ENV, "").strip()
    if forced:
        return forced not in ("0", "false", "no", "off")
    try:
        kinds = MPI.INFO_ENV.Get("mpi_memory_alloc_kinds")
    except Exception:  # an MPI before 4.1, or mpi4py without INFO_ENV
        kinds = None
    if kinds and "cuda" in kinds:
        return True
    lib = _loaded_libmpi()
    if lib is None:
        return False
    query = getattr(lib, "MPIX_Query_cuda_support", None)
    if query is not None:
        query.restype = ctypes.c_int
        return bool(query())
    gpu_query = getattr(lib, "MPIX_GPU_query_support", None)
    if gpu_query is not None:
        supported = ctypes.c_int(0)
        if gpu_query(ctypes.c_int(0), ctypes.byref(supported)) == 0:  # 0: MPIX_GPU_SUPPORT_CUDA
            return bool(supported.value)
    return False


def _loaded_libmpi() -> Any:
    """The MPI shared library mpi4py loaded, opened again without loading anything new."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libmpi" in line}
    except OSError:
        return None
    for path in sorted(paths):
        if os.path.basename(path).startswith("libmpi.so"):
            try:
                return ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
            except OSError:
                continue
    return None
