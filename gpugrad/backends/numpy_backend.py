"""The NumPy backend: ``device="cpu"``.

This module is itself the array namespace that op rules are written against in fast mode: the
names below (``sum``, ``sum_to``, ``broadcast_to``, ``getitem``, ``index_scatter``, ``exp`` ...)
have the same meaning as the differentiable functions of :mod:`gpugrad.ops`, on raw arrays.
Elementwise ops run their declared expressions with NumPy ufuncs; float16 is computed in
float32 and rounded once, as the CUDA kernels do.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np

from gpugrad.backends import host_memory as _host_memory
from gpugrad.backends import lowerings as _lowerings
from gpugrad.backends._erf import erf as _erf
from gpugrad.backends._erf import scipy_special as _scipy_special

# softmax / log_softmax (rules call them in the namespace) and the window helpers of convolution
# and pooling: portable array code, the CUDA backend's too where it has no kernel
from gpugrad.backends.portable import (  # noqa: F401  (the NumPy backend's names for these)
    _xp,
    col2im,
    im2col,
    log_softmax,
    pool2d,
    pool_argmax,
    pool_gather,
    pool_output_size,
    pool_scatter,
    softmax,
)
from gpugrad.backends.portable import short_row_extremum as _short_row_extremum
from gpugrad.backends.portable import where as _where
from gpugrad.backends.shapes import is_basic_index as _is_basic_index
from gpugrad.backends.shapes import sum_to_axes as _sum_to_axes
from gpugrad.table import expr as E

name = "cpu"
xp = np
TAG = "numpy"
# faster implementations of op rules, keyed by (op name, "forward" | "vjp") (gpugrad.ops.base);
# NumPy runs the rules themselves, except where the fusion compiler registers its kernels
lowerings = _lowerings.CPU
_EW_VJP_ACC = _lowerings.EW_VJP_ACC
_EW_FORWARD = _lowerings.EW_FORWARD

_host_memory.tune()  # NumPy's large temporaries are reused, not page-faulted in again each step

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_ndarray = np.ndarray


def _sigmoid(x: Any) -> Any:
    if getattr(x, "dtype", None) is not None and x.dtype.kind == "f":
        expit = _scipy_special("expit")  # one ufunc instead of four passes
        if expit is not None:
            return expit(x)
    if x.__class__ is np.ndarray and x.dtype.kind == "f":
        t = np.negative(x)
        np.exp(t, out=t)
        t += 1
        return np.reciprocal(t, out=t)
    return 1 / (1 + np.exp(-x))


def _rsqrt(x: Any) -> Any:
    return 1 / np.sqrt(x)


def _zeros_like(x: Any) -> Any:
    return np.zeros_like(x)


# The expression language's functions (gpugrad.table.expr.FUNCTIONS) as NumPy callables.
EXPR_FUNCTIONS: dict[str, Any] = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "rsqrt": _rsqrt, "cbrt": np.cbrt,
    "abs": np.abs, "sign": np.sign, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan, "sinh": np.sinh,
    "cosh": np.cosh, "tanh": np.tanh, "arcsinh": np.arcsinh, "arccosh": np.arccosh,
    "arctanh": np.arctanh, "sigmoid": _sigmoid, "erf": _erf, "floor": np.floor, "ceil": np.ceil,
    "rint": np.rint, "trunc": np.trunc, "isnan": np.isnan, "isfinite": np.isfinite,
    "isinf": np.isinf, "logical_not": np.logical_not, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor, "where": _where,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum, "arctan2": np.arctan2,
    "hypot": np.hypot, "floordiv": np.floor_divide, "mod": np.remainder,
    "zeros_like": _zeros_like,
}


def _scipy_ufunc(name: str) -> Any:
    """scipy.special's ``name``, imported at the first call (SciPy is a dependency of
    gpugrad.scipy only, the one user of these functions)."""

    def call(*args: Any) -> Any:
        fn = _scipy_special(name)
        if fn is None:
            raise ImportError(f"{name} needs SciPy: pip install 'gpugrad[scipy]'")
        out = fn(*args)
        # the op's dtype is its argument's (SciPy's integer-order yn has double loops only)
        dt = getattr(args[-1], "dtype", None)
        return out.astype(dt) if dt is not None and dt.kind == "f" and out.dtype != dt else out

    call.__name__ = name
    return call


# the op table's special functions (gpugrad.scipy.special)
EXPR_FUNCTIONS.update({name: _scipy_ufunc(name) for name in (
    "erfc", "erfinv", "erfcinv", "i0", "i1", "j0", "j1", "y0", "y1", "jn", "yn")})


def check_range(values: Any, lo: int, hi: int, error: type, what: str) -> None:
    """Raise ``error`` when some integer of ``values`` lies outside [lo, hi) (index checks).
    The CUDA backend defers the same check to the next synchronisation."""
    if values.size:
        mn, mx = int(values.min()), int(values.max())
        if mn < lo or mx >= hi:
            raise error(f"{what} must be in [{lo}, {hi}), got values in [{mn}, {mx}]")


# ---------------------------------------------------------------------------------------------
# elementwise ops


def forward_function(op: Any, dt: np.dtype) -> Any:
    """The op's forward for inputs of dtype ``dt``, compiled once and cached on the op.

    Float constants are 0-d arrays of ``dt`` (NumPy's fastest operand; no upcast); integer
    dtypes use Python numbers (weak, so 0.5 stays 0.5); float16 computes in float32 and rounds
    once, as the CUDA kernels do.
    """
    if dt == _F16:
        inner = op.python_function("fwd", _F32, EXPR_FUNCTIONS, TAG, "array")
        is_bool = op.kind == "bool"

        def fn(*args: Any) -> Any:
            up = [a.astype(_F32) if getattr(a, "dtype", None) == _F16 else a for a in args]
            out = np.asarray(inner(*up))
            return out if is_bool else out.astype(_F16)
    elif dt.kind == "f":
        fn = op.python_function("fwd", dt, EXPR_FUNCTIONS, TAG, "array")
        faster = lowerings.get(_EW_FORWARD)
        if faster is not None:
            fn = faster(op, dt, fn)
    else:
        fn = op.python_function("fwd", None, EXPR_FUNCTIONS, TAG + "-py")
    op.np_fwd[dt] = fn
    _BUILT.add(op)
    return fn


_BUILT: set = set()  # the ops whose forward functions are cached (op.np_fwd)


def _forget_forward_functions() -> None:
    """A kernel was registered (or removed): the cached forward functions are made again, through
    the ``EW_FORWARD`` factory registered now."""
    built = list(_BUILT)  # (another thread may add to it meanwhile: it is made again then too)
    _BUILT.clear()
    for op in built:
        op.np_fwd.clear()


lowerings.watch(_forget_forward_functions)


def vjp_functions(op: Any, dt: np.dtype) -> list:
    """Per input, the function computing its gradient from (g, inputs..., out, params...)."""
    fns = []
    for i, name in enumerate(op.inputs):
        if name not in op.d:
            fns.append(None)
        elif dt == _F16:
            fns.append(_half(op.python_function(("vjp", i), _F32, EXPR_FUNCTIONS, TAG, "array")))
        elif dt.kind == "f":
            fns.append(op.python_function(("vjp", i), dt, EXPR_FUNCTIONS, TAG, "array"))
        else:
            fns.append(op.python_function(("vjp", i), None, EXPR_FUNCTIONS, TAG + "-py"))
    op.np_vjp[dt] = fns
    return fns


def _half(inner: Any) -> Any:
    def fn(*args: Any) -> Any:
        up = [a.astype(_F32) if getattr(a, "dtype", None) == _F16 else a for a in args]
        return np.asarray(inner(*up)).astype(_F16)

    return fn


def ew_forward(op: Any, dt: np.dtype, args: list, params: dict) -> Any:
    fn = op.np_fwd.get(dt)
    if fn is None:
        fn = forward_function(op, dt)
    out = fn(*args, *[params[p] for p in op.param_names]) if params else fn(*args)
    if out.__class__ is not _ndarray:
        out = np.asarray(out)
    return out


def ew_vjp(op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
    """The gradients of an elementwise op's inputs in ``needs`` (None for the others)."""
    fns = op.np_vjp.get(g.dtype)
    if fns is None:
        fns = vjp_functions(op, g.dtype)
    if args is None:
        args = op._nones
    if params:
        extra = [params[p] for p in op.param_names]
        return tuple(fn(g, *args, out, *extra) if need else None for fn, need in zip(fns, needs))
    if op.n_inputs == 1:
        return (fns[0](g, args[0], out),)
    if op.n_inputs == 2:
        a, b = args
        return (fns[0](g, a, b, out) if needs[0] else None, fns[1](g, a, b, out) if needs[1] else None)
    return tuple(fn(g, *args, out) if need else None for fn, need in zip(fns, needs))


def ew_vjp_acc(op: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple, acc: Any,
               g_owned: bool) -> tuple[tuple, tuple]:
    """:func:`ew_vjp` for the backward pass: ``(grads, fresh)``, gradient i added into the
    engine's buffer ``acc[i]`` when there is one (``acc`` None: none; then ``grads[i] is acc[i]``); ``fresh[i]``
    says nothing else refers to grads[i]. (The CUDA backend does the same in one kernel; so does
    a kernel registered under ``EW_VJP_ACC``, gpugrad.fusion.host_vjp's, where it takes the case.)"""
    kernel = lowerings.get(_EW_VJP_ACC)
    if kernel is not None:
        got = kernel(op, g, args, out, params, needs, acc, g_owned)
        if got is not NotImplemented:
            return got
    grads = ew_vjp(op, g, args, out, params, needs)
    if acc is not None:
        grads = list(grads)
        for i, (gi, a) in enumerate(zip(grads, acc)):
            if gi is not None and a is not None:
                np.add(a, gi, out=a)
                grads[i] = a
    return grads, tuple([gi.__class__ is _ndarray and gi is not g and gi.base is None for gi in grads])


def add_into(dst: Any, src: Any) -> None:
    """dst += src, in place (dst is a gradient buffer the engine owns)."""
    np.add(dst, src, out=dst)


def accumulate(a: Any, b: Any) -> Any:
    """a + b in a new array (the engine may accumulate into it later)."""
    out = np.add(a, b)
    return out if out.__class__ is _ndarray else np.asarray(out)  # a 0-d sum comes back a scalar


# ---------------------------------------------------------------------------------------------
# the array namespace used by op rules (same names and meaning as gpugrad.ops)

for _name, _fn in EXPR_FUNCTIONS.items():
    globals()[_name] = _fn
del _name, _fn

negative = np.negative
square = np.square
reciprocal = np.reciprocal


def matmul(a: Any, b: Any) -> Any:
    """``np.matmul``; a C-contiguous stack of matrices times one matrix that is not C-contiguous
    (a transposed weight: ``x @ W.T``, and the input gradient of ``x @ W``) as one product of the
    stack's rows. NumPy runs the stack's products one by one there: (8, 32, 64) @ W.T with W
    (256, 64) took 162 us, (256, 64) @ W.T 94 us (float32, 1 thread)."""
    if a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous and not b.flags.c_contiguous:
        return np.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[-1])
    return np.matmul(a, b)


