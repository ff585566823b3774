"""Functional transforms in the style of HIPS autograd and JAX: ``grad``, ``value_and_grad``,
``vjp``, ``jvp`` (true forward mode), ``jacobian``, ``hessian`` (forward-over-reverse), and
PyTorch's ``autograd.grad``.

Inputs may be Tensors, NumPy arrays, CuPy arrays or Python scalars, and results come back as
the same kind (NumPy in, NumPy out). Every call runs on a fresh set of input leaves and leaves no
``.grad`` behind. Transforms nest to any depth: when the function's output depends on a value an
enclosing differentiation tracks (an input, or a tensor the function closes over, that requires
grad or carries a forward-mode tangent), the gradient is computed with differentiable ops so the
enclosing transform sees through it, and results that depend on such values come back as
Tensors (on the tape) whatever the inputs' kind, as JAX returns tracers inside a transform.
"""

from __future__ import annotations

import functools
import numbers
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gpugrad.autograd import pytree
from gpugrad.autograd.engine import run_backward
from gpugrad.autograd.grad_mode import enable_grad
from gpugrad.autograd.state import STATE
from gpugrad.backends import backend_for, device_of_array
from gpugrad.errors import DTypeError, GpugradError, GraphError
from gpugrad.tensor import Tensor, make_tensor

# ---------------------------------------------------------------------------------------------
# inputs and outputs of the caller's kind


def _kind(x: Any) -> str:
    if isinstance(x, Tensor):
        return "tensor"
    if isinstance(x, (np.ndarray, np.generic)):
        return "numpy"
    if isinstance(x, (bool, np.bool_)):
        raise DTypeError("cannot differentiate with respect to a bool")
    if isinstance(x, numbers.Number):
        return "scalar"
    dev = device_of_array(x)
    if dev is not None:
        return "cupy"
    raise GpugradError(f"cannot differentiate with respect to an object of type {type(x).__name__}; "
                       "pass Tensors, NumPy/CuPy arrays or Python numbers")


def _connected(t: Tensor) -> bool:
    """Is ``t`` being differentiated by an enclosing transform (or the user's tape)?"""
    if t.requires_grad:
        return True
    if t._tangents:
        return any(level in STATE.fw_levels for level in t._tangents)
    return False


def _as_float_tensor(x: Any, kind: str) -> Tensor:
    if kind == "tensor":
        t = x
    elif kind == "scalar":
        t = make_tensor(np.asarray(complex(x) if isinstance(x, complex) else float(x)), "cpu")
    elif kind == "numpy":
        t = make_tensor(np.asarray(x), "cpu")
    else:
        t = make_tensor(x, device_of_array(x))
    if t.dtype.kind not in "fc":  # complex inputs stay complex (never cast to real)
        if kind == "tensor":
            raise DTypeError(f"cannot differentiate with respect to an integer tensor (dtype {t.dtype})")
        if t.dtype.kind not in "iub":
            raise DTypeError(f"cannot differentiate with respect to an array of dtype {t.dtype}")
        t = make_tensor(t.data.astype(np.float64), t.device)
    return t


def _depends_on_outer(outs: Sequence[Any], leaves: Sequence[Tensor]) -> bool:
    """Does any of ``outs`` depend on a value an enclosing differentiation tracks?

    That is: does the tape behind them reach a leaf requiring grad other than this transform's
    own ``leaves`` (a closed-over parameter, an enclosing transform's input), or a saved value
    carrying an active forward-mode tangent (an enclosing jvp)? Then the gradients must be
    computed with differentiable ops (create_graph) for the enclosing transform to see them.
    """
    from gpugrad.autograd.node import Node

    ours = {id(leaf) for leaf in leaves}
    active = STATE.fw_levels
    stack = []
    for o in outs:
        if not isinstance(o, Tensor):
            continue
        if active and _has_active_tangent(o, active):
            return True
        if o._node is not None:
            stack.append(o._node)
        elif o.requires_grad and id(o) not in ours:
            return True
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if active:
            if node.inputs is not None and any(isinstance(t, Tensor) and _has_active_tangent(t, active)
                                               for t in node.inputs):
                return True
            tangents = node.extra.get("tangents") if node.extra else None
            if tangents and any(level in active for level in tangents):
                return True
        for edge in node.next:
            if edge is None:
                continue
            if edge.__class__ is Node:
                stack.append(edge)
            elif edge.requires_grad and id(edge) not in ours and _RETIRED.get(id(edge)) is not edge:
                return True  # a leaf that something outside this transform differentiates
    return False


