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
from gpugrad.fusion import run
from gpugrad.fusion.chain import Chain, NotFusable

_NO = object()  # a program the compiler declined


class Settings:
    """Which chains run compiled. The decision depends on the chain alone (never on how often it
    ran), so that two runs of a program compute the same bits.

    On the CPU, a chain with at least ``cpu_min_elements`` elements or ``cpu_min_ops`` ops
    (``GPUGRAD_FUSION_CPU_MIN_ELEMENTS``, ``GPUGRAD_FUSION_CPU_MIN_OPS``): a smaller one costs less
    op by op than its compiler run. On CUDA every chain (each op would be a launch) unless
    ``GPUGRAD_FUSION_CUDA=0``. The test suite raises the CPU bars and turns the CUDA kernels off
    (each new chain would be a compiler run on the emulated device); tests/test_fusion_*.py set
    them back.
    """

    cpu_min_elements: int = int(os.environ.get("GPUGRAD_FUSION_CPU_MIN_ELEMENTS", str(1 << 14)))
    cpu_min_ops: int = int(os.environ.get("GPUGRAD_FUSION_CPU_MIN_OPS", "16"))
    cuda: bool = os.environ.get("GPUGRAD_FUSION_CUDA", "1") != "0"


def _worth_compiling_on_cpu(program: Any) -> bool:
    shape = program.steps[-1][3]
    n = 1
    for d in shape:
        n *= d
    return n >= Settings.cpu_min_elements or len(program.steps) >= Settings.cpu_min_ops


class _Template:
    """A program's chain, its leaf slots for the program's inputs and for each step's params."""

    __slots__ = ("chain", "leaves", "param_slots")

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


def _bind(t: _Template, args: Any, params: list) -> Chain | None:
    leaves = list(t.leaves)
    for i, a in enumerate(args):
        if a is None:
            return None  # an input the backward does not read was not saved: the rule runs
        leaves[i] = a
    for slots, p in zip(t.param_slots, params):
        for name, k in slots:
            leaves[k] = p[name]
    t.chain.leaves = leaves
    return t.chain


def forward(B: Any, args: list, params: dict) -> Any:
    """The fused op's value in one compiled pass (or NotImplemented: the rule runs)."""
    program = params["program"]
    t = _template(program, params["params"], B.xp is np)
    if t is _NO:
        return NotImplemented
    chain = _bind(t, args, params["params"])
    try:
        outs, reduced = run.forward(chain, None if B.xp is np else B)
    finally:
        chain.leaves = t.leaves
    return reduced if program.reduce is not None else outs[0]


def vjp(B: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> Any:
    """The gradients of the fused op's inputs in one compiled pass (or NotImplemented)."""
    program = params["program"]
    t = _template(program, params["params"], B.xp is np)
    if t is _NO or args is None:
        return NotImplemented
    chain = _bind(t, args, params["params"])
    if chain is None:
        return NotImplemented
    try:
        n = len(chain.leaves)
        grads = run.backward(chain, [g], tuple(needs) + (False,) * (n - len(needs)),
                             None if B.xp is np else B)
    finally:
        chain.leaves = t.leaves
    return tuple(grads[:len(needs)])


for _registry in (lowerings.CPU, lowerings.CUDA):
    _registry[("fused_elementwise", "forward")] = forward
    _registry[("fused_elementwise", "vjp")] = vjp
