"""The small expression language that elementwise ops are declared in.

An elementwise op states its forward value and each partial derivative once, as an expression
in a subset shared by Python and C: numbers, names (the op's inputs, ``out`` and the op's scalar
parameters), ``+ - * /``, comparisons, ``&`` and ``|`` on booleans, unary ``-`` and calls of the
functions in :data:`FUNCTIONS`. From one parsed expression this module produces:

* Python source, evaluated by the NumPy backend with ufuncs, or with differentiable gpugrad ops
  when a gradient must itself be differentiated (``create_graph=True``, forward mode);
* C source for the CUDA template in ``kernels/`` (and for the host library CI tests).

Example::

    e = parse("1 - out*out")
    e.names            # frozenset({'out'})
    to_c(e)            # '(C(1) - (out * out))'
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# name -> number of arguments. Every one exists in NumPy (see backends) and in kernels/gg_math.cuh.
FUNCTIONS: dict[str, int] = {
    "exp": 1, "exp2": 1, "log": 1, "log2": 1, "log10": 1, "log1p": 1, "expm1": 1,
    "sqrt": 1, "rsqrt": 1, "cbrt": 1, "abs": 1, "sign": 1,
    "sin": 1, "cos": 1, "tan": 1, "arcsin": 1, "arccos": 1, "arctan": 1,
    "sinh": 1, "cosh": 1, "tanh": 1, "arcsinh": 1, "arccosh": 1, "arctanh": 1,
    "sigmoid": 1, "erf": 1, "floor": 1, "ceil": 1, "rint": 1, "trunc": 1,
    "isnan": 1, "isfinite": 1, "isinf": 1, "logical_not": 1,
    "logical_and": 2, "logical_or": 2, "logical_xor": 2,
    "where": 3, "pow": 2, "maximum": 2, "minimum": 2, "arctan2": 2, "hypot": 2,
    "floordiv": 2, "mod": 2,
    # special functions (gpugrad.scipy.special): scipy.special on the CPU, CUDA's math library on the GPU
    "erfc": 1, "erfinv": 1, "erfcinv": 1, "i0": 1, "i1": 1, "j0": 1, "j1": 1, "y0": 1, "y1": 1,
    "jn": 2, "yn": 2,
}

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.BitAnd: "&", ast.BitOr: "|"}
_CMPOPS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class Expr:
    """A parsed, validated expression."""

    source: str
    tree: ast.expr
    names: frozenset[str]

    @property
    def constant(self) -> float | None:
        """The value if the expression is a plain number (e.g. ``"1"`` or ``"-1"``), else None."""
        node = self.tree
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(
            node.operand, ast.Constant
        ):
            return -float(node.operand.value)
        return None


def calls(expr: Expr) -> frozenset[str]:
    """The functions ``expr`` calls (``{"maximum"}`` for ``maximum(x, 0)``)."""
    return frozenset(n.func.id for n in ast.walk(expr.tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))


def operations(expr: Expr) -> int:
    """How many array operations NumPy runs to evaluate ``expr`` (operators, comparisons, calls)."""
    return sum(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.BoolOp)) for n in ast.walk(expr.tree))


def parse(source: str) -> Expr:
    """Parse and validate ``source``; raise ValueError naming the first unsupported construct."""
    tree = ast.parse(source.strip(), mode="eval").body
    names: set[str] = set()
    _validate(tree, source, names)
    return Expr(source.strip(), tree, frozenset(names))


def _validate(node: ast.AST, source: str, names: set[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ValueError(f"expression {source!r}: only numeric constants are allowed, got {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise ValueError(f"expression {source!r}: {node.id!r} is a function, not a value")
        names.add(node.id)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _validate(node.left, source, names)
        _validate(node.right, source, names)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _validate(node.operand, source, names)
        return
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
        _validate(node.left, source, names)
        _validate(node.comparators[0], source, names)
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        arity = FUNCTIONS.get(node.func.id)
        if arity is None:
            raise ValueError(f"expression {source!r}: unknown function {node.func.id!r}")
        if len(node.args) != arity:
            raise ValueError(f"expression {source!r}: {node.func.id} takes {arity} arguments")
        for arg in node.args:
            _validate(arg, source, names)
        return
    raise ValueError(f"expression {source!r}: unsupported syntax {ast.dump(node)[:60]}")


# ---------------------------------------------------------------------------------------------
# Python rendering


def to_python(expr: Expr, constants: list[float]) -> str:
    """Python source of ``expr``; numeric constants become names ``_k0, _k1, ...``.

    The caller binds ``_kI`` to ``dtype.type(constants[I])`` so arithmetic stays in the op's
    dtype (``np.where(c, 1, 0)`` would otherwise be int64). Functions keep their names and are
    bound by the caller's namespace (NumPy ufuncs or gpugrad ops).
    """
    return _py(expr.tree, constants)


def node_to_python(node: ast.expr, constants: list[float]) -> str:
    """:func:`to_python` of a sub-tree of a parsed expression."""
    return _py(node, constants)


def _py(node: ast.expr, constants: list[float]) -> str:
    if isinstance(node, ast.Constant):
        constants.append(float(node.value))
        return f"_k{len(constants) - 1}"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.BinOp):
        return f"({_py(node.left, constants)} {_BINOPS[type(node.op)]} {_py(node.right, constants)})"
    if isinstance(node, ast.UnaryOp):
        return f"(-{_py(node.operand, constants)})"
    if isinstance(node, ast.Compare):
        op = _CMPOPS[type(node.ops[0])]
        return f"({_py(node.left, constants)} {op} {_py(node.comparators[0], constants)})"
    if isinstance(node, ast.Call):
        args = ", ".join(_py(a, constants) for a in node.args)
        return f"{node.func.id}({args})"
    raise AssertionError(node)  # parse() admits nothing else


def times(g: str, expr: Expr) -> Expr:
    """The expression ``g * expr``, simplified where that saves array passes.

    ``g * 1`` is ``g``, ``g * -1`` is ``-g``, ``g * 0`` is ``0`` and ``g * where(c, a, b)``
    becomes ``where(c, g*a, g*b)`` (a ReLU mask costs one pass instead of two).
    """
    tree = _times(ast.Name(g, ast.Load()), expr.tree)
    return Expr(f"{g} * ({expr.source})", tree, expr.names | {g})


def _times(g: ast.expr, node: ast.expr) -> ast.expr:
    const = _const_value(node)
    if const == 1.0:
        return g
    if const == -1.0:
        return ast.UnaryOp(ast.USub(), g)
    if const == 0.0:
        return ast.Constant(0.0)
    if isinstance(node, ast.Call) and node.func.id == "where":
        cond, a, b = node.args
        return ast.Call(ast.Name("where", ast.Load()), [cond, _times(g, a), _times(g, b)], [])
    return ast.BinOp(g, ast.Mult(), node)


def _const_value(node: ast.expr) -> float | None:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return -float(node.operand.value)
    return None


# ---------------------------------------------------------------------------------------------
# C rendering


def to_c(expr: Expr, rename: dict[str, str] | None = None, exact: bool = False) -> str:
    """C source of ``expr`` for the CUDA template; values are of compute type ``C``.

    Function ``f`` becomes ``gg_f`` (defined for float and double in ``kernels/gg_math.cuh``),
    ``where(c, a, b)`` becomes ``(c ? a : b)`` and numbers become ``C(value)``. With ``exact``,
    ``+ - * /`` become correctly rounded calls (``gg_add_rn``...) that the compiler may not fuse
    into an FMA, so that the result is bit for bit what NumPy computes (the optimisers' rules).
    """
    return _c(expr.tree, rename or {}, exact)


_EXACT = {"+": "gg_add_rn", "-": "gg_sub_rn", "*": "gg_mul_rn", "/": "gg_div_rn"}


def _c(node: ast.expr, rename: dict[str, str], exact: bool = False) -> str:
    if isinstance(node, ast.Constant):
        return f"C({float(node.value)!r})"
    if isinstance(node, ast.Name):
        return rename.get(node.id, node.id)
    if isinstance(node, ast.BinOp):
        sym = _BINOPS[type(node.op)]
        left, right = _c(node.left, rename, exact), _c(node.right, rename, exact)
        if exact and sym in _EXACT:
            return f"{_EXACT[sym]}({left}, {right})"
        op = {"&": "&&", "|": "||"}.get(sym, sym)
        return f"({left} {op} {right})"
    if isinstance(node, ast.UnaryOp):
        return f"(-{_c(node.operand, rename, exact)})"
    if isinstance(node, ast.Compare):
        op = _CMPOPS[type(node.ops[0])]
        return f"({_c(node.left, rename, exact)} {op} {_c(node.comparators[0], rename, exact)})"
    if isinstance(node, ast.Call):
        args = [_c(a, rename, exact) for a in node.args]
        if node.func.id == "where":
            return f"(({args[0]}) ? C({args[1]}) : C({args[2]}))"
        return f"gg_{node.func.id}({', '.join(args)})"
    raise AssertionError(node)