# The leaves of transforms that have returned: values depending only on them are not tracked by
# anyone (keyed by id: Tensor's == is elementwise, so it cannot be a set member).
_RETIRED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _tracked(v: Any) -> bool:
    """Is ``v`` (a result of this transform) still tracked by an enclosing differentiation?"""
    if not isinstance(v, Tensor):
        return False
    if not v.requires_grad and not v._tangents:
        return False
    return _depends_on_outer([v], ())


def _has_active_tangent(t: Tensor, active: list) -> bool:
    return bool(t._tangents) and any(level in active for level in t._tangents)


def _fresh_input(x: Any) -> tuple[Tensor, str, bool]:
    """A new leaf (or a differentiable alias of a connected tensor) standing for input ``x``.

    Returns (tensor, kind, connected).
    """
    kind = _kind(x)
    t = _as_float_tensor(x, kind)
    if kind == "tensor" and _connected(t):
        from gpugrad.ops.base import apply
        from gpugrad.ops.shape import RESHAPE

        alias = apply(RESHAPE, (t,), {"shape": t.shape, "in_shape": t.shape})
        alias._extra = None  # a private alias, not a user-visible view
        if not alias.requires_grad:
            alias.requires_grad = True  # a leaf of this transform (carries the outer tangent)
        return alias, kind, True
    leaf = make_tensor(t.data, t.device, True)
    return leaf, kind, False


def _to_kind(t: Any, kind: str, create_graph: bool, sole: bool = False) -> Any:
    """``t`` as the caller's kind of value. ``sole``: nothing but ``t`` holds its array and
    nothing else holds ``t``, so a NumPy or CuPy result may be that array itself instead of a copy
    (see :func:`_gradients_as_kinds`)."""
    if kind == "tensor":
        if create_graph or not isinstance(t, Tensor):
            return t
        return t.detach() if sole else make_tensor(t.data.copy(), t.device)
    if not isinstance(t, Tensor):
        return t
    if create_graph and _tracked(t):
        return t  # still tracked by an enclosing differentiation: stays on the tape
    if kind == "scalar" and t.size == 1:
        return t.item()
    if sole:
        return t.data
    if kind in ("numpy", "scalar"):
        return t.numpy()
    return t.data.copy()  # never an array that another result or the tape also holds


class _Slot:
    __slots__ = ("data",)


def _counts_as_expected() -> bool:
    """Whether this interpreter counts references as :func:`_gradients_as_kinds` assumes: a
    local and the argument of a builtin call are 2 references, an object in one slot read for the
    call 2 as well. CPython up to 3.13 does; 3.14 borrows locals on the stack (one reference
    fewer), and other interpreters have no such counts: there every result is a copy."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 14):
        return False
    h = _Slot()
    h.data = object()
    return sys.getrefcount(h) == 2 and sys.getrefcount(h.data) == 2


_COUNTS_REFERENCES = _counts_as_expected()


def _output_kind(kinds: Sequence[str]) -> str:
    """Outputs are Tensors if any input was one, else arrays of the inputs' kind."""
    if "tensor" in kinds:
        return "tensor"
    if "cupy" in kinds:
        return "cupy"
    if "numpy" in kinds:
        return "numpy"
    return "numpy"


def _value_to_kind(v: Any, kind: str, create_graph: bool) -> Any:
    if not isinstance(v, Tensor):
        return v
    if kind == "tensor":
        return v if create_graph else v.detach()
    if create_graph and _tracked(v):
        return v  # still tracked by an enclosing differentiation: stays on the tape
    if kind == "cupy":
        return v.data.copy()  # as NumPy values are: never the input itself, or an array the tape keeps
    arr = v.numpy()
    return arr[()] if arr.ndim == 0 else arr


def _argnums(argnums: int | Sequence[int], n: int) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, numbers.Integral)
    nums = (int(argnums),) if single else tuple(int(a) for a in argnums)
    for a in nums:
        if not -n <= a < n:
            raise GpugradError(f"argnums {a} is out of range for a function called with {n} positional arguments")
    return tuple(a % n for a in nums), single


