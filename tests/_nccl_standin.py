"""A stand-in for ``cupy.cuda.nccl`` (and the few CUDA stream/event calls the nccl backend makes),
for machines without a GPU: CUDA arrays are tests/_fake_cupy.py's host arrays, and each NCCL
collective is carried out through MPI between the ranks of the mpirun job.

The communicator has CuPy's call signatures (cupy_backends/cuda/libs/nccl.pyx)::

    NcclCommunicator(ndev: int, commId: tuple, rank: int)   # commId: 128 signed chars
    allReduce(sendbuf, recvbuf, count, datatype, op, stream)   # pointers and stream as ints
    bcast(buff, count, datatype, root, stream)
    allGather(sendbuf, recvbuf, count, datatype, stream)
    destroy(), abort(), check_async_error(), rank_id(), size(), device_id()

and checks every argument the way the Cython binding converts them (ints only, a known
datatype and op, a stream that is a real non-default stream), that every rank joined with the
same unique id, and that the memory a pointer and count describe lies inside one live array.
Used by tests/_distributed_worker.py; never imported by the library.
"""

from __future__ import annotations

import ctypes
import sys
import types
import weakref
from typing import Any

import numpy as np

from tests._fake_cupy import FakeArray, make_fake_cupy

# CuPy's constant values (NCCL's ncclDataType_t and ncclRedOp_t)
NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_BFLOAT16 = 6, 7, 8, 9
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
_DTYPES = {NCCL_INT8: np.int8, NCCL_UINT8: np.uint8, NCCL_INT32: np.int32, NCCL_UINT32: np.uint32,
           NCCL_INT64: np.int64, NCCL_UINT64: np.uint64, NCCL_FLOAT16: np.float16, NCCL_FLOAT32: np.float32,
           NCCL_FLOAT64: np.float64}

CALLS: list[tuple] = []  # (method, count, datatype, stream) of every collective, for the tests
_LIVE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # address -> live device array
_STREAMS: set[int] = set()


class NcclError(RuntimeError):
    pass


def _int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"an integer is required for {name}, got {type(value).__name__}")
    return int(value)


