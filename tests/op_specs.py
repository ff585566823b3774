"""Every differentiable op with a hypothesis strategy for valid inputs.

Each spec draws float64 NumPy inputs (shapes with broadcasting, scalars, zero-size edges, axes
with negatives and keepdims, non-contiguous layouts) and knows how to call the op. The gradcheck
tests (reverse mode), the jvp tests (forward mode) and the CUDA comparison tests all iterate
over this one table, so an op added here is checked everywhere.

Inputs of non-smooth ops are drawn away from their kinks (grids offset from each other), so
central differences are valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gpugrad as gg

# ---------------------------------------------------------------------------------------------
# value domains


def _values(rng: np.random.Generator, shape: tuple, domain: str) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    if domain == "real":
        v = rng.uniform(-2, 2, n)
    elif domain == "small":
        v = rng.uniform(-1, 1, n)
    elif domain == "pos":
        v = rng.uniform(0.5, 2.0, n)
    elif domain == "unit":
        v = rng.uniform(-0.85, 0.85, n)
    elif domain == "gt1":
        v = rng.uniform(1.2, 3.0, n)
    elif domain == "nonzero":
        v = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    elif domain == "log1p":
        v = rng.uniform(-0.5, 2.0, n)
    elif domain.startswith("grid"):
        # Multiples of 0.1 plus a per-grid offset: two different grids never come closer than
        # 0.02, and no value is within 0.03 of an integer or of zero.
        offset = {"grid": 0.03, "grid2": 0.07, "grid3": 0.05}[domain]
        v = rng.integers(-15, 15, n) * 0.1 + offset
        v = np.where(np.abs(v - np.round(v)) < 0.025, v + 0.04, v)
    else:
        raise ValueError(domain)
    return v.reshape(shape)


def _layout(arr: np.ndarray, noncontig: bool) -> np.ndarray:
    """The same values, optionally in a non-contiguous (strided) array."""
    if not noncontig or arr.ndim == 0 or arr.size == 0:
        return arr
    big = np.zeros(arr.shape + (2,), dtype=arr.dtype)
    big[..., 1] = arr
    return big[..., 1]


# ---------------------------------------------------------------------------------------------
# specs


@dataclass
class Case:
    """One drawn example: the op's array inputs and the keyword arguments to call it with."""

    arrays: list[np.ndarray]
    kwargs: dict = field(default_factory=dict)


@dataclass
class Spec:
    name: str
    fn: Callable[..., Any]  # called as fn(*tensors, **kwargs)
    strategy: st.SearchStrategy  # draws a Case
    smooth: bool = True  # False: derivative is zero a.e. (no jvp dot-product meaning lost, still checked)


def _seeded(shapes_strategy: st.SearchStrategy, domains: tuple[str, ...], build: Callable | None = None):
    """Draw shapes (one per input) plus a seed and a layout flag; build arrays from them."""

    @st.composite
    def draw(d: Any) -> Case:
        shapes, extra = d(shapes_strategy)
        seed = d(st.integers(0, 2**31 - 1))
        noncontig = d(st.booleans())
        rng = np.random.default_rng(seed)
        arrays = [_layout(_values(rng, s, dom), noncontig) for s, dom in zip(shapes, domains)]
        kwargs = build(extra, rng) if build else dict(extra)
        return Case(arrays, kwargs)

    return draw()


def _broadcast_shapes(n: int, min_side: int = 0) -> st.SearchStrategy:
    return hnp.mutually_broadcastable_shapes(num_shapes=n, max_dims=3, min_side=min_side, max_side=3).map(
        lambda b: (list(b.input_shapes), {})
    )


def ew(name: str, fn: Callable, domains: tuple[str, ...] = ("real",), smooth: bool = True) -> Spec:
    return Spec(name, fn, _seeded(_broadcast_shapes(len(domains)), domains), smooth)


@st.composite
def _reduce_shape(d: Any, allow_empty: bool = True, allow_tuple: bool = True, need_axis: bool = False,
                  min_dims: int = 0, min_side: int = 1) -> tuple:
    shape = d(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=0 if allow_empty else min_side, max_side=4))
    nd = len(shape)
    choices = [st.just(None)] if not need_axis and True else []
    if nd:
        choices.append(st.integers(-nd, nd - 1))
        if allow_tuple and not need_axis:
            choices.append(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple))
    axis = d(st.one_of(*choices)) if choices else None
    keepdims = d(st.booleans())
    return [shape], {"axis": axis, "keepdims": keepdims}


