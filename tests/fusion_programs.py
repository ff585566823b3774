"""Random elementwise programs for the fusion tests: one description, run two ways.

A program is a list of steps over values (the array leaves first): each step applies an op of
the table to earlier values or Python scalars, so values are reused (forks, shared
subexpressions). :func:`run_fused` builds a :class:`gpugrad.fusion.Chain` from it;
:func:`run_unfused` runs the same ops one by one on gpugrad tensors and calls ``backward``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad import fusion
from gpugrad.ops.elementwise import OPS

UNARY = ["tanh", "sigmoid", "sin", "square", "relu", "silu", "gelu_tanh", "exp", "negative", "softplus",
         "leaky_relu"]
BINARY = ["add", "subtract", "multiply", "maximum", "divide_safe", "where_greater"]
PARAMS = {"leaky_relu": {"negative_slope": 0.1}, "softplus": {"beta": 1.5, "threshold": 20.0}}


@st.composite
def programs(draw, dtypes=("float32", "float64"), max_steps: int = 8):
    """(shape, leaf arrays, steps, outputs, reduction)."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    dt = draw(st.sampled_from(dtypes))
    n_leaves = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    leaves = []
    for k in range(n_leaves):
        # each leaf broadcasts to the shape: a suffix of it with some dims set to 1
        nd = len(shape) if k == 0 else draw(st.integers(0, len(shape)))
        sub = list(shape[len(shape) - nd:])
        for i in range(nd):
            if k and draw(st.booleans()):
                sub[i] = 1
        leaves.append(rng.uniform(-1.5, 1.5, size=tuple(sub)).astype(dt))
    steps = []
    n_values = n_leaves
    for _ in range(draw(st.integers(1, max_steps))):
        if draw(st.booleans()):
            steps.append((draw(st.sampled_from(UNARY)), [draw(st.integers(0, n_values - 1))]))
        else:
            a = draw(st.integers(0, n_values - 1))
            b = draw(st.one_of(st.integers(0, n_values - 1), st.sampled_from([("s", 0.5), ("s", -2.0), ("s", 3)])))
            args = [a, b] if draw(st.booleans()) else [b, a]
            steps.append((draw(st.sampled_from(BINARY)), args))
        n_values += 1
    # the last value has the chain's shape (leaf 0 has it); values of smaller shapes stay inside
    steps.append(("add", [n_values - 1, 0]))
    last = n_values
    extra = draw(st.lists(st.sampled_from([last, *range(n_leaves, last)]), max_size=2, unique=True))
    extra = [e for e in extra if _shape_of(shape, leaves, steps, e) == shape]
    reduction = draw(st.sampled_from([None, "sum", "mean"]))
    outputs = sorted(set(extra) | ({last} if reduction is None else set()))
    return shape, leaves, steps, outputs, reduction


def _shape_of(shape, leaves, steps, v):
    shapes = [a.shape for a in leaves]
    for _, args in steps:
        shapes.append(np.broadcast_shapes(*[shapes[a] for a in args if not isinstance(a, tuple)]))
    return shapes[v]


def _apply(name, args, chain=None):
    """Apply step ``name``: chain refs when ``chain`` is given, else gpugrad tensors."""
    if chain is not None:
        if name == "divide_safe":  # a / (1 + b*b): never divides by 0
            if isinstance(args[1], (int, float)):  # as the unfused program: Python arithmetic
                return chain.apply(OPS["divide"], [args[0], 1.0 + args[1] * args[1]])
            b2 = chain.apply(OPS["multiply"], [args[1], args[1]])
            return chain.apply(OPS["divide"], [args[0], chain.apply(OPS["add"], [1.0, b2])])
        if name == "where_greater":
            return chain.apply(OPS["where"], [chain.apply(OPS["greater"], args), args[0], args[1]])
        return chain.apply(OPS[name], args, PARAMS.get(name))
    if name == "divide_safe":
        return args[0] / (1.0 + args[1] * args[1])
    if name == "where_greater":
        return gg.where(gg.greater(args[0], args[1]), args[0], args[1])
    return OPS[name](*args, **PARAMS.get(name, {}))


def run_fused(program, grads_out, g_red=1.0, needs=None, backward=True):
    """(output values, reduced value, leaf gradients) through one fused chain."""
    shape, leaves, steps, outputs, reduction = program
    c = fusion.Chain()
    vals = [c.leaf(a) for a in leaves]
    for name, args in steps:
        vals.append(_apply(name, [_operand(vals, a) for a in args], c))
    refs = [vals[o] for o in outputs]
    for r in refs:
        c.output(r)
    last = vals[-1]
    if reduction:
        c.reduce(last, reduction)
    outs, red = fusion.forward(c)
    if not backward:
        return outs, red, None, c
    gin = list(grads_out) + ([np.asarray(g_red, dtype=last.dtype)] if reduction else [])
    grads = fusion.backward(c, gin, needs or [True] * len(c.leaves))
    return outs, red, grads[: len(leaves)], c


def _operand(vals, a):
    """A step operand: a value index, or ("s", Python scalar)."""
    return a[1] if isinstance(a, tuple) else vals[a]


def run_unfused(program, grads_out, g_red=1.0):
    shape, leaves, steps, outputs, reduction = program
    ts = [gg.tensor(a, requires_grad=True) for a in leaves]
    vals = list(ts)
    for name, args in steps:
        vals.append(_apply(name, [_operand(vals, a) for a in args]))
    outs = [vals[o] for o in outputs]
    total = None
    for o, g in zip(outs, grads_out):
        term = (o * gg.tensor(g)).sum()
        total = term if total is None else total + term
    red = None
    if reduction:
        red = getattr(vals[-1], reduction)()
        term = red * g_red
        total = term if total is None else total + term
    total.backward()
    return [o.numpy() for o in outs], None if red is None else red.numpy(), [t.grad.numpy() if t.grad is not None
                                                                               else np.zeros_like(t.numpy())
                                                                               for t in ts]

