"""A drop-in NumPy namespace whose functions are differentiable.

``import gpugrad.numpy as np`` and write NumPy code; inside ``gg.grad`` (or on tensors) the
functions run as gpugrad ops and are recorded, outside they are plain NumPy (NumPy in, NumPy
out; CuPy arrays in, CuPy out). Names NumPy has but this namespace does not provide raise an
AttributeError naming them, so a missing function is never a silent wrong gradient.

Every name here is one of: differentiable; a function of booleans or integers computed from
values (comparisons, ``isnan``, ``argmax``, ``allclose``: exactly zero derivative, no float
result to carry one); or not differentiable at all (``argsort``, ``nonzero``, ``unique``,
``searchsorted``, ...: those refuse, with GraphError, a value being differentiated). Sequences
holding tensors are differentiable wherever NumPy takes an array (``np.sum([x, 2 * x])``).

Example::

    import gpugrad as gg
    import gpugrad.numpy as np

    def loss(w, X, y):
        return np.mean(np.log1p(np.exp(-y * np.dot(X, w))))
    g = gg.grad(loss)(np.zeros(3), X, y)
"""

from __future__ import annotations

import builtins as _builtins
from typing import Any as _Any

import numpy as _np

import gpugrad.ops as _ops
from gpugrad.numpy import _functions as _f
from gpugrad.numpy import fft, linalg  # noqa: F401  (submodules)
from gpugrad.numpy._wrap import any_tensor as _any_tensor
from gpugrad.numpy._wrap import constant_only as _constant_only
from gpugrad.numpy._wrap import dual as _dual
from gpugrad.numpy._wrap import has_tensor as _has_tensor
from gpugrad.numpy._wrap import stack_nested as _stack_nested
from gpugrad.tensor import Tensor as _Tensor

newaxis = None
pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
euler_gamma = _np.euler_gamma

__version__ = _np.__version__

float16 = _np.float16
float32 = _np.float32
float64 = _np.float64
complex64 = _np.complex64
complex128 = _np.complex128
int8 = _np.int8
int16 = _np.int16
int32 = _np.int32
int64 = _np.int64
uint8 = _np.uint8
longdouble = _np.longdouble  # a dtype name; tensors hold float16/32/64 and complex64/128 only
clongdouble = _np.clongdouble
bool_ = _np.bool_
ndarray = _np.ndarray
dtype = _np.dtype
finfo = _np.finfo
iinfo = _np.iinfo
s_ = _np.s_
index_exp = _np.index_exp
random = _np.random  # random numbers are constants for differentiation (autograd.numpy.random)


# ---------------------------------------------------------------------------------------------
# elementwise


def _elementwise(name: str, gg_name: str | None = None) -> _Any:
    op = getattr(_ops, gg_name or name)

    def gg_fn(*args: _Any, out: _Any = None, where: _Any = True, dtype: _Any = None, **kwargs: _Any) -> _Any:
        if out is not None or where is not True:
            from gpugrad.errors import GpugradError

            raise GpugradError(f"{name}: out= and where= are not supported for tensors")
        result = op(*args, **kwargs)
        return result if dtype is None else _ops.astype(result, dtype)

    gg_fn.__doc__ = getattr(op, "__doc__", None)
    return _dual(name, gg_fn)


_UFUNCS = (
    "add subtract multiply divide true_divide negative power floor_divide remainder mod maximum minimum "
    "sign exp exp2 expm1 log log2 log10 log1p sqrt cbrt square reciprocal sin cos tan arcsin arccos "
    "arctan arctan2 hypot sinh cosh tanh arcsinh arccosh arctanh floor ceil rint trunc logaddexp isnan "
    "isfinite isinf logical_and logical_or logical_xor logical_not equal not_equal less less_equal greater "
    "greater_equal real imag conj conjugate angle"
).split()
for _name in _UFUNCS:
    globals()[_name] = _elementwise(_name)
abs = _elementwise("abs")  # noqa: A001
absolute = _elementwise("absolute")
fabs = _elementwise("fabs", "abs")
del _name


def _positive(x: _Any) -> _Any:
    return _ops.copy(x)


def _deg2rad(x: _Any) -> _Any:
    return _ops.multiply(x, _np.pi / 180.0)


def _rad2deg(x: _Any) -> _Any:
    return _ops.multiply(x, 180.0 / _np.pi)