einsum = np.einsum
concatenate = np.concatenate
zeros_like = np.zeros_like
ones_like = np.ones_like
broadcast_to = np.broadcast_to
expand_dims = np.expand_dims


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """np.swapaxes as the array's method (np.swapaxes's Python wrapper costs 1 us: a matrix
    product's backward transposes an operand per gradient)."""
    return x.swapaxes(axis1, axis2)


flip = np.flip
cumsum = np.cumsum
cumprod = np.cumprod
stack = np.stack
tensordot = np.tensordot
diagonal = np.diagonal


# The ufuncs' reduce methods directly: np.sum / np.amax add ~1 us of Python per call (their
# dispatch for non-arrays) to reductions that take less than that on small arrays (a loss, a
# bias gradient). On the NumPy arrays and scalars that reach the backend, np.sum is
# np.add.reduce and np.amax is np.maximum.reduce.
_add_reduce = np.add.reduce
_max_reduce = np.maximum.reduce
_min_reduce = np.minimum.reduce


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return np.asarray(_add_reduce(x, axis=axis, keepdims=keepdims))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.asarray(np.mean(x, axis=axis, keepdims=keepdims))


def amax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    m = _short_row_extremum(np.maximum, x, axis, keepdims)
    return np.asarray(_max_reduce(x, axis=axis, keepdims=keepdims)) if m is None else m


