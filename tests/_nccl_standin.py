"""A stand-in for ``cupy.cuda.nccl`` on the emulated CUDA device (gpugrad.testing.cuda_emulator),
for machines without a GPU: each NCCL collective is carried out through MPI between the ranks of
the mpirun job, on the emulated device's memory (which is host memory at real addresses).

The module holds only names real CuPy's ``cupy.cuda.nccl`` has, and every call is bound to the
signature recorded from real CuPy (gpugrad/testing/cuda_emulator/cupy_api.json, as the emulator
does for the rest of CuPy); the communicator's methods are::

    NcclCommunicator(ndev: int, commId: tuple, rank: int)   # commId: 128 signed chars
    allReduce(sendbuf, recvbuf, count, datatype, op, stream)   # pointers and stream as ints
    bcast(buff, count, datatype, root, stream)
    allGather(sendbuf, recvbuf, count, datatype, stream)
    destroy(), abort(), check_async_error(), rank_id(), size(), device_id()

and checks every argument as the Cython binding converts it (ints only, a known datatype and op,
a stream that is not the default one), that every rank joined with the same unique id, and that
the memory each pointer and count describe lies inside one live device allocation.
Used by tests/_distributed_worker.py under mpirun; never imported by the library.
"""

from __future__ import annotations

import ctypes
import os
import sys
import types
import weakref
from pathlib import Path
from typing import Any

import numpy as np

# CuPy's constant values (NCCL's ncclDataType_t and ncclRedOp_t)
NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_BFLOAT16 = 6, 7, 8, 9
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
_DTYPES = {NCCL_INT8: np.int8, NCCL_UINT8: np.uint8, NCCL_INT32: np.int32, NCCL_UINT32: np.uint32,
           NCCL_INT64: np.int64, NCCL_UINT64: np.uint64, NCCL_FLOAT16: np.float16, NCCL_FLOAT32: np.float32,
           NCCL_FLOAT64: np.float64}

CALLS: list[tuple] = []  # (method, count, datatype, stream) of every collective, for the tests
WAITS: list[int] = []  # ptr of every stream told to wait for an event
_LIVE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # address -> live device allocation


_STATUS = {4: "NCCL_ERROR_INVALID_ARGUMENT", 5: "NCCL_ERROR_INVALID_USAGE"}


class NcclError(RuntimeError):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(_STATUS.get(status, f"NCCL error {status}"))


def _fail(status: int, detail: str) -> NcclError:
    err = NcclError(status)
    err.args = (f"{err.args[0]}: {detail}",)
    return err


def _recorded(name: str) -> Any:
    """Bind every call of the method to real CuPy's recorded signature (extra, missing or
    misnamed arguments raise TypeError as they would there)."""
    from gpugrad.testing.cuda_emulator import _api

    sig = _api.signature(_api.class_members("cupy.cuda.nccl.NcclCommunicator")[name])

    def wrap(method: Any) -> Any:
        def call(self: Any, *args: Any, **kw: Any) -> Any:
            bound = sig.bind(*args, **kw)
            return method(self, **bound.arguments)

        call.__name__ = name
        return call

    return wrap


def _int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"an integer is required for {name}, got {type(value).__name__}")
    return int(value)


def _memory(ptr: int, count: int, dtype: Any) -> np.ndarray:
    """The device memory [ptr, ptr + count*itemsize) as an array, checked to be inside an allocation."""
    nbytes = count * np.dtype(dtype).itemsize
    for start, mem in list(_LIVE.items()):
        if start <= ptr and ptr + nbytes <= start + mem.size:
            buf = (ctypes.c_char * max(nbytes, 1)).from_address(ptr)
            return np.frombuffer(buf, dtype=dtype, count=count)
    raise _fail(4, f"{nbytes} bytes at {ptr:#x} are not inside any device allocation")


