"""Elementwise ops, each declared once: its inputs, its value and its partial derivatives as
expressions (see :mod:`gpugrad.table.expr`).

A declaration is data: the NumPy backend evaluates its expressions with ufuncs, the CUDA code
generator renders them into one kernel per (op, dtype) for the forward and one for the whole
backward, :mod:`gpugrad.ops.elementwise` turns each into a differentiable op on tensors (and
evaluates the expressions with differentiable ops for higher-order gradients and forward mode:
jvp = sum_i d_i * t_i), and CMake compiles the host library CI tests against NumPy.

Example::

    from gpugrad.table.elementwise import TABLE
    TABLE["tanh"].d["x"].source      # '1 - out * out'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.table import expr as E

_F16 = np.dtype(np.float16)
_ndarray = np.ndarray
_NUMBER_TYPES = (float, int, bool)


class Elementwise:
    """One elementwise op's declaration; see the module docstring.

    ``kind`` decides the result dtype from the inputs' (NumPy promotion, Python scalars weak):
    ``"arith"`` keeps integers integral, ``"float"`` promotes integers to floating point like
    NumPy's ufuncs, ``"bool"`` returns booleans (comparisons; never differentiable).
    """

    def __init__(
        self,
        name: str,
        inputs: tuple[str, ...],
        out: str,
        d: dict[str, str] | None = None,
        *,
        kind: str = "float",
        params: tuple[str, ...] = (),
        dtype_from: tuple[int, ...] | None = None,
        doc: str = "",
    ) -> None:
        self.name = name
        self.inputs = inputs
        self.out_expr = E.parse(out)
        self.kind = kind
        self.param_names = params
        self.dtype_from = dtype_from
        self.d = {k: E.parse(v) for k, v in (d or {}).items()}
        self.differentiable = bool(self.d) and kind != "bool"
        allowed = set(inputs) | set(params)
        if not self.out_expr.names <= allowed:
            raise ValueError(f"{name}: forward uses unknown names {self.out_expr.names - allowed}")
        for k, e in self.d.items():
            if k not in inputs:
                raise ValueError(f"{name}: derivative for unknown input {k!r}")
            if not e.names <= allowed | {"out"}:
                raise ValueError(f"{name}: d/d{k} uses unknown names {e.names - allowed - {'out'}}")
        self._saves: dict[tuple, tuple] = {}
        self._result_dtypes: dict[Any, np.dtype] = {}  # by operand dtypes / number types
        # Python functions per (tag, role, dtype) and NumPy functions per dtype, made on first use.
        self.compiled: dict[Any, Callable] = {}
        self.n_inputs = len(inputs)
        self._nones = (None,) * len(inputs)
        self.doc = doc or f"Elementwise {name}: out = {out}."
        self.np_fwd: dict[np.dtype, Callable] = {}
        self.np_vjp: dict[np.dtype, list] = {}

    def saves(self, needs: tuple[bool, ...]) -> tuple[Any, bool]:
        """What the backward of the inputs in ``needs`` reads: (a mask of the inputs to save, or
        False; whether to save the output)."""
        got = self._saves.get(needs)
        if got is None:
            used: set[str] = set()
            for name, need in zip(self.inputs, needs):
                expr = self.d.get(name)
                if need and expr is not None:
                    used |= expr.names
            mask = tuple(n in used for n in self.inputs)
            got = (mask if any(mask) else False, "out" in used)
            self._saves[needs] = got
        return got

    def result_dtype(self, args: list | tuple) -> np.dtype:
        """NumPy's promotion of the operands (Python scalars weak), then the op's kind.

        It depends on the operands' dtypes and number types alone, so for one or two NumPy
        arrays and Python numbers it is remembered by them (this runs for every op call)."""
        n = len(args)
        if n == 2 and self.dtype_from is None:
            a, b = args
            ca, cb = a.__class__, b.__class__
            key = (a.dtype if ca is _ndarray else ca, b.dtype if cb is _ndarray else cb)
            cacheable = (ca is _ndarray or ca in _NUMBER_TYPES) and (cb is _ndarray or cb in _NUMBER_TYPES)
        elif n == 1 and self.dtype_from is None:
            a = args[0]
            ca = a.__class__
            key = a.dtype if ca is _ndarray else ca
            cacheable = ca is _ndarray or ca in _NUMBER_TYPES
        else:
            return self._promote(args)
        if cacheable:
            dt = self._result_dtypes.get(key)
            if dt is None:
                dt = self._result_dtypes[key] = self._promote(args)
            return dt
        return self._promote(args)

    def _promote(self, args: list | tuple) -> np.dtype:
        if self.dtype_from is not None:
            args = [args[i] for i in self.dtype_from]
        if len(args) == 1:
            dt = getattr(args[0], "dtype", None)
            if dt is None:
                dt = np.result_type(args[0])
        elif len(args) == 2:
            a, b = args
            ta = getattr(a, "dtype", None)
            tb = getattr(b, "dtype", None)
            if ta is not None and ta is tb:
                dt = ta
            elif ta is not None and tb is None and ta.kind == "f" and isinstance(b, (int, float)):
                dt = ta  # a Python scalar never upcasts a float array
            elif tb is not None and ta is None and tb.kind == "f" and isinstance(a, (int, float)):
                dt = tb
            else:
                dt = np.result_type(*[v for v in args if v is not None])
        else:
            dt = np.result_type(*[a for a in args if a is not None])
        if self.kind == "float" and dt.kind in "biu":
            dt = np.promote_types(dt, _F16)
        return dt

    def python_function(self, role: Any, dtype: np.dtype | None, functions: dict[str, Any], tag: str,
                        constants: str = "scalar") -> Callable:
        """A Python function evaluating one expression of this op with ``functions``.

        ``role`` is ``"fwd"`` (args: inputs, params), ``("vjp", i)`` (args: g, inputs, out,
        params) or ``("jvp", mask)`` (args: the present tangents, inputs, out, params).
        Numbers in the expression are bound as ``dtype`` scalars (``constants="scalar"``), 0-d
        arrays (``"array"``: NumPy's fastest operand) or, with ``dtype=None``, Python floats.
        Cached per (tag, role, dtype).
        """
        key = (tag, role, dtype)
        fn = self.compiled.get(key)
        if fn is not None:
            return fn
        consts: list[float] = []
        params = list(self.param_names)
        if role == "fwd":
            argnames = list(self.inputs) + params
            body = E.to_python(self.out_expr, consts)
        elif role[0] == "vjp":
            name = self.inputs[role[1]]
            argnames = ["_g", *self.inputs, "out", *params]
            expr = self.d[name]
            body = "zeros_like(_g)" if expr.constant == 0.0 else E.to_python(E.times("_g", expr), consts)
        else:  # ("jvp", mask)
            mask = role[1]
            tnames = [f"_t{i}" for i, m in enumerate(mask) if m]
            argnames = [*tnames, *self.inputs, "out", *params]
            terms = []
            for i, m in enumerate(mask):
                expr = self.d.get(self.inputs[i])
                if m and expr is not None and expr.constant != 0.0:
                    terms.append(E.to_python(E.times(f"_t{i}", expr), consts))
            body = " + ".join(terms) if terms else "None"
        src = f"def _f({', '.join(argnames)}):\n    return {body}\n"
        scope: dict[str, Any] = dict(functions)
        for i, c in enumerate(consts):
            if dtype is None:
                scope[f"_k{i}"] = c
            elif constants == "array":
                scope[f"_k{i}"] = np.asarray(c, dtype=dtype)
            else:
                scope[f"_k{i}"] = dtype.type(c)
        exec(compile(src, f"<gpugrad {self.name} {role} {tag}>", "exec"), scope)  # noqa: S102 (our own source)
        fn = scope["_f"]
        self.compiled[key] = fn
        return fn


TABLE: dict[str, Elementwise] = {}


def elementwise(name: str, inputs: tuple[str, ...] | str, out: str, d: dict[str, str] | None = None,
                **kw: Any) -> Elementwise:
    """Declare an elementwise op and register it in :data:`TABLE`."""
    if isinstance(inputs, str):
        inputs = tuple(inputs.split())
    decl = Elementwise(name, inputs, out, d, **kw)
    if name in TABLE:
        raise ValueError(f"elementwise op {name!r} declared twice")
    TABLE[name] = decl
    return decl


# ---------------------------------------------------------------------------------------------
# The table. ``out`` is the op's output; Python scalars in an expression take the op's dtype.

# arithmetic (integers stay integers)
add = elementwise("add", "a b", "a + b", {"a": "1", "b": "1"}, kind="arith")
subtract = elementwise("subtract", "a b", "a - b", {"a": "1", "b": "-1"}, kind="arith")
multiply = elementwise("multiply", "a b", "a * b", {"a": "b", "b": "a"}, kind="arith")
divide = elementwise("divide", "a b", "a / b", {"a": "1 / b", "b": "-out / b"})
negative = elementwise("negative", "x", "-x", {"x": "-1"}, kind="arith")
copy = elementwise("copy", "x", "x", {"x": "1"}, kind="arith")
square = elementwise("square", "x", "x * x", {"x": "2 * x"}, kind="arith")
abs = elementwise("abs", "x", "abs(x)", {"x": "sign(x)"}, kind="arith")  # noqa: A001
sign = elementwise("sign", "x", "sign(x)", {"x": "0"}, kind="arith")
pow = elementwise(  # noqa: A001
    "pow", "a b", "pow(a, b)",
    # The where()s keep the unused branch finite, so that second derivatives are not 0 * inf:
    # d/da of a ** 0 is 0 at a = 0, and d/db of 0 ** b is 0 for b >= 0 (as HIPS autograd).
    {"a": "b * pow(a, where(b == 0, 1, b - 1))",
     "b": "where((a == 0) & (b >= 0), 0, out * log(where(a == 0, 1, a)))"}, kind="arith")
floordiv = elementwise("floordiv", "a b", "floordiv(a, b)", {"a": "0", "b": "0"}, kind="arith")
mod = elementwise("mod", "a b", "mod(a, b)", {"a": "1", "b": "-floordiv(a, b)"}, kind="arith")
maximum = elementwise(
    "maximum", "a b", "maximum(a, b)",
    {"a": "where(a > b, 1, where(a == b, 0.5, 0))", "b": "where(b > a, 1, where(a == b, 0.5, 0))"},
    kind="arith")
minimum = elementwise(
    "minimum", "a b", "minimum(a, b)",
    {"a": "where(a < b, 1, where(a == b, 0.5, 0))", "b": "where(b < a, 1, where(a == b, 0.5, 0))"},
    kind="arith")
where = elementwise("where", "c a b", "where(c, a, b)", {"a": "where(c, 1, 0)", "b": "where(c, 0, 1)"},
                    kind="arith", dtype_from=(1, 2))
clip = elementwise(
    "clip", "x lo hi", "minimum(maximum(x, lo), hi)",
    {"x": "where((x >= lo) & (x <= hi), 1, 0)", "lo": "where((x < lo) & (lo <= hi), 1, 0)",
     "hi": "where((x > hi) | (lo > hi), 1, 0)"}, kind="arith")
clip_min = elementwise("clip_min", "x lo", "maximum(x, lo)", {"x": "where(x >= lo, 1, 0)", "lo": "where(x < lo, 1, 0)"},
                       kind="arith")
clip_max = elementwise("clip_max", "x hi", "minimum(x, hi)", {"x": "where(x <= hi, 1, 0)", "hi": "where(x > hi, 1, 0)"},
                       kind="arith")

# exponentials and logarithms
exp = elementwise("exp", "x", "exp(x)", {"x": "out"})
exp2 = elementwise("exp2", "x", "exp2(x)", {"x": "out * 0.6931471805599453"})
expm1 = elementwise("expm1", "x", "expm1(x)", {"x": "out + 1"})
log = elementwise("log", "x", "log(x)", {"x": "1 / x"})
log2 = elementwise("log2", "x", "log2(x)", {"x": "1 / (x * 0.6931471805599453)"})
log10 = elementwise("log10", "x", "log10(x)", {"x": "1 / (x * 2.302585092994046)"})
log1p = elementwise("log1p", "x", "log1p(x)", {"x": "1 / (1 + x)"})
sqrt = elementwise("sqrt", "x", "sqrt(x)", {"x": "0.5 / out"})
rsqrt = elementwise("rsqrt", "x", "rsqrt(x)", {"x": "-0.5 * out * out * out"})
cbrt = elementwise("cbrt", "x", "cbrt(x)", {"x": "1 / (3 * out * out)"})
reciprocal = elementwise("reciprocal", "x", "1 / x", {"x": "-out * out"})
logaddexp = elementwise(
    "logaddexp", "a b", "maximum(a, b) + log1p(exp(-abs(a - b)))",
    {"a": "exp(a - out)", "b": "exp(b - out)"})

# trigonometric and hyperbolic
sin = elementwise("sin", "x", "sin(x)", {"x": "cos(x)"})
cos = elementwise("cos", "x", "cos(x)", {"x": "-sin(x)"})
tan = elementwise("tan", "x", "tan(x)", {"x": "1 + out * out"})
arcsin = elementwise("arcsin", "x", "arcsin(x)", {"x": "rsqrt(1 - x * x)"})
arccos = elementwise("arccos", "x", "arccos(x)", {"x": "-rsqrt(1 - x * x)"})
arctan = elementwise("arctan", "x", "arctan(x)", {"x": "1 / (1 + x * x)"})
arctan2 = elementwise("arctan2", "a b", "arctan2(a, b)", {"a": "b / (a * a + b * b)", "b": "-a / (a * a + b * b)"})
hypot = elementwise("hypot", "a b", "hypot(a, b)", {"a": "a / out", "b": "b / out"})
sinh = elementwise("sinh", "x", "sinh(x)", {"x": "cosh(x)"})
cosh = elementwise("cosh", "x", "cosh(x)", {"x": "sinh(x)"})
tanh = elementwise("tanh", "x", "tanh(x)", {"x": "1 - out * out"})
arcsinh = elementwise("arcsinh", "x", "arcsinh(x)", {"x": "rsqrt(x * x + 1)"})
arccosh = elementwise("arccosh", "x", "arccosh(x)", {"x": "rsqrt(x * x - 1)"})
arctanh = elementwise("arctanh", "x", "arctanh(x)", {"x": "1 / (1 - x * x)"})

# activations (PyTorch's definitions)
sigmoid = elementwise("sigmoid", "x", "sigmoid(x)", {"x": "out * (1 - out)"})
relu = elementwise("relu", "x", "maximum(x, 0)", {"x": "where(out > 0, 1, 0)"}, kind="arith")
leaky_relu = elementwise("leaky_relu", "x", "where(x > 0, x, x * negative_slope)",
                         {"x": "where(x > 0, 1, negative_slope)"}, params=("negative_slope",))
erf = elementwise("erf", "x", "erf(x)", {"x": "1.1283791670955126 * exp(-x * x)"})
gelu = elementwise(
    "gelu", "x", "0.5 * x * (1 + erf(x * 0.7071067811865476))",
    {"x": "0.5 * (1 + erf(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x)"})
_U = "tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))"
gelu_tanh = elementwise(
    "gelu_tanh", "x", f"0.5 * x * (1 + {_U})",
    {"x": f"0.5 * (1 + {_U}) + 0.5 * x * (1 - {_U} * {_U}) * 0.7978845608028654 * (1 + 0.134145 * x * x)"})
silu = elementwise("silu", "x", "x * sigmoid(x)", {"x": "sigmoid(x) * (1 + x * (1 - sigmoid(x)))"})
softplus = elementwise(
    "softplus", "x", "where(x * beta > threshold, x, log1p(exp(x * beta)) / beta)",
    {"x": "where(x * beta > threshold, 1, sigmoid(x * beta))"}, params=("beta", "threshold"))

# rounding: piecewise constant, zero gradient almost everywhere
floor = elementwise("floor", "x", "floor(x)", {"x": "0"})
ceil = elementwise("ceil", "x", "ceil(x)", {"x": "0"})
rint = elementwise("rint", "x", "rint(x)", {"x": "0"})
trunc = elementwise("trunc", "x", "trunc(x)", {"x": "0"})

# comparisons and logic: boolean results, no gradient
equal = elementwise("equal", "a b", "a == b", kind="bool")
not_equal = elementwise("not_equal", "a b", "a != b", kind="bool")
less = elementwise("less", "a b", "a < b", kind="bool")
less_equal = elementwise("less_equal", "a b", "a <= b", kind="bool")
greater = elementwise("greater", "a b", "a > b", kind="bool")
greater_equal = elementwise("greater_equal", "a b", "a >= b", kind="bool")
logical_and = elementwise("logical_and", "a b", "logical_and(a, b)", kind="bool")
logical_or = elementwise("logical_or", "a b", "logical_or(a, b)", kind="bool")
logical_xor = elementwise("logical_xor", "a b", "logical_xor(a, b)", kind="bool")
logical_not = elementwise("logical_not", "x", "logical_not(x)", kind="bool")
isnan = elementwise("isnan", "x", "isnan(x)", kind="bool")
isfinite = elementwise("isfinite", "x", "isfinite(x)", kind="bool")
isinf = elementwise("isinf", "x", "isinf(x)", kind="bool")

# special functions (gpugrad.scipy.special): scipy.special's ufuncs on the CPU, CUDA's math library
# in the kernels. Functions whose derivative needs one CUDA lacks (gammaln needs digamma) are
# ops of their own in gpugrad/ops/special.py.
erfc = elementwise("erfc", "x", "erfc(x)", {"x": "-1.1283791670955126 * exp(-x * x)"})
erfinv = elementwise("erfinv", "x", "erfinv(x)", {"x": "0.886226925452758 * exp(out * out)"})
erfcinv = elementwise("erfcinv", "x", "erfcinv(x)", {"x": "-0.886226925452758 * exp(out * out)"})
logit = elementwise("logit", "x", "log(x / (1 - x))", {"x": "1 / (x * (1 - x))"})
i0 = elementwise("i0", "x", "i0(x)", {"x": "i1(x)"})
i1 = elementwise("i1", "x", "i1(x)", {"x": "where(x == 0, 0.5, i0(x) - out / where(x == 0, 1, x))"})
j0 = elementwise("j0", "x", "j0(x)", {"x": "-j1(x)"})
j1 = elementwise("j1", "x", "j1(x)", {"x": "where(x == 0, 0.5, j0(x) - out / where(x == 0, 1, x))"})
y0 = elementwise("y0", "x", "y0(x)", {"x": "-y1(x)"})
y1 = elementwise("y1", "x", "y1(x)", {"x": "y0(x) - out / x"})
# integer order n (no derivative in n); J_n' = (J_{n-1} - J_{n+1}) / 2, the same for Y_n
jn = elementwise("jn", "n x", "jn(n, x)", {"x": "0.5 * (jn(n - 1, x) - jn(n + 1, x))"})
yn = elementwise("yn", "n x", "yn(n, x)", {"x": "0.5 * (yn(n - 1, x) - yn(n + 1, x))"})
