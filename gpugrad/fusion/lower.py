"""Lowering a chain signature to straight-line code: the forward pass and its vector-Jacobian
product, derived symbolically from the op table's expressions.

Every op application's value expression (``op.out_expr``) is instantiated with its operands'
values, and every partial derivative (``op.d``) with the operands and the recomputed ``out``;
the backward runs through the DAG in reverse, multiplying the incoming gradient into each
derivative (:func:`gpugrad.table.expr.times`) and summing at forks. Values are hash-consed, so
a subexpression shared by several ops, or by the forward and the backward (``sigmoid(x)`` in
silu's value and derivative), is computed once.

The result, a :class:`Program`, is a list of :data:`Instr` tuples ``(kind, dtype, *args)`` in
topological order; ``dtype`` is the compute type ('bool', 'float32', 'float64') except for
leaves of integer dtype, loaded as stored. Kinds:

=============================  ==================================================================
``("leaf", dt, k)``            array leaf k, loaded (float16 is widened to float32)
``("scalar", "float64", k)``   scalar leaf k (a Python number); ``k == -1``: the element count N
``("grad", dt, j)``            incoming gradient j (output j; ``len(outputs)``: the reduction's)
``("const", dt, value)``       a number
``("cast", dt, a)``            conversion; ``("round16", "float32", a)``: round to float16 and back
``("bin", dt, sym, a, b)``     ``+ - * /``, ``&``/``|`` on bools
``("neg", dt, a)``             unary minus
``("cmp", "bool", sym, a, b)`` comparison
``("call", dt, fn, *args)``    a function of :data:`gpugrad.table.expr.FUNCTIONS`
=============================  ==================================================================

Rounding follows the unfused ops exactly: a float16 op computes in float32 and rounds its
value once; each gradient contribution is rounded to the dtype of the value it flows into, as
the engine casts it.

Example::

    prog = forward_program(chain.signature)
    prog.outputs      # instruction index of each chain output, prog.reduced: of the reduced value
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from gpugrad.table import expr as E

Instr = tuple
_BOOL_FUNCS = {"isnan", "isfinite", "isinf", "logical_not", "logical_and", "logical_or", "logical_xor"}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.BitAnd: "&", ast.BitOr: "|"}
_CMPOPS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}


def compute_type(dt: np.dtype | str) -> str:
    """The type a value of storage dtype ``dt`` is computed in."""
    dt = np.dtype(dt)
    if dt == np.float16 or dt == np.float32:
        return "float32"
    if dt == np.float64:
        return "float64"
    if dt == np.bool_:
        return "bool"
    return dt.name  # integer leaves stay as stored until cast


@dataclass
class Program:
    """Straight-line code (see the module docstring)."""

    instrs: list[Instr] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)  # forward: instruction of each chain output
    reduced: int | None = None  # forward: instruction whose sum (or mean) is taken
    reduce_kind: str | None = None
    grads: list[int | None] = field(default_factory=list)  # backward: per leaf, its gradient
    written: list[int] = field(default_factory=list)  # instructions stored to arrays, in order
    out_dtypes: list[np.dtype] = field(default_factory=list)  # storage dtype of each written value
    grad_slot: list[int | None] = field(default_factory=list)  # backward: per leaf, its written array
    leaf_dtypes: list[np.dtype] = field(default_factory=list)
    scalar_leaves: list[bool] = field(default_factory=list)
    n_grads_in: int = 0  # incoming gradient arrays (backward)
    grad_in_dtypes: list[np.dtype] = field(default_factory=list)
    _memo: dict = field(default_factory=dict, repr=False)

    def emit(self, ins: Instr) -> int:
        got = self._memo.get(ins)
        if got is None:
            got = self._memo[ins] = len(self.instrs)
            self.instrs.append(ins)
        return got

    def type_of(self, v: int) -> str:
        return self.instrs[v][1]

    # ---- helpers that fold the trivial cases ---------------------------------------------------
    def cast(self, v: int, dt: str) -> int:
        if self.type_of(v) == dt:
            return v
        ins = self.instrs[v]
        if ins[0] == "const":
            return self.emit(("const", dt, ins[2]))
        return self.emit(("cast", dt, v))

    def to_storage(self, v: int, storage: np.dtype) -> int:
        """``v`` rounded to ``storage`` (as the unfused op stores it), in its compute type."""
        v = self.cast(v, compute_type(storage))
        if storage == np.float16:
            v = self.emit(("round16", "float32", v))
        return v

    def add(self, a: int | None, b: int, dt: str) -> int:
        return b if a is None else self.emit(("bin", dt, "+", a, b))

    def live(self, roots: list[int]) -> list[bool]:
        """Which instructions the ``roots`` depend on."""
        keep = [False] * len(self.instrs)
        stack = [r for r in roots if r is not None]
        while stack:
            v = stack.pop()
            if keep[v]:
                continue
            keep[v] = True
            stack.extend(operands(self.instrs[v]))
        return keep


def operands(ins: Instr) -> list[int]:
    """The instruction indices ``ins`` reads."""
    kind = ins[0]
    if kind in ("cast", "round16", "neg"):
        return [ins[2]]
    if kind in ("bin", "cmp"):
        return [ins[3], ins[4]]
    if kind == "call":
        return list(ins[3:])
    return []


def _lower_expr(p: Program, node: ast.expr, env: dict[str, int], c: str) -> int:
    if isinstance(node, ast.Constant):
        return p.emit(("const", c, float(node.value)))
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        sym = _BINOPS[type(node.op)]
        a, b = _lower_expr(p, node.left, env, c), _lower_expr(p, node.right, env, c)
        if sym in "&|":
            return p.emit(("bin", "bool", sym, p.cast(a, "bool"), p.cast(b, "bool")))
        return p.emit(("bin", c, sym, p.cast(a, c), p.cast(b, c)))
    if isinstance(node, ast.UnaryOp):
        a = _lower_expr(p, node.operand, env, c)
        ins = p.instrs[a]
        if ins[0] == "const":
            return p.emit(("const", c, -ins[2]))
        return p.emit(("neg", c, p.cast(a, c)))
    if isinstance(node, ast.Compare):
        sym = _CMPOPS[type(node.ops[0])]
        a, b = _lower_expr(p, node.left, env, c), _lower_expr(p, node.comparators[0], env, c)
        return p.emit(("cmp", "bool", sym, p.cast(a, c), p.cast(b, c)))
    if isinstance(node, ast.Call):
        fn = node.func.id
        args = [_lower_expr(p, a, env, c) for a in node.args]
        if fn == "where":
            return p.emit(("call", c, fn, p.cast(args[0], "bool"), p.cast(args[1], c), p.cast(args[2], c)))
        if fn in ("logical_and", "logical_or", "logical_xor", "logical_not"):
            return p.emit(("call", "bool", fn, *[p.cast(a, "bool") for a in args]))
        if fn in _BOOL_FUNCS:
            return p.emit(("call", "bool", fn, *[p.cast(a, c) for a in args]))
        return p.emit(("call", c, fn, *[p.cast(a, c) for a in args]))
    raise AssertionError(ast.dump(node))


def _is_flag(op: Any, k: int) -> bool:
    return getattr(op, "dtype_from", None) is not None and k not in op.dtype_from


def _forward(p: Program, sig: tuple) -> tuple[list[int], list[list[int]], list[str]]:
    """Emit the forward values; returns each node's value, its operands' values, its compute type."""
    leaves, nodes, _, _ = sig
    leaf_vals = []
    for k, (kind, dts) in enumerate(leaves):
        dt = np.dtype(dts)
        p.leaf_dtypes.append(dt)
        p.scalar_leaves.append(kind == "s")
        leaf_vals.append(p.emit(("scalar", "float64", k)) if kind == "s" else p.emit(("leaf", compute_type(dt), k)))
    values: list[int] = []
    node_args: list[list[int]] = []
    ctypes: list[str] = []
    for op, args, dts, ps, cdts in nodes:
        dt = np.dtype(dts)
        c = compute_type(cdts)  # comparisons compute in their operands' promoted type
        vals = []
        for k, (kind, i) in enumerate(args):
            v = leaf_vals[i] if kind == "L" else values[i]
            vals.append(p.cast(v, "bool") if _is_flag(op, k) else p.cast(v, c))
        env = dict(zip(op.inputs, vals))
        env.update(zip(op.param_names, (p.cast(leaf_vals[i], c) for i in ps)))
        out = _lower_expr(p, op.out_expr.tree, env, c)
        out = p.cast(out, "bool") if dt == np.bool_ else p.to_storage(out, dt)
        values.append(out)
        node_args.append(vals)
        ctypes.append(c)
    return values, node_args, ctypes


@lru_cache(maxsize=512)
def forward_program(sig: tuple) -> Program:
    """The forward pass of a chain signature: its outputs' values and the reduced value."""
    p = Program()
    values, _, _ = _forward(p, sig)
    _, nodes, outputs, reduction = sig
    p.outputs = [values[i] for i in outputs]
    p.out_dtypes = [np.dtype(nodes[i][2]) for i in outputs]
    p.written = list(p.outputs)
    if reduction is not None:
        p.reduced = values[reduction[0]]
        p.reduce_kind = reduction[1]
    return p