class _Inputs:
    """The fresh leaves standing for the differentiated arguments (pytrees flattened)."""

    def __init__(self, args: tuple, nums: tuple[int, ...]) -> None:
        self.args = list(args)
        self.structures = []
        self.leaves: list[Tensor] = []
        self.kinds: list[str] = []
        self.counts = []
        self.connected = False
        self.own: list[Tensor] = []  # the new leaves (not aliases of tracked tensors)
        for i in nums:
            leaves, structure = pytree.flatten(args[i])
            fresh = []
            for leaf in leaves:
                t, kind, conn = _fresh_input(leaf)
                fresh.append(t)
                self.kinds.append(kind)
                self.connected |= conn
                if t._node is None:  # a new leaf, or an alias made a leaf here (no recorded history)
                    self.own.append(t)
            self.leaves += fresh
            self.structures.append(structure)
            self.counts.append(len(fresh))
            self.args[i] = pytree.unflatten(structure, fresh)

    def retire(self) -> None:
        """The function has run: values that depend on these new leaves only are not tracked by
        an enclosing differentiation (the leaves stay usable for this transform's backward)."""
        for t in self.own:
            _RETIRED[id(t)] = t

    def rebuild(self, values: list[Any]) -> list[Any]:
        """Per differentiated argument, its tree rebuilt from ``values`` (one per leaf)."""
        out = []
        pos = 0
        for structure, count in zip(self.structures, self.counts):
            out.append(pytree.unflatten(structure, values[pos:pos + count]))
            pos += count
        return out


def _ones_like(t: Tensor, create_graph: bool) -> Any:
    ones = backend_for(t.device).ones_like(t.data)
    return make_tensor(ones, t.device) if create_graph else ones


def _gradients(out: Any, inputs: _Inputs, create_graph: bool) -> list[Any]:
    if isinstance(out, Tensor):
        if out.size != 1:
            raise GraphError(
                f"grad: the function must return a scalar (one element), got shape {out.shape}; "
                "use gg.jacobian or gg.vjp for non-scalar outputs"
            )
        if out.dtype.kind == "c":
            raise DTypeError(f"grad: the function's output is complex ({out.dtype}); differentiate a real "
                             "value (np.real(f), np.abs(f)) or use gg.holomorphic_grad for a holomorphic f")
    if not isinstance(out, Tensor) or not out.requires_grad and out._node is None:
        grads: list[Any] = [None] * len(inputs.leaves)
    else:
        if out.dtype.kind != "f":
            raise DTypeError(f"grad: the function's output must be floating point, got {out.dtype}")
        grads = run_backward([out], [_ones_like(out, create_graph)], retain_graph=create_graph,
                             create_graph=create_graph, inputs=inputs.leaves)
    return _gradients_as_kinds(grads, inputs, create_graph)


def _gradients_as_kinds(grads: list[Any], inputs: _Inputs, create_graph: bool) -> list[Any]:
    """Each input's gradient (None: zeros) as the input's kind of value; empties ``grads``."""
    result = []
    for i, (leaf, kind) in enumerate(zip(inputs.leaves, inputs.kinds)):
        g, grads[i] = grads[i], None  # the list lets go: below, who else holds g
        if g is None:
            from gpugrad.factories import zeros_like

            g = zeros_like(leaf)
        # A gradient the backward pass has just written is usually held by g alone, and its array
        # by g alone (not a view, an input, a cache, a hook's stash or another result's array):
        # then it is handed out as it is, saving a copy as large as the input (0.6 ms of the
        # 5.3 ms gg.grad step of sum(tanh(x) * sigmoid(x)) on 4M floats). The counts are taken
        # here, by a builtin call, because a call into Python code may or may not hold its own
        # reference to its arguments (the interpreter specialises calls as it runs): g's name and
        # the argument are 2; the tensor's slot and the argument are 2 (_counts_as_expected).
        sole = (_COUNTS_REFERENCES and not create_graph and isinstance(g, Tensor)
                and sys.getrefcount(g) == 2 and sys.getrefcount(g.data) == 2
                and getattr(g.data, "base", None) is None)
        result.append(_to_kind(g, kind, create_graph, sole))
    return result


