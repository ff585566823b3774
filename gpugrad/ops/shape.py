"""Shape ops with NumPy's semantics. The primitives (reshape, transpose, broadcast_to, sum_to,
concatenate, flip, pad, astype, to_device) have their own rules; the rest (squeeze, stack,
split, tile, repeat, ...) are compositions of primitives and of indexing, so their gradients
and tangents follow automatically.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpugrad.errors import ShapeError
from gpugrad.ops._util import as_tensor_operand, normalize_axis, normalize_one_axis
from gpugrad.ops.base import Op, apply
from gpugrad.ops.spellings import accepts_dim
from gpugrad.tensor import Tensor


class Reshape(Op):
    name = "reshape"
    view = True
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.reshape(args[0], params["shape"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.reshape(g, params["in_shape"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.reshape(tangents[0], out.shape)


class Transpose(Op):
    name = "transpose"
    view = True
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.transpose(args[0], params["axes"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.transpose(g, params["inverse"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.transpose(tangents[0], params["axes"])


class BroadcastTo(Op):
    name = "broadcast_to"
    view = True
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.broadcast_to(args[0], params["shape"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.sum_to(g, params["in_shape"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.broadcast_to(tangents[0], params["shape"])


class SumTo(Op):
    """Sum over broadcast axes down to ``shape``: the transpose of broadcast_to."""

    name = "sum_to"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.sum_to(args[0], params["shape"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.broadcast_to(g, params["in_shape"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.sum_to(tangents[0], params["shape"])


class Concatenate(Op):
    name = "concatenate"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.concatenate(args, params["axis"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        axis = params["axis"]
        grads = []
        start = 0
        for size, need in zip(params["sizes"], needs):
            if need:
                grads.append(ns.getitem(g, (slice(None),) * axis + (slice(start, start + size),)))
            else:
                grads.append(None)
            start += size
        return tuple(grads)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        parts = [t if t is not None else ns.zeros_like(a) for t, a in zip(tangents, args)]
        return ns.concatenate(parts, params["axis"])


class Flip(Op):
    name = "flip"
    view = True
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return B.flip(args[0], params["axis"])

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.flip(g, params["axis"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.flip(tangents[0], params["axis"])


class Pad(Op):
    """Zero (constant) padding; its gradient is the interior slice."""

    name = "pad"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x, value = args[0], params["value"]
        if value == 0:
            return B.pad(x, params["pad_width"])
        return B.xp.pad(x, params["pad_width"], mode="constant", constant_values=value)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        index = tuple(slice(lo, lo + n) for (lo, _), n in zip(params["pad_width"], params["in_shape"]))
        return (ns.getitem(g, index),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.pad(tangents[0], params["pad_width"])


class AsType(Op):
    name = "astype"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        x, dt = args[0], params["dtype"]
        if x.dtype.kind == "c" and dt.kind != "c":
            x = x.real  # complex to real keeps the real part (Tensor.astype warns as NumPy does)
        return x.astype(dt)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.astype(g, params["in_dtype"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.astype(tangents[0], params["dtype"])


class ToDevice(Op):
    """A copy to another device; the gradient is copied back."""

    name = "to_device"
    save_inputs = False
    moves = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        from gpugrad.backends import backend_for

        host = B.to_host(args[0])
        return backend_for(params["device"]).from_host(host)

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        return (ns.to_device(g, params["src"]),)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        return ns.to_device(tangents[0], params["device"])


RESHAPE = Reshape()
TRANSPOSE = Transpose()
BROADCAST_TO = BroadcastTo()
SUM_TO = SumTo()
CONCATENATE = Concatenate()
FLIP = Flip()
PAD = Pad()
ASTYPE = AsType()
TO_DEVICE = ToDevice()


# ---------------------------------------------------------------------------------------------
# public functions


def _shape_tuple(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def reshape(x: Any, shape: Any) -> Tensor:
    """Reshape (one dimension may be -1), as ``numpy.reshape``. Example: ``gg.reshape(x, (2, -1))``."""
    x = as_tensor_operand(x)
    shape = _shape_tuple(shape)
    if shape == x.shape:
        return apply(RESHAPE, (x,), {"shape": shape, "in_shape": x.shape})
    known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (
        -1 not in shape and known != x.size
    ) or (-1 in shape and (known == 0 or x.size % known)):
        raise ShapeError(f"reshape: cannot reshape an array of shape {x.shape} (size {x.size}) into shape {shape}")
    if -1 in shape:
        shape = tuple(x.size // known if s == -1 else s for s in shape)
    return apply(RESHAPE, (x,), {"shape": shape, "in_shape": x.shape})


def transpose(x: Any, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None), as ``numpy.transpose``."""
    x = as_tensor_operand(x)
    nd = x.ndim
    if axes is None:
        perm = tuple(range(nd - 1, -1, -1))
    else:
        perm = tuple(normalize_one_axis(a, nd, "transpose") for a in axes)
        if sorted(perm) != list(range(nd)):
            raise ShapeError(f"transpose: axes {tuple(axes)} are not a permutation of {nd} axes")
    inverse = tuple(int(i) for i in np.argsort(perm))
    return apply(TRANSPOSE, (x,), {"axes": perm, "inverse": inverse})


