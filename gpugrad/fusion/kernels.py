"""The fusion compiler's kernels for eager chains: registered as the backends' implementation of
the fused op's rules (``lowerings[("fused_elementwise", "forward" | "vjp")]``, see
gpugrad.ops.base), so that a chain recorded by :mod:`gpugrad.fusion.lazy` runs as one compiled
pass forward and one backward (host code on the CPU, one generated kernel on CUDA) instead of
op by op.

Each :class:`~gpugrad.fusion.lazy.Program` gets one :class:`~gpugrad.fusion.chain.Chain`
built once with stand-in leaves; a call swaps in the chain's inputs and the ops' parameter
values (neither is part of the compiled code's signature). A chain the compiler cannot take
(``NotFusable``: integer arithmetic inside, an intermediate that does not broadcast to the
result) is remembered, and its rule runs instead.

Example::

    gg.tanh(x).sum()     # forward: kernels.forward(...) on the CPU backend
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gpugrad.backends import lowerings
from gpugrad.backends.numpy_backend import sum_to
from gpugrad.fusion import host, numpy_eval, run
from gpugrad.fusion.chain import Chain, NotFusable
from gpugrad.fusion.lower import backward_program, forward_program, value_and_grad_program

_NO = object()  # a program the compiler declined
_addresses = host.addresses


class Settings:
    """Which chains run compiled. The decision depends on the chain alone (never on how often it
    ran), so that two runs of a program compute the same bits.

    On the CPU, a chain of two ops or more (or one op and the sum closing it) with at least
    ``cpu_min_ops`` ops, or ``cpu_min_elements`` elements; when it only does arithmetic (max/min,
    where, abs...) and no reduction closes it, ``cpu_min_elements_cheap`` elements
    (``GPUGRAD_FUSION_CPU_MIN_OPS``, ``GPUGRAD_FUSION_CPU_MIN_ELEMENTS``,
    ``GPUGRAD_FUSION_CPU_MIN_ELEMENTS_CHEAP``): a smaller one costs less op by op than its compiled
    call (and its compiler run, once per chain and machine), measured with ``gpugrad bench``.
    On CUDA every chain (each op would be a launch) unless
    ``GPUGRAD_FUSION_CUDA=0``. The test suite raises the CPU bars and turns the CUDA kernels off
    (each new chain would be a compiler run on the emulated device); tests/test_fusion_*.py set
    them back.
    """

    # 0: measured (1 thread), a compiled chain with a transcendental op or a closing sum beats
    # the same ops one by one at every size, 64 elements included: sum(tanh(x) * sigmoid(x))
    # fwd+bwd on 1K floats takes 36 us compiled against 68 us op by op.
    cpu_min_elements: int = int(os.environ.get("GPUGRAD_FUSION_CPU_MIN_ELEMENTS", "0"))
    cpu_min_elements_cheap: int = int(os.environ.get("GPUGRAD_FUSION_CPU_MIN_ELEMENTS_CHEAP", str(1 << 18)))
    cpu_min_ops: int = int(os.environ.get("GPUGRAD_FUSION_CPU_MIN_OPS", "16"))
    cuda: bool = os.environ.get("GPUGRAD_FUSION_CUDA", "1") != "0"


def _worth_compiling_on_cpu(program: Any) -> bool:
    if len(program.steps) == 1 and program.reduce is None:
        return False  # one op is one pass either way: its own kernel is as fast, and cheaper to call
    if len(program.steps) >= Settings.cpu_min_ops:
        return True
    shape = program.steps[-1][3]
    n = 1
    for d in shape:
        n *= d
    if n < Settings.cpu_min_elements:
        return False
    # Plain arithmetic (x @ W + b then relu) gains only the memory passes it saves, which NumPy's
    # in-cache passes make cheap: measured on the bench's MLP (1 thread), compiled loses at 2^16
    # elements (1.48 ms vs 1.45 ms a step) and wins at 2^19 (33.1 ms vs 33.6 ms). A closing sum
    # (a loss) is another matter: its value and gradients come out of one pass.
    return (n >= Settings.cpu_min_elements_cheap or program.reduce is not None
            or any(not run.cheap(op) for op, *_ in program.steps))


class _Template:
    """A program's chain, its leaf slots for the program's inputs and for each step's params,
    and its compiled host calls per geometry (:class:`_Fast`)."""

    __slots__ = ("chain", "leaves", "param_slots", "arrays", "numbers", "number_span", "params", "ptrs", "scalars",
                 "fast")

    def __init__(self, program: Any, params: list) -> None:
        c = Chain()
        refs = []
        for shape, kind in zip(program.in_shapes, program.in_kinds):
            # distinct stand-ins: the chain must not merge two inputs that share an array
            refs.append(c.leaf(kind(0) if shape is None else np.empty(shape, kind)))
        steps = []
        for (op, srefs, _, _), p in zip(program.steps, params):
            args = [refs[r] if r >= 0 else steps[-1 - r] for r in srefs]
            steps.append(c.apply(op, args, p))
        if program.reduce is not None:
            c.reduce(steps[-1], program.reduce)
        else:
            c.output(steps[-1])
        self.chain = c
        self.leaves = list(c.leaves)
        self.param_slots = [[(name, k) for name, k in zip(op.param_names, slots)]
                            for (op, *_), slots in zip(program.steps, c.params)]
        # Leaf k < len(inputs) is input k of the chain; the op parameters' leaves follow.
        self.arrays = program.arrays  # the leaves of the fused op's operands, in order
        self.numbers = program.numbers  # the leaves of its numbers
        n = self.numbers
        self.number_span = slice(n[0], n[-1] + 1) if n and n == list(range(n[0], n[-1] + 1)) else None
        self.params = [(k, j, name) for j, slots in enumerate(self.param_slots) for name, k in slots]
        self.ptrs = [0] * len(c.leaves)  # the pointer table's leaf part (0 at scalar leaves)
        self.scalars = [0.0] * len(c.leaves) + [float(c.size())]  # the scalar table; then N
        self.fast: dict[tuple, _Fast] = {}


class _Fast:
    """A template's forward or backward as one compiled host call at one geometry (the inputs'
    and incoming gradient's strides): what a call reuses instead of binding the chain, lowering
    its signature and planning the loop again. ``results``: per input whose gradient the
    backward gives, (input, written array, the input's shape where it was broadcast, whether to
    copy because another input got the same array)."""

    __slots__ = ("call", "shape", "out_dtypes", "reduce", "reduced_dtype", "results", "like")

    def __init__(self, call: host.Call, shape: tuple, out_dtypes: list, reduce: str | None = None,
                 reduced_dtype: Any = None, results: list | None = None, like: int | None = None) -> None:
        self.like = like  # the operand whose memory order the outputs take (run.layout_of), or None
        self.call = call
        self.shape = shape
        self.out_dtypes = out_dtypes
        self.reduce = reduce
        self.reduced_dtype = reduced_dtype
        self.results = results

    def outputs(self, args: Any, g: Any = None) -> list:
        """New arrays for the call to write, in the memory order it was compiled for (``like``:
        an operand's position, -1 for the incoming gradient ``g``)."""
        if self.like is None:  # C order (run.empty without a layout to follow)
            return [np.empty(self.shape, dt) for dt in self.out_dtypes]
        like = g if self.like == -1 else args[self.like]
        return [run.empty(self.shape, dt, like) for dt in self.out_dtypes]

    def reduced(self, total: float) -> Any:
        """The reduction's value (a 0-d array) from the call's float64 sum."""
        return np.asarray(total / self.call.n if self.reduce == "mean" else total, dtype=self.reduced_dtype)

    def grads(self, outs: list, n: int) -> list:
        """The fused op's ``n`` operands' gradients from the written arrays (see _results)."""
        grads: list = [None] * n
        for k, slot, shape, copy in self.results:
            gk = outs[slot]
            grads[k] = sum_to(gk, shape) if shape is not None else gk.copy() if copy else gk
        return grads


def _template(program: Any, params: list, cpu: bool) -> Any:
    t = program.compiled
    if t is None:
        if not (_worth_compiling_on_cpu(program) if cpu else Settings.cuda):
            return _NO
        try:
            t = _Template(program, params)
        except NotFusable:
            t = _NO
        program.compiled = t
    return t  # (_NO when the compiler declined)


def compiles(program: Any, params: list, B: Any) -> bool:
    """Whether ``program`` runs as the compiler's passes on backend ``B`` (else op by op)."""
    return _template(program, params, B.xp is np) is not _NO


def _bind(t: _Template, args: Any, params: dict) -> Chain | None:
    leaves = list(t.leaves)
    for k, a in zip(t.arrays, args):
        if a is None:
            return None  # an input the backward does not read was not saved: the rule runs
        leaves[k] = a
    for k, v in zip(t.numbers, params["numbers"]):
        leaves[k] = v
    params = params["params"]
    for slots, p in zip(t.param_slots, params):
        for name, k in slots:
            leaves[k] = p[name]
    t.chain.leaves = leaves
    return t.chain


def _remember(t: _Template, key: tuple, fast: _Fast) -> None:
    if len(t.fast) >= 64:  # operands of ever new strides: keep it bounded
        t.fast.clear()
    t.fast[key] = fast


def _tables(t: _Template, args: Any, params: dict, arrays: list) -> tuple[list, list]:
    """The pointer table (the operands' addresses, then ``arrays``') and the scalar table."""
    P = t.ptrs[:]
    A = _addresses((*args, *arrays))
    n = len(t.arrays)
    for k, ptr in zip(t.arrays, A):
        P[k] = ptr
    P += A[n:]
    S = t.scalars[:]
    if t.number_span is not None:  # (the numbers' leaves are consecutive: one slice assignment)
        S[t.number_span] = params["numbers"]
    else:
        for k, v in zip(t.numbers, params["numbers"]):
            S[k] = v
    if t.params:
        op_params = params["params"]
        for k, j, name in t.params:
            S[k] = op_params[j][name]
    return P, S


def _like_position(outs: list, args: Any, g: Any = None) -> int | None | bool:
    """Which operand a cached call allocates its outputs like (run.layout_of): None for C
    order, -1 for the incoming gradient ``g``, a position in ``args``, or False when none
    gives the outputs' layout."""
    if not outs or outs[0].flags.c_contiguous:
        return None
    for i, a in ((-1, g), *enumerate(args)):
        if a is not None and a.shape == outs[0].shape and a.strides == outs[0].strides:
            return i
    return False


def _remember_call(t: _Template, key: tuple, p: Any, chain: Chain, seeds: list, outs: list, args: Any,
                   g: Any = None, grads: bool = False) -> None:
    """Keep, under ``key``, the compiled host call of program ``p`` that writes arrays laid out
    as ``outs`` (their layout is part of its geometry): a pass's value (its reduction's, when it
    has one) and, with ``grads``, what it makes of the operands' gradients (see _results)."""
    call = run.host_call(p, chain, seeds, outs)
    like = _like_position(outs, args, g)
    if call is None or like is False:
        return
    reduce = rdt = None
    if p.reduced is not None:
        r, reduce = chain.signature[3]
        rdt = chain.nodes[r][2]
    _remember(t, key, _Fast(call, chain.shape, p.out_dtypes, reduce, rdt, _results(t, p) if grads else None, like))


def _runs_here(f: _Fast) -> bool:
    # the cached call runs on this thread; a large chain on several threads takes the full path
    return host.Settings.enabled and (f.call.n < host.PARALLEL_MIN or numpy_eval.Settings.threads <= 1)


def forward(B: Any, args: list, params: dict) -> Any:
    """The fused op's value in one compiled pass (or NotImplemented: the rule runs)."""
    program = params["program"]
    t = program.compiled
    if t is None:
        t = _template(program, params["params"], B.xp is np)
    if t is _NO:
        return NotImplemented
    host_side = B.xp is np
    if host_side and params.get("grad_needs") is not None:
        return _value_and_grad(t, program, args, params)
    if host_side:
        key = tuple([a.strides for a in args])
        f = t.fast.get(key)
        if f is not None and _runs_here(f):
            outs = f.outputs(args)
            P, S = _tables(t, args, params, outs)
            total = f.call(P, S)
            return outs[0] if f.reduce is None else f.reduced(total)
    chain = _bind(t, args, params)
    try:
        with np.errstate(all="ignore"):  # (the NumPy evaluator's blocks may overflow to inf)
            outs, reduced = run.forward(chain) if host_side else run.forward(chain, B, out=params.get("out"))
        if host_side and key not in t.fast:
            _remember_call(t, key, forward_program(chain.signature), chain, [], outs, args)
    finally:
        chain.leaves = t.leaves
    return reduced if program.reduce is not None else outs[0]


_ONES: dict = {}


def _one(dt: Any) -> Any:
    """A read-only 0-d array holding 1 of ``dt``: the incoming gradient a compiled value-and-grad
    pass reads (made once per dtype)."""
    one = _ONES.get(dt)
    if one is None:
        one = _ONES[dt] = np.ones((), dt)
        one.flags.writeable = False
    return one


def _value_and_grad(t: _Template, program: Any, args: list, params: dict) -> Any:
    """A chain ending in a reduction whose backward will be asked for (``params["grad_needs"]``,
    per operand, set by fusion.lazy.materialize): its value and the gradients of that value in
    one pass (the inputs read once, each transcendental computed once), the gradients kept in
    ``params["value_grads"]`` for :func:`vjp`, which hands them out for an incoming gradient of
    1 (a loss's ``backward()``) and scales them otherwise."""
    needs = params["grad_needs"]
    key = ("value_and_grad", needs, *[a.strides for a in args])
    f = t.fast.get(key)
    if f is not None and _runs_here(f):
        outs = f.outputs(args)
        P, S = _tables(t, args, params, [_one(f.reduced_dtype), *outs])
        total = f.call(P, S)
        params["value_grads"] = (needs, f.grads(outs, len(needs)))
        return f.reduced(total)
    chain = _bind(t, args, params)
    try:
        full = program.needs(needs)
        full = tuple(bool(x) for x in full) + (False,) * (len(chain.leaves) - len(full))
        with np.errstate(all="ignore"):
            reduced, leaf_grads = run.value_and_grad(chain, full)
        params["value_grads"] = (needs, [leaf_grads[k] for k in t.arrays])
        if key not in t.fast:
            p = value_and_grad_program(chain.signature, full)
            like = run.layout_of(chain.shape, chain.arrays())
            outs = [run.empty(chain.shape, dt, like) for dt in p.out_dtypes]
            seed = np.ones((), chain.nodes[chain.reduction[0]][2])
            _remember_call(t, key, p, chain, [seed], outs, args, grads=True)
    finally:
        chain.leaves = t.leaves
    return reduced


def _scaled(grads: list, g: Any) -> tuple | None:
    """The gradients kept by :func:`_value_and_grad` for incoming gradient ``g`` (a 0-d array):
    as they are for 1, multiplied in place by g (this pass owns them) for float32/float64, None
    (compute them again, with g inside, as the unfused rounding has it) for float16."""
    gv = float(g)
    if gv == 1.0:
        return tuple(grads)
    if any(gk is not None and gk.dtype.itemsize < 4 for gk in grads):
        return None
    for gk in grads:
        if gk is not None:
            np.multiply(gk, g, out=gk, casting="unsafe")
    return tuple(grads)


def _results(t: _Template, p: Any) -> list:
    """What :func:`run.backward` does with the written arrays, for the fused op's operands."""
    chain = t.chain
    results = []
    taken: set[int] = set()
    for pos, k in enumerate(t.arrays):
        slot = p.grad_slot[k]
        if slot is not None:
            shape = chain.leaf_refs[k].shape
            broadcast = shape != chain.shape
            results.append((pos, slot, shape if broadcast else None, not broadcast and slot in taken))
            if not broadcast:
                taken.add(slot)
    return results


def vjp(B: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    """The gradients of the fused op's inputs in one compiled pass (or NotImplemented)."""
    program = params["program"]
    t = program.compiled
    if t is None:
        t = _template(program, params["params"], B.xp is np)
    if t is _NO or args is None:
        return NotImplemented
    host_side = B.xp is np
    kept = params.pop("value_grads", None) if host_side else None  # (handed out once: see _value_and_grad)
    if kept is not None and kept[0] == tuple(needs):
        scaled = _scaled(kept[1], g)
        if scaled is not None:
            return scaled
    if host_side:
        if g.__class__ is not np.ndarray:
            g = np.asarray(g)
        try:
            key = (needs, g.shape, g.strides, *[a.strides for a in args])
        except AttributeError:  # an input the backward does not read was not saved
            return NotImplemented
        f = t.fast.get(key)
        if f is not None and _runs_here(f):
            outs = f.outputs(args, g)
            P, S = _tables(t, args, params, [g, *outs])
            f.call(P, S)
            return tuple(f.grads(outs, len(needs)))
    chain = _bind(t, args, params)
    if chain is None:
        return NotImplemented
    try:
        full = program.needs(tuple(needs))
        full = tuple(bool(x) for x in full) + (False,) * (len(chain.leaves) - len(full))
        grads = run.backward(chain, [g], full, None if host_side else B)
        if host_side and key not in t.fast:
            p = backward_program(chain.signature, (True,), full)
            like = run.layout_of(chain.shape, [g, *chain.arrays()])
            outs = [run.empty(chain.shape, dt, like) for dt in p.out_dtypes]
            _remember_call(t, key, p, chain, [g], outs, args, g, grads=True)
    finally:
        chain.leaves = t.leaves
    return tuple(grads[k] for k in t.arrays)


for _registry in (lowerings.CPU, lowerings.CUDA):
    _registry[("fused_elementwise", "forward")] = forward
    _registry[("fused_elementwise", "vjp")] = vjp
