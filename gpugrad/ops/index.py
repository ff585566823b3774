"""Indexing: ``x[index]`` (basic and advanced, NumPy's rules), its transpose ``index_scatter``
(the gradient: zeros with the values added at the index, repeated indices accumulating), the
out-of-place ``index_put`` behind ``x[index] = v``, ``take`` along an axis, and the in-place
operators.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.autograd.state import STATE
from gpugrad.backends import backend_for
from gpugrad.errors import DeviceError, DTypeError, GpugradError, InplaceError, ShapeError
from gpugrad.fusion import lazy as _fusion  # (a module: fusion.lazy imports the ops)
from gpugrad.ops._util import as_tensor_operand, normalize_one_axis
from gpugrad.ops.base import Op, apply
from gpugrad.ops.spellings import accepts_dim
from gpugrad.tensor import PendingTensor, Tensor, make_tensor


class GetItem(Op):
    name = "getitem"
    view = True
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.getitem(args[0], params["index"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.index_scatter(g, params["shape"], params["index"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.getitem(tangents[0], params["index"])


class IndexScatter(Op):
    """zeros(shape) with the input added at ``index``: the transpose of getitem."""

    name = "index_scatter"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.index_scatter(args[0], params["shape"], params["index"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.getitem(g, params["index"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.index_scatter(tangents[0], params["shape"], params["index"])


class IndexPut(Op):
    """A copy of ``x`` with ``x[index] = v`` (v broadcast to the indexed shape)."""

    name = "index_put"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x, v = args
        return B.index_put(x, params["index"], v)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        gx = ns.index_put(g, params["index"], 0) if needs[0] else None
        gv = ns.getitem(g, params["index"]) if needs[1] else None
        return gx, gv

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        tx, tv = tangents
        x, v = args
        if tx is None:
            tx = ns.zeros_like(x)
        if tv is None:
            tv = 0
        return ns.index_put(tx, params["index"], tv)


class Take(Op):
    name = "take"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.take(args[0], params["indices"], params["axis"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.take_scatter(g, params["shape"], params["indices"], params["axis"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.take(tangents[0], params["indices"], params["axis"])


class TakeScatter(Op):
    name = "take_scatter"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.take_scatter(args[0], params["shape"], params["indices"], params["axis"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.take(g, params["indices"], params["axis"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.take_scatter(tangents[0], params["shape"], params["indices"], params["axis"])


GETITEM = GetItem()
INDEX_SCATTER = IndexScatter()
INDEX_PUT = IndexPut()
TAKE = Take()
TAKE_SCATTER = TakeScatter()


# ---------------------------------------------------------------------------------------------
# index normalisation


def normalize_index(index: Any, x: Tensor) -> Any:
    """Turn tensors and lists inside an index into arrays on ``x``'s device; check bounds early."""
    items = index if isinstance(index, tuple) else (index,)
    backend = backend_for(x.device)
    out = []
    for item in items:
        if isinstance(item, Tensor):
            if item.device != x.device:
                raise DeviceError(f"getitem: the index is on {item.device} but the tensor is on {x.device}")
            if item.dtype.kind not in "biu":
                raise DTypeError(f"getitem: tensors used as indices must be integer or bool, got {item.dtype}")
            item = item.data
            if item.dtype == np.bool_ and item.ndim:
                out.extend(item.nonzero())  # NumPy's meaning of a mask; also what add.at needs
                continue
        elif isinstance(item, (list, tuple, np.ndarray)):  # a tuple inside an index is a sequence
            arr = np.asarray(item)
            if arr.dtype.kind not in "biu" and arr.size:
                raise DTypeError(f"getitem: arrays used as indices must be integer or bool, got {arr.dtype}")
            if arr.size == 0:
                arr = arr.astype(np.int64)
            item = backend.asarray(arr)
            if arr.dtype == np.bool_ and arr.ndim:
                out.extend(item.nonzero())
                continue
        elif isinstance(item, slice):
            item = slice(*(_as_int(v) for v in (item.start, item.stop, item.step)))
        elif isinstance(item, (bool, np.bool_)):
            item = bool(item)
        elif isinstance(item, numbers.Integral):
            item = int(item)
        elif item is None or item is Ellipsis:
            pass
        elif backend.xp is not np and hasattr(item, "__cuda_array_interface__"):
            pass
        else:
            raise GpugradError(f"getitem: unsupported index {item!r} of type {type(item).__name__}")
        out.append(item)
    return tuple(out)


def _as_int(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, Tensor):
        return int(v.item())
    return int(v)


def getitem(x: Any, index: Any) -> Tensor:
    """``x[index]`` with NumPy's basic and advanced indexing; the gradient scatters back, adding
    at repeated indices."""
    x = as_tensor_operand(x)
    idx = normalize_index(index, x)
    try:
        return apply(GETITEM, (x,), {"index": idx, "shape": x.shape})
    except ShapeError as exc:
        raise ShapeError(f"getitem: index {index!r} does not fit shape {x.shape}: {exc.__cause__ or exc}") from None