def reshape(x: Any, shape: Any) -> Any:
    # (the array's method: np.reshape's Python wrapper costs 1 us, as np.sum's above)
    return x.reshape(shape) if x.__class__ is _ndarray else np.reshape(x, shape)


def transpose(x: Any, axes: Any = None) -> Any:
    return x.transpose(axes) if x.__class__ is _ndarray else np.transpose(x, axes)


def astype(x: Any, dtype: Any) -> Any:
    x = np.asarray(x)
    if x.dtype.kind == "c" and np.dtype(dtype).kind != "c":
        x = x.real  # a complex gradient reaching a real input: its real part (autograd's convention)
    return x.astype(dtype, copy=False)


real = np.real
imag = np.imag
conj = np.conj


_SUM_TO_AXES: dict[tuple, tuple] = {}  # (x's shape, shape) -> the axes: a backward asks for the same few


def sum_to(x: Any, shape: tuple) -> Any:
    """Sum ``x`` over the axes it was broadcast along so that it has ``shape``."""
    xs = x.shape
    if xs == shape:
        return x
    axes = _SUM_TO_AXES.get((xs, shape))
    if axes is None:
        if len(_SUM_TO_AXES) > 4096:
            _SUM_TO_AXES.clear()
        axes = _SUM_TO_AXES[xs, shape] = _sum_to_axes(xs, shape)
    if not axes:
        return np.asarray(x).reshape(shape)
    out = np.asarray(_add_reduce(x, axis=axes, keepdims=True))
    out.shape = shape  # in place: a new array, not a view (the engine may own it)
    return out