def red(name: str, fn: Callable, domain: str = "real", allow_empty: bool = True, allow_tuple: bool = True,
        keepdims: bool = True, need_axis: bool = False, min_dims: int = 0, min_side: int = 1) -> Spec:
    def build(extra: dict, rng: Any) -> dict:
        kw = dict(extra)
        if not keepdims:
            kw.pop("keepdims")
        return kw

    strategy = _reduce_shape(allow_empty, allow_tuple, need_axis, min_dims, min_side)
    return Spec(name, fn, _seeded(strategy, (domain,), build))


def _fixed(shapes_and_kwargs: list[tuple[list[tuple], dict]], domains: tuple[str, ...]) -> st.SearchStrategy:
    return _seeded(st.sampled_from(shapes_and_kwargs), domains)


def _perm_case() -> st.SearchStrategy:
    @st.composite
    def draw(d: Any) -> tuple:
        shape = d(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3))
        perm = d(st.permutations(range(len(shape))))
        return [shape], {"axes": tuple(perm)}

    return draw()


def _index_cases() -> list[tuple[list[tuple], dict]]:
    return [
        ([(5,)], {"index": 2}),
        ([(5,)], {"index": slice(1, 4)}),
        ([(5,)], {"index": slice(None, None, -2)}),
        ([(4, 3)], {"index": (Ellipsis, 1)}),
        ([(4, 3)], {"index": (None, slice(0, 2), 2)}),
        ([(5,)], {"index": np.array([0, 2, 2, 4, 0])}),  # repeated indices accumulate
        ([(4, 3)], {"index": (np.array([0, 0, 3]), np.array([1, 1, 2]))}),
        ([(4, 3)], {"index": np.array([[1, 1], [3, 0]])}),
        ([(4, 3)], {"index": np.array([True, False, True, True])}),
        ([(3, 4, 2)], {"index": (slice(None), np.array([3, 1, 3]), 0)}),
        ([(3, 4)], {"index": (np.array([2, 2]), slice(1, None))}),
    ]


def _einsum_cases() -> list[tuple[list[tuple], dict]]:
    return [
        ([(3, 4), (4, 2)], {"spec": "ij,jk->ik"}),
        ([(2, 3, 4), (2, 4, 2)], {"spec": "bij,bjk->bik"}),
        ([(3, 3)], {"spec": "ii"}),
        ([(3, 3)], {"spec": "ii->i"}),
        ([(3, 4)], {"spec": "ij->j"}),
        ([(3,), (4,)], {"spec": "i,j->ij"}),
        ([(2, 3, 4)], {"spec": "...ij->...ji"}),
        ([(3, 4), (4,)], {"spec": "ij,j"}),
        ([(2, 3), (3, 4), (4, 2)], {"spec": "ij,jk,kl->il"}),
        ([(3, 1), (3, 4)], {"spec": "ij,ij->i"}),
    ]


def _matmul_cases() -> list[tuple[list[tuple], dict]]:
    return [
        ([(3, 4), (4, 2)], {}),
        ([(4,), (4, 2)], {}),
        ([(3, 4), (4,)], {}),
        ([(4,), (4,)], {}),
        ([(2, 3, 4), (4, 2)], {}),
        ([(2, 1, 3, 4), (3, 4, 2)], {}),
        ([(3, 4), (2, 4, 1)], {}),
        ([(0, 4), (4, 2)], {}),
    ]


def _square_cases() -> list[tuple[list[tuple], dict]]:
    return [([(3, 3)], {}), ([(2, 2, 2)], {}), ([(1, 1)], {})]


def _well_conditioned(arr: np.ndarray) -> np.ndarray:
    n = arr.shape[-1]
    return arr * 0.3 + np.eye(n) * 2.0


def _linalg(fn: Callable) -> Callable:
    return lambda a, *rest, **kw: fn(gg.astype(a, a.dtype), *rest, **kw)


class _WellConditioned(st.SearchStrategy):
    pass


def _square_strategy(with_rhs: bool = False) -> st.SearchStrategy:
    cases = [([(3, 3)], {}), ([(2, 2, 2)], {}), ([(1, 1)], {})]
    if with_rhs:
        cases = [([(3, 3), (3,)], {}), ([(3, 3), (3, 2)], {}), ([(2, 2, 2), (2, 2, 1)], {})]

    @st.composite
    def draw(d: Any) -> Case:
        shapes, kw = d(st.sampled_from(cases))
        rng = np.random.default_rng(d(st.integers(0, 2**31 - 1)))
        arrays = [_well_conditioned(rng.uniform(-1, 1, shapes[0]))]
        arrays += [rng.uniform(-1, 1, s) for s in shapes[1:]]
        return Case(arrays, dict(kw))

    return draw()