def index_scatter(values: Any, shape: tuple, index: Any) -> Tensor:
    """zeros(shape) with ``values`` added at ``index`` (repeated indices accumulate)."""
    values = as_tensor_operand(values)
    idx = index if isinstance(index, tuple) else (index,)
    return apply(INDEX_SCATTER, (values,), {"index": idx, "shape": tuple(shape)})


def index_put(x: Any, index: Any, values: Any) -> Tensor:
    """A copy of ``x`` with ``values`` written at ``index`` (differentiable in both)."""
    x = as_tensor_operand(x)
    idx = normalize_index(index, x)
    if isinstance(values, Tensor) and values.device != x.device:
        raise DeviceError(f"index_put: the values are on {values.device} but the tensor is on {x.device}")
    return apply(INDEX_PUT, (x, values), {"index": idx})


@accepts_dim
def take(x: Any, indices: Any, axis: int | None = None) -> Tensor:
    """Elements at integer ``indices`` along ``axis`` (the flattened array when None), as ``numpy.take``."""
    from gpugrad.ops.shape import reshape

    x = as_tensor_operand(x)
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    a = normalize_one_axis(axis, x.ndim, "take")
    B = backend_for(x.device)
    if isinstance(indices, Tensor):
        ind = indices.data
    elif isinstance(indices, B.xp.ndarray):
        ind = indices  # already on x's device (the rule of take's own jvp/vjp passes it on)
    else:
        ind = B.asarray(np.asarray(indices))
    if ind.dtype.kind not in "iu":
        raise DTypeError(f"take: indices must be integers, got dtype {ind.dtype}")
    n = x.shape[a]
    B.check_range(ind, -n, n, ShapeError, f"take: indices along axis {a} of size {n}")
    return apply(TAKE, (x,), {"indices": ind, "axis": a, "shape": x.shape})


def take_scatter(values: Any, shape: tuple, indices: Any, axis: int) -> Tensor:
    values = as_tensor_operand(values)
    return apply(TAKE_SCATTER, (values,), {"indices": indices, "axis": axis, "shape": tuple(shape)})


# ---------------------------------------------------------------------------------------------
# in-place operations


def _check_inplace_target(x: Tensor, what: str) -> None:
    if x._node is None and x.requires_grad:
        raise InplaceError(
            f"{what}: a leaf tensor that requires grad cannot be modified in place while gradients are "
            "recorded; do it under gg.no_grad() (e.g. a parameter update) or use an out-of-place op"
        )
    if x._extra and "base" in x._extra:
        raise InplaceError(
            f"{what}: in-place changes to a view (a reshape/slice/transpose of another tensor) are not "
            "recorded by gpugrad; modify the base tensor or use an out-of-place op"
        )


def _write(x: Tensor, value: Any, what: str) -> None:
    try:
        x.data[...] = value
    except ValueError as exc:
        raise InplaceError(f"{what}: cannot write into this tensor ({exc})") from None


def inplace(x: Tensor, fn: Callable[[Any, Any], Tensor], other: Any) -> Tensor:
    """``x op= other``: x's storage is updated (views see it) and its version counter bumped.

    When the op must be recorded, the old value keeps the history and the new value becomes a
    node on the tape, as PyTorch does; a tensor saved for backward that is changed this way is
    detected at backward time.
    """
    name = getattr(fn, "name", "inplace")
    # pending chains read x's storage as it is now (the operand's own, when pending, is computed below)
    if _fusion._LIVE:
        _fusion.flush(other if other.__class__ is PendingTensor else None)
    recording = STATE.grad_enabled and (x.requires_grad or (isinstance(other, Tensor) and other.requires_grad))
    tangents = STATE.fw_levels and _has_tangents(x, other)
    if recording or tangents:
        if recording:
            _check_inplace_target(x, f"{name}_")
        result = fn(_snapshot(x), other)
    elif name in _UFUNC_INPLACE and _ufunc_inplace(x, name, other, fn):
        return x
    else:
        result = fn(x.detach(), other)
    if result.shape != x.shape:
        raise ShapeError(f"{name}_: the result has shape {result.shape} but the in-place target has shape {x.shape}")
    if result.dtype != x.dtype and not np.can_cast(result.dtype, x.dtype, "same_kind"):
        raise DTypeError(f"{name}_: cannot store a {result.dtype} result in place into a {x.dtype} tensor")
    _write(x, result.data, f"{name}_")
    x._version[0] += 1
    if recording:
        x._node = result._node
        x.requires_grad = result.requires_grad
    if tangents:
        x._tangents = result._tangents
    return x


