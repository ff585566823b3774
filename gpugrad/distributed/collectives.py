"""The collectives on tensors (in place), and the array-level all-reduce that DDP starts
non-blocking. Dtype rules are decided here, once, for every backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.distributed.errors import DistributedError
from gpugrad.distributed.group import current
from gpugrad.distributed.work import Work, completed
from gpugrad.errors import ArgumentError, DTypeError
from gpugrad.tensor import Tensor, make_tensor

REDUCE_OPS = ("sum", "mean", "max", "min")


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """Combine ``tensor`` across ranks with ``op`` ("sum", "mean", "max", "min"), in place on every
    rank; returns it. Not differentiable (like torch.distributed). Example::

        loss_sum = gg.tensor(batch_loss); dist.all_reduce(loss_sum, op="mean")
    """
    t = _writable(tensor, "all_reduce")
    start_all_reduce(t.data, t.device, op, "all_reduce").wait()
    t._version[0] += 1
    return t


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values (same shape and dtype
    everywhere), in place; returns it. Example: ``dist.broadcast(seed_tensor, src=0)``."""
    t = _writable(tensor, "broadcast")
    group = current("broadcast")
    _check_src(src, group.world_size)
    if group.world_size > 1:
        data, back = _contiguous(t.data)
        work = group.backend_for(t.device).broadcast(data, t.device, int(src), "broadcast")
        if back is not None:
            work.then(back)
        work.wait()
    t._version[0] += 1
    return t


def all_gather(tensor: Tensor) -> list[Tensor]:
    """A list of every rank's ``tensor`` (index = rank), the same on every rank; each rank's tensor
    must have the same shape and dtype. Example: ``losses = dist.all_gather(gg.tensor([loss]))``."""
    if not isinstance(tensor, Tensor):
        raise DTypeError(f"all_gather: expected a gpugrad Tensor, got {type(tensor).__name__}")
    group = current("all_gather")
    if group.world_size == 1:
        return [make_tensor(tensor.data.copy(), tensor.device)]
    _check_same_layout(tensor, group)
    data, _ = _contiguous(tensor.data)
    parts = group.backend_for(tensor.device).all_gather(data, tensor.device, "all_gather").wait()
    return [make_tensor(p, tensor.device) for p in parts]


def barrier() -> None:
    """Return once every rank has called barrier()."""
    group = current("barrier")
    if group.world_size > 1:
        group.mpi.barrier("barrier").wait()


def start_all_reduce(data: Any, device: str, op: str, what: str) -> Work:
    """Start reducing the array ``data`` (in place) across ranks; the returned Work's ``wait()``
    finishes it. ``op="mean"`` sums and divides by the world size (floating dtypes only)."""
    group = current(what)
    if op not in REDUCE_OPS:
        raise ArgumentError(f"{what}: op must be one of {', '.join(REDUCE_OPS)}, got {op!r}")
    dtype = np.dtype(data.dtype)
    if dtype.kind not in "biuf":
        raise DTypeError(f"{what}: cannot reduce a tensor of dtype {dtype}")
    if dtype.kind == "b" and op not in ("max", "min"):
        raise DTypeError(f"{what}: a bool tensor reduces with op='max' (any) or 'min' (all), not {op!r}")
    if dtype.kind in "iu" and op == "mean":
        raise DTypeError(f"{what}: op='mean' needs a floating dtype, got {dtype}; reduce with 'sum' and divide")
    if group.world_size == 1:
        return completed(what)
    backend = group.backend_for(device)
    wire, back = _contiguous(data)
    if dtype.kind == "b":
        wire = wire.view(np.uint8)  # max/min of 0/1 bytes: any/all
    elif dtype not in backend.reduce_dtypes:
        wire = wire.astype(_wider(dtype))
        back = _copy_back(data, wire)
    work = backend.all_reduce(wire, device, "sum" if op == "mean" else op, what)
    if op == "mean":
        n = group.world_size
        work.then(lambda: wire.__itruediv__(n))
    if back is not None:
        work.then(back)
    return work


# ---- helpers -------------------------------------------------------------------------------------
def _writable(tensor: Any, what: str) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise DTypeError(f"{what}: expected a gpugrad Tensor, got {type(tensor).__name__}")
    if not getattr(getattr(tensor.data, "flags", None), "writeable", True):  # CuPy arrays have no such flag
        tensor.data = tensor.data.copy()  # a read-only view (broadcast_to): the tensor gets its own copy
    return tensor


def _contiguous(data: Any) -> tuple[Any, Any]:
    """(a C-contiguous array to communicate, a step copying it back into ``data`` or None)."""
    if data.flags.c_contiguous:
        return data, None
    wire = data.copy()
    return wire, _copy_back(data, wire)


def _copy_back(data: Any, wire: Any) -> Any:
    def back() -> None:
        data[...] = wire

    return back


def _wider(dtype: np.dtype) -> np.dtype:
    """The dtype a backend without native support reduces ``dtype`` in (exact for these)."""
    if dtype.kind == "f":
        return np.dtype(np.float32)
    return np.dtype(np.int32 if dtype.kind == "i" else np.uint32)


def _check_src(src: Any, world_size: int) -> None:
    if not isinstance(src, (int, np.integer)) or isinstance(src, bool) or not 0 <= src < world_size:
        raise ArgumentError(f"broadcast: src must be a rank in [0, {world_size - 1}], got {src!r}")


def _check_same_layout(tensor: Tensor, group: Any) -> None:
    """All ranks' tensors must agree in shape and dtype (checked on the CPU, before gathering)."""
    if tensor.ndim > 32:
        raise ArgumentError(f"all_gather: at most 32 dimensions, got {tensor.ndim}")
    meta = np.zeros(34, dtype=np.int64)
    meta[0], meta[1] = tensor.ndim, tensor.dtype.num
    meta[2:2 + tensor.ndim] = tensor.shape
    every = group.mpi.all_gather(meta, "cpu", "all_gather (shape check)").wait()
    for r, m in enumerate(every):
        if not np.array_equal(m, meta):
            theirs = tuple(int(s) for s in m[2:2 + int(m[0])])
            their_dtype = _DTYPE_BY_NUM.get(int(m[1]), f"#{int(m[1])}")
            raise DistributedError(
                f"all_gather: rank {group.rank} has shape {tuple(tensor.shape)} dtype {tensor.dtype}, rank {r} has "
                f"shape {theirs} dtype {their_dtype}; every rank must gather the same shape and dtype"
            )


_DTYPE_BY_NUM = {np.dtype(t).num: np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64)}