def _check_scalar_output(out: Any) -> Any:
    if isinstance(out, (bool, np.bool_)) or (isinstance(out, (Tensor, np.ndarray)) and out.dtype == np.bool_):
        raise DTypeError("grad: the function returned a boolean, which has no gradient; return a "
                         "floating-point value (a comparison or np.allclose is not differentiable)")
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (numbers.Number, np.ndarray, np.generic)):
        return out  # does not depend on the inputs: zero gradient
    raise GpugradError(f"grad: the function must return a scalar Tensor or number, got {type(out).__name__}")


def value_and_grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """A function returning ``(fun(*args), gradient)``; with ``has_aux`` fun returns (value, aux)
    and the result is ``((value, aux), gradient)``.

    Example::

        v, g = gg.value_and_grad(lambda w: ((X @ w - y) ** 2).mean())(w0)
    """

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums, single = _argnums(argnums, len(args))
        inputs = _Inputs(args, nums)
        with enable_grad():
            result = fun(*inputs.args, **kwargs)
        aux = None
        if has_aux:
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise GpugradError("has_aux=True: the function must return a pair (value, aux)")
            result, aux = result
        out = _check_scalar_output(result)
        create_graph = inputs.connected or _depends_on_outer([out], inputs.leaves)
        inputs.retire()
        grads = inputs.rebuild(_gradients(out, inputs, create_graph))
        grad = grads[0] if single else tuple(grads)
        value = _value_to_kind(out, _output_kind(inputs.kinds), create_graph)
        if has_aux:
            aux = pytree.tree_map(lambda a: _value_to_kind(a, _output_kind(inputs.kinds), create_graph), aux)
            return (value, aux), grad
        return value, grad

    return wrapper


def grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of a scalar function with respect to argument(s) ``argnums``.

    Works on NumPy code written with ``gpugrad.numpy`` (NumPy in, NumPy out) and nests:
    ``gg.grad(gg.grad(f))`` is the second derivative. Example::

        import gpugrad.numpy as np
        def loss(w):
            return np.sum(np.log1p(np.exp(-y * np.dot(X, w))))
        g = gg.grad(loss)(np.zeros(3))
    """
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = vg(*args, **kwargs)
        if has_aux:
            (_, aux), g = result
            return g, aux
        return result[1]

    return wrapper


def elementwise_grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The gradient of ``sum(fun(x))``: for an elementwise ``fun`` the derivative at every
    element (HIPS autograd's name; one reverse pass with a cotangent of ones). Example::

        dtanh = gg.elementwise_grad(np.tanh)
        dtanh(np.linspace(-3, 3, 7))          # 1 - tanh(x) ** 2
    """

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums, single = _argnums(argnums, len(args))

        def partial_fun(*xs: Any) -> Any:
            full = list(args)
            for i, x in zip(nums, xs):
                full[i] = x
            return fun(*full, **kwargs)

        out, pullback = vjp(partial_fun, *[args[i] for i in nums])
        grads = pullback(pytree.tree_map(_ones_of, out))
        return grads[0] if single else grads

    return wrapper


def _ones_of(v: Any) -> Any:
    if isinstance(v, Tensor):
        from gpugrad.factories import ones_like

        return ones_like(v)
    return np.ones_like(v)