@lru_cache(maxsize=512)
def backward_program(sig: tuple, grads_in: tuple[bool, ...], needs: tuple[bool, ...]) -> Program:
    """The vector-Jacobian product of a chain signature.

    ``grads_in`` says, per chain output and then for the reduction, whether a gradient comes in
    (gradient arrays are passed in that order, only for the True entries); ``needs`` says, per
    leaf, whether its gradient is wanted. ``Program.grads[k]`` is the instruction computing
    leaf k's gradient at the chain's (broadcast) shape, in the leaf's compute type (the caller
    sums it to the leaf's shape).
    """
    return _backward(sig, grads_in, needs)[0]


@lru_cache(maxsize=512)
def value_and_grad_program(sig: tuple, needs: tuple[bool, ...]) -> Program:
    """One pass over a chain that ends in a reduction: the reduced value and the needed leaves'
    gradients of it, i.e. the backward program for an incoming gradient on the reduction alone
    (passed as a one-element array, 1 for the value's own gradient) with the reduction taken too.
    Its gradients are those :func:`backward_program` computes for that incoming gradient."""
    _, _, outputs, reduction = sig
    p, values = _backward(sig, (False,) * len(outputs) + (True,), needs)
    p.reduced = values[reduction[0]]
    p.reduce_kind = reduction[1]
    return p


