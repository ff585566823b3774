"""Every differentiable function, by name. ``gpugrad`` re-exports these; op rules written against
the tensor namespace (create_graph, forward mode) call them through this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.ops import elementwise as _ew
from gpugrad.ops.complex import abs, angle, conj, conjugate, imag, real  # noqa: F401
from gpugrad.ops.decomp import cholesky, eig, eigh, eigvalsh, pinv, qr, svd  # noqa: F401
from gpugrad.ops.elementwise import (  # noqa: F401  (re-exported)
    OPS as ELEMENTWISE_OPS,
)
from gpugrad.ops.elementwise import (
    add,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    cbrt,
    ceil,
    copy,
    cos,
    cosh,
    divide,
    equal,
    erf,
    exp,
    exp2,
    expm1,
    floor,
    floordiv,
    greater,
    greater_equal,
    hypot,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    pow,
    reciprocal,
    relu,
    rint,
    rsqrt,
    sigmoid,
    sign,
    silu,
    sin,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    trunc,
    where,
)
from gpugrad.ops.fft import fftn  # noqa: F401
from gpugrad.ops.index import (  # noqa: F401
    getitem,
    index_put,
    index_scatter,
    inplace,
    setitem,
    take,
    take_scatter,
)
from gpugrad.ops.linalg import (  # noqa: F401
    det,
    dot,
    einsum,
    inner,
    inv,
    lstsq,
    matmul,
    matrix_power,
    outer,
    slogdet,
    solve,
    tensordot,
    vdot,
)
from gpugrad.ops.nn import (  # noqa: F401  (col2im, im2col, pool_*: names of the rule namespace)
    col2im,
    im2col,
    log_softmax,
    pool_gather,
    pool_scatter,
    softmax,
)
from gpugrad.ops.reduce import (  # noqa: F401
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cumprod,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    norm,
    prod,
    std,
    sum,
    var,
)
from gpugrad.ops.shape import (  # noqa: F401
    array_split,
    ascontiguous,
    astype,
    atleast_1d,
    atleast_2d,
    broadcast_arrays,
    broadcast_to,
    concatenate,
    diag,
    diagonal,
    expand_dims,
    flatten,
    flip,
    hstack,
    moveaxis,
    pad,
    permute,
    ravel,
    repeat,
    reshape,
    roll,
    split,
    squeeze,
    stack,
    sum_to,
    swapaxes,
    tile,
    to_device,
    trace,
    transpose,
    tril,
    triu,
    unsqueeze,
    vstack,
)
from gpugrad.tensor import Tensor

power = pow
cat = concatenate  # PyTorch's name
floor_divide = floordiv
remainder = mod
true_divide = divide
absolute = abs


def clip(x: Any, min: Any = None, max: Any = None) -> Any:  # noqa: F811 (NumPy/PyTorch names)
    """Limit values to [min, max] (either may be None), as ``numpy.clip``; the gradient passes
    where min <= x <= max (PyTorch's clamp)."""
    lo, hi = min, max
    if lo is None and hi is None:
        from gpugrad.errors import GpugradError

        raise GpugradError("clip: at least one of min and max must be given")
    if hi is None:
        return _ew.clip_min(x, lo)
    if lo is None:
        return _ew.clip_max(x, hi)
    return _ew.clip(x, lo, hi)


clamp = clip


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """x where x > 0, else negative_slope * x (PyTorch's default slope 0.01)."""
    return _ew.leaky_relu(x, negative_slope=float(negative_slope))


def gelu(x: Any, approximate: str = "none") -> Any:
    """Gaussian error linear unit, PyTorch's definition: exact erf form, or ``approximate="tanh"``."""
    if approximate == "none":
        return _ew.gelu(x)
    if approximate == "tanh":
        return _ew.gelu_tanh(x)
    from gpugrad.errors import GpugradError

    raise GpugradError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """log(1 + exp(beta x)) / beta, linear above ``threshold`` (PyTorch's definition)."""
    return _ew.softplus(x, beta=float(beta), threshold=float(threshold))


def round(x: Any, decimals: int = 0) -> Any:  # noqa: A001
    """Round half to even, as ``numpy.round`` (zero gradient)."""
    if decimals == 0:
        return rint(x)
    scale = 10.0 ** decimals
    return rint(x * scale) / scale


around = round


def invert(x: Any) -> Any:
    from gpugrad.errors import DTypeError

    raise DTypeError("invert (~): only boolean tensors are supported (logical not)")


def zeros_like(x: Any) -> Any:
    from gpugrad.factories import zeros_like as _z

    return _z(x)


def ones_like(x: Any) -> Any:
    from gpugrad.factories import ones_like as _o

    return _o(x)


def new_eye(like: Any, n: int) -> Any:
    from gpugrad.factories import eye

    return eye(n, dtype=like.dtype, device=like.device)


def new_ones(like: Any, shape: tuple) -> Any:
    from gpugrad.factories import ones

    return ones(shape, dtype=like.dtype, device=like.device)


def new_zeros(like: Any, shape: tuple) -> Any:
    from gpugrad.factories import zeros

    return zeros(shape, dtype=like.dtype, device=like.device)


# ---------------------------------------------------------------------------------------------
# elementwise rules evaluated with differentiable ops (create_graph, forward mode)

TAG = "tensor"
# the tensor namespace runs every op's rule itself (no registered kernels; gpugrad.ops.base)
lowerings: dict[tuple[str, str], Any] = {}
def _scalar_safe(fn: Any, scalar_fn: Any) -> Any:
    """``fn`` on tensors; on Python numbers only, a Python number (computed with NumPy), not a CPU
    tensor: an expression such as ``pow(a, where(b == 0, 1, b - 1))`` with a scalar b must not
    put a CPU operand next to a GPU one."""

    def call(*args: Any) -> Any:
        for a in args:
            if isinstance(a, Tensor):
                return fn(*args)
        r = scalar_fn(*args)
        return r.item() if hasattr(r, "item") else r

    return call


def _expr_functions() -> dict[str, Any]:
    from gpugrad.backends import numpy_backend

    table = dict(ELEMENTWISE_OPS)
    table.update(floordiv=floordiv, mod=mod, zeros_like=zeros_like)
    return {name: _scalar_safe(fn, numpy_backend.EXPR_FUNCTIONS[name]) if name in numpy_backend.EXPR_FUNCTIONS
            else fn for name, fn in table.items()}


EXPR_FUNCTIONS: dict[str, Any] = _expr_functions()


def ew_vjp(op: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
    dt = g.dtype
    extra = [params[p] for p in op.param_names]
    grads = []
    for i, need in enumerate(needs):
        if not need:
            grads.append(None)
            continue
        fn = op.python_function(("vjp", i), dt, EXPR_FUNCTIONS, TAG)
        grads.append(fn(g, *args, out, *extra))
    return tuple(grads)


def ew_jvp(op: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
    mask = tuple(t is not None for t in tangents)
    fn = op.python_function(("jvp", mask), np.dtype(out.dtype), EXPR_FUNCTIONS, TAG)
    extra = [params[p] for p in op.param_names]
    return fn(*[t for t in tangents if t is not None], *args, out, *extra)