def holomorphic_grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The complex derivative f'(z) of a holomorphic function of complex input(s) (HIPS
    autograd's name): the gradient of ``real(f)``, which for holomorphic f is f'(z). Example::

        gg.holomorphic_grad(lambda z: z * z)(1.0 + 2.0j)      # (2+4j)
    """
    import warnings

    from gpugrad.ops.complex import real

    def real_part(*args: Any, **kwargs: Any) -> Any:
        out = fun(*args, **kwargs)
        return real(out) if isinstance(out, Tensor) else np.real(out)

    inner = grad(real_part, argnums)

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums, _ = _argnums(argnums, len(args))
        if not all(np.iscomplexobj(args[i].data if isinstance(args[i], Tensor) else args[i]) for i in nums):
            warnings.warn("holomorphic_grad: an input is not complex, so only the real derivative is computed",
                          stacklevel=2)
        return inner(*args, **kwargs)

    return wrapper


def vjp(fun: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """``(fun(*primals), vjp_fn)``: ``vjp_fn(cotangent)`` returns one cotangent per primal.

    The outputs may be a pytree of arrays; the cotangent has the same structure. Example::

        out, pullback = gg.vjp(lambda a, b: a * b, x, y)
        da, db = pullback(np.ones_like(out))
    """
    inputs = _Inputs(primals, tuple(range(len(primals))))
    with enable_grad():
        result = fun(*inputs.args)
    aux = None
    if has_aux:
        result, aux = result
    out_leaves, out_structure = pytree.flatten(result)
    kind = _output_kind(inputs.kinds)
    outer = inputs.connected or _depends_on_outer(out_leaves, inputs.leaves)
    inputs.retire()

    def vjp_fn(cotangent: Any) -> tuple:
        cot_leaves, _ = pytree.flatten(cotangent)
        if len(cot_leaves) != len(out_leaves):
            raise GpugradError(f"vjp: the cotangent has {len(cot_leaves)} leaves but the output has {len(out_leaves)}")
        roots, root_grads = [], []
        create_graph = outer or any(isinstance(c, Tensor) and _connected(c) for c in cot_leaves)
        for o, c in zip(out_leaves, cot_leaves):
            if not isinstance(o, Tensor) or not o.requires_grad:
                continue
            ct = _cotangent(c, o, create_graph)
            roots.append(o)
            root_grads.append(ct)
        if roots:
            grads = run_backward(roots, root_grads, retain_graph=True, create_graph=create_graph,
                                 inputs=inputs.leaves)
        else:
            grads = [None] * len(inputs.leaves)
        return tuple(inputs.rebuild(_gradients_as_kinds(grads, inputs, create_graph)))

    out = pytree.unflatten(out_structure, [_value_to_kind(o, kind, outer) for o in out_leaves])
    if has_aux:
        return out, vjp_fn, aux
    return out, vjp_fn


def _complex_mismatch(value: Any, like: Tensor, what: str) -> None:
    """A complex (co)tangent for a real value is an error (as in JAX), never cast silently."""
    if like.dtype.kind != "c" and np.iscomplexobj(value.data if isinstance(value, Tensor) else value):
        raise DTypeError(f"vjp/jvp: a complex {what} was given for a real value of dtype {like.dtype}; "
                         "pass its real part (np.real) if that is what you mean")


def _cotangent(c: Any, o: Tensor, create_graph: bool) -> Any:
    from gpugrad.errors import ShapeError

    _complex_mismatch(c, o, "cotangent")
    if isinstance(c, Tensor):
        if c.shape != o.shape:
            raise ShapeError(f"vjp: cotangent shape {c.shape} does not match output shape {o.shape}")
        arr = c if create_graph else c.data
    else:
        arr = backend_for(o.device).asarray(c, dtype=o.dtype)
        if arr.shape != o.shape:
            arr = backend_for(o.device).xp.broadcast_to(arr, o.shape) if arr.ndim == 0 else arr
        if arr.shape != o.shape:
            raise ShapeError(f"vjp: cotangent shape {arr.shape} does not match output shape {o.shape}")
        if create_graph:
            arr = make_tensor(arr, o.device)
    return arr


# ---------------------------------------------------------------------------------------------
# forward mode


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: ``(fun(*primals), J @ tangents)`` in one forward pass (no reverse pass).

    Each op pushes its input tangents through its jvp rule as it runs. Example::

        y, dy = gg.jvp(np.sin, (x,), (np.ones_like(x),))     # dy == cos(x)
    """
    primals = tuple(primals)
    tangents = tuple(tangents)
    if len(primals) != len(tangents):
        raise GpugradError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    level = STATE.fw_next_level
    STATE.fw_next_level += 1
    STATE.fw_levels.append(level)
    STATE.update_checks()
    try:
        kinds: list[str] = []
        args = []
        for p, t in zip(primals, tangents):
            p_leaves, structure = pytree.flatten(p)
            t_leaves, _ = pytree.flatten(t)
            if len(p_leaves) != len(t_leaves):
                raise GpugradError("jvp: a tangent's structure differs from its primal's")
            wrapped = []
            for pl, tl in zip(p_leaves, t_leaves):
                kind = _kind(pl)
                kinds.append(kind)
                base = _as_float_tensor(pl, kind)
                if kind == "tensor" and _connected(base):
                    from gpugrad.ops.base import apply
                    from gpugrad.ops.shape import RESHAPE

                    w = apply(RESHAPE, (base,), {"shape": base.shape, "in_shape": base.shape})
                    w._extra = None
                else:
                    w = make_tensor(base.data, base.device)
                tt = _tangent_tensor(tl, w)
                w._tangents = dict(w._tangents or {})
                w._tangents[level] = tt
                wrapped.append(w)
            args.append(pytree.unflatten(structure, wrapped))
        result = fun(*args)
        out_leaves, out_structure = pytree.flatten(result)
        outs, touts = [], []
        for o in out_leaves:
            if isinstance(o, Tensor):
                t = o._tangents.get(level) if o._tangents else None
                if t is None:
                    from gpugrad.factories import zeros_like

                    t = zeros_like(o)
                outs.append(_strip(o, level))
                touts.append(t)
            else:
                outs.append(o)
                touts.append(np.zeros_like(o) if isinstance(o, (np.ndarray, numbers.Number)) else None)
    finally:
        STATE.fw_levels.pop()
        STATE.update_checks()
    # This level is gone: what still carries a tangent or requires grad is an enclosing one's.
    kind = _output_kind(kinds)
    outs = [_value_to_kind(o, kind, True) for o in outs]
    touts = [_value_to_kind(t, kind, True) for t in touts]
    return pytree.unflatten(out_structure, outs), pytree.unflatten(out_structure, touts)