def _logaddexp2(a: _Any, b: _Any) -> _Any:
    ln2 = _np.log(2.0)
    return _ops.logaddexp(_ops.multiply(a, ln2), _ops.multiply(b, ln2)) / ln2


def _fmax(a: _Any, b: _Any) -> _Any:
    return _ops.where(_ops.isnan(a), b, _ops.where(_ops.isnan(b), a, _ops.maximum(a, b)))


def _fmin(a: _Any, b: _Any) -> _Any:
    return _ops.where(_ops.isnan(a), b, _ops.where(_ops.isnan(b), a, _ops.minimum(a, b)))


def _sinc(x: _Any) -> _Any:
    t = _ops.multiply(x, _np.pi)
    zero = _ops.equal(t, 0)
    safe = _ops.where(zero, 1.0, t)
    return _ops.where(zero, 1.0, _ops.sin(safe) / safe)


def _round(a: _Any, decimals: int = 0, out: _Any = None) -> _Any:
    return _ops.round(a, decimals)


positive = _dual("positive", _positive)
deg2rad = _dual("deg2rad", _deg2rad)
radians = _dual("radians", _deg2rad)
rad2deg = _dual("rad2deg", _rad2deg)
degrees = _dual("degrees", _rad2deg)
logaddexp2 = _dual("logaddexp2", _logaddexp2)
fmax = _dual("fmax", _fmax)
fmin = _dual("fmin", _fmin)
sinc = _dual("sinc", _sinc)
round = _dual("round", _round)  # noqa: A001
around = _dual("around", _round, "round")
real_if_close = _dual("real_if_close", _f.real_if_close)
iscomplex = _dual("iscomplex", _f.iscomplex)
isreal = _dual("isreal", _f.isreal)
nan_to_num = _dual("nan_to_num", _f.nan_to_num)


def _where(condition: _Any, x: _Any = None, y: _Any = None) -> _Any:
    if x is None and y is None:
        return nonzero(condition)
    return _ops.where(condition, x, y)


_where_dual = _dual("where", _where)


def where(condition: _Any, x: _Any = None, y: _Any = None) -> _Any:
    """``numpy.where`` (differentiable in x and y; the arguments may also be given by name)."""
    if x is None and y is None:
        return nonzero(condition)
    return _where_dual(condition, x, y)


def _clip(a: _Any, a_min: _Any = None, a_max: _Any = None, out: _Any = None, *, min: _Any = None,  # noqa: A002
          max: _Any = None, **kwargs: _Any) -> _Any:  # noqa: A002
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    return _ops.clip(a, lo, hi)


clip = _dual("clip", _clip)


# ---------------------------------------------------------------------------------------------
# reductions (NumPy's signatures)


def _no_out(name: str, out: _Any, **unsupported: _Any) -> None:
    from gpugrad.errors import GpugradError

    if out is not None:
        raise GpugradError(f"{name}: out= is not supported for tensors")
    for key, value in unsupported.items():
        if value is not None:
            raise GpugradError(f"{name}: {key}= is not supported for tensors")


def _sum(a: _Any, axis: _Any = None, dtype: _Any = None, out: _Any = None, keepdims: bool = False,
         initial: _Any = None, where: _Any = None) -> _Any:
    _no_out("sum", out, initial=initial, where=where)
    return _ops.sum(a, axis, keepdims, dtype=dtype)


def _mean(a: _Any, axis: _Any = None, dtype: _Any = None, out: _Any = None, keepdims: bool = False,
          where: _Any = None) -> _Any:
    _no_out("mean", out, where=where)
    return _ops.mean(a, axis, keepdims, dtype=dtype)


def _prod(a: _Any, axis: _Any = None, dtype: _Any = None, out: _Any = None, keepdims: bool = False,
          initial: _Any = None, where: _Any = None) -> _Any:
    _no_out("prod", out, initial=initial, where=where)
    r = _ops.prod(a, axis, keepdims)
    return r if dtype is None else _ops.astype(r, dtype)


def _max(a: _Any, axis: _Any = None, out: _Any = None, keepdims: bool = False, initial: _Any = None,
         where: _Any = None) -> _Any:
    _no_out("max", out, initial=initial, where=where)
    return _ops.max(a, axis, keepdims)


def _min(a: _Any, axis: _Any = None, out: _Any = None, keepdims: bool = False, initial: _Any = None,
         where: _Any = None) -> _Any:
    _no_out("min", out, initial=initial, where=where)
    return _ops.min(a, axis, keepdims)