def permute(x: Any, *dims: Any) -> Tensor:
    """PyTorch's permute: ``gg.permute(x, 2, 0, 1)`` or ``x.permute((2, 0, 1))``."""
    if len(dims) == 1 and not isinstance(dims[0], numbers.Integral):
        dims = tuple(dims[0])
    return transpose(x, dims)


def swapaxes(x: Any, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes, as ``numpy.swapaxes``."""
    x = as_tensor_operand(x)
    a = normalize_one_axis(axis1, x.ndim, "swapaxes")
    b = normalize_one_axis(axis2, x.ndim, "swapaxes")
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def moveaxis(x: Any, source: Any, destination: Any) -> Tensor:
    """Move axes to new positions, as ``numpy.moveaxis``."""
    x = as_tensor_operand(x)
    src = [normalize_one_axis(a, x.ndim, "moveaxis") for a in np.atleast_1d(source)]
    dst = [normalize_one_axis(a, x.ndim, "moveaxis") for a in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ShapeError("moveaxis: source and destination must have the same number of elements")
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


@accepts_dim
def expand_dims(x: Any, axis: Any) -> Tensor:
    """Insert size-1 axes at ``axis`` (an int or a tuple), as ``numpy.expand_dims``."""
    x = as_tensor_operand(x)
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    nd = x.ndim + len(axes)
    pos = normalize_axis(axes, nd, "expand_dims")
    shape = list(x.shape)
    for p in pos:
        shape.insert(p, 1)
    return reshape(x, tuple(shape))


unsqueeze = expand_dims


@accepts_dim
def squeeze(x: Any, axis: Any = None) -> Tensor:
    """Remove size-1 axes (all of them, or those in ``axis``), as ``numpy.squeeze``."""
    x = as_tensor_operand(x)
    if axis is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    axes = normalize_axis(axis, x.ndim, "squeeze")
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: cannot select axis {a} of shape {x.shape}: its size is not one")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge the axes ``start_dim..end_dim`` into one (PyTorch's flatten; all axes by default)."""
    x = as_tensor_operand(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s = normalize_one_axis(start_dim, x.ndim, "flatten")
    e = normalize_one_axis(end_dim, x.ndim, "flatten")
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = int(np.prod(x.shape[s:e + 1], dtype=np.int64))
    return reshape(x, x.shape[:s] + (merged,) + x.shape[e + 1:])


def ravel(x: Any) -> Tensor:
    """The elements as a 1-D tensor, as ``numpy.ravel``."""
    return reshape(x, (-1,))


def broadcast_to(x: Any, shape: Any) -> Tensor:
    """Broadcast to ``shape`` (a read-only view); the gradient is summed back."""
    x = as_tensor_operand(x)
    shape = _shape_tuple(shape)
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    if len(shape) < x.ndim or np.broadcast_shapes(x.shape, shape) != shape:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return apply(BROADCAST_TO, (x,), {"shape": shape, "in_shape": x.shape})


def broadcast_arrays(*xs: Any) -> list[Tensor]:
    ts = [as_tensor_operand(x) for x in xs]
    shape = np.broadcast_shapes(*[t.shape for t in ts])
    return [broadcast_to(t, shape) for t in ts]


def sum_to(x: Any, shape: Any) -> Tensor:
    """Sum ``x`` over broadcast axes so that it has ``shape`` (the transpose of broadcast_to)."""
    x = as_tensor_operand(x)
    shape = _shape_tuple(shape)
    return apply(SUM_TO, (x,), {"shape": shape, "in_shape": x.shape})


@accepts_dim
def concatenate(arrays: Sequence[Any], axis: int | None = 0) -> Tensor:
    """Join along an existing axis (the flattened arrays when ``axis`` is None), as NumPy."""
    ts = _operands(arrays, "concatenate")
    if axis is None:
        ts = [ravel(t) for t in ts]
        axis = 0
    nd = ts[0].ndim
    if nd == 0:
        raise ShapeError("concatenate: zero-dimensional arrays cannot be concatenated")
    a = normalize_one_axis(axis, nd, "concatenate")
    for t in ts:
        if t.ndim != nd or t.shape[:a] + t.shape[a + 1:] != ts[0].shape[:a] + ts[0].shape[a + 1:]:
            raise ShapeError(
                f"concatenate: all shapes must match except along axis {a}, got "
                f"{', '.join(str(u.shape) for u in ts)}"
            )
    return apply(CONCATENATE, tuple(ts), {"axis": a, "sizes": tuple(t.shape[a] for t in ts)})


def _operands(arrays: Any, name: str) -> list[Tensor]:
    if isinstance(arrays, Tensor):
        return [arrays[i] for i in range(arrays.shape[0])]
    seq = list(arrays)
    if not seq:
        raise ShapeError(f"{name}: need at least one array")
    like = next((a for a in seq if isinstance(a, Tensor)), None)
    return [as_tensor_operand(a, like) for a in seq]


@accepts_dim
def stack(arrays: Sequence[Any], axis: int = 0) -> Tensor:
    """Join along a new axis, as ``numpy.stack``."""
    ts = _operands(arrays, "stack")
    shape = ts[0].shape
    for t in ts:
        if t.shape != shape:
            shapes = ", ".join(str(u.shape) for u in ts)
            raise ShapeError(f"stack: all input arrays must have the same shape, got {shapes}")
    a = normalize_one_axis(axis, len(shape) + 1, "stack")
    return concatenate([expand_dims(t, a) for t in ts], a)


def hstack(arrays: Sequence[Any]) -> Tensor:
    """Stack horizontally (axis 1, or 0 for 1-D inputs), as ``numpy.hstack``."""
    ts = [atleast_1d(t) for t in _operands(arrays, "hstack")]
    return concatenate(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(arrays: Sequence[Any]) -> Tensor:
    """Stack vertically (rows), as ``numpy.vstack``."""
    return concatenate([atleast_2d(t) for t in _operands(arrays, "vstack")], 0)


def atleast_1d(x: Any) -> Tensor:
    x = as_tensor_operand(x)
    return reshape(x, (1,)) if x.ndim == 0 else x


def atleast_2d(x: Any) -> Tensor:
    x = as_tensor_operand(x)
    if x.ndim == 0:
        return reshape(x, (1, 1))
    if x.ndim == 1:
        return reshape(x, (1, x.shape[0]))
    return x


@accepts_dim
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """Split into pieces along ``axis``, as ``numpy.split`` (an int must divide the axis evenly)."""
    x = as_tensor_operand(x)
    a = normalize_one_axis(axis, x.ndim, "split")
    n = x.shape[a]
    if isinstance(indices_or_sections, numbers.Integral):
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ShapeError(f"split: an axis of length {n} cannot be split into {sections} equal sections")
        bounds = [i * (n // sections) for i in range(sections + 1)]
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    return _pieces(x, a, bounds)


@accepts_dim
def array_split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """As ``numpy.array_split``: like split, but sections need not be equal."""
    x = as_tensor_operand(x)
    a = normalize_one_axis(axis, x.ndim, "array_split")
    n = x.shape[a]
    if isinstance(indices_or_sections, numbers.Integral):
        k = int(indices_or_sections)
        if k <= 0:
            raise ShapeError("array_split: number of sections must be larger than 0")
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        bounds = [0, *np.cumsum(sizes).tolist()]
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    return _pieces(x, a, bounds)


def _pieces(x: Tensor, a: int, bounds: list[int]) -> list[Tensor]:
    from gpugrad.ops.index import getitem

    n = x.shape[a]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo, hi = builtin_min(lo, n), builtin_min(builtin_max(hi, lo), n)
        out.append(getitem(x, (slice(None),) * a + (slice(lo, hi),)))
    return out


builtin_min = min
builtin_max = max


@accepts_dim
def flip(x: Any, axis: Any = None) -> Tensor:
    """Reverse the order of elements along ``axis`` (all axes by default), as ``numpy.flip``."""
    x = as_tensor_operand(x)
    axes = normalize_axis(axis, x.ndim, "flip")
    return apply(FLIP, (x,), {"axis": axes})


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: float = 0) -> Tensor:
    """Pad as ``numpy.pad``: modes 'constant', 'edge', 'reflect', 'symmetric', 'wrap'."""
    x = as_tensor_operand(x)
    widths = [tuple(int(v) for v in w) for w in np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))]
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        raise ShapeError(f"pad: pad widths must be non-negative, got {pad_width!r}")
    if mode == "constant":
        return apply(PAD, (x,), {"pad_width": tuple(widths), "in_shape": x.shape, "value": constant_values})
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise ShapeError(f"pad: mode {mode!r} is not supported; use constant, edge, reflect, symmetric or wrap")
    from gpugrad.ops.index import take

    out = x
    for axis, (lo, hi) in enumerate(widths):
        if lo or hi:
            idx = np.pad(np.arange(x.shape[axis]), (lo, hi), mode=mode)
            out = take(out, idx, axis)
    return out


@accepts_dim
def repeat(x: Any, repeats: Any, axis: int | None = None) -> Tensor:
    """Repeat each element ``repeats`` times along ``axis`` (flattened when None), as ``numpy.repeat``."""
    from gpugrad.ops.index import take

    x = as_tensor_operand(x)
    if axis is None:
        x = ravel(x)
        axis = 0
    a = normalize_one_axis(axis, x.ndim, "repeat")
    reps = np.asarray(repeats.numpy() if isinstance(repeats, Tensor) else repeats)
    try:
        idx = np.repeat(np.arange(x.shape[a]), reps)
    except ValueError as exc:
        raise ShapeError(f"repeat: {exc} (axis of length {x.shape[a]}, repeats {reps.shape})") from None
    return take(x, idx, a)


def tile(x: Any, reps: Any) -> Tensor:
    """Repeat the whole array ``reps`` times along each axis, as ``numpy.tile``."""
    x = as_tensor_operand(x)
    reps = (int(reps),) if isinstance(reps, numbers.Integral) else tuple(int(r) for r in reps)
    nd = builtin_max(len(reps), x.ndim)
    shape = (1,) * (nd - x.ndim) + x.shape
    reps = (1,) * (nd - len(reps)) + reps
    x = reshape(x, shape)
    inter = []
    for s in shape:
        inter += [1, s]
    expanded = reshape(x, tuple(inter))
    target = []
    for r, s in zip(reps, shape):
        target += [r, s]
    return reshape(broadcast_to(expanded, tuple(target)), tuple(r * s for r, s in zip(reps, shape)))


@accepts_dim
def roll(x: Any, shift: Any, axis: Any = None) -> Tensor:
    """Roll elements along ``axis`` (the flattened array when None), as ``numpy.roll``."""
    from gpugrad.ops.index import take

    x = as_tensor_operand(x)
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), x.shape)
    shifts = np.broadcast_to(np.atleast_1d(shift), (len(np.atleast_1d(axis)),))
    axes = np.broadcast_to(np.atleast_1d(axis), shifts.shape)
    out = x
    for s, a in zip(shifts.tolist(), axes.tolist()):
        a = normalize_one_axis(a, x.ndim, "roll")
        out = take(out, np.roll(np.arange(x.shape[a]), s), a)
    return out