def _strip(t: Tensor, level: int) -> Tensor:
    """``t`` without this level's tangent (a shallow alias, so the caller's tensor is untouched)."""
    if not t._tangents or level not in t._tangents:
        return t
    alias = make_tensor(t.data, t.device, t.requires_grad, t._node, t._version)
    rest = {k: v for k, v in t._tangents.items() if k != level}
    alias._tangents = rest or None
    return alias


def _tangent_tensor(t: Any, primal: Tensor) -> Tensor:
    from gpugrad.errors import ShapeError

    _complex_mismatch(t, primal, "tangent")
    if isinstance(t, Tensor):
        tt = t if t.dtype == primal.dtype else t.astype(primal.dtype)
    else:
        arr = backend_for(primal.device).asarray(t, dtype=primal.dtype)
        tt = make_tensor(arr, primal.device)
    if tt.shape != primal.shape:
        if tt.ndim == 0:
            from gpugrad.ops.shape import broadcast_to

            tt = broadcast_to(tt, primal.shape)
        else:
            raise ShapeError(f"jvp: tangent shape {tt.shape} does not match primal shape {primal.shape}")
    return tt


# ---------------------------------------------------------------------------------------------
# Jacobians and Hessians


def jacobian(fun: Callable[..., Any], argnums: int | Sequence[int] = 0, mode: str = "auto") -> Callable[..., Any]:
    """The Jacobian of ``fun`` (shape ``out.shape + in.shape``).

    ``mode="auto"`` uses reverse mode (one vjp per output element) when the output has fewer
    elements than the input and forward mode (one jvp per input element) otherwise; ``"rev"``
    and ``"fwd"`` force one. Example: ``J = gg.jacobian(f)(x)``.
    """
    if mode not in ("auto", "rev", "fwd"):
        raise GpugradError(f"jacobian: mode must be 'auto', 'rev' or 'fwd', got {mode!r}")

    @functools.wraps(fun)
    def wrapper(*args: Any) -> Any:
        nums, single = _argnums(argnums, len(args))
        jacs = [_jacobian_one(fun, args, i, mode) for i in nums]
        return jacs[0] if single else tuple(jacs)

    return wrapper


def _stack_kind(blocks: list[Any], shape: tuple, kind: str) -> Any:
    from gpugrad.ops.shape import reshape, stack

    if kind == "tensor" or any(isinstance(b, Tensor) for b in blocks):
        return reshape(stack(blocks, 0), shape)
    if kind == "cupy":
        import cupy

        return cupy.stack(blocks).reshape(shape)
    return np.stack([np.asarray(b) for b in blocks]).reshape(shape)