def _with(kwargs_strategy: st.SearchStrategy, shape_strategy: st.SearchStrategy, domains: tuple[str, ...]) -> Any:
    @st.composite
    def draw(d: Any) -> Case:
        shapes, kw = d(shape_strategy)
        extra = d(kwargs_strategy(shapes)) if callable(kwargs_strategy) else d(kwargs_strategy)
        seed = d(st.integers(0, 2**31 - 1))
        noncontig = d(st.booleans())
        rng = np.random.default_rng(seed)
        arrays = [_layout(_values(rng, s, dom), noncontig) for s, dom in zip(shapes, domains)]
        return Case(arrays, {**kw, **extra})

    return draw()


def _shape1(min_dims: int = 1, max_dims: int = 3, min_side: int = 1) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=4).map(
        lambda s: ([s], {})
    )


def _axis_of(min_offset: int = 0) -> Callable:
    def strat(shapes: list[tuple]) -> st.SearchStrategy:
        nd = len(shapes[0]) + min_offset
        return st.integers(-nd, nd - 1).map(lambda a: {"axis": a})

    return strat


SPECS: list[Spec] = [
    # ---- elementwise: arithmetic
    ew("add", lambda a, b: a + b, ("real", "real")),
    ew("subtract", lambda a, b: a - b, ("real", "real")),
    ew("multiply", lambda a, b: a * b, ("real", "real")),
    ew("divide", lambda a, b: a / b, ("real", "nonzero")),
    ew("negative", lambda a: -a),
    ew("pow", lambda a, b: a ** b, ("pos", "real")),
    ew("pow_scalar", lambda a: a ** 3),
    ew("pow_square", lambda a: a ** 2),
    ew("square", gg.square),
    ew("abs", gg.abs, ("grid",)),
    ew("sign", gg.sign, ("grid",), smooth=False),
    ew("maximum", gg.maximum, ("grid", "grid2")),
    ew("minimum", gg.minimum, ("grid", "grid2")),
    ew("mod", gg.mod, ("grid", "pos"), smooth=False),
    ew("floor_divide", lambda a, b: a // b, ("grid", "pos"), smooth=False),
    ew("where", lambda c, a, b: gg.where(c > 0, a, b), ("real", "real", "real")),
    ew("clip", lambda x, lo, hi: gg.clip(x, lo - 1.0, hi + 1.0), ("grid", "grid2", "grid3")),
    ew("clip_scalars", lambda x: gg.clip(x, -0.5, 0.5), ("grid",)),
    ew("clip_min", lambda x: gg.clip(x, min=0.0), ("grid",)),
    ew("clip_max", lambda x: gg.clip(x, max=0.0), ("grid",)),
    ew("copy", lambda x: x.clone()),
    # ---- elementwise: exponentials and logarithms
    ew("exp", gg.exp),
    ew("exp2", gg.exp2),
    ew("expm1", gg.expm1),
    ew("log", gg.log, ("pos",)),
    ew("log2", gg.log2, ("pos",)),
    ew("log10", gg.log10, ("pos",)),
    ew("log1p", gg.log1p, ("log1p",)),
    ew("sqrt", gg.sqrt, ("pos",)),
    ew("rsqrt", gg.rsqrt, ("pos",)),
    ew("cbrt", gg.cbrt, ("pos",)),
    ew("reciprocal", gg.reciprocal, ("nonzero",)),
    ew("logaddexp", gg.logaddexp, ("real", "real")),
    # ---- elementwise: trigonometric and hyperbolic
    ew("sin", gg.sin),
    ew("cos", gg.cos),
    ew("tan", gg.tan, ("small",)),
    ew("arcsin", gg.arcsin, ("unit",)),
    ew("arccos", gg.arccos, ("unit",)),
    ew("arctan", gg.arctan),
    ew("arctan2", gg.arctan2, ("nonzero", "nonzero")),
    ew("hypot", gg.hypot, ("nonzero", "nonzero")),
    ew("sinh", gg.sinh),
    ew("cosh", gg.cosh),
    ew("tanh", gg.tanh),
    ew("arcsinh", gg.ops.arcsinh),
    ew("arccosh", gg.ops.arccosh, ("gt1",)),
    ew("arctanh", gg.ops.arctanh, ("unit",)),
    # ---- elementwise: activations
    ew("sigmoid", gg.sigmoid),
    ew("relu", gg.relu, ("grid",)),
    ew("leaky_relu", lambda x: gg.leaky_relu(x, 0.2), ("grid",)),
    ew("gelu", gg.gelu),
    ew("gelu_tanh", lambda x: gg.gelu(x, approximate="tanh")),
    ew("silu", gg.silu),
    ew("softplus", gg.softplus),
    ew("softplus_beta", lambda x: gg.softplus(x, beta=2.0, threshold=1.5), ("grid",)),
    ew("erf", gg.erf),
    ew("floor", gg.floor, ("grid",), smooth=False),
    ew("ceil", gg.ceil, ("grid",), smooth=False),
    ew("round", gg.round, ("grid",), smooth=False),
    # ---- reductions
    red("sum", lambda x, axis, keepdims: gg.sum(x, axis, keepdims)),
    red("mean", lambda x, axis, keepdims: gg.mean(x, axis, keepdims), allow_empty=False),
    red("var", lambda x, axis, keepdims: gg.var(x, axis, keepdims=keepdims), allow_empty=False),
    red("var_ddof", lambda x, axis, keepdims: gg.var(x, axis, ddof=1, keepdims=keepdims), allow_empty=False,
        min_dims=1, min_side=2),
    # std's derivative is undefined at zero variance (as in PyTorch and JAX): groups of 2 or more.
    red("std", lambda x, axis, keepdims: gg.std(x, axis, keepdims=keepdims), allow_empty=False, min_dims=1,
        min_side=2),
    red("max", lambda x, axis, keepdims: gg.max(x, axis, keepdims), allow_empty=False),
    red("min", lambda x, axis, keepdims: gg.min(x, axis, keepdims), allow_empty=False),
    red("prod", lambda x, axis, keepdims: gg.prod(x, axis, keepdims), domain="nonzero"),
    red("logsumexp", lambda x, axis, keepdims: gg.logsumexp(x, axis, keepdims), allow_empty=False),
    red("norm", lambda x, axis, keepdims: gg.norm(x, None, axis, keepdims), domain="nonzero", allow_empty=False),
    Spec("norm_ords", lambda x, ord, axis: gg.norm(x, ord, axis),
         _seeded(st.sampled_from([
             ([(4,)], {"ord": 1, "axis": None}), ([(4,)], {"ord": 3, "axis": None}),
             ([(4,)], {"ord": np.inf, "axis": None}), ([(3, 4)], {"ord": -np.inf, "axis": 1}),
             ([(3, 4)], {"ord": "fro", "axis": None}), ([(3, 4)], {"ord": 1, "axis": (0, 1)}),
             ([(3, 4)], {"ord": np.inf, "axis": (1, 0)}), ([(2, 3, 4)], {"ord": 2, "axis": -1}),
         ]), ("nonzero",))),  # continuous values: max/min norms have kinks at ties
    Spec("cumsum", lambda x, axis: gg.cumsum(x, axis),
         _with(lambda s: st.one_of(st.just({"axis": None}), _axis_of()(s)), _shape1(min_side=0), ("real",))),
    Spec("cumprod", lambda x, axis: gg.cumprod(x, axis),
         _with(lambda s: st.one_of(st.just({"axis": None}), _axis_of()(s)), _shape1(), ("nonzero",))),
    Spec("cumprod_zero", lambda x: gg.cumprod(x * gg.tensor([1.0, 0.0, 1.0, 1.0], dtype=x.dtype, device=x.device)),
         _seeded(st.just(([(4,)], {})), ("nonzero",))),
    Spec("prod_zero",
         lambda x: gg.prod(x * gg.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=x.dtype, device=x.device), 1),
         _seeded(st.just(([(2, 3)], {})), ("nonzero",))),
    # ---- shape
    Spec("reshape", lambda x: gg.reshape(x, (-1,)), _seeded(_shape1(0).map(lambda c: c), ("real",))),
    Spec("reshape2", lambda x: x.reshape(2, -1),
         _seeded(st.sampled_from([([(2, 3)], {}), ([(4, 2)], {}), ([(2, 2, 2)], {})]), ("real",))),
    Spec("transpose", lambda x, axes: gg.transpose(x, axes), _seeded(_perm_case(), ("real",))),
    Spec("T", lambda x: x.T, _seeded(_shape1(0), ("real",))),
    Spec("swapaxes", lambda x: gg.swapaxes(x, 0, -1), _seeded(_shape1(1), ("real",))),
    Spec("moveaxis", lambda x: gg.moveaxis(x, 0, -1), _seeded(_shape1(1), ("real",))),
    Spec("expand_dims", lambda x, axis: gg.expand_dims(x, axis), _with(_axis_of(1), _shape1(0), ("real",))),
    Spec("squeeze", lambda x: gg.squeeze(gg.expand_dims(x, 0)), _seeded(_shape1(0), ("real",))),
    Spec("broadcast_to", lambda x: gg.broadcast_to(x, (2,) + x.shape), _seeded(_shape1(0), ("real",))),
    Spec("flatten", lambda x: gg.flatten(x), _seeded(_shape1(0), ("real",))),
    Spec("concatenate", lambda a, b, axis: gg.concatenate([a, b], axis),
         _fixed([([(2, 3), (4, 3)], {"axis": 0}), ([(2, 3), (2, 1)], {"axis": -1}), ([(0, 2), (3, 2)], {"axis": 0})],
                ("real", "real"))),
    Spec("stack", lambda a, b, axis: gg.stack([a, b], axis),
         _fixed([([(3,), (3,)], {"axis": 0}), ([(2, 3), (2, 3)], {"axis": -1}), ([(2, 3), (2, 3)], {"axis": 1})],
                ("real", "real"))),
    Spec("split", lambda x, ios, axis: gg.stack([p.sum() for p in gg.split(x, ios, axis)]),
         _fixed([([(6,)], {"ios": 3, "axis": 0}), ([(4, 5)], {"ios": [1, 3], "axis": 1}),
                 ([(4, 2)], {"ios": 2, "axis": -2})], ("real",))),
    Spec("hstack", lambda a, b: gg.hstack([a, b]), _fixed([([(2,), (3,)], {}), ([(2, 2), (2, 1)], {})],
                                                          ("real", "real"))),
    Spec("vstack", lambda a, b: gg.vstack([a, b]), _fixed([([(3,), (3,)], {}), ([(2, 2), (1, 2)], {})],
                                                          ("real", "real"))),
    Spec("pad", lambda x, pw, mode: gg.pad(x, pw, mode=mode),
         _fixed([([(3,)], {"pw": (1, 2), "mode": "constant"}), ([(2, 3)], {"pw": ((0, 1), (2, 0)), "mode": "constant"}),
                 ([(4,)], {"pw": 2, "mode": "reflect"}), ([(3, 2)], {"pw": ((1, 1), (0, 2)), "mode": "edge"}),
                 ([(3,)], {"pw": (2, 1), "mode": "wrap"}), ([(3,)], {"pw": (2, 2), "mode": "symmetric"})],
                ("real",))),
    Spec("flip", lambda x, axis: gg.flip(x, axis),
         _with(lambda s: st.one_of(st.just({"axis": None}), _axis_of()(s)), _shape1(), ("real",))),
    Spec("repeat", lambda x, reps, axis: gg.repeat(x, reps, axis),
         _fixed([([(3,)], {"reps": 2, "axis": None}), ([(2, 3)], {"reps": [1, 0, 3], "axis": 1}),
                 ([(2, 2)], {"reps": 2, "axis": 0})], ("real",))),
    Spec("tile", lambda x, reps: gg.tile(x, reps),
         _fixed([([(3,)], {"reps": 2}), ([(2, 3)], {"reps": (2, 1)}), ([(2,)], {"reps": (2, 1, 2)})], ("real",))),
    Spec("roll", lambda x, shift, axis: gg.roll(x, shift, axis),
         _fixed([([(5,)], {"shift": 2, "axis": None}), ([(3, 4)], {"shift": -1, "axis": 1}),
                 ([(2, 3)], {"shift": 4, "axis": None})], ("real",))),
    Spec("diagonal", lambda x, offset: gg.diagonal(x, offset),
         _fixed([([(3, 3)], {"offset": 0}), ([(3, 4)], {"offset": 1}), ([(4, 3)], {"offset": -2}),
                 ([(2, 3, 3)], {"offset": 0})], ("real",))),
    Spec("trace", lambda x: gg.trace(x), _fixed([([(3, 3)], {}), ([(2, 4)], {})], ("real",))),
    Spec("diag", lambda x, k: gg.diag(x, k), _fixed([([(3,)], {"k": 0}), ([(2,)], {"k": -1}), ([(3, 3)], {"k": 1})],
                                                     ("real",))),
    Spec("tril", lambda x, k: gg.tril(x, k), _fixed([([(3, 3)], {"k": 0}), ([(2, 3, 4)], {"k": -1})], ("real",))),
    Spec("triu", lambda x, k: gg.triu(x, k), _fixed([([(3, 3)], {"k": 1}), ([(3, 4)], {"k": 0})], ("real",))),
    Spec("astype", lambda x: x.astype(gg.float32).astype(gg.float64) * 0 + x.astype(gg.float64),
         _seeded(_shape1(0), ("real",))),
    # ---- indexing
    Spec("getitem", lambda x, index: x[index], _fixed(_index_cases(), ("real",))),
    Spec("take", lambda x, idx, axis: gg.take(x, idx, axis),
         _fixed([([(5,)], {"idx": np.array([4, 0, 0]), "axis": None}), ([(3, 4)], {"idx": np.array([[1, 1], [3, 0]]),
                                                                                    "axis": 1})], ("real",))),
    Spec("index_put", lambda x, v, index: gg.ops.index_put(x, index, v),
         _fixed([([(5,), (2,)], {"index": np.array([1, 3])}), ([(3, 4), (4,)], {"index": 1}),
                 ([(3, 4), ()], {"index": (slice(None), 2)})], ("real", "real"))),
    Spec("setitem", lambda x, v: _setitem(x, v), _fixed([([(4, 3), (3,)], {})], ("real", "real"))),
    # ---- linear algebra
    Spec("matmul", lambda a, b: a @ b, _fixed(_matmul_cases(), ("real", "real"))),
    Spec("dot", lambda a, b: gg.dot(a, b),
         _fixed([([(3,), (3,)], {}), ([(2, 3), (3,)], {}), ([(2, 3, 4), (4, 2)], {}), ([(), (3,)], {})],
                ("real", "real"))),
    Spec("outer", gg.outer, _fixed([([(3,), (2,)], {}), ([(2, 2), (3,)], {})], ("real", "real"))),
    Spec("inner", gg.inner, _fixed([([(3,), (3,)], {}), ([(2, 3), (4, 3)], {})], ("real", "real"))),
    Spec("vdot", gg.vdot, _fixed([([(2, 3), (6,)], {})], ("real", "real"))),
    Spec("tensordot", lambda a, b, axes: gg.tensordot(a, b, axes),
         _fixed([([(2, 3, 4), (3, 4, 2)], {"axes": 2}), ([(2, 3), (3, 2)], {"axes": ([1], [0])}),
                 ([(3, 2), (3, 4)], {"axes": ([0], [0])})], ("real", "real"))),
    Spec("einsum1", lambda a, spec: gg.einsum(spec, a),
         _fixed([c for c in _einsum_cases() if len(c[0]) == 1], ("real",))),
    Spec("einsum2", lambda a, b, spec: gg.einsum(spec, a, b),
         _fixed([c for c in _einsum_cases() if len(c[0]) == 2], ("real", "real"))),
    Spec("einsum3", lambda a, b, c, spec: gg.einsum(spec, a, b, c),
         _fixed([c for c in _einsum_cases() if len(c[0]) == 3], ("real", "real", "real"))),
    Spec("inv", gg.inv, _square_strategy()),
    Spec("det", gg.det, _square_strategy()),
    Spec("slogdet", lambda a: gg.slogdet(a)[1], _square_strategy()),
    Spec("solve", gg.solve, _square_strategy(with_rhs=True)),
    # ---- neural-network primitives
    Spec("softmax", lambda x, axis: gg.softmax(x, axis), _with(_axis_of(), _shape1(), ("real",))),
    Spec("log_softmax", lambda x, axis: gg.log_softmax(x, axis), _with(_axis_of(), _shape1(), ("real",))),
]


def _setitem(x: gg.Tensor, v: gg.Tensor) -> gg.Tensor:
    y = x * 1.0  # a non-leaf copy we may write into
    y[1] = v * 2.0
    y[np.array([0, 3]), 0] = v[0]
    return y


SPEC_BY_NAME = {s.name: s for s in SPECS}
assert len(SPEC_BY_NAME) == len(SPECS), "duplicate spec names"


def to_tensors(case: Case, dtype: Any = np.float64, device: str = "cpu", requires_grad: bool = True) -> list:
    out = []
    for a in case.arrays:
        data = a.astype(dtype) if a.dtype != dtype else a
        t = gg.as_tensor(data, device=device)
        if requires_grad:
            t.requires_grad_(True)
        out.append(t)
    return out
