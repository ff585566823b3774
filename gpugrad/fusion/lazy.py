"""Eager fusion: elementwise ops wait, and a chain of them runs as one op when its value is needed.

With fusion on (the default; ``gg.no_fusion()`` or ``GPUGRAD_FUSION=0`` turn it off), an
elementwise op on floating-point tensors does not compute: it checks its operands (devices,
dtypes, broadcast shapes: errors are raised here, at the op the user called, as without fusion)
and returns a *pending* tensor that remembers the op and its operands. Its ``data`` and
``_node`` slots stay unset, so the first read of either (any other op, ``.numpy()``, printing,
backward, a hook) lands in ``PendingTensor.__getattr__``, which calls :func:`materialize`: the pending
DAG behind the tensor (its shared subexpressions once) becomes one :class:`FusedElementwise`
op application on the tape, whose operands are the chain's concrete tensors (its numbers are
parameters: they never get a gradient, and the tape need not carry them). A
reduction of a pending tensor over all its elements (``sum``/``mean``, as in a loss) joins the
chain (:func:`reduce_all`).

The fused op is an ordinary op with one rule, written against the array namespace
(:func:`chain_forward`, :func:`chain_vjp`): it recomputes the intermediates from the chain's
inputs rather than saving them, and sweeps the ops' own derivative expressions backwards. A
backend may register a kernel for it, as for any op (``lowerings["fused_elementwise", ...]``).

What never fuses (the op runs as without fusion): anomaly detection and forward mode (their
per-op checks and tangents need each op's value), integer or boolean results, NumPy scalars as
operands. A chain longer than :data:`MAX_OPS` ops is cut: its head is materialised first.

Example::

    y = gg.tanh(x) * gg.sigmoid(x)     # pending: nothing computed yet
    loss = y.sum()                      # one pass over x (and one backward pass)
"""

from __future__ import annotations

import collections
import functools
import operator
import os
import weakref
from typing import Any

import numpy as np

from gpugrad.autograd.node import Node
from gpugrad.autograd.state import STATE
from gpugrad.backends import _BACKENDS, backend_for, lowerings
from gpugrad.fusion import host_forward as _host_forward  # noqa: F401  (registers the compiled elementwise forward)
from gpugrad.fusion import host_ops as _host_ops  # noqa: F401  (registers host kernels: cross-entropy)
from gpugrad.fusion import host_vjp as _host_vjp  # noqa: F401  (registers the compiled elementwise backward)
from gpugrad.fusion import kernels as _kernels  # noqa: F401  (registers the compiled passes)
from gpugrad.ops.base import Op, _record, forward
from gpugrad.ops.base import apply as _apply
from gpugrad.tensor import PendingTensor, Tensor, make_tensor, pending_version, settle_pending

MAX_OPS = 128  # ops in one chain; a longer one is cut (its head materialised as an input)

_new = object.__new__
_ref = weakref.ref
_SEQ = operator.attrgetter("seq")

# Ops that head a chain the CPU ran op by op (a short chain of small arrays, or one the
# compiler declined), keyed by the tokens of their first step in the trie (per operand its
# dtype's character and shape, its number type, or the index of an operand seen before; then the
# op; see :func:`record`): such an op runs
# at once next time rather than waiting, since waiting buys nothing there and costs the chain's
# bookkeeping (a chain replayed op by op computes the same bits as ops run at once, so this
# never changes a result). See :func:`_learn_eager`; ``GPUGRAD_FUSION_LEARN=0`` turns it off.
# Each maps to the forward it runs with (:func:`_resolved_forward`).
_EAGER: dict[tuple, Any] = {}
LEARN = os.environ.get("GPUGRAD_FUSION_LEARN", "1") != "0"
# On the CPU, a compiled chain closed by sum/mean that requires grad (a loss) computes its value
# and its inputs' gradients in one pass, kept for backward (fusion.kernels._value_and_grad).
VALUE_AND_GRAD = True


class Pending:
    """The op behind a pending tensor: what it will compute, and what it already knows.

    Made with ``object.__new__`` and its slots set in place (one op's record, written for speed):
    ``op``, ``args`` (pending tensors, (concrete tensor, its array) pairs and Python numbers),
    ``params``, ``shape``, ``dtype``, ``count`` (ops in its DAG, shared ones counted once per use:
    an upper bound), ``mark``/``step`` (set while :func:`_linearise` walks the DAG), ``reduced``
    ([(weak ref to a loss node, "sum" | "mean")]: see :func:`_relink`).

    A pending tensor recorded along a chain (see :class:`_Step`) also knows its chain in the
    order its ops were called: ``node`` (its step there), ``prev`` (the pending op it extended),
    ``arrs`` (the chain's array inputs so far: (tensor, array, input index) triples), ``nums``
    (its numbers so far), ``pars`` ((step, params) of its steps with parameters) and ``trace``
    (a flag shared along the chain, set once one of its pending tensors is computed: the chain's
    ops no longer all wait). ``node`` is None for one recorded otherwise (``_linearise`` walks it).
    """

    __slots__ = ("op", "args", "params", "shape", "dtype", "count", "mark", "step", "reduced",
                 "node", "prev", "arrs", "nums", "pars", "trace")


class _Step:
    """A step of a chain recorded in call order: a node of the trie of the chains seen so far.

    A chain whose every op extends the one before it (its pending operands lie on that line) is
    known at once by the node of its last step: the node's ``tokens`` are what :func:`_linearise`
    would write for the step (operand tokens, then the op), so the path from the root spells the
    chain's program key, and ``programs`` keeps the program per reduction. Recording such an op
    is a dict lookup (the child for its tokens), which also gives its result's dtype and shape;
    computing the chain needs no walk of its DAG. One trie per device (the root).
    """

    __slots__ = ("parent", "tokens", "children", "dtype", "shape", "depth", "programs", "gen")

    def __init__(self, parent: _Step | None, tokens: tuple, dtype: Any, shape: tuple | None) -> None:
        self.parent = parent
        self.tokens = tokens
        self.children: dict[tuple, _Step] = {}
        self.dtype = dtype
        self.shape = shape
        self.depth = 0 if parent is None else parent.depth + 1
        self.programs: dict[Any, Program] = {}
        self.gen = _TRIE[1]

    def path(self) -> list[_Step]:
        """The steps from the first to this one."""
        out = []
        node = self
        while node.parent is not None:
            out.append(node)
            node = node.parent
        out.reverse()
        return out