def _backward(sig: tuple, grads_in: tuple[bool, ...], needs: tuple[bool, ...]) -> tuple[Program, list[int]]:
    leaves, nodes, outputs, reduction = sig
    p = Program()
    values, node_args, ctypes = _forward(p, sig)
    node_dt = [np.dtype(n[2]) for n in nodes]
    # incoming gradients, per node
    g: list[int | None] = [None] * len(nodes)
    j = 0
    for o, has in zip(outputs, grads_in):
        if has:
            c = compute_type(node_dt[o])
            p.grad_in_dtypes.append(node_dt[o])
            g[o] = p.add(g[o], p.emit(("grad", c, j)), c)
            j += 1
    if reduction is not None and len(grads_in) > len(outputs) and grads_in[len(outputs)]:
        r, kind = reduction
        c = compute_type(node_dt[r])
        p.grad_in_dtypes.append(node_dt[r])
        gr = p.emit(("grad", c, j))
        j += 1
        if kind == "mean":
            gr = p.emit(("bin", c, "/", gr, p.cast(p.emit(("scalar", "float64", -1)), c)))
        g[r] = p.to_storage(p.add(g[r], gr, c), node_dt[r])
    p.n_grads_in = j
    # which nodes lead to a needed leaf
    reaches = [False] * len(nodes)
    for n, (_op, args, *_) in enumerate(nodes):
        reaches[n] = any((kind == "L" and needs[i]) or (kind == "N" and reaches[i]) for kind, i in args)
    leaf_g: list[int | None] = [None] * len(leaves)
    for n in range(len(nodes) - 1, -1, -1):
        if g[n] is None or not reaches[n]:
            continue
        op, args, _, ps, _ = nodes[n]
        c = ctypes[n]
        gn = p.to_storage(g[n], node_dt[n])
        env = dict(zip(op.inputs, node_args[n]))
        env.update(zip(op.param_names, (p.cast(p.emit(("scalar", "float64", i)), c) for i in ps)))
        env["out"] = p.cast(values[n], c)
        env["_g"] = p.cast(gn, c)
        for k, (kind, i) in enumerate(args):
            name = op.inputs[k]
            d = op.d.get(name)
            if d is None or d.constant == 0.0 or _is_flag(op, k):
                continue
            if kind == "L":
                if not needs[i] or leaves[i][0] == "s" or np.dtype(leaves[i][1]).kind != "f":
                    continue
                target = np.dtype(leaves[i][1])
            else:
                if not reaches[i] or node_dt[i].kind != "f":
                    continue
                target = node_dt[i]
            contrib = _lower_expr(p, E.times("_g", d).tree, env, c)
            contrib = p.to_storage(p.to_storage(p.cast(contrib, c), node_dt[n]), target)
            tc = compute_type(target)
            if kind == "L":
                leaf_g[i] = p.add(leaf_g[i], contrib, tc)
            else:
                g[i] = p.add(g[i], contrib, tc)
    p.grads = [None if v is None else p.to_storage(v, np.dtype(leaves[k][1])) for k, v in enumerate(leaf_g)]
    # leaves with the same gradient (x and b of x + b) share one written array
    slots: dict[tuple, int] = {}
    for k, v in enumerate(p.grads):
        if v is None:
            p.grad_slot.append(None)
            continue
        key = (v, np.dtype(leaves[k][1]))
        if key not in slots:
            slots[key] = len(p.written)
            p.written.append(v)
            p.out_dtypes.append(key[1])
        p.grad_slot.append(slots[key])
    return p, values
