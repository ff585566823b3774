"""A pending chain of elementwise ops: the DAG the fusion compiler evaluates in one pass.

A :class:`Chain` is built op by op, exactly in the order the eager program calls them: leaves
are external arrays (NumPy or CuPy, any dtype, any shape broadcastable to the chain's) and
Python scalars; each :meth:`Chain.apply` is one elementwise op of the table (duck-typed: it
needs ``name``, ``inputs``, ``out_expr``, ``d``, ``param_names``, ``kind``, ``dtype_from`` and
``result_dtype``), whose shape and dtype are decided and checked at that call, as the unfused op
would. What leaves the chain is marked with :meth:`Chain.output` (a value someone holds) and
:meth:`Chain.reduce` (a closing sum or mean over all elements, as in a loss).

:attr:`Chain.signature` identifies the compiled code: ops, wiring, dtypes, which leaves are
scalars, the outputs and the reduction. Sizes, shapes and strides are not part of it (they are
run-time arguments), nor are the values of scalars and op parameters.

Example::

    from gpugrad.ops.elementwise import OPS
    c = Chain()
    x = c.leaf(np.ones(4, np.float32))
    y = c.apply(OPS["multiply"], [c.apply(OPS["tanh"], [x]), c.apply(OPS["sigmoid"], [x])])
    c.reduce(y, "sum")
    c.signature            # hashable: compiled code is cached on it
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.errors import DTypeError, ShapeError, describe

_PY_SCALARS = (bool, int, float)
FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_BOOL = np.dtype(bool)


class NotFusable(Exception):
    """The op application cannot join a chain (the caller runs it unfused)."""


class Ref:
    """A value of a chain: leaf ``k`` (``kind`` 'L') or op node ``k`` (``kind`` 'N')."""

    __slots__ = ("chain", "kind", "index", "dtype", "shape")

    def __init__(self, chain: Chain, kind: str, index: int, dtype: np.dtype, shape: tuple) -> None:
        self.chain = chain
        self.kind = kind
        self.index = index
        self.dtype = dtype
        self.shape = shape

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.index)

    def __repr__(self) -> str:
        return f"Ref({self.kind}{self.index}, {self.dtype}, {self.shape})"


def broadcast_shapes(shapes: list[tuple], what: str) -> tuple:
    """NumPy's broadcast of ``shapes``; ShapeError naming ``what`` when they do not broadcast."""
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        for i, d in enumerate(s):
            o = out[off + i]
            if o == 1:
                out[off + i] = d
            elif d != 1 and d != o:
                raise ShapeError(f"{what}: operands could not be broadcast together with shapes "
                                 f"{' '.join(map(str, shapes))}")
    return tuple(out)


_PROTO: dict[np.dtype, np.ndarray] = {}


def _proto(dt: np.dtype) -> np.ndarray:
    """An empty array of ``dt``: what ``result_dtype`` is asked about for a chain value."""
    p = _PROTO.get(dt)
    if p is None:
        p = _PROTO[dt] = np.empty(0, dt)
    return p


_DTYPES: dict[tuple, tuple[np.dtype, np.dtype]] = {}  # (op, operand dtypes or scalar types) -> dtypes


def _dtypes(op: Any, refs: list[Ref], kinds: tuple) -> tuple[np.dtype, np.dtype]:
    """(the dtype ``op`` computes in, its result dtype) for operands of ``kinds``, checked."""
    protos = [_proto(k) if isinstance(k, np.dtype) else k(0) for k in kinds]
    promoted = np.dtype(op.result_dtype(protos))
    if promoted not in FLOATS:
        raise NotFusable(f"{op.name}: computes in {promoted} (only float arithmetic is fused)")
    for k, r in enumerate(refs):
        flag = getattr(op, "dtype_from", None) is not None and k not in op.dtype_from
        if r.dtype.kind not in "biuf":
            raise DTypeError(f"{op.name}: operand {op.inputs[k]} has unsupported dtype {r.dtype}")
        if flag and r.dtype != _BOOL:
            raise NotFusable(f"{op.name}: condition operand of dtype {r.dtype}")
    return promoted, (_BOOL if op.kind == "bool" else promoted)