def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The diagonal over ``axis1``/``axis2``, appended as the last axis, as ``numpy.diagonal``."""
    from gpugrad.ops.index import getitem

    x = as_tensor_operand(x)
    a = normalize_one_axis(axis1, x.ndim, "diagonal")
    b = normalize_one_axis(axis2, x.ndim, "diagonal")
    if a == b:
        raise ShapeError("diagonal: axis1 and axis2 cannot be the same")
    rest = [i for i in range(x.ndim) if i not in (a, b)]
    xt = transpose(x, rest + [a, b])
    n, m = x.shape[a], x.shape[b]
    if offset >= 0:
        k = builtin_max(0, builtin_min(n, m - offset))
        rows, cols = np.arange(k), np.arange(k) + offset
    else:
        k = builtin_max(0, builtin_min(n + offset, m))
        rows, cols = np.arange(k) - offset, np.arange(k)
    return getitem(xt, (Ellipsis, rows, cols))


def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """Sum of the diagonal, as ``numpy.trace``."""
    from gpugrad.ops.reduce import sum as _sum

    return _sum(diagonal(x, offset, axis1, axis2), -1)


def diag(v: Any, k: int = 0) -> Tensor:
    """A 2-D array with ``v`` on diagonal ``k`` (from 1-D), or the diagonal (from 2-D), as NumPy."""
    from gpugrad.ops.index import index_put

    v = as_tensor_operand(v)
    if v.ndim == 1:
        n = v.shape[0] + abs(k)
        from gpugrad.factories import zeros

        base = zeros((n, n), dtype=v.dtype, device=v.device)
        idx = np.arange(v.shape[0])
        rows, cols = (idx, idx + k) if k >= 0 else (idx - k, idx)
        return index_put(base, (rows, cols), v)
    if v.ndim == 2:
        return diagonal(v, k)
    raise ShapeError(f"diag: input must be 1-D or 2-D, got shape {v.shape}")


def _tri_mask(x: Tensor, k: int, lower: bool) -> Tensor:
    from gpugrad.factories import as_tensor

    n, m = x.shape[-2], x.shape[-1]
    mask = np.tri(n, m, k, dtype=bool)
    if not lower:
        mask = ~np.tri(n, m, k - 1, dtype=bool)
    return as_tensor(mask, device=x.device)


def tril(x: Any, k: int = 0) -> Tensor:
    """Lower triangle (zeros above diagonal ``k``), as ``numpy.tril``."""
    from gpugrad.ops.elementwise import where

    x = as_tensor_operand(x)
    if x.ndim < 2:
        raise ShapeError(f"tril: input must be at least 2-D, got shape {x.shape}")
    return where(_tri_mask(x, k, True), x, 0)


def triu(x: Any, k: int = 0) -> Tensor:
    """Upper triangle (zeros below diagonal ``k``), as ``numpy.triu``."""
    from gpugrad.ops.elementwise import where

    x = as_tensor_operand(x)
    if x.ndim < 2:
        raise ShapeError(f"triu: input must be at least 2-D, got shape {x.shape}")
    return where(_tri_mask(x, k, False), x, 0)


def astype(x: Any, dtype: Any) -> Tensor:
    """A copy cast to ``dtype``; differentiable between floating dtypes."""
    from gpugrad.factories import check_dtype

    x = as_tensor_operand(x)
    dt = check_dtype(dtype, "astype")
    if x.requires_grad and dt.kind not in "fc":
        # Casting to an integer type cuts the graph (as PyTorch): the result needs no gradient.
        from gpugrad.tensor import make_tensor

        return make_tensor(x.data.astype(dt), x.device)
    return apply(ASTYPE, (x,), {"dtype": dt, "in_dtype": x.dtype})


def to_device(x: Any, device: str) -> Tensor:
    """A copy of ``x`` on ``device`` (differentiable: the gradient is copied back)."""
    from gpugrad.backends import normalize_device

    x = as_tensor_operand(x)
    dev = normalize_device(device)
    if dev == x.device:
        return x
    return apply(TO_DEVICE, (x,), {"device": dev, "src": x.device})


def ascontiguous(x: Any) -> Tensor:
    from gpugrad.ops.elementwise import copy

    x = as_tensor_operand(x)
    if x.data.flags.c_contiguous:
        return x
    return copy(x)