def new_zeros(like: Any, shape: tuple) -> Any:
    return np.zeros(shape, dtype=like.dtype)


def getitem(x: Any, index: Any) -> Any:
    return np.asarray(x[index])


def index_scatter(values: Any, shape: tuple, index: Any) -> Any:
    """zeros(shape) with ``values`` added at ``index`` (repeated indices accumulate)."""
    out = np.zeros(shape, dtype=values.dtype)
    if _is_basic_index(index):
        out[index] += values
    elif (len(index) == 1 and isinstance(index[0], np.ndarray) and index[0].dtype.kind in "iu"
          and len(shape) >= 1):
        # Rows picked by one integer array (an embedding's gather): a sorted segment sum.
        idx = index[0]
        _add_rows(out, idx.ravel(), values.reshape((idx.size,) + tuple(shape[1:])))
    else:
        np.add.at(out, index, values)
    return out


def _add_rows(out: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> None:
    """out[idx[i]] += rows[i] for every i, repeated indices summed.

    np.add.at does this one element at a time; sorting the indices and summing each run of equal
    ones with np.add.reduceat is 3-4x faster for embedding-sized tables.
    """
    if idx.size == 0:
        return
    n = out.shape[0]
    idx = np.where(idx < 0, idx + n, idx) if idx.min() < 0 else idx
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_idx[1:] != sorted_idx[:-1])))
    out[sorted_idx[starts]] += np.add.reduceat(rows[order], starts, axis=0)