_ROOTS: dict[str, _Step] = {}  # device -> the root of its trie
_TRIE = [0, 0]  # [nodes in the tries, generation (forgetting the learned programs bumps it)]
MAX_TRIE = 65536  # nodes; more (chains of ever new shapes) and the tries start again
MAX_TRACE_ARRAYS = 16  # array inputs a chain recorded in order may have (found by a scan)
_ndarray = np.ndarray
_EMPTY: dict = {}  # the params of an op without parameters, in a chain's step list


# Weak references to the pending tensors, so that an in-place change can first materialise
# every chain that might read the old values (flush()); see _pending_tensor.
_LIVE: collections.deque = collections.deque()
_prune_at = [4096]


def enabled() -> bool:
    """Whether elementwise ops are fused now (``gg.no_fusion()``, ``GPUGRAD_FUSION=0``)."""
    return STATE.fusion


class no_fusion:  # noqa: N801 (a context manager named like no_grad)
    """Run every elementwise op on its own inside this block or decorated function (for
    debugging; results agree with fusion's to floating-point reassociation). Pending chains
    made before are computed on entry.

    Example::

        with gg.no_fusion():
            y = gg.tanh(x) * 2        # computed right here, one op at a time
    """

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        flush()
        self._prev.append(STATE.fusion)
        STATE.fusion = False

    def __exit__(self, *exc: object) -> None:
        STATE.fusion = self._prev.pop()

    def __call__(self, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_fusion():
                return fn(*args, **kwargs)

        return wrapper


# (op, operand dtypes or number types) -> the result dtype, or False: the op does not fuse there
_RESULT: dict[tuple, Any] = {}


def _result(op: Any, args: tuple, key: tuple) -> Any:
    if op.kind == "bool" or not any(k.__class__ is not type for k in key[1:]):
        return False  # a comparison, or no tensor operand
    if any(k.__class__ is not type and k.kind != "f" for k in key[1:]):
        return False  # an integer or boolean tensor: the op runs now
    dt = op.result_dtype(args)
    return dt if dt.kind == "f" else False


def run(op: Any, args: tuple, params: dict) -> Any:
    """Apply elementwise ``op`` to validated operands: ``ElementwiseOp.run``, the path of every
    elementwise op (Tensor's operators call it directly). With fusion on, its result waits in
    a chain (:func:`record`) unless the op was learned to run at once (``_EAGER``)
    or cannot wait.

    The commonest op on a chain, ``f(y)``, ``y op number`` or ``number op y`` with ``y``
    pending on a chain recorded in order (``y = tanh(y) * 2``), is recorded in the first lines:
    one dict lookup finds its step in the trie (:class:`_Step`), checked when first seen (about
    0.4 us with the call).
    """
    if not STATE.fuse:
        return _apply(op, args, params)
    a = args[0]
    n = len(args)
    if n == 1:
        y = a
        c = None
    elif n == 2:
        y = args[1]
        c = y.__class__
        if c is float or c is int:  # y op number
            y, num = a, y
        else:
            num = a
            ca = a.__class__
            if ca is float or ca is int:  # number op y
                c = ca
            else:  # two tensors
                if ca is PendingTensor and c is PendingTensor:
                    la, ly = a._lazy, y._lazy
                    if la.node is None or ly.node is None or la.trace is not ly.trace:
                        pending = _record_general(op, args, params)  # two chains (or DAGs) meet
                        return _apply(op, args, params) if pending is None else pending
                elif ca is Tensor and c is Tensor and _EAGER and a.device == "cpu" and y.device == "cpu":
                    # learned to run at once (x @ W + b)? record()'s first-step tokens, without its loops
                    xa = a.data
                    if a is y:
                        impl = _EAGER.get((xa.dtype.char, xa.shape, 0, op))
                    else:
                        xb = y.data
                        impl = _EAGER.get((xa.dtype.char, xa.shape, xb.dtype.char, xb.shape, op))
                    if impl:
                        return _apply(op, args, params, None if impl is True else impl)
                y = None
    else:
        y = None
    cls = y.__class__
    if cls is PendingTensor:  # extends a chain
        top = y._lazy
        node = top.node
        if node is not None and not top.trace[0] and node.depth < MAX_OPS:
            if c is None:
                tokens = (-node.depth, op)
                nums = top.nums
            else:
                tokens = (-node.depth, c, op) if y is a else (c, -node.depth, op)
                nums = top.nums + (num,)
            step = node.children.get(tokens)
            if step is not None:
                # _traced and _pending_tensor, inline: calling them cost 9% of the 100-op chain's
                # step (ab_steps; one call, to _pending_tensor alone, 7%), this being every op of it
                lz = _new(Pending)
                lz.op = op
                lz.args = args
                lz.params = params
                lz.shape = step.shape
                lz.dtype = step.dtype
                lz.count = step.depth
                lz.mark = None
                lz.reduced = None
                lz.node = step
                lz.prev = top
                lz.arrs = top.arrs
                lz.nums = nums
                lz.pars = top.pars if not params else top.pars + ((node.depth, params),)
                lz.trace = top.trace
                t = _new(PendingTensor)
                t.requires_grad = y.requires_grad and STATE.grad_enabled and op.differentiable
                t.device = y.device
                t._lazy = lz
                _LIVE.append(_ref(t))
                oldest = _LIVE[0]()
                if oldest is None or oldest._lazy is None:
                    _LIVE.popleft()
                else:
                    _LIVE.rotate(-1)
                if len(_LIVE) > _prune_at[0]:
                    _prune_live()
                return t
    if cls is Tensor:  # f(x), x op number, number op x: a chain's first op, or an op learned to run at once
        arr = y.data
        if c is None:
            tokens = (arr.dtype.char, arr.shape, op)
        elif y is a:
            tokens = (arr.dtype.char, arr.shape, c, op)
        else:
            tokens = (c, arr.dtype.char, arr.shape, op)
        if _EAGER:  # (keyed as the trie's first steps are: one tuple serves both lookups)
            impl = _EAGER.get(tokens) if y.device == "cpu" else None
            if impl:
                if impl is not True and not (y.requires_grad and STATE.grad_enabled) and not STATE.checks:
                    # nothing to record, no tangent, no anomaly check: apply()'s result without its
                    # generic walk (a parameter update's lr * grad, an inference pass)
                    try:
                        out = impl(arr) if c is None else impl(arr, num) if y is a else impl(num, arr)
                    except (ValueError, IndexError):
                        return _apply(op, args, params, impl)  # (which says what went wrong)
                    return make_tensor(out if out.__class__ is _ndarray else np.asarray(out), "cpu")
                return _apply(op, args, params, None if impl is True else impl)
        root = _ROOTS.get(y.device)
        if root is not None:
            step = root.children.get(tokens)
            if step is not None:
                if c is None:
                    kept, nums, pos = ((y, arr),), (), 0
                elif y is a:
                    kept, nums, pos = ((y, arr), num), (num,), 0
                else:
                    kept, nums, pos = (num, (y, arr)), (num,), 1
                return _traced(op, kept, params, step, None, ((y, arr, pos),), nums, (),
                               y.requires_grad and STATE.grad_enabled and op.differentiable, y.device)
    pending = record(op, args, params)
    return _apply(op, args, params) if pending is None else pending


def record(op: Any, args: tuple, params: dict) -> Tensor | None:
    """The pending result of elementwise ``op`` on ``args``, or None when it must run now (or
    its result, computed at once, for a chain's first op learned to run so: ``_EAGER``).

    A concrete operand is kept with the array it holds now, so that rebinding its ``data``
    later does not change what the chain computes (an in-place write calls flush() first).

    An op whose pending operands lie on one chain recorded in order (it extends the deepest of
    them) is a step of the trie of chains (:class:`_Step`); so is a chain's first op. Anything
    else (two chains meeting, a chain already partly computed, a pending operand that does not
    require grad under an op that does) is recorded with its DAG (:func:`_record_general`).
    :func:`run` records the commonest ops itself, the steps already in the trie.
    """
    top = None  # the deepest pending operand: the chain this op extends
    device = None
    rg = False
    pending_rg = True  # every pending operand requires grad
    for a in args:
        cls = a.__class__
        if cls is PendingTensor:
            lz = a._lazy
            node = lz.node
            if node is None or lz.trace[0]:
                return _record_general(op, args, params)
            if top is None or node.depth > top.node.depth:
                top = lz
            if a.requires_grad:
                rg = True
            else:
                pending_rg = False
        elif cls is float or cls is int:
            continue
        elif cls is Tensor or isinstance(a, Tensor):
            if a.requires_grad:
                rg = True
        else:
            return None
        if device is None:
            device = a.device
        elif a.device != device:
            return None  # the eager path raises the device error
    rg = rg and STATE.grad_enabled and op.differentiable
    if top is None:
        if device is None:
            return None  # numbers only: the op runs now
        node = _ROOTS.get(device)
        if node is None:
            node = _ROOTS[device] = _Step(None, (), None, None)
        arrs = nums = pars = ()
    else:
        if rg and not pending_rg:
            return _record_general(op, args, params)  # the gradient stops at that operand
        node = top.node
        if node.depth >= MAX_OPS:  # cut the chain: its pending operands become inputs
            for a in args:
                if a.__class__ is PendingTensor:
                    materialize(a)
            return record(op, args, params)
        arrs, nums, pars = top.arrs, top.nums, top.pars
    n_in = len(arrs) + len(nums)
    tokens = []
    kept = []
    for a in args:
        cls = a.__class__
        if cls is PendingTensor:
            depth = _depth_on(top, a._lazy)
            if not depth:  # (two chains meet: their DAG is walked when computed)
                return _record_general(op, args, params)
            tokens.append(-depth)
            kept.append(a)
        elif cls is float or cls is int:
            tokens.append(cls)
            nums += (a,)
            n_in += 1
            kept.append(a)
        else:
            arr = a.data
            i = _input_of(arrs, a, arr)
            if i is not None:
                tokens.append(i)
            else:
                if len(arrs) >= MAX_TRACE_ARRAYS:
                    return _record_general(op, args, params)
                tokens.append(arr.dtype.char)
                tokens.append(arr.shape)
                arrs += ((a, arr, n_in),)
                n_in += 1
            kept.append((a, arr))
    tokens.append(op)
    tokens = tuple(tokens)
    if top is None and _EAGER and device == "cpu":  # a chain's first op: learned to run at once?
        impl = _EAGER.get(tokens)
        if impl:
            return _apply(op, args, params, None if impl is True else impl)
    step = node.children.get(tokens)
    if step is None:
        step = _new_step(node, tokens, op, args)
        if step is None:
            return None  # the op runs now (and raises its error, if any)
    return _traced(op, kept, params, step, top, arrs, nums, pars, rg, device)


def _input_of(arrs: tuple, tensor: Tensor, arr: Any) -> int | None:
    """The input index of ``tensor`` holding ``arr`` among a chain's array inputs, or None."""
    for t, seen, i in arrs:
        if seen is arr and t is tensor:
            return i
    return None


def _depth_on(top: Pending, lz: Pending) -> int:
    """The depth of pending op ``lz`` on ``top``'s chain (its step is ``-depth`` there), found
    down ``top``'s ``prev`` links, or 0 when it is not on it."""
    d = lz.node.depth
    p = top
    while p is not None and p.node.depth > d:
        p = p.prev
    return d if p is lz else 0


def _traced(op: Any, args: Any, params: dict, step: _Step, top: Pending | None, arrs: tuple, nums: tuple,
            pars: tuple, rg: bool, device: str) -> PendingTensor:
    """The pending tensor of ``op`` at ``step``, extending ``top`` (None: a chain's first op)."""
    if params:
        pars += ((step.depth - 1, params),)
    lz = _new(Pending)
    lz.op = op
    lz.args = args
    lz.params = params
    lz.shape = step.shape
    lz.dtype = step.dtype
    lz.count = step.depth
    lz.mark = None
    lz.reduced = None
    lz.node = step
    lz.prev = top
    lz.arrs = arrs
    lz.nums = nums
    lz.pars = pars
    lz.trace = [False] if top is None else top.trace
    return _pending_tensor(lz, rg, device)


def _new_step(node: _Step, tokens: tuple, op: Any, args: tuple) -> _Step | None:
    """The step of ``op`` on ``args`` after ``node`` (its tokens ``tokens``), added to the
    trie; None when the op does not wait there (see :func:`_waits_as`)."""
    got = _waits_as(op, args)
    if got is None:
        return None
    if _TRIE[0] >= MAX_TRIE:  # chains of ever new shapes: keep the tries bounded
        _ROOTS.clear()
        _TRIE[0] = 0
    _TRIE[0] += 1
    step = node.children[tokens] = _Step(node, tokens, *got)
    return step


def _waits_as(op: Any, args: tuple) -> tuple[np.dtype, tuple] | None:
    """(dtype, shape) of the pending result of elementwise ``op`` on ``args`` (pending and
    concrete tensors, Python numbers); None when it must run now: its result dtype does not
    fuse (see :func:`_result`) or its operands' shapes do not broadcast (the op then raises its
    own error, as without fusion)."""
    key = [op]
    shapes = []
    for a in args:
        cls = a.__class__
        if cls is float or cls is int:
            key.append(cls)
        elif cls is PendingTensor:
            key.append(a._lazy.dtype)
            shapes.append(a._lazy.shape)
        else:
            key.append(a.data.dtype)
            shapes.append(a.data.shape)
    key = tuple(key)
    dt = _RESULT.get(key)
    if dt is None:
        dt = _RESULT[key] = _result(op, args, key)
    if dt is False:
        return None
    shape = shapes[0]
    for s in shapes[1:]:
        if s != shape:
            try:
                shape = np.broadcast_shapes(*shapes)
            except ValueError:
                return None
            break
    return dt, shape


def _record_general(op: Any, args: tuple, params: dict) -> Tensor | None:
    """:func:`record` for an op that does not extend one recorded chain: its pending op keeps
    its operands, and computing it walks its DAG (:func:`_linearise`).

    A concrete operand is kept with the array it holds now, so that rebinding its ``data``
    later does not change what the chain computes (an in-place write calls flush() first).
    """
    device = None
    rg = False
    count = 1
    kept = []
    for a in args:
        cls = a.__class__
        if cls is Tensor or cls is PendingTensor or (cls is not float and cls is not int and isinstance(a, Tensor)):
            lz = a._lazy
            if lz is None:
                kept.append((a, a.data))
            else:
                count += lz.count
                kept.append(a)
            if device is None:
                device = a.device
            elif a.device != device:
                return None  # the eager path raises the device error
            if a.requires_grad:
                rg = True
        elif cls is float or cls is int:
            kept.append(a)
        else:
            return None
    got = _waits_as(op, args)
    if got is None:
        return None
    dt, shape = got
    if count > MAX_OPS:  # cut the chain: its long operands become inputs
        for i, a in enumerate(kept):
            if a.__class__ is not tuple and isinstance(a, Tensor):
                kept[i] = (a, a.data)
        count = 1
    lz = _new(Pending)
    lz.op = op
    lz.args = kept
    lz.params = params
    lz.shape = shape
    lz.dtype = dt
    lz.count = count
    lz.mark = None
    lz.reduced = None
    lz.node = None
    return _pending_tensor(lz, rg and STATE.grad_enabled and op.differentiable, device)


def _pending_tensor(lz: Pending, requires_grad: bool, device: str) -> PendingTensor:
    """The pending tensor of ``lz``, registered in ``_LIVE``. Each one made also looks at the
    oldest reference there: dropped if its tensor is gone or computed, else moved to the back.
    That keeps ``_LIVE`` near the number alive, so dead references do not outlive a step (a pile
    of them kept Python's garbage collector running full collections: 10 us per 100-op step)."""
    t = _new(PendingTensor)  # (its grad, _version... are read through PendingTensor's properties)
    t.requires_grad = requires_grad
    t.device = device
    t._lazy = lz
    _LIVE.append(_ref(t))
    oldest = _LIVE[0]()
    if oldest is None or oldest._lazy is None:
        _LIVE.popleft()
    else:
        _LIVE.rotate(-1)
    if len(_LIVE) > _prune_at[0]:
        _prune_live()
    return t


def _prune_live() -> None:
    """Drop every dead or computed reference from ``_LIVE`` (many pending tensors alive: once it
    has doubled since, so amortised)."""
    live = [r for r in _LIVE if (x := r()) is not None and x._lazy is not None]
    _LIVE.clear()
    _LIVE.extend(live)
    _prune_at[0] = max(4096, 2 * len(_LIVE))


def _resolved_forward(op: Any, dt: np.dtype) -> Any:
    """What :func:`gpugrad.ops.base.forward` would run for ``op`` with a ``dt`` result on the
    CPU, resolved once: the NumPy backend's function of the op for ``dt``, called on the
    operands' arrays. True (take the general path) for an op with parameters or a kernel
    registered for it. (A kernel registered later clears ``_EAGER``: see :func:`_forget_learned`.)"""
    B = backend_for("cpu")
    if op.param_names or op.lowering_keys[0] in B.lowerings:
        return True
    return B.forward_function(op, dt)


def _forget_learned() -> None:
    """Forget the learned ops (a kernel was registered for some op, or there are too many): they
    resolve their forward again when relearned, and their programs are forgotten too, since a
    program is learned once (the trie's steps drop theirs when next used)."""
    _EAGER.clear()
    _PROGRAMS.clear()
    _TRIE[1] += 1


lowerings.CPU.watch(_forget_learned)


def flush(keep: Tensor | None = None) -> None:
    """Materialise every pending tensor still alive (before an in-place change: a chain must
    read the values its operands had when its ops were called), except ``keep`` (the operand of
    the in-place op itself, computed by it)."""
    if not _LIVE:
        return
    refs = list(_LIVE)
    _LIVE.clear()
    for r in refs:
        t = r()
        if t is not None and t._lazy is not None:
            if t is keep:
                _LIVE.append(r)
            else:
                materialize(t)


# ---- materialisation ---------------------------------------------------------------------------


class Program:
    """A chain in a fixed order: ``steps[j] = (op, refs, dtype, shape)`` where ref ``i >= 0`` is
    input ``i`` of the chain and ``i < 0`` is step ``-1 - i``; ``reduce`` is None, "sum" or
    "mean" (over all elements of the last step); ``in_shapes`` the inputs' shapes (None for a
    number). ``key`` identifies it (kernels are built per chain); ``op`` is its fused op, whose
    operands are the array inputs (``arrays``: their input indices) and whose ``numbers``
    parameter holds the numbers (inputs ``numbers``)."""

    __slots__ = ("steps", "in_shapes", "in_kinds", "reduce", "key", "names", "op", "compiled",
                 "arrays", "numbers", "learned", "_plans", "_needs", "__weakref__")

    def __init__(self, key: tuple, steps: list, in_shapes: list, in_kinds: list, reduce: str | None) -> None:
        self.key = key
        self.steps = steps
        self.in_shapes = in_shapes
        self.in_kinds = in_kinds  # dtype of an array input, int or float for a number
        self.compiled: Any = None  # the fusion compiler's chain for it (gpugrad.fusion.kernels)
        self.reduce = reduce
        self.names = ",".join(step[0].name for step in steps)
        self.op = FusedElementwise(self)
        self.arrays = [i for i, s in enumerate(in_shapes) if s is not None]
        self.numbers = [i for i, s in enumerate(in_shapes) if s is None]
        self._plans: dict[tuple, tuple] = {}
        self._needs: dict[tuple, tuple] = {}
        self.learned = False  # its ops were added to _EAGER (after it was replayed)

    def inputs(self, args: Any, numbers: list) -> list:
        """All the chain's inputs from the fused op's operands (or None) and its numbers."""
        full: list[Any] = [None] * len(self.in_shapes)
        if args is not None:
            for i, a in zip(self.arrays, args):
                full[i] = a
        for i, v in zip(self.numbers, numbers):
            full[i] = v
        return full

    def needs(self, needs: tuple) -> tuple:
        """Per input of the chain, whether its gradient is wanted, from the fused op's ``needs``."""
        got = self._needs.get(needs)
        if got is None:
            full = [False] * len(self.in_shapes)
            for i, n in zip(self.arrays, needs):
                full[i] = n
            got = self._needs[needs] = tuple(full)
        return got

    def plan(self, needs: tuple) -> tuple[list, list, tuple, bool]:
        """What the backward of the inputs in ``needs`` does: (wanted, recompute, read, out).

        ``wanted[j]``: step j's gradient leads to a needed input; ``recompute[j]``: its value is
        read by a derivative (or by a step that is); ``read[i]``: input i is read (saved);
        ``out``: the chain's value is read (saved, as the unfused op saves its output, so an
        in-place change to it is detected the same way).
        """
        got = self._plans.get(needs)
        if got is not None:
            return got
        steps = self.steps
        n = len(steps)
        wanted = [False] * n
        for j, (op, refs, _, _) in enumerate(steps):
            wanted[j] = op.differentiable and any(needs[r] if r >= 0 else wanted[-1 - r] for r in refs)
        recompute = [False] * n
        read = [False] * len(self.in_shapes)
        save_out = False
        for j in range(n - 1, -1, -1):
            op, refs, _, _ = steps[j]
            uses: set[str] = set()
            if wanted[j]:
                for name, r in zip(op.inputs, refs):
                    if (needs[r] if r >= 0 else wanted[-1 - r]) and name in op.d:
                        uses |= op.d[name].names
            if "out" in uses:
                if j == n - 1 and self.reduce is None:
                    save_out = True
                else:
                    recompute[j] = True
            if recompute[j]:
                uses |= set(op.inputs)  # recomputing this step reads every operand
            for name, r in zip(op.inputs, refs):
                if name in uses:
                    if r >= 0:
                        read[r] = True
                    else:
                        recompute[-1 - r] = True
        got = (wanted, recompute, tuple(read), save_out)
        self._plans[needs] = got
        return got

    def __repr__(self) -> str:
        return f"<fused chain {self.names}{' -> ' + self.reduce if self.reduce else ''}>"


_PROGRAMS: dict[tuple, Program] = {}


def _linearise(root: Tensor, grad: bool) -> tuple[tuple, list, list, list, list, list, list]:
    """The DAG behind pending ``root`` in topological order: (key, pendings, tensors, arrays,
    numbers, params).

    ``tensors`` are the chain's concrete tensors (the fused op's operands), ``arrays`` what the
    chain reads of them; the chain's inputs are those and ``numbers``, in the order the key
    gives. A pending operand that does not require grad under a root that does (it was computed
    under no_grad) is materialised and becomes an input: the gradient stops there; so does one
    materialised since (a hook or another op needed its value).

    ``owners[j]`` is the pending tensor of step j.

    ``key`` identifies the program (see :func:`_decode`, which reads it back): the steps in
    postfix order, each step's operand tokens then its op: ``-1 - j`` step j, ``i >= 0`` input
    i seen before, a number's type (a new input), or a new array input's dtype char followed by
    its shape. Step dtypes and shapes follow from these. This runs for every chain evaluated:
    it is written for speed (recursive: a chain is at most MAX_OPS deep).
    """
    inputs: list[Any] = []
    values: list[Any] = []
    numbers: list[Any] = []
    input_index: dict[tuple, int] = {}
    pendings: list[Pending] = []
    owners: list[Tensor] = []
    params: list[dict] = []
    key: list[Any] = []
    push = key.append
    add_input = inputs.append
    add_value = values.append
    add_number = numbers.append
    mark = object()  # a Pending marked with it was visited in this walk: its ref is ``lz.step``

    def visit(t: Tensor) -> int:
        lz = t._lazy
        for a in lz.args:
            c = a.__class__
            if c is float or c is int:
                push(c)  # a number: an input of its own (no new chain per value)
                add_number(a)
                continue
            if c is tuple:
                tensor, arr = a
            else:
                sub = a._lazy
                if sub is not None:
                    if sub.mark is mark:
                        push(sub.step)
                        continue
                    if not grad or a.requires_grad:
                        push(visit(a))
                        continue
                    materialize(a)
                tensor, arr = a, a.data
            k = (id(tensor), id(arr))
            i = input_index.get(k)
            if i is None:
                input_index[k] = len(inputs) + len(numbers)
                add_input(tensor)
                add_value(arr)
                push(arr.dtype.char)
                push(arr.shape)
            else:
                push(i)
        push(lz.op)
        lz.mark = mark
        lz.step = ref = -1 - len(pendings)
        pendings.append(lz)
        owners.append(t)
        params.append(lz.params)
        return ref

    try:
        visit(root)
    finally:
        visit = None  # a recursive closure is a reference cycle: it would keep the chain alive until gc
    return tuple(key), pendings, owners, inputs, values, numbers, params


def _decode(key: tuple, pendings: list) -> tuple[list, list, list]:
    """(steps ``(op, refs, dtype, shape)``, in_shapes, in_kinds) of a chain from its
    :func:`_linearise` key."""
    steps: list[tuple] = []
    in_shapes: list[Any] = []
    in_kinds: list[Any] = []
    operands: list[int] = []
    pos = 0
    while pos < len(key):
        tok = key[pos]
        pos += 1
        c = tok.__class__
        if c is int:
            operands.append(tok)
        elif c is type or c is str:  # a new input (an array's shape follows its dtype char)
            operands.append(len(in_shapes))
            in_shapes.append(key[pos] if c is str else None)
            in_kinds.append(np.dtype(tok) if c is str else tok)
            pos += c is str
        else:  # an op: its operands are the last ones
            k = len(tok.inputs)
            refs = tuple(operands[len(operands) - k:])
            del operands[len(operands) - k:]
            lz = pendings[len(steps)]
            steps.append((tok, refs, lz.dtype, lz.shape))
    return steps, in_shapes, in_kinds


def materialize(t: Tensor, reduce: str | None = None, out: Any = None) -> Any:
    """Compute pending ``t`` (one fused op on the tape when it requires grad) and make it an
    ordinary tensor; with ``reduce`` ("sum"/"mean") return instead a new tensor holding that
    reduction of it, computed in the same pass (``t`` stays pending). ``out``: an array the
    compiled pass may write the value into (an in-place update); the value is returned."""
    rg = t.requires_grad
    lz = t._lazy
    seq0 = STATE.seq
    device = t.device
    B = _BACKENDS.get(device)
    if B is None:
        B = backend_for(device)
    node = lz.node
    traced = False
    if node is not None and not lz.trace[0]:  # a chain recorded in order: no walk
        if node.gen != _TRIE[1]:  # the learned programs were forgotten since
            node.programs = {}
            node.gen = _TRIE[1]
        program = node.programs.get(reduce)
        if program is None:
            path = node.path()
            program = node.programs[reduce] = _program(
                (tuple([tok for step in path for tok in step.tokens]), reduce, device), path)
        op_params = [_EMPTY] * node.depth
        for j, p in lz.pars:
            op_params[j] = p
        traced = _kernels.compiles(program, op_params, B)
        if traced:
            inputs = [e[0] for e in lz.arrs]
            values = [e[1] for e in lz.arrs]
            numbers = lz.nums
        # else: replayed op by op, which needs the DAG's pending tensors (the walk finds them)
    if not traced:
        key, pendings, owners, inputs, values, numbers, op_params = _linearise(t, rg)
        program = _program((key, reduce, device), pendings)
    params = {"program": program, "params": op_params, "numbers": numbers}
    if out is not None:
        params["out"] = out
    if not traced and not _kernels.compiles(program, op_params, B):
        done = _replay(t, owners, program, inputs, values, numbers, op_params, reduce)
        if done is not None:
            if not program.learned and device == "cpu":
                _learn_eager(program)
            if lz.reduced and reduce is None:
                _relink(t, lz.reduced, seq0)
            return done
    if rg and reduce is not None and device == "cpu" and VALUE_AND_GRAD:
        # a loss: its gradients are made in the same pass and kept for backward (kernels._value_and_grad)
        params["grad_needs"] = tuple([i.requires_grad for i in inputs])
    out = forward(program.op, B, values, params)  # (a backend's kernel for the chain, registered or ours)
    version = [0] if reduce else pending_version(t)
    node = _record(program.op, inputs, params, out, device, version) if rg else None
    if reduce is not None:
        if node is not None:  # t stays pending: should it be computed later, see _relink
            if lz.reduced is None:
                lz.reduced = []
            lz.reduced.append((weakref.ref(node), reduce))
        return make_tensor(out, device, rg, node, version)
    t.data = out
    t._node = node
    t._lazy = None
    settle_pending(t, version)
    t.__class__ = Tensor
    if lz.node is not None:
        lz.trace[0] = True  # the chain's later ops must read t, not recompute it
    if lz.reduced:
        _relink(t, lz.reduced, seq0)
    return out


def _program(key: tuple, steps: list) -> Program:
    """The program of ``key`` (a chain's tokens, its reduction, its device), made once; ``steps``
    give its steps' dtypes and shapes (pending ops or trie steps)."""
    program = _PROGRAMS.get(key)
    if program is None:
        if len(_PROGRAMS) >= 4096:  # chains of ever new shapes: keep the cache bounded
            _PROGRAMS.clear()
        program = _PROGRAMS[key] = Program(key, *_decode(key[0], steps), key[1])
    return program


def _relink(t: Tensor, reduced: list, seq0: int) -> None:
    """Pending ``t`` was summed into a loss in one pass (reduce_all) and has now been computed
    itself (a hook or retain_grad on it, another op that needed its value): each such loss node
    still alive becomes the plain sum/mean of ``t``, so that the loss's gradient flows through
    ``t`` (its hooks, its retained grad) as without fusion. ``t``'s new nodes (sequence numbers
    from ``seq0``) were recorded after the loss; they are renumbered just below it, since the
    backward pass walks the tape in decreasing sequence order."""
    from gpugrad.ops import reduce as _reduce

    losses = [(n, how) for ref, how in reduced if (n := ref()) is not None and not n.freed]
    if not losses or t._node is None:
        return
    new: list = []
    seen: set = set()
    stack = [t._node]
    while stack:
        n = stack.pop()
        if n.__class__ is not Node or n in seen or n.seq < seq0:
            continue
        seen.add(n)
        new.append(n)
        stack.extend(n.next)
    new.sort(key=_SEQ)
    below = min(n.seq for n, _ in losses)
    for i, n in enumerate(new):
        n.seq = below - 1 + (i + 1) / (len(new) + 1)  # between the loss and its inputs
    prev_fuse, prev_grad = STATE.fuse, STATE.grad_enabled
    STATE.fuse, STATE.grad_enabled = False, True
    try:
        for loss, how in losses:
            plain = (_reduce.sum(t) if how == "sum" else _reduce.mean(t))._node
            for slot in ("op", "params", "inputs", "versions", "next", "needs", "out", "out_vc", "out_version"):
                setattr(loss, slot, getattr(plain, slot, None))  # (out_version is set only with out)
    finally:
        STATE.fuse, STATE.grad_enabled = prev_fuse, prev_grad


def _learn_eager(program: Program) -> None:
    """Remember the ops of a chain the CPU replayed op by op as ones to run at once (see
    ``_EAGER``): each step, keyed as :func:`record` sees it when the step heads a chain."""
    program.learned = True
    if not LEARN:
        return
    if len(_EAGER) > 65536:  # ever new shapes: keep it bounded (and let programs learn again)
        _forget_learned()
    steps = program.steps
    for op, refs, dt, _ in steps:
        key: list = []
        seen: dict[int, int] = {}  # ref -> its input index at this op (an operand twice is one input)
        n_in = 0
        for r in refs:
            if r in seen:
                key.append(seen[r])
                continue
            shape = program.in_shapes[r] if r >= 0 else steps[-1 - r][3]
            if shape is None:  # a number: its type
                key.append(program.in_kinds[r])
            else:
                key.append((program.in_kinds[r] if r >= 0 else steps[-1 - r][2]).char)
                key.append(shape)
                seen[r] = n_in
            n_in += 1
        key.append(op)
        _EAGER[tuple(key)] = _resolved_forward(op, dt)


def _replay(t: Tensor, owners: list, program: Program, inputs: list, values: list, numbers: list,
            op_params: list, reduce: str | None) -> Any:
    """A chain the compiler does not take, run as its ops would have run without fusion: each
    recorded on the tape with its saved values, and every pending tensor of the chain becoming
    what its op computed (the cheapest way for a short chain of small arrays, with exactly the
    unfused semantics). None when an operand's ``data`` was rebound since the call (the fused
    op's rule, which reads the kept arrays, runs instead)."""
    from gpugrad.ops import reduce as _reduce

    for tensor, arr in zip(inputs, values):
        if tensor.data is not arr:
            return None
    full = program.inputs(inputs, numbers)
    outs: list[Any] = []
    prev_fuse, prev_grad = STATE.fuse, STATE.grad_enabled
    STATE.fuse = False
    STATE.grad_enabled = t.requires_grad
    try:
        for (op, refs, _, _), p, owner in zip(program.steps, op_params, owners):
            res = _apply(op, tuple([full[r] if r >= 0 else outs[-1 - r] for r in refs]), p)
            if owner._lazy is not None:
                if owner._lazy.node is not None:
                    owner._lazy.trace[0] = True
                owner.data = res.data
                owner._node = res._node
                owner._lazy = None
                settle_pending(owner, res._version)
                owner.__class__ = Tensor
                res = owner
            outs.append(res)
        if reduce is not None:
            return _reduce.sum(t) if reduce == "sum" else _reduce.mean(t)
    finally:
        STATE.fuse, STATE.grad_enabled = prev_fuse, prev_grad
    return t.data


def reduce_all(t: Tensor, how: str) -> Tensor:
    """``sum``/``mean`` of every element of pending ``t``, fused into its chain's pass."""
    return materialize(t, how)


# ---- the fused op and its one rule ---------------------------------------------------------------


def _arg(ref: int, inputs: Any, values: list) -> Any:
    return inputs[ref] if ref >= 0 else values[-1 - ref]


def chain_forward(ns: Any, program: Program, inputs: Any, op_params: list, only: list | None = None) -> list:
    """The steps' values (those in ``only``, else all), evaluated op by op with
    ``ns.ew_forward``: the rule (a backend's kernel for the whole chain does it in one pass)."""
    values: list = []
    for j, ((op, refs, dt, _), p) in enumerate(zip(program.steps, op_params)):
        if only is not None and not only[j]:
            values.append(None)
            continue
        values.append(ns.ew_forward(op, dt, [_arg(r, inputs, values) for r in refs], p))
    return values


def chain_value(ns: Any, program: Program, values: list) -> Any:
    out = values[-1]
    if program.reduce == "sum":
        return ns.sum(out, None, False)
    if program.reduce == "mean":
        return ns.mean(out, None, False)
    return out


def chain_vjp(ns: Any, program: Program, g: Any, inputs: Any, out: Any, op_params: list, needs: tuple) -> tuple:
    """The gradients of the chain's inputs in ``needs``: the intermediates the derivatives read
    recomputed from the inputs, then each op's vjp in reverse order, gradients added at forks
    and summed back over broadcasts."""
    wanted, recompute, _, _ = program.plan(needs)
    if inputs is None:  # nothing had to be saved
        inputs = (None,) * len(program.in_shapes)
    values = chain_forward(ns, program, inputs, op_params, recompute)
    if out is not None and program.reduce is None:
        values[-1] = out
    steps = program.steps
    shape = steps[-1][3]
    if program.reduce is not None:
        if program.reduce == "mean":
            g = g / max(1, int(np.prod(shape, dtype=np.int64)))
        g = ns.broadcast_to(g, shape)
    step_grads: list[Any] = [None] * len(steps)
    step_grads[-1] = g
    in_grads: list[Any] = [None] * len(needs)
    for j in range(len(steps) - 1, -1, -1):
        gj = step_grads[j]
        if gj is None or not wanted[j]:
            continue
        step_grads[j] = None
        op, refs, _, _ = steps[j]
        args = [_arg(r, inputs, values) for r in refs]
        sub = tuple(needs[r] if r >= 0 else wanted[-1 - r] for r in refs)
        for r, gi in zip(refs, ns.ew_vjp(op, gj, args, values[j], op_params[j], sub)):
            if gi is None:
                continue
            if r >= 0:
                target = program.in_shapes[r]
                if gi.shape != target:
                    gi = ns.sum_to(gi, target)
                prev = in_grads[r]
                in_grads[r] = gi if prev is None else prev + gi
            else:
                k = -1 - r
                target = steps[k][3]
                if gi.shape != target:
                    gi = ns.sum_to(gi, target)
                prev = step_grads[k]
                step_grads[k] = gi if prev is None else prev + gi
    # An op that passes its gradient through (add) hands one array to two inputs: each input's
    # gradient must be its own (the engine adds into buffers it owns).
    given: set[int] = set()
    for i, gi in enumerate(in_grads):
        if gi is not None:
            if id(gi) in given:
                in_grads[i] = gi = gi + 0
            given.add(id(gi))
    return tuple(in_grads)


class FusedElementwise(Op):
    """The op of one fused chain (params: ``program``, and ``params``: each step's own params).

    Its rules are written once against the namespace; a backend may register a kernel for the
    whole chain under ``("fused_elementwise", "forward" | "vjp")``.
    """

    fresh_grads = True  # new arrays, one per input (chain_vjp copies one that two inputs got)
    save_out = False

    kernel_key = "fused_elementwise"  # what a backend registers a whole-chain kernel under

    def __init__(self, program: Program) -> None:
        self.program = program
        # errors name the ops the user called
        self.name = program.names if len(program.steps) == 1 else f"fused chain of {program.names}"
        self._saves: dict[tuple, tuple] = {}

    def saves(self, needs: tuple) -> tuple:
        got = self._saves.get(needs)
        if got is None:
            # every operand when the backward reads any (the compiled pass recomputes from all of them)
            program = self.program
            _, _, read, out = program.plan(program.needs(needs))
            got = self._saves[needs] = (any(read[i] for i in program.arrays) or out, out)
        return got

    def forward(self, ns: Any, args: list, params: dict) -> Any:
        program = params["program"]
        inputs = program.inputs(args, params["numbers"])
        with np.errstate(all="ignore"):  # (as the ops' own rules: a chain may overflow to inf)
            return chain_value(ns, program, chain_forward(ns, program, inputs, params["params"]))

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        program = params["program"]
        inputs = program.inputs(args, params["numbers"])
        grads = chain_vjp(ns, program, g, inputs, out, params["params"], program.needs(needs))
        return tuple(grads[i] for i in program.arrays)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        program = params["program"]
        args = program.inputs(args, params["numbers"])
        tangents = program.inputs(tangents, [None] * len(program.numbers))
        values: list = []
        tans: list = []
        for (op, refs, dt, _), p in zip(program.steps, params["params"]):
            a = [_arg(r, args, values) for r in refs]
            ts = tuple(tangents[r] if r >= 0 else tans[-1 - r] for r in refs)
            values.append(ns.ew_forward(op, dt, a, p))
            tans.append(ns.ew_jvp(op, ts, a, values[-1], p) if any(t is not None for t in ts) else None)
        t = tans[-1]
        if t is not None and program.reduce == "sum":
            t = ns.sum(t, None, False)
        elif t is not None and program.reduce == "mean":
            t = ns.mean(t, None, False)
        return t

    def __repr__(self) -> str:
        return f"<op fused_elementwise {self.program.names}>"


def _bind_run() -> None:
    """Make :func:`run` ``ElementwiseOp.run`` when this module is loaded after the op table's
    (which binds it itself when loaded after this one)."""
    import sys

    module = sys.modules.get("gpugrad.ops.elementwise")
    cls = getattr(module, "ElementwiseOp", None)
    if cls is not None:
        cls.run = run


_bind_run()