def _var(a: _Any, axis: _Any = None, dtype: _Any = None, out: _Any = None, ddof: int = 0, keepdims: bool = False,
         **kwargs: _Any) -> _Any:
    _no_out("var", out)
    return _ops.var(a, axis, ddof=ddof, keepdims=keepdims)


def _std(a: _Any, axis: _Any = None, dtype: _Any = None, out: _Any = None, ddof: int = 0, keepdims: bool = False,
         **kwargs: _Any) -> _Any:
    _no_out("std", out)
    return _ops.std(a, axis, ddof=ddof, keepdims=keepdims)


def _cumsum(a: _Any, axis: _Any = None, dtype: _Any = None, out: _Any = None) -> _Any:
    _no_out("cumsum", out)
    r = _ops.cumsum(a, axis)
    return r if dtype is None else _ops.astype(r, dtype)


def _cumprod(a: _Any, axis: _Any = None, dtype: _Any = None, out: _Any = None) -> _Any:
    _no_out("cumprod", out)
    r = _ops.cumprod(a, axis)
    return r if dtype is None else _ops.astype(r, dtype)


def _argmax(a: _Any, axis: _Any = None, out: _Any = None, keepdims: bool = False) -> _Any:
    _no_out("argmax", out)
    return _ops.argmax(a, axis, keepdims)


def _argmin(a: _Any, axis: _Any = None, out: _Any = None, keepdims: bool = False) -> _Any:
    _no_out("argmin", out)
    return _ops.argmin(a, axis, keepdims)


def _any(a: _Any, axis: _Any = None, out: _Any = None, keepdims: bool = False, **kwargs: _Any) -> _Any:
    _no_out("any", out)
    return _ops.any(a, axis, keepdims)


def _all(a: _Any, axis: _Any = None, out: _Any = None, keepdims: bool = False, **kwargs: _Any) -> _Any:
    _no_out("all", out)
    return _ops.all(a, axis, keepdims)


sum = _dual("sum", _sum)  # noqa: A001
mean = _dual("mean", _mean)
prod = _dual("prod", _prod)
max = _dual("max", _max)  # noqa: A001
amax = _dual("amax", _max)
min = _dual("min", _min)  # noqa: A001
amin = _dual("amin", _min)
var = _dual("var", _var)
std = _dual("std", _std)
cumsum = _dual("cumsum", _cumsum)
cumprod = _dual("cumprod", _cumprod)
argmax = _dual("argmax", _argmax)
argmin = _dual("argmin", _argmin)
any = _dual("any", _any)  # noqa: A001
all = _dual("all", _all)  # noqa: A001
nansum = _dual("nansum", _f.nansum)
nanmean = _dual("nanmean", _f.nanmean)
median = _dual("median", _f.median)
average = _dual("average", _f.average)
ptp = _dual("ptp", _f.ptp)
diff = _dual("diff", _f.diff)
gradient = _dual("gradient", _f.gradient)


# ---------------------------------------------------------------------------------------------
# shapes and joining


def _transpose(a: _Any, axes: _Any = None) -> _Any:
    return _ops.transpose(a, axes)


def _reshape(a: _Any, *args: _Any, **kwargs: _Any) -> _Any:
    shape = kwargs.pop("newshape", kwargs.pop("shape", args[0] if args else None))
    if kwargs.get("order", "C") != "C":
        from gpugrad.errors import GpugradError

        raise GpugradError("reshape: only order='C' is supported for tensors")
    return _ops.reshape(a, shape)


def _squeeze(a: _Any, axis: _Any = None) -> _Any:
    return _ops.squeeze(a, axis)


def _ravel(a: _Any, order: str = "C") -> _Any:
    return _ops.ravel(a)


def _repeat(a: _Any, repeats: _Any, axis: _Any = None) -> _Any:
    return _ops.repeat(a, repeats, axis)


def _pad(array: _Any, pad_width: _Any, mode: str = "constant", **kwargs: _Any) -> _Any:
    return _ops.pad(array, pad_width, mode, kwargs.get("constant_values", 0))


def _split(ary: _Any, indices_or_sections: _Any, axis: int = 0) -> _Any:
    return _ops.split(ary, indices_or_sections, axis)