class NcclCommunicator:
    def __init__(self, ndev: int, commId: tuple, rank: int, config: Any = None) -> None:  # noqa: N803 (CuPy's)
        from mpi4py import MPI

        ndev, rank = _int("ndev", ndev), _int("rank", rank)
        if not isinstance(commId, tuple) or len(commId) != 128 or not all(-128 <= int(c) <= 127 for c in commId):
            raise TypeError("commId must be the tuple of 128 chars returned by get_unique_id()")
        self._mpi = MPI
        self._comm = MPI.COMM_WORLD.Dup()
        if (self._comm.Get_size(), self._comm.Get_rank()) != (ndev, rank):
            raise _fail(4, f"rank {rank} of {ndev}, but MPI says {self._comm.Get_rank()} of {self._comm.Get_size()}")
        ids = self._comm.allgather(np.asarray(commId, dtype=np.int8).tobytes())
        if len(set(ids)) != 1:
            raise _fail(5, "the ranks joined with different unique ids")
        self._rank, self._size = rank, ndev
        self.aborted = False

    def _check(self, datatype: Any, stream: Any) -> Any:
        if self._comm is None:
            raise _fail(5, "the communicator was destroyed")
        datatype, stream = _int("datatype", datatype), _int("stream", stream)
        if datatype not in _DTYPES:
            raise _fail(4, f"datatype {datatype}")
        if stream == 0:
            raise _fail(5, "expected the communication stream, got the default stream (0)")
        return _DTYPES[datatype]

    @_recorded("allReduce")
    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int,  # noqa: N802
                  stream: int) -> None:
        dtype = self._check(datatype, stream)
        op = _int("op", op)
        mpi_op = {NCCL_SUM: self._mpi.SUM, NCCL_PROD: self._mpi.PROD, NCCL_MAX: self._mpi.MAX,
                  NCCL_MIN: self._mpi.MIN}.get(op)
        if mpi_op is None:
            raise _fail(4, f"op {op}")
        count = _int("count", count)
        send = _memory(_int("sendbuf", sendbuf), count, dtype).copy()
        recv = _memory(_int("recvbuf", recvbuf), count, dtype)
        self._comm.Allreduce(send, recv, op=mpi_op)
        CALLS.append(("allReduce", count, datatype, stream))

    @_recorded("bcast")
    def bcast(self, buff: int, count: int, datatype: int, root: int, stream: int) -> None:
        dtype = self._check(datatype, stream)
        count = _int("count", count)
        self._comm.Bcast(_memory(_int("buff", buff), count, dtype), root=_int("root", root))
        CALLS.append(("bcast", count, datatype, stream))

    @_recorded("allGather")
    def allGather(self, sendbuf: int, recvbuf: int, count: int, datatype: int,  # noqa: N802
                  stream: int) -> None:
        dtype = self._check(datatype, stream)
        count = _int("count", count)
        send = _memory(_int("sendbuf", sendbuf), count, dtype).copy()
        self._comm.Allgather(send, _memory(_int("recvbuf", recvbuf), count * self._size, dtype))
        CALLS.append(("allGather", count, datatype, stream))

    @_recorded("check_async_error")
    def check_async_error(self) -> None:
        return None

    @_recorded("rank_id")
    def rank_id(self) -> int:
        return self._rank

    @_recorded("size")
    def size(self) -> int:
        return self._size

    @_recorded("device_id")
    def device_id(self) -> int:
        return 0

    @_recorded("destroy")
    def destroy(self) -> None:
        if self._comm is not None:
            self._comm.Free()
        self._comm = None

    @_recorded("abort")
    def abort(self) -> None:
        self.aborted = True
        self.destroy()


def get_unique_id() -> tuple:
    return tuple(int(b) for b in np.random.default_rng().integers(-128, 128, 128))


def install() -> Any:
    """Switch the emulated CUDA device on (with the CMake-built kernels when there are some) and
    make ``cupy.cuda.nccl`` this stand-in, for the rest of the process; returns ``cupy``."""
    if "cupy.cuda.nccl" in sys.modules and sys.modules["cupy.cuda.nccl"].NcclCommunicator is NcclCommunicator:
        return sys.modules["cupy"]
    from gpugrad.testing import cuda_emulator
    from gpugrad.testing.cuda_emulator import _cuda, _device

    built = Path(os.environ.get("GPUGRAD_HOST_LIB_DIR") or Path(__file__).resolve().parents[1] / "build" / "kernels")
    cuda_emulator.enable(built if (built / "emu_index.json").is_file() else None)
    memory_init = _device.Memory.__init__

    def tracked(self: Any, *args: Any, **kw: Any) -> None:
        memory_init(self, *args, **kw)
        _LIVE[self.ptr] = self

    _device.Memory.__init__ = tracked  # every device allocation from now on is known
    wait_event = _cuda.Stream.wait_event

    def recorded(self: Any, event: Any) -> None:
        WAITS.append(self.ptr)
        wait_event(self, event)

    _cuda.Stream.wait_event = recorded
    import cupy

    from gpugrad.testing.cuda_emulator import _api

    nccl = types.ModuleType("cupy.cuda.nccl")
    names = {name: value for name, value in globals().items() if name.startswith("NCCL_")}
    names.update(available=True, NcclError=NcclError, NcclCommunicator=NcclCommunicator,
                 get_unique_id=get_unique_id, get_version=lambda: 22000)
    for name, value in names.items():
        assert _api.has("cupy.cuda.nccl", name), f"real CuPy's cupy.cuda.nccl has no {name}"
        setattr(nccl, name, value)
    sys.modules["cupy.cuda.nccl"] = nccl
    cupy.cuda.nccl = nccl
    return cupy
