"""The ``nccl`` backend: collectives on CUDA arrays through CuPy's NCCL binding
(``cupy.cuda.nccl.NcclCommunicator``), bootstrapped over MPI.

Rank 0 makes the NCCL unique id; MPI broadcasts its 128 bytes; every rank then joins the
communicator on its GPU. Collectives run on a stream of their own, after the work already queued
on the caller's stream (an event), so they overlap whatever the caller queues next; ``wait()``
makes the caller's current stream wait for them, without blocking the host. A watchdog thread
gives each collective ``timeout`` seconds: past it (a rank died or hung), or on an asynchronous
NCCL error, it aborts the communicator (so no kernel blocks the GPU forever) and ends the job
(MPI_Abort) with a message naming the collective and the rank.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.distributed.errors import DistributedError
from gpugrad.distributed.mpi_backend import MpiBackend
from gpugrad.distributed.work import Work
from gpugrad.errors import DeviceError

NCCL_HINT = ("install CuPy with NCCL: pip install 'gpugrad[cuda]' and the NCCL wheel for your CUDA "
             "(pip install nvidia-nccl-cu12, or nvidia-nccl-cu13)")
UNIQUE_ID_BYTES = 128

# numpy dtype -> the name of CuPy's NCCL datatype constant (NCCL has no 16-bit integers or bool).
_NCCL_TYPES = {
    np.dtype(np.int8): "NCCL_INT8", np.dtype(np.uint8): "NCCL_UINT8",
    np.dtype(np.int32): "NCCL_INT32", np.dtype(np.uint32): "NCCL_UINT32",
    np.dtype(np.int64): "NCCL_INT64", np.dtype(np.uint64): "NCCL_UINT64",
    np.dtype(np.float16): "NCCL_FLOAT16", np.dtype(np.float32): "NCCL_FLOAT32",
    np.dtype(np.float64): "NCCL_FLOAT64",
}
REDUCE_DTYPES = frozenset(_NCCL_TYPES)
_NCCL_OPS = {"sum": "NCCL_SUM", "max": "NCCL_MAX", "min": "NCCL_MIN"}


def import_nccl() -> Any:
    """``cupy.cuda.nccl``, checked to be usable, or DistributedError saying how to install it."""
    try:
        nccl = importlib.import_module("cupy.cuda.nccl")
    except ImportError as exc:
        raise DistributedError(f"the nccl backend needs CuPy's NCCL binding ({exc}); {NCCL_HINT}") from None
    if not getattr(nccl, "available", True):
        raise DistributedError(f"CuPy was built without NCCL (cupy.cuda.nccl.available is False); {NCCL_HINT}")
    return nccl


class NcclBackend:
    """Collectives on CUDA arrays of one GPU per process."""

    name = "nccl"
    reduce_dtypes = REDUCE_DTYPES

    def __init__(self, mpi: MpiBackend, device: str, timeout: float,
                 on_timeout: Callable[[str], None] | None = None) -> None:
        from gpugrad.backends.cuda_runtime import import_cupy

        cp = import_cupy()
        nccl = import_nccl()
        self.cp = cp
        self.nccl = nccl
        self.device = device
        self.index = int(device.split(":")[1])
        self.rank = mpi.rank
        self.world_size = mpi.world_size
        self.timeout = timeout
        uid = np.zeros(UNIQUE_ID_BYTES, dtype=np.int8)
        if mpi.rank == 0:
            uid[:] = np.asarray(nccl.get_unique_id(), dtype=np.int64).astype(np.int8)
        mpi.broadcast(uid, "cpu", 0, "nccl bootstrap (broadcast of the unique id)").wait()
        with cp.cuda.Device(self.index):
            self.comm = nccl.NcclCommunicator(mpi.world_size, tuple(int(b) for b in uid), mpi.rank)
            self.stream = cp.cuda.Stream(non_blocking=True)
        self._mpi = mpi
        self.watchdog = Watchdog(timeout, self._fail if on_timeout is None else on_timeout,
                                 getattr(self.comm, "check_async_error", None))

    # ---- collectives on contiguous CUDA arrays ------------------------------------------------
    def all_reduce(self, array: Any, device: str, op: str, what: str) -> Work:
        flat = array.reshape(-1)
        kind = getattr(self.nccl, _NCCL_TYPES[np.dtype(array.dtype)])
        red = getattr(self.nccl, _NCCL_OPS[op])
        ptr = _ptr(flat)
        return self._enqueue(device, what, array,
                             lambda s: self.comm.allReduce(ptr, ptr, flat.size, kind, red, s))

    def broadcast(self, array: Any, device: str, src: int, what: str) -> Work:
        raw = array.reshape(-1).view(np.uint8)
        ptr = _ptr(raw)
        u8 = self.nccl.NCCL_UINT8
        return self._enqueue(device, what, array, lambda s: self.comm.bcast(ptr, raw.size, u8, src, s))

    def all_gather(self, array: Any, device: str, what: str) -> Work:
        with self.cp.cuda.Device(self.index):
            gathered = self.cp.empty((self.world_size,) + tuple(array.shape), dtype=array.dtype)
        send = array.reshape(-1).view(np.uint8)
        recv = gathered.reshape(-1).view(np.uint8)
        sp, rp = _ptr(send), _ptr(recv)
        u8 = self.nccl.NCCL_UINT8
        work = self._enqueue(device, what, (array, gathered),
                             lambda s: self.comm.allGather(sp, rp, send.size, u8, s))
        work.result = [gathered[i] for i in range(self.world_size)]
        return work

    def barrier(self, what: str) -> Work:
        return self._mpi.barrier(what)

    def abort(self, code: int) -> None:
        self._mpi.abort(code)

    def close(self) -> None:
        self.watchdog.stop()
        if self.comm is not None:
            self.comm.destroy()
        self.comm = None

    # ---- helpers ------------------------------------------------------------------------------
    def _enqueue(self, device: str, what: str, keep: Any, call: Callable[[int], None]) -> Work:
        if device != self.device:
            raise DeviceError(f"{what}: the nccl backend of rank {self.rank} runs on {self.device}, "
                              f"the tensor is on {device}")
        cp = self.cp
        with cp.cuda.Device(self.index):
            ready = cp.cuda.Event(disable_timing=True)
            ready.record(cp.cuda.get_current_stream())
            self.stream.wait_event(ready)
            call(self.stream.ptr)
            done = cp.cuda.Event(disable_timing=True)
            done.record(self.stream)
        self.watchdog.watch(done, what, keep)

        def order_after() -> None:
            with cp.cuda.Device(self.index):
                cp.cuda.get_current_stream().wait_event(done)

        # Complete from the host's side at once: waiting means ordering the caller's stream.
        return Work(_true, what, self.timeout, self.rank, order_after)

    def _fail(self, message: str) -> None:
        print(f"gpugrad.distributed: {message}; aborting the job", file=sys.stderr, flush=True)
        try:
            if self.comm is not None:
                self.comm.abort()
        finally:
            self._mpi.abort(1)


def _ptr(array: Any) -> int:
    return int(array.__cuda_array_interface__["data"][0])


def _true() -> bool:
    return True


class Watchdog:
    """A daemon thread watching the events that mark the end of NCCL collectives.

    Collectives on one stream finish in order, so only the oldest unfinished one is checked:
    ``on_timeout(message)`` is called when it is still running ``timeout`` seconds after it was
    queued, or when ``check_async_error()`` raises. Finished collectives release the arrays they
    used (kept alive until then so that CuPy's memory pool cannot hand them out early).
    """

    def __init__(self, timeout: float, on_timeout: Callable[[str], None],
                 check_async_error: Callable[[], None] | None = None, period: float = 0.1) -> None:
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.check_async_error = check_async_error
        self.period = period
        self._pending: deque = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired: str | None = None

    def watch(self, event: Any, what: str, keep: Any) -> None:
        with self._lock:
            self._pending.append((event, time.monotonic() + self.timeout, what, keep))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gpugrad-nccl-watchdog", daemon=True)
            self._thread.start()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def check(self) -> None:
        """One round: drop finished collectives; fire on an overdue one or an NCCL error."""
        message = None
        with self._lock:
            while self._pending and self._pending[0][0].done:
                self._pending.popleft()
            if self._pending and time.monotonic() > self._pending[0][1]:
                what = self._pending[0][2]
                message = (f"nccl {what} did not complete within {self.timeout:g} s: another rank died, hung "
                           "or skipped this collective (set GPUGRAD_DIST_TIMEOUT to wait longer)")
        if message is None and self.check_async_error is not None:
            try:
                self.check_async_error()
            except Exception as exc:  # cupy.cuda.nccl.NcclError, raised from the communicator
                message = f"NCCL reported an asynchronous error: {exc}"
        if message is not None and self.fired is None:
            self.fired = message
            self.on_timeout(message)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.check()
            if self.fired is not None:
                return