def _array_split(ary: _Any, indices_or_sections: _Any, axis: int = 0) -> _Any:
    return _ops.array_split(ary, indices_or_sections, axis)


def _roll(a: _Any, shift: _Any, axis: _Any = None) -> _Any:
    return _ops.roll(a, shift, axis)


def _take(a: _Any, indices: _Any, axis: _Any = None, out: _Any = None, mode: str = "raise") -> _Any:
    _no_out("take", out)
    return _ops.take(a, indices, axis)


def _atleast(fn: _Any) -> _Any:
    def go(*arys: _Any) -> _Any:
        outs = [fn(a) for a in arys]
        return outs[0] if len(outs) == 1 else outs

    return go


reshape = _dual("reshape", _reshape)
transpose = _dual("transpose", _transpose)
swapaxes = _dual("swapaxes", _ops.swapaxes)
moveaxis = _dual("moveaxis", _ops.moveaxis)
rollaxis = _dual("rollaxis", _f.rollaxis)
expand_dims = _dual("expand_dims", _ops.expand_dims)
squeeze = _dual("squeeze", _squeeze)
broadcast_to = _dual("broadcast_to", _ops.broadcast_to)
broadcast_arrays = _dual("broadcast_arrays", _ops.broadcast_arrays)
ravel = _dual("ravel", _ravel)
flip = _dual("flip", _ops.flip)
fliplr = _dual("fliplr", _f.fliplr)
flipud = _dual("flipud", _f.flipud)
rot90 = _dual("rot90", _f.rot90)
roll = _dual("roll", _roll)
repeat = _dual("repeat", _repeat)
tile = _dual("tile", _ops.tile)
pad = _dual("pad", _pad)
diag = _dual("diag", _ops.diag)
diagonal = _dual("diagonal", _ops.diagonal)
trace = _dual("trace", _ops.trace)
tril = _dual("tril", _ops.tril)
triu = _dual("triu", _ops.triu)
atleast_1d = _dual("atleast_1d", _atleast(_ops.atleast_1d))
atleast_2d = _dual("atleast_2d", _atleast(_ops.atleast_2d))
atleast_3d = _dual("atleast_3d", _f.atleast_3d)
split = _dual("split", _split)
array_split = _dual("array_split", _array_split)
hsplit = _dual("hsplit", _f.hsplit)
vsplit = _dual("vsplit", _f.vsplit)
dsplit = _dual("dsplit", _f.dsplit)
concatenate = _dual("concatenate", _f.concatenate, sequence=True)
stack = _dual("stack", _f.stack, sequence=True)
hstack = _dual("hstack", _f.hstack, sequence=True)
vstack = _dual("vstack", _f.vstack, sequence=True)
row_stack = _dual("row_stack", _f.vstack, "vstack", sequence=True)
dstack = _dual("dstack", _f.dstack, sequence=True)
column_stack = _dual("column_stack", _f.column_stack, sequence=True)
append = _dual("append", _f.append)
select = _dual("select", _f.select, sequence=True)
sort = _dual("sort", _f.sort)
partition = _dual("partition", _f.partition)
take = _dual("take", _take)
take_along_axis = _dual("take_along_axis", _f.take_along_axis)
meshgrid = _dual("meshgrid", _f.meshgrid)
copy = _dual("copy", _f.copy)
def make_diagonal(d: _Any, offset: int = 0, axis1: int = -1, axis2: int = -2) -> _Any:
    """HIPS autograd's ``make_diagonal`` (not a NumPy name): matrices with ``d``'s last axis on
    their diagonals, placed at ``axis1``/``axis2``; NumPy in, NumPy out."""
    out = _f.make_diagonal(d, offset, axis1, axis2)
    return out if _has_tensor((d,)) else out.numpy()


# ---------------------------------------------------------------------------------------------
# products and signals


def _einsum(*operands: _Any, **kwargs: _Any) -> _Any:
    if not isinstance(operands[0], str):
        operands = _sublist_einsum(operands)
    for key in ("optimize", "out", "dtype", "order", "casting"):
        value = kwargs.pop(key, None)
        if key in ("out", "dtype") and value is not None:
            from gpugrad.errors import GpugradError

            raise GpugradError(f"einsum: {key}= is not supported for tensors")
    return _ops.einsum(operands[0], *operands[1:])