_UFUNC_INPLACE = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide"}
_NP_UFUNCS = {name: getattr(np, u) for name, u in _UFUNC_INPLACE.items()}


# ``x op= pending`` joins the pending chain (one kernel writing into x) on CUDA; on the CPU the
# operand is computed first. fusion.aot turns this on to see, on the CPU, the chains CUDA runs.
FUSE_INTO_ON_CPU = False


def _ufunc_inplace(x: Tensor, name: str, other: Any, fn: Callable[[Any, Any], Tensor]) -> bool:
    """Unrecorded ``x op= other`` as one ufunc writing into x's storage (a parameter update does
    one pass and allocates nothing). Returns False where the general path must decide."""
    if isinstance(other, Tensor):
        if other.device != x.device:
            raise DeviceError(f"{name}_: the operand is on {other.device} but the tensor is on {x.device}")
        if other._lazy is not None and (x.device != "cpu" or FUSE_INTO_ON_CPU) and _fused_into(x, fn, other):
            x._version[0] += 1
            return True
        operand = other.data
    elif other is None or isinstance(other, (int, float, bool)):
        operand = other
    else:
        return False
    data = x.data
    if data.dtype.kind not in "fiu":
        return False
    ufunc = _NP_UFUNCS[name] if data.__class__ is np.ndarray else getattr(backend_for(x.device).xp,
                                                                           _UFUNC_INPLACE[name])
    try:
        ufunc(data, operand, out=data)
    except TypeError as exc:  # NumPy's casting rule (same_kind), e.g. int32 += float
        raise DTypeError(f"{name}_: cannot store the result in place into a {x.dtype} tensor ({exc})") from None
    except ValueError:
        if isinstance(data, np.ndarray) and not data.flags.writeable:
            return False  # (asked only now: 0.4 us an update) the general path says why it cannot write
        raise ShapeError(f"{name}_: operand of shape {getattr(operand, 'shape', ())} does not broadcast to the "
                         f"in-place target's shape {x.shape}") from None
    x._version[0] += 1
    return True


def _fused_into(x: Tensor, fn: Callable[[Any, Any], Tensor], other: Tensor) -> bool:
    """``x op= other`` for a pending ``other`` on CUDA: ``x op other`` joins its chain, and the
    fused kernel writes the value into x's storage (``p -= lr * g``: one launch, not two).
    False where it does not apply (the caller computes the operand first, as for any other)."""
    data = x.data
    if other.dtype != data.dtype or other.ndim > data.ndim or not data.flags.c_contiguous:
        return False  # (a result of another dtype or shape, or a layout the kernel does not write)
    r = fn(make_tensor(data, x.device), other)
    if r._lazy is None or r.shape != x.shape or r.dtype != x.dtype:
        return False
    value = _fusion.materialize(r, out=data)
    if value is not data:  # the kernel could not write there (its operands overlap x's memory)
        data[...] = value
    return True


def _has_tangents(x: Tensor, other: Any) -> bool:
    """Is forward mode running with a tangent on either operand of an in-place op?"""
    if not STATE.fw_levels:
        return False
    return bool(x._tangents) or (isinstance(other, Tensor) and bool(other._tangents))


def _snapshot(x: Tensor) -> Tensor:
    """The value of ``x`` before an in-place change, owning its history and tangents."""
    old = make_tensor(x.data.copy(), x.device, x.requires_grad, x._node)
    old._tangents = x._tangents
    return old


def setitem(x: Tensor, index: Any, value: Any) -> None:
    """``x[index] = value``, recorded on the tape when ``value`` or ``x`` requires grad."""
    if not isinstance(x, Tensor):
        raise GpugradError("setitem: the target must be a Tensor")
    _fusion.flush()  # pending chains read x's storage as it is now
    recording = STATE.grad_enabled and (x.requires_grad or (isinstance(value, Tensor) and value.requires_grad))
    if isinstance(value, Tensor) and value.device != x.device:
        raise DeviceError(f"setitem: the value is on {value.device} but the tensor is on {x.device}")
    tangents = _has_tangents(x, value)
    if recording or tangents:
        if recording:
            _check_inplace_target(x, "setitem")
        result = index_put(_snapshot(x), index, value)
        _write(x, result.data, "setitem")
        x._version[0] += 1
        if recording:
            x._node = result._node
            x.requires_grad = result.requires_grad
        if tangents:
            x._tangents = result._tangents
        return
    idx = normalize_index(index, x)
    v = value.data if isinstance(value, Tensor) else value
    try:
        x.data[idx if len(idx) != 1 else idx[0]] = v
    except (ValueError, IndexError) as exc:
        raise ShapeError(f"setitem: cannot assign a value of shape {np.shape(v)} at {index!r} of a tensor "
                         f"of shape {x.shape}: {exc}") from None
    x._version[0] += 1