def _memory(ptr: int, count: int, dtype: Any) -> np.ndarray:
    """The device memory [ptr, ptr + count*itemsize) as an array, checked to be inside a live array."""
    nbytes = count * np.dtype(dtype).itemsize
    for start, array in list(_LIVE.items()):
        if array.flags.c_contiguous and start <= ptr and ptr + nbytes <= start + array.nbytes:
            buf = (ctypes.c_char * max(nbytes, 1)).from_address(ptr)
            return np.frombuffer(buf, dtype=dtype, count=count)
    raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: {nbytes} bytes at {ptr:#x} are not inside any device array")


class NcclCommunicator:
    def __init__(self, ndev: int, commId: tuple, rank: int) -> None:  # noqa: N803 (CuPy's names)
        from mpi4py import MPI

        ndev, rank = _int("ndev", ndev), _int("rank", rank)
        if not isinstance(commId, tuple) or len(commId) != 128 or not all(-128 <= int(c) <= 127 for c in commId):
            raise TypeError("commId must be the tuple of 128 chars returned by get_unique_id()")
        self._mpi = MPI
        self._comm = MPI.COMM_WORLD.Dup()
        if (self._comm.Get_size(), self._comm.Get_rank()) != (ndev, rank):
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: rank {rank} of {ndev}, but MPI says "
                            f"{self._comm.Get_rank()} of {self._comm.Get_size()}")
        ids = self._comm.allgather(bytes(np.asarray(commId, dtype=np.int8).tobytes()))
        if len(set(ids)) != 1:
            raise NcclError("NCCL_ERROR_INVALID_USAGE: the ranks joined with different unique ids")
        self._rank, self._size = rank, ndev
        self.aborted = False

    def _check(self, datatype: Any, stream: Any) -> Any:
        if self._comm is None:
            raise NcclError("NCCL_ERROR_INVALID_USAGE: the communicator was destroyed")
        datatype, stream = _int("datatype", datatype), _int("stream", stream)
        if datatype not in _DTYPES:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: datatype {datatype}")
        if stream not in _STREAMS:
            raise NcclError(f"the stream {stream:#x} is not a stream made by cupy.cuda.Stream (0 is the default)")
        return _DTYPES[datatype]

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int,  # noqa: N802
                  stream: int) -> None:
        dtype = self._check(datatype, stream)
        op = _int("op", op)
        mpi_op = {NCCL_SUM: self._mpi.SUM, NCCL_PROD: self._mpi.PROD, NCCL_MAX: self._mpi.MAX,
                  NCCL_MIN: self._mpi.MIN}.get(op)
        if mpi_op is None:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: op {op}")
        count = _int("count", count)
        send = _memory(_int("sendbuf", sendbuf), count, dtype).copy()
        recv = _memory(_int("recvbuf", recvbuf), count, dtype)
        self._comm.Allreduce(send, recv, op=mpi_op)
        CALLS.append(("allReduce", count, datatype, stream))

    def bcast(self, buff: int, count: int, datatype: int, root: int, stream: int) -> None:
        dtype = self._check(datatype, stream)
        count = _int("count", count)
        self._comm.Bcast(_memory(_int("buff", buff), count, dtype), root=_int("root", root))
        CALLS.append(("bcast", count, datatype, stream))

    def allGather(self, sendbuf: int, recvbuf: int, count: int, datatype: int,  # noqa: N802
                  stream: int) -> None:
        dtype = self._check(datatype, stream)
        count = _int("count", count)
        send = _memory(_int("sendbuf", sendbuf), count, dtype).copy()
        self._comm.Allgather(send, _memory(_int("recvbuf", recvbuf), count * self._size, dtype))
        CALLS.append(("allGather", count, datatype, stream))

    def check_async_error(self) -> None:
        return None

    def rank_id(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def device_id(self) -> int:
        return 0

    def destroy(self) -> None:
        if self._comm is not None:
            self._comm.Free()
        self._comm = None

    def abort(self) -> None:
        self.aborted = True
        self.destroy()


def get_unique_id() -> tuple:
    return tuple(int(b) for b in np.random.default_rng().integers(-128, 128, 128))


class Stream:
    """A CUDA stream: work runs at once here, so it only needs an identity."""

    _next = 0x1000

    def __init__(self, non_blocking: bool = False) -> None:
        Stream._next += 0x100
        self.ptr = Stream._next
        _STREAMS.add(self.ptr)
        self.waited: list[Event] = []

    def wait_event(self, event: Event) -> None:
        if not isinstance(event, Event) or not event.recorded:
            raise RuntimeError("wait_event needs an Event that was recorded")
        self.waited.append(event)

    def synchronize(self) -> None:
        return None


class Event:
    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False) -> None:
        self.recorded = False

    def record(self, stream: Stream | None = None) -> None:
        if stream is not None and not isinstance(stream, Stream):
            raise TypeError("Event.record takes a cupy.cuda.Stream")
        self.recorded = True

    @property
    def done(self) -> bool:
        return self.recorded

    def synchronize(self) -> None:
        return None


_NULL_STREAM = Stream()
_STREAMS.discard(_NULL_STREAM.ptr)
_NULL_STREAM.ptr = 0  # the legacy default stream, as CuPy reports it


def _cuda_array_interface(a: FakeArray) -> dict:
    start = a.__array_interface__["data"][0]
    return {"shape": a.shape, "typestr": a.dtype.str, "data": (start, False), "version": 3,
            "strides": None if a.flags.c_contiguous else a.strides}


def _register(array: FakeArray, obj: Any) -> None:
    if array.size:
        _LIVE[array.__array_interface__["data"][0]] = array


def install() -> types.ModuleType:
    """Make ``import cupy`` and ``cupy.cuda.nccl`` give the stand-ins (for the rest of the process)."""
    if "cupy.cuda.nccl" in sys.modules and sys.modules["cupy.cuda.nccl"].NcclCommunicator is NcclCommunicator:
        return sys.modules["cupy"]
    cp, cpx = make_fake_cupy(None)
    FakeArray.__cuda_array_interface__ = property(_cuda_array_interface)
    FakeArray.__array_finalize__ = _register  # every device array (new, copy or view) is known
    nccl = types.ModuleType("cupy.cuda.nccl")
    for name, value in list(globals().items()):
        if name.startswith("NCCL_"):
            setattr(nccl, name, value)
    nccl.available = True
    nccl.NcclError = NcclError
    nccl.NcclCommunicator = NcclCommunicator
    nccl.get_unique_id = get_unique_id
    nccl.get_version = lambda: 22000
    cp.cuda.nccl = nccl
    cp.cuda.Stream = Stream
    cp.cuda.Event = Event
    cp.cuda.get_current_stream = lambda: _NULL_STREAM
    sys.modules["cupy"] = cp
    sys.modules["cupyx"] = cpx
    sys.modules["cupy.cuda.nccl"] = nccl
    return cp