def _sublist_einsum(args: tuple) -> tuple:
    """einsum(op0, sublist0, op1, sublist1, ..., [sublistout]) as (subscripts, *operands)."""
    import string

    letters = string.ascii_letters

    def sub(lst: _Any) -> str:
        return "".join("..." if s is Ellipsis else letters[int(s)] for s in lst)

    ops_, subs = list(args[0::2]), [sub(s) for s in args[1::2]]
    if len(args) % 2:  # an output sublist
        out = sub(args[-1])
        ops_ = ops_[:-1]
        return (",".join(subs) + "->" + out, *ops_)
    return (",".join(subs), *ops_)


def _dot(a: _Any, b: _Any, out: _Any = None) -> _Any:
    _no_out("dot", out)
    return _ops.dot(a, b)


def _matmul(a: _Any, b: _Any, out: _Any = None, **kwargs: _Any) -> _Any:
    _no_out("matmul", out)
    return _ops.matmul(a, b)


def _tensordot(a: _Any, b: _Any, axes: _Any = 2) -> _Any:
    return _ops.tensordot(a, b, axes)


def _outer(a: _Any, b: _Any, out: _Any = None) -> _Any:
    _no_out("outer", out)
    return _ops.outer(a, b)


einsum = _dual("einsum", _einsum)
dot = _dual("dot", _dot)
vdot = _dual("vdot", _ops.vdot)
inner = _dual("inner", _ops.inner)
outer = _dual("outer", _outer)
tensordot = _dual("tensordot", _tensordot)
matmul = _dual("matmul", _matmul)
kron = _dual("kron", _f.kron)
cross = _dual("cross", _f.cross)
convolve = _dual("convolve", _f.convolve)
correlate = _dual("correlate", _f.correlate)
interp = _dual("interp", _f.interp)


# ---------------------------------------------------------------------------------------------
# creating arrays


def array(obj: _Any, dtype: _Any = None, copy: _Any = True, **kwargs: _Any) -> _Any:
    """``numpy.array``; a (nested) list holding tensors becomes a differentiable stack of them."""
    if isinstance(obj, _Tensor):
        out = _ops.copy(obj) if copy else obj
        return out if dtype is None else _ops.astype(out, dtype)
    if isinstance(obj, (list, tuple)) and _has_tensor(obj):
        t = _stack_nested(obj)
        return t if dtype is None else _ops.astype(t, dtype)
    return _np.array(obj, dtype=dtype, copy=copy, **kwargs)


def asarray(obj: _Any, dtype: _Any = None, **kwargs: _Any) -> _Any:
    """``numpy.asarray``; tensors stay tensors (on the tape)."""
    if isinstance(obj, _Tensor):
        return obj if dtype is None or _np.dtype(dtype) == obj.dtype else _ops.astype(obj, dtype)
    if isinstance(obj, (list, tuple)) and _has_tensor(obj):
        return array(obj, dtype=dtype)
    return _np.asarray(obj, dtype=dtype, **kwargs)


ascontiguousarray = asarray
asanyarray = asarray