def index_put(x: Any, index: Any, values: Any) -> Any:
    """A copy of ``x`` with ``x[index] = values``."""
    out = np.array(x, copy=True)
    out[index] = values
    return out


def take(x: Any, indices: Any, axis: int) -> Any:
    return np.take(x, indices, axis=axis)


def take_scatter(values: Any, shape: tuple, indices: Any, axis: int) -> Any:
    """The transpose of ``take``: zeros(shape) with ``values`` added along ``axis`` at ``indices``."""
    out = np.zeros(shape, dtype=values.dtype)
    moved = np.moveaxis(out, axis, 0)
    vals = np.moveaxis(values, list(range(axis, axis + np.ndim(indices))), list(range(np.ndim(indices))))
    vals = vals.reshape((-1,) + moved.shape[1:])
    _add_rows(moved, np.ravel(np.asarray(indices)), vals)
    return out


def pad(x: Any, pad_width: Any) -> Any:
    return np.pad(x, pad_width)


# ---------------------------------------------------------------------------------------------
# arrays, transfers, checks


def asarray(data: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(data, dtype=dtype)


def array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    return np.array(data, dtype=dtype, copy=copy)


def to_host(x: np.ndarray) -> np.ndarray:
    return x


def from_host(x: np.ndarray) -> np.ndarray:
    return x


def all_finite(x: Any) -> bool:
    return bool(np.isfinite(x).all())


def synchronize() -> None:
    """Nothing to wait for on the CPU."""


# ---------------------------------------------------------------------------------------------
# the rest of the namespace


# comparisons used by rules
equal = np.equal
not_equal = np.not_equal
less = np.less
greater = np.greater


def new_eye(like: Any, n: int) -> Any:
    return np.eye(n, dtype=like.dtype)


def new_ones(like: Any, shape: tuple) -> Any:
    return np.ones(shape, dtype=like.dtype)


def to_device(x: Any, device: str) -> Any:
    from gpugrad.backends import backend_for

    return backend_for(device).from_host(np.asarray(x))


def solve(a: Any, b: Any) -> Any:
    return np.linalg.solve(a, b)


def inv(a: Any) -> Any:
    return np.linalg.inv(a)


# decompositions and transforms (LAPACK and pocketfft through NumPy; cuSOLVER/cuFFT on the GPU)
tril = np.tril
triu = np.triu


def cholesky(a: Any) -> Any:
    return np.linalg.cholesky(a)


def eigh(a: Any, uplo: str = "L") -> tuple[Any, Any]:
    return np.linalg.eigh(a, uplo)


def eig(a: Any) -> tuple[Any, Any]:
    return np.linalg.eig(a)


def svd(a: Any, full_matrices: bool) -> tuple[Any, Any, Any]:
    return np.linalg.svd(a, full_matrices=full_matrices)


def qr(a: Any, mode: str) -> tuple[Any, Any]:
    return np.linalg.qr(a, mode)


def pinv(a: Any, rcond: float) -> Any:
    return np.linalg.pinv(a, rcond)


def fftn(x: Any, kind: str, s: tuple, axes: tuple, norm: Any) -> Any:
    """``numpy.fft.<kind>n``, kind in fft, ifft, rfft, irfft."""
    return getattr(np.fft, kind + "n")(x, s=s, axes=axes, norm=norm)


def amin(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    m = _short_row_extremum(np.minimum, x, axis, keepdims)
    return np.asarray(_min_reduce(x, axis=axis, keepdims=keepdims)) if m is None else m


# ---- optimiser updates ------------------------------------------------------------------------
# The reference math of the fused kernels in kernels/optim.cu: same operations in the same order.
# ``param`` and the state arrays are updated in place; float16 parameters keep float32 state and
# are computed in float32, rounded once when written back.


def state_dtype(param_dtype: Any) -> np.dtype:
    """Optimiser state (and compute) dtype for a parameter dtype: float32 for float16."""
    dt = np.dtype(param_dtype)
    return _F32 if dt == _F16 else dt


_IN_PLACE = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}


def update_function(variant: Any, dt: np.dtype) -> Any:
    """A Python function ``f(p, g, *state_arrays, *scalars)`` applying an update rule's variant
    (gpugrad.table.optim) to one parameter with array calls on the arrays' own module: state
    arrays and the parameter are updated in place (``x = x * a + b`` as two in-place ufuncs, as
    hand-written code would), every other value is a new array. Cached on the variant."""
    key = ("update", variant, dt)
    fn = _UPDATE_FUNCTIONS.get(key)
    if fn is not None:
        return fn
    rule = variant.rule
    owned = {"p", *variant.state}  # arrays the update may overwrite
    consts: list[float] = []
    lines = []
    for st in variant.steps:
        t, node = st.target, st.expr.tree
        if t in owned:
            if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.left, ast.BinOp)
                    and isinstance(node.left.op, ast.Mult) and _is_name(node.left.left, t)):
                lines.append(f"_xp.multiply({t}, {E.node_to_python(node.left.right, consts)}, out={t})")
                lines.append(f"_xp.add({t}, {E.node_to_python(node.right, consts)}, out={t})")
            elif isinstance(node, ast.BinOp) and type(node.op) in _IN_PLACE and _is_name(node.left, t):
                lines.append(f"_xp.{_IN_PLACE[type(node.op)]}({t}, {E.node_to_python(node.right, consts)}, out={t})")
            elif isinstance(node, ast.Call) and node.func.id in ("maximum", "minimum") and _is_name(node.args[0], t):
                lines.append(f"_xp.{node.func.id}({t}, {E.node_to_python(node.args[1], consts)}, out={t})")
            else:
                lines.append(f"{t}[...] = {E.node_to_python(node, consts)}")
        else:
            lines.append(f"{t} = {E.node_to_python(node, consts)}")
    args = ["p", "g", *variant.state, *rule.scalars]
    src = f"def _update({', '.join(args)}):\n    _xp = _xp_of(p)\n" + "".join(f"    {ln}\n" for ln in lines)
    scope: dict[str, Any] = {**EXPR_FUNCTIONS, "_xp_of": _xp}
    for i, c in enumerate(consts):
        scope[f"_k{i}"] = dt.type(c)
    exec(compile(src, f"<gpugrad update {rule.name} {variant.tag} {dt}>", "exec"), scope)  # noqa: S102 (our source)
    fn = _UPDATE_FUNCTIONS[key] = scope["_update"]
    return fn


_UPDATE_FUNCTIONS: dict[tuple, Any] = {}


def _is_name(node: Any, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def optimizer_update(variant: Any, scalars: dict, items: list) -> None:
    """Apply an update rule's ``variant`` to every ``(param, grad, state)`` of ``items`` (one
    parameter group of one dtype; ``state`` maps the rule's state names to arrays). The scalars
    are rounded to the state dtype, as NumPy does with a Python float. The CUDA backend does the
    same in one launch."""
    if not items:
        return
    sdt = state_dtype(items[0][0].dtype)
    fn = update_function(variant, sdt)
    svals = [sdt.type(scalars[k]) for k in variant.rule.scalars]
    for param, grad, state in items:
        if param.dtype == _F16:
            p, g = param.astype(_F32), grad.astype(_F32)
        else:
            p, g = param, grad
        fn(p, g, *[state[k] for k in variant.state], *svals)
        if p is not param:
            param[...] = p.astype(param.dtype)