def _jacobian_one(fun: Callable[..., Any], args: tuple, i: int, mode: str) -> Any:
    x = args[i]
    kind = _kind(x)
    xt = _as_float_tensor(x, kind)
    in_shape, n_in = xt.shape, xt.size
    out_kind = "tensor" if kind == "tensor" else ("cupy" if kind == "cupy" else "numpy")

    def f_i(xi: Any) -> Any:
        a = list(args)
        a[i] = xi
        return fun(*a)

    value, pullback = vjp(f_i, x)
    out_arr = value
    out_shape = tuple(np.shape(out_arr)) if not isinstance(out_arr, Tensor) else out_arr.shape
    n_out = int(np.prod(out_shape, dtype=np.int64))
    use_rev = mode == "rev" or (mode == "auto" and n_out < n_in)
    if n_out == 0 or n_in == 0:
        return _zeros_kind(xt, out_shape + in_shape, kind)
    if use_rev:
        rows = []
        for k in range(n_out):
            e = np.zeros(n_out)
            e[k] = 1.0
            ct = _like_kind(e.reshape(out_shape), value, xt)
            (row,) = pullback(ct)
            rows.append(row)
        return _stack_kind(rows, out_shape + in_shape, out_kind)
    cols = []
    for k in range(n_in):
        e = np.zeros(n_in)
        e[k] = 1.0
        tangent = _like_kind(e.reshape(in_shape), x, xt)
        _, col = jvp(f_i, (x,), (tangent,))
        cols.append(col)
    jt = _stack_kind(cols, in_shape + out_shape, out_kind)  # (in..., out...)
    nin, nout = len(in_shape), len(out_shape)
    perm = tuple(range(nin, nin + nout)) + tuple(range(nin))
    if isinstance(jt, Tensor):
        from gpugrad.ops.shape import transpose

        return transpose(jt, perm)
    return jt.transpose(perm)


def _zeros_kind(xt: Tensor, shape: tuple, kind: str) -> Any:
    from gpugrad.factories import zeros

    z = zeros(shape, dtype=xt.dtype, device=xt.device)
    return _to_kind(z, "tensor" if kind == "tensor" else ("cupy" if kind == "cupy" else "numpy"), False, sole=True)


def _like_kind(arr: np.ndarray, ref: Any, xt: Tensor) -> Any:
    """``arr`` converted to ``ref``'s kind and device (the dtype follows xt)."""
    if isinstance(ref, Tensor):
        from gpugrad.factories import tensor

        return tensor(arr, dtype=ref.dtype, device=ref.device)
    dev = device_of_array(ref)
    if dev is not None and dev != "cpu":
        return backend_for(dev).from_host(arr.astype(getattr(ref, "dtype", xt.dtype)))
    return arr.astype(getattr(ref, "dtype", xt.dtype)) if hasattr(ref, "dtype") else arr


def hessian(fun: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """The Hessian of a scalar function, computed forward-over-reverse: column j is the jvp of
    the gradient along e_j. Example: ``H = gg.hessian(rosenbrock)(x)``."""
    if not isinstance(argnums, numbers.Integral):
        raise GpugradError("hessian: argnums must be a single int")

    @functools.wraps(fun)
    def wrapper(*args: Any) -> Any:
        return jacobian(grad(fun, argnums), argnums, mode="fwd")(*args)

    return wrapper


def hvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """Hessian-vector product H(primals) @ tangents of a scalar function, forward-over-reverse.

    With one primal the result has its shape; with several, a tuple (one block row each).
    Example: ``gg.hvp(loss, (w,), (v,))``.
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) == 1:
        return jvp(grad(fun), primals, tangents)[1]
    return jvp(grad(fun, tuple(range(len(primals)))), primals, tangents)[1]


# ---------------------------------------------------------------------------------------------
# PyTorch's autograd.grad


def autograd_grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
                  create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs`` without touching ``.grad`` (PyTorch's
    ``torch.autograd.grad``). Example: ``(gx,) = gg.autograd.grad(loss, [x], create_graph=True)``."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    roots, root_grads = [], []
    for o, g in zip(outs, grad_outputs):
        if not o.requires_grad:
            raise GraphError("autograd.grad: an output does not require grad (no recorded history)")
        if g is None:
            if o.size != 1:
                raise GraphError(f"autograd.grad: grad_outputs is needed for a non-scalar output of shape {o.shape}")
            g = _ones_like(o, create_graph)
        else:
            g = _cotangent(g, o, create_graph)
        roots.append(o)
        root_grads.append(g)
    for t in ins:
        if not t.requires_grad:
            raise GraphError("autograd.grad: an input does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    grads = run_backward(roots, root_grads, retain_graph=retain_graph, create_graph=create_graph, inputs=ins)
    if not allow_unused and any(g is None for g in grads):
        raise GraphError("autograd.grad: one of the inputs was not used to compute the outputs; "
                         "pass allow_unused=True to get None for it")
    return tuple(grads)