def _plain_creation(name: str) -> _Any:
    np_fn = getattr(_np, name)

    def fn(*args: _Any, **kwargs: _Any) -> _Any:
        return np_fn(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``numpy.{name}`` (a new constant array: its arguments are shapes and numbers)."
    return fn


for _name in ("zeros", "ones", "empty", "arange", "eye", "identity", "indices", "tri"):
    globals()[_name] = _plain_creation(_name)
del _name

linspace = _dual("linspace", _f.linspace)
full = _dual("full", _f.full)


def _logspace(start: _Any, stop: _Any, num: int = 50, endpoint: bool = True, base: float = 10.0,
              dtype: _Any = None, axis: int = 0) -> _Any:
    y = _f.linspace(start, stop, num, endpoint, axis=axis)
    out = _ops.pow(base, y)
    return out if dtype is None else _ops.astype(out, dtype)


logspace = _dual("logspace", _logspace)


def _like(name: str) -> _Any:
    np_fn = getattr(_np, name)

    def fn(a: _Any, *args: _Any, **kwargs: _Any) -> _Any:
        if isinstance(a, _Tensor):
            from gpugrad import factories

            if name == "full_like":  # a constant array of a's shape (its values are not used)
                return factories.full_like(a, *args, **kwargs)
            return getattr(factories, name)(a, **kwargs)
        return np_fn(a, *args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``numpy.{name}``: a constant array of a's shape (the values of a are not used)."
    return fn


zeros_like = _like("zeros_like")
ones_like = _like("ones_like")
empty_like = _like("empty_like")
full_like = _like("full_like")


class _Concatenator:
    """``np.r_`` / ``np.c_``: index expressions joining tensors, arrays, numbers and slices."""

    def __init__(self, numpy_obj: _Any, columns: bool) -> None:
        self._numpy = numpy_obj
        self._columns = columns

    def __getitem__(self, key: _Any) -> _Any:
        items = key if isinstance(key, tuple) else (key,)
        if not _builtins.any(isinstance(k, _Tensor) for k in items):
            return self._numpy[key]
        if _builtins.any(isinstance(k, str) for k in items):
            from gpugrad.errors import GpugradError

            raise GpugradError("r_/c_: string directives are not supported with tensors")
        like = next(k for k in items if isinstance(k, _Tensor))
        parts = []
        for k in items:
            if isinstance(k, slice):
                k = _np.r_[k]
            t = _ops.atleast_1d(k if isinstance(k, _Tensor) else _f.constant_like(_np.asarray(k), like))
            if self._columns:
                t = _ops.reshape(t, (-1, 1)) if t.ndim == 1 else t
            parts.append(t)
        dt = _np.result_type(*[p.dtype for p in parts])
        parts = [p if p.dtype == dt else _ops.astype(p, dt) for p in parts]
        return _ops.concatenate(parts, -1 if self._columns else 0)


r_ = _Concatenator(_np.r_, columns=False)
c_ = _Concatenator(_np.c_, columns=True)


# ---------------------------------------------------------------------------------------------
# information about arrays (no gradient involved)


def shape(a: _Any) -> tuple:
    return tuple(a.shape) if isinstance(a, _Tensor) else _np.shape(a)


def ndim(a: _Any) -> int:
    return a.ndim if isinstance(a, _Tensor) else _np.ndim(a)


def size(a: _Any, axis: _Any = None) -> int:
    if isinstance(a, _Tensor):
        return a.size if axis is None else a.shape[axis]
    return _np.size(a, axis)


def iscomplexobj(x: _Any) -> bool:
    return x.dtype.kind == "c" if isinstance(x, _Tensor) else _np.iscomplexobj(x)


def isrealobj(x: _Any) -> bool:
    return not iscomplexobj(x)


def result_type(*arrays_and_dtypes: _Any) -> _Any:
    return _np.result_type(*[a.dtype if isinstance(a, _Tensor) else a for a in arrays_and_dtypes])


def _values(x: _Any) -> _Any:
    """The values of a tensor (comparisons below return booleans: no gradient is dropped)."""
    if isinstance(x, _Tensor):
        return x.data if x.device == "cpu" else x.data.get()
    if isinstance(x, (list, tuple)):
        return [_values(v) for v in x]
    return x


def allclose(a: _Any, b: _Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """``numpy.allclose`` (a plain bool; tensors are compared by value)."""
    return bool(_np.allclose(_values(a), _values(b), rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(a: _Any, b: _Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> _Any:
    """``numpy.isclose`` (booleans)."""
    return _np.isclose(_values(a), _values(b), rtol=rtol, atol=atol, equal_nan=equal_nan)


def array_equal(a1: _Any, a2: _Any, equal_nan: bool = False) -> bool:
    return bool(_np.array_equal(_values(a1), _values(a2), equal_nan=equal_nan))


# Not differentiable (integer or index results from values): refused for a differentiated input.
argsort = _constant_only("argsort")
argpartition = _constant_only("argpartition")
nonzero = _constant_only("nonzero")
flatnonzero = _constant_only("flatnonzero")
argwhere = _constant_only("argwhere")
count_nonzero = _constant_only("count_nonzero")
unique = _constant_only("unique")
searchsorted = _constant_only("searchsorted")
digitize = _constant_only("digitize")
bincount = _constant_only("bincount")
histogram = _constant_only("histogram")


def __getattr__(name: str) -> _Any:
    if hasattr(_np, name):
        raise AttributeError(
            f"gpugrad.numpy.{name} is not provided, so it cannot be differentiated; use numpy.{name} "
            "on plain arrays (x.numpy() or x.detach() for a tensor), or open an issue if you need its gradient"
        )
    raise AttributeError(f"module 'gpugrad.numpy' has no attribute {name!r}")


del _any_tensor

del annotations  # (from __future__): not a NumPy name