class Chain:
    """A DAG of elementwise op applications (see the module docstring)."""

    def __init__(self) -> None:
        self.leaves: list[Any] = []  # arrays (NumPy or CuPy) and Python scalars
        self.leaf_refs: list[Ref] = []
        # (op, arg keys, result dtype, the dtype it computes in: the promoted operands' for comparisons)
        self.nodes: list[tuple[Any, tuple[tuple[str, int], ...], np.dtype, np.dtype]] = []
        self.node_refs: list[Ref] = []
        self.params: list[tuple[int, ...]] = []  # per node: the leaf indices of its op parameters
        self.outputs: list[int] = []  # node indices whose values leave the chain
        self.reduction: tuple[int, str] | None = None  # (node index, "sum" | "mean")
        self.shape: tuple = ()
        self._leaf_ids: dict[int, Ref] = {}
        self._scalar: list[bool] = []
        self._sig: tuple | None = None

    # ---- building --------------------------------------------------------------------------
    def leaf(self, value: Any) -> Ref:
        """A leaf for an array (the same array object gives the same leaf) or a Python scalar."""
        if isinstance(value, _PY_SCALARS) or isinstance(value, np.generic):
            if isinstance(value, np.generic):
                value = value.item()
            dt = np.dtype(type(value))
            ref = Ref(self, "L", len(self.leaves), dt, ())
        else:
            got = self._leaf_ids.get(id(value))
            if got is not None:
                return got
            if not hasattr(value, "dtype") or not hasattr(value, "shape"):
                raise NotFusable(f"not an array or a Python scalar: {describe(value)}")
            ref = Ref(self, "L", len(self.leaves), np.dtype(value.dtype), tuple(value.shape))
            self._leaf_ids[id(value)] = ref
        self.leaves.append(value)
        self.leaf_refs.append(ref)
        self._scalar.append(not ref.shape and isinstance(value, _PY_SCALARS))
        self._sig = None
        return ref

    def is_scalar(self, k: int) -> bool:
        return self._scalar[k]

    def apply(self, op: Any, args: list | tuple, params: dict | None = None) -> Ref:
        """Append ``op(*args, **params)``; args are Refs of this chain, arrays or Python scalars.

        Raises ShapeError (naming the op) when the operands do not broadcast, NotFusable when
        the op does not compute in floating point (integer arithmetic stays unfused) or its
        shape does not broadcast with the rest of the chain.
        """
        if len(args) != len(op.inputs):
            raise TypeError(f"{op.name}() takes {len(op.inputs)} operand(s), got {len(args)}")
        refs = [a if a.__class__ is Ref else self.leaf(a) for a in args]
        kinds = tuple(r.dtype if r.shape or r.kind == "N" or not self._scalar[r.index]
                      else self.leaves[r.index].__class__ for r in refs)
        got = _DTYPES.get((op, kinds))
        if got is None:
            got = _DTYPES[(op, kinds)] = _dtypes(op, refs, kinds)
        promoted, dt = got
        shape = ()
        for r in refs:
            if r.chain is not self:
                raise ValueError(f"{op.name}: an operand belongs to another chain")
            if r.shape != shape and r.shape:
                shape = r.shape if not shape else broadcast_shapes([r.shape for r in refs], op.name)
        chain_shape = self.shape
        if shape != chain_shape:
            try:
                chain_shape = broadcast_shapes([chain_shape, shape], op.name)
            except ShapeError:
                raise NotFusable(f"{op.name}: shape {shape} does not broadcast with the chain's {self.shape}") from None
        ps: tuple = ()
        if op.param_names:
            vals = []
            for p in op.param_names:
                if params is None or p not in params:
                    raise TypeError(f"{op.name}(): missing parameter {p!r}")
                v = params[p]
                if not isinstance(v, (*_PY_SCALARS, np.generic)):
                    raise NotFusable(f"{op.name}: parameter {p} is not a number")
                vals.append(self.leaf(v).index)
            ps = tuple(vals)
        self.nodes.append((op, tuple((r.kind, r.index) for r in refs), dt, promoted))
        self.params.append(ps)
        ref = Ref(self, "N", len(self.nodes) - 1, dt, shape)
        self.node_refs.append(ref)
        self.shape = chain_shape
        self._sig = None
        return ref

    def output(self, ref: Ref) -> int:
        """Mark node ``ref`` as a value that leaves the chain; returns its output index."""
        if ref.kind != "N":
            raise ValueError("only op results can be chain outputs")
        if ref.index not in self.outputs:
            self.outputs.append(ref.index)
            self._sig = None
        return self.outputs.index(ref.index)

    def reduce(self, ref: Ref, kind: str = "sum") -> None:
        """Close the chain with ``sum`` or ``mean`` of ``ref`` over all its elements (broadcast
        to the chain's shape)."""
        if kind not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {kind!r}")
        if ref.kind != "N" or ref.dtype not in FLOATS:
            raise ValueError("the reduction must take a float op result")
        if ref.shape != self.shape:
            raise NotFusable("the reduced value must have the chain's shape")
        self.reduction = (ref.index, kind)
        self._sig = None

    # ---- identity --------------------------------------------------------------------------
    @property
    def signature(self) -> tuple:
        """Hashable identity of the code that evaluates this chain (sizes and values excluded)."""
        if self._sig is None:
            leaves = tuple(("s", r.dtype.str) if self.is_scalar(r.index) else ("a", r.dtype.str)
                           for r in self.leaf_refs)
            nodes = tuple((op, args, dt.str, ps, cdt.str) for (op, args, dt, cdt), ps in zip(self.nodes, self.params))
            self._sig = (leaves, nodes, tuple(self.outputs), self.reduction)
        return self._sig

    def arrays(self) -> list[Any]:
        """The array leaves' values (None at scalar leaves)."""
        return [None if s else v for s, v in zip(self._scalar, self.leaves)]

    def scalars(self) -> list[float]:
        """The scalar leaves' values as floats (0.0 at array leaves)."""
        return [float(v) if s else 0.0 for s, v in zip(self._scalar, self.leaves)]

    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def __len__(self) -> int:
        return len(self.nodes)
