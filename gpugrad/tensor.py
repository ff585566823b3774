"""Tensor: an array (NumPy on the CPU, CuPy on a GPU), its device, its gradient state and the
tape node that made it.

Every operator and method here forwards to the op of the same name in :mod:`gpugrad.ops`, so
there is one definition of each op whichever way it is called.
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from gpugrad.autograd.state import STATE
from gpugrad.backends import backend_for
from gpugrad.errors import DTypeError, GpugradError, GraphError

_new = object.__new__


class Tensor:
    """An n-dimensional array that records the ops applied to it, for reverse-mode autodiff.

    Create tensors with :func:`gpugrad.tensor` and the other factories rather than with this
    constructor. Example::

        x = gg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = (x @ x.T).tanh().sum()
        y.backward()
        x.grad.shape        # (2, 2)
    """

    # ``_lazy``: the pending elementwise op of a fused chain (gpugrad.fusion.lazy); while it is
    # set, ``data`` and ``_node`` are unset and reading either computes the chain (PendingTensor).
    __slots__ = ("data", "grad", "requires_grad", "_node", "_version", "device", "_tangents", "_extra",
                 "_lazy", "__weakref__")

    # NumPy's protocols (gpugrad/numpy/_protocol.py). No __array_ufunc__: with the high priority,
    # ``ndarray * tensor`` (and ``cupy_array * tensor``) defers to Tensor.__rmul__ and stays on the
    # tape, while a ufunc (np.exp(t), a += t) converts through __array__, which refuses a value
    # being differentiated; ``np.sum(t)`` runs gpugrad.numpy's sum through __array_function__.
    __array_priority__ = 1000

    def __init__(self, data: Any, dtype: Any = None, device: str | None = None,
                 requires_grad: bool = False) -> None:
        from gpugrad.factories import _to_array

        array, dev = _to_array(data, dtype, device, copy=True)
        _init(self, array, dev, False, None, [0])
        if requires_grad:
            self.requires_grad_(True)

    # ---- attributes --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        lz = self._lazy
        return self.data.shape if lz is None else lz.shape

    @property
    def ndim(self) -> int:
        lz = self._lazy
        return self.data.ndim if lz is None else len(lz.shape)

    @property
    def size(self) -> int:
        lz = self._lazy
        return int(self.data.size) if lz is None else int(np.prod(lz.shape, dtype=np.int64))

    def numel(self) -> int:
        """The number of elements (PyTorch's name for ``size``, which is an int here, as in NumPy)."""
        return int(self.data.size)

    @property
    def dtype(self) -> np.dtype:
        lz = self._lazy
        return self.data.dtype if lz is None else lz.dtype

    @property
    def itemsize(self) -> int:
        return self.data.itemsize

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def T(self) -> Tensor:  # noqa: N802 (NumPy's name)
        """All axes reversed, as NumPy's ``.T``."""
        return _F.transpose(self)

    @property
    def mT(self) -> Tensor:  # noqa: N802
        """The last two axes swapped (a batch of matrices transposed)."""
        return _F.swapaxes(self, -1, -2)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (user-created ones, parameters)."""
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        """The tape node that produced this tensor, or None for a leaf."""
        return self._node

    @property
    def version(self) -> int:
        """How many in-place changes this tensor's storage has seen."""
        return self._version[0]

    # ---- autograd ------------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the gradient of some scalar with respect to ``self`` (required unless
        ``self`` has one element). ``retain_graph`` keeps the saved values for another backward
        (it defaults to ``create_graph``); ``create_graph`` records the backward pass itself so
        that the gradients can be differentiated again.

        Example::

            loss = ((w * x).sum() - 1.0) ** 2
            loss.backward()
            w.grad
        """
        run_backward = _ENGINE_RUN[0] if _ENGINE_RUN else _engine_run()
        if not self.requires_grad:
            raise GraphError(
                "backward: this tensor does not require grad and has no grad_fn (no input of the ops "
                "that produced it had requires_grad=True, or it was computed under no_grad)"
            )
        if grad is None:
            if self.data.size != 1:
                raise GraphError(
                    f"backward: grad can be implicitly created only for scalar outputs; this output "
                    f"has shape {self.shape}, so pass grad= of that shape"
                )
            g = backend_for(self.device).ones_like(self.data)
        else:
            g = _grad_argument(self, grad)
        if create_graph:
            g = make_tensor(g, self.device) if not isinstance(g, Tensor) else g
        elif isinstance(g, Tensor):
            g = g.data
        if retain_graph is None:
            retain_graph = create_graph
        run_backward([self], [g], retain_graph=retain_graph, create_graph=create_graph)

    def detach(self) -> Tensor:
        """A tensor sharing this one's data (and version counter) with no history."""
        return make_tensor(self.data, self.device, False, None, self._version)

    def detach_(self) -> Tensor:
        """Cut this tensor from its history in place."""
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (floating-point and complex tensors only); returns self."""
        if requires_grad and self.data.dtype.kind not in "fc":
            raise DTypeError(
                "requires_grad_: only floating-point (or complex) tensors can require gradients, "
                f"got dtype {self.dtype}"
            )
        if not requires_grad and self._node is not None:
            raise GraphError("requires_grad_(False): only leaf tensors can stop requiring grad; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def register_hook(self, fn: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call ``fn(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        Returns a function that removes the hook. Example::

            h = x.register_hook(lambda g: g * 2)   # doubles the gradient flowing into x
        """
        if not self.requires_grad:
            raise GraphError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self._node is not None:
            hooks = self._node.hooks
        else:
            if self._extra is None:
                self._extra = {}
            hooks = self._extra.setdefault("hooks", [])
        hooks.append(fn)

        def remove() -> None:
            if fn in hooks:
                hooks.remove(fn)

        return remove

    def register_post_accumulate_grad_hook(self, fn: Callable[[Tensor], None]) -> Callable[[], None]:
        """Call ``fn(self)`` once backward has added this leaf's gradient into ``.grad``.

        The call comes as soon as the gradient is complete, while the rest of the backward pass
        may still be running (DistributedDataParallel starts its all-reduce there). Returns a
        function that removes the hook. Example::

            w.register_post_accumulate_grad_hook(lambda p: print(p.grad.shape))
        """
        if not self.requires_grad or self._node is not None:
            raise GraphError("register_post_accumulate_grad_hook: only leaf tensors that require grad "
                             "accumulate a .grad")
        if self._extra is None:
            self._extra = {}
        hooks = self._extra.setdefault("post_hooks", [])
        hooks.append(fn)

        def remove() -> None:
            if fn in hooks:
                hooks.remove(fn)

        return remove

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (leaves always do)."""
        import weakref

        if not self.requires_grad:
            raise GraphError("retain_grad: this tensor does not require grad")
        if self._node is not None:
            if self._node.extra is None:
                self._node.extra = {}
            self._node.extra["retained"] = weakref.ref(self)

    # ---- conversion ----------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A copy of the data as a NumPy array, with no graph (an explicit exit: allowed on any
        tensor; writing to the copy never touches the tensor)."""
        if self.device == "cpu":
            return self.data.copy()
        return backend_for(self.device).to_host(self.data)

    def item(self) -> Any:
        """The single element as a Python number (a device sync for GPU tensors)."""
        if self.data.size != 1:
            raise GpugradError(f"item: only one-element tensors can be converted, this one has shape {self.shape}")
        if self.device == "cpu":
            return self.data.reshape(()).item()
        return backend_for(self.device).to_host(self.data).item()

    def tolist(self) -> Any:
        """The data as nested Python lists."""
        return _host(self).tolist()

    def to(self, target: Any, dtype: Any = None) -> Tensor:
        """A copy on another device (``"cpu"``, ``"cuda"``, ``"cuda:1"``) and/or with another dtype.

        Differentiable: gradients flow back to this tensor's device and dtype.
        Example: ``x.to("cuda")``, ``x.to(gg.float64)``, ``x.to("cuda", gg.float16)``.
        """
        from gpugrad.backends import normalize_device

        out = self
        if isinstance(target, str) and not _looks_like_dtype(target):
            dev = normalize_device(target)
            if dev != self.device:
                out = _F.to_device(out, dev)
        elif target is not None:
            dtype = target if dtype is None else dtype
        if dtype is not None:
            out = out.astype(dtype)
        return out

    def cpu(self) -> Tensor:
        """This tensor on the CPU (itself if already there)."""
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Tensor:
        """This tensor on a GPU (``cuda:0`` unless ``device`` says otherwise)."""
        if device is None:
            return self.to("cuda")
        return self.to(device if isinstance(device, str) else f"cuda:{int(device)}")

    def astype(self, dtype: Any) -> Tensor:
        """A copy cast to ``dtype`` (differentiable between floating dtypes). Complex to real keeps
        the real part with NumPy's ComplexWarning (``.real`` says so without a warning)."""
        if self.data.dtype.kind == "c" and np.dtype(dtype).kind != "c":
            import warnings

            warnings.warn("Casting complex values to real discards the imaginary part", np.exceptions.ComplexWarning,
                          stacklevel=2)
        return _F.astype(self, dtype)

    @property
    def real(self) -> Tensor:
        """The real part (the tensor itself for real dtypes), as NumPy's ``.real``."""
        return _F.real(self)

    @property
    def imag(self) -> Tensor:
        """The imaginary part (zeros for real dtypes), as NumPy's ``.imag``."""
        return _F.imag(self)

    def conj(self) -> Tensor:
        """The complex conjugate (the tensor itself for real dtypes)."""
        return _F.conj(self)

    conjugate = conj

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def half(self) -> Tensor:
        return self.astype(np.float16)

    def long(self) -> Tensor:
        return self.astype(np.int64)

    def int(self) -> Tensor:
        return self.astype(np.int32)

    def bool(self) -> Tensor:
        return self.astype(np.bool_)

    def clone(self) -> Tensor:
        """A differentiable copy with its own storage."""
        return _F.copy(self)

    copy = clone

    def contiguous(self) -> Tensor:
        return _F.ascontiguous(self)

    # ---- Python protocol -----------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(_host(self), separator=", ", prefix="tensor(")
        extra = []
        if self.device != "cpu":
            extra.append(f"device='{self.device}'")
        if self.data.dtype not in (np.float32, np.int64, np.bool_):
            extra.append(f"dtype={self.data.dtype}")
        if self._node is not None:
            extra.append(f"grad_fn=<{self._node.op.name}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.data.shape[0]):
            yield self[i]

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise GpugradError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def __complex__(self) -> complex:
        return complex(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        from gpugrad.numpy._protocol import array_conversion

        return array_conversion(self, dtype, copy)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        from gpugrad.numpy._protocol import array_function

        return array_function(func, args, kwargs)

    def __format__(self, spec: str) -> str:
        if self.data.size == 1 and spec:
            return format(self.item(), spec)
        return repr(self)

    __hash__ = object.__hash__

    # ---- arithmetic ----------------------------------------------------------------------
    # The four arithmetic operators skip argument validation (they always pass two operands).
    def __add__(self, other: Any) -> Tensor:
        return _ADD.run((self, other), _NO_PARAMS)

    def __radd__(self, other: Any) -> Tensor:
        return _ADD.run((other, self), _NO_PARAMS)

    def __sub__(self, other: Any) -> Tensor:
        return _SUB.run((self, other), _NO_PARAMS)

    def __rsub__(self, other: Any) -> Tensor:
        return _SUB.run((other, self), _NO_PARAMS)

    def __mul__(self, other: Any) -> Tensor:
        return _MUL.run((self, other), _NO_PARAMS)

    def __rmul__(self, other: Any) -> Tensor:
        return _MUL.run((other, self), _NO_PARAMS)

    def __truediv__(self, other: Any) -> Tensor:
        return _DIV.run((self, other), _NO_PARAMS)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _DIV.run((other, self), _NO_PARAMS)

    def __floordiv__(self, other: Any) -> Tensor:
        return _F.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _F.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return _F.mod(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return _F.mod(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _F.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _F.pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _F.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _F.negative(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _F.abs(self)

    def __invert__(self) -> Tensor:
        return _F.logical_not(self) if self.data.dtype == np.bool_ else _F.invert(self)

    def __and__(self, other: Any) -> Tensor:
        return _F.logical_and(self, other)

    __rand__ = __and__

    def __or__(self, other: Any) -> Tensor:
        return _F.logical_or(self, other)

    __ror__ = __or__

    def __xor__(self, other: Any) -> Tensor:
        return _F.logical_xor(self, other)

    __rxor__ = __xor__

    # comparisons return boolean tensors (no gradient)
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _F.equal(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _F.not_equal(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _F.less(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _F.less_equal(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _F.greater(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _F.greater_equal(self, other)

    # ---- in-place ------------------------------------------------------------------------
    def __iadd__(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.add, other)

    def __isub__(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.subtract, other)

    def __imul__(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.multiply, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.divide, other)

    def __ipow__(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.pow, other)

    def __getitem__(self, index: Any) -> Tensor:
        return _F.getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        _F.setitem(self, index, value)

    def add_(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.add, other)

    def sub_(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.subtract, other)

    def mul_(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.multiply, other)

    def div_(self, other: Any) -> Tensor:
        return _F.inplace(self, _F.divide, other)

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        _F.setitem(self, Ellipsis, value)
        return self

    def copy_(self, src: Any) -> Tensor:
        _F.setitem(self, Ellipsis, src)
        return self

    # ---- op methods ------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        return _F.reshape(self, _shape_args(shape))

    view = reshape

    def transpose(self, *axes: Any) -> Tensor:
        """NumPy's transpose: reverses the axes, or permutes them as given."""
        return _F.transpose(self, _shape_args(axes) if axes else None)

    def permute(self, *dims: Any) -> Tensor:
        return _F.permute(self, *_shape_args(dims))

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        return _F.swapaxes(self, axis1, axis2)

    def expand_dims(self, axis: Any) -> Tensor:
        return _F.expand_dims(self, axis)

    def unsqueeze(self, dim: int) -> Tensor:
        return _F.expand_dims(self, dim)

    def squeeze(self, axis: Any = None) -> Tensor:
        return _F.squeeze(self, axis)

    def broadcast_to(self, shape: Any) -> Tensor:
        return _F.broadcast_to(self, shape)

    def expand(self, *shape: Any) -> Tensor:
        shape = _shape_args(shape)
        full = tuple(s if n == -1 else n for n, s in zip(shape, (1,) * (len(shape) - self.ndim) + self.shape))
        return _F.broadcast_to(self, full)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _F.flatten(self, start_dim, end_dim)

    def ravel(self) -> Tensor:
        return _F.ravel(self)

    def flip(self, axis: Any = None) -> Tensor:
        return _F.flip(self, axis)

    def repeat(self, repeats: Any, axis: int | None = None) -> Tensor:
        """NumPy's repeat (each element repeated); see :meth:`tile` for PyTorch's ``repeat``."""
        return _F.repeat(self, repeats, axis)

    def tile(self, reps: Any) -> Tensor:
        return _F.tile(self, reps)

    def split(self, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
        return _F.split(self, indices_or_sections, axis)

    def sum(self, axis: Any = None, keepdims: bool = False, dtype: Any = None, out: Any = None) -> Tensor:
        _no_out(out, "sum")
        return _F.sum(self, axis, keepdims, dtype=dtype)

    def mean(self, axis: Any = None, keepdims: bool = False, dtype: Any = None, out: Any = None) -> Tensor:
        _no_out(out, "mean")
        return _F.mean(self, axis, keepdims, dtype=dtype)

    def var(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        return _F.var(self, axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        return _F.std(self, axis, ddof=ddof, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False, out: Any = None) -> Tensor:
        _no_out(out, "max")
        return _F.max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False, out: Any = None) -> Tensor:
        _no_out(out, "min")
        return _F.min(self, axis, keepdims)

    def prod(self, axis: Any = None, keepdims: bool = False, dtype: Any = None, out: Any = None) -> Tensor:
        _no_out(out, "prod")
        return _F.prod(self, axis, keepdims)

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _F.logsumexp(self, axis, keepdims)

    def norm(self, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _F.norm(self, ord, axis, keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return _F.argmax(self, axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return _F.argmin(self, axis, keepdims)

    def cumsum(self, axis: int | None = None) -> Tensor:
        return _F.cumsum(self, axis)

    def cumprod(self, axis: int | None = None) -> Tensor:
        return _F.cumprod(self, axis)

    def any(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _F.any(self, axis, keepdims)

    def all(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _F.all(self, axis, keepdims)

    def dot(self, other: Any) -> Tensor:
        return _F.dot(self, other)

    def matmul(self, other: Any) -> Tensor:
        return _F.matmul(self, other)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 (NumPy's names)
        return _F.clip(self, min, max)

    clamp = clip

    def pow(self, exponent: Any) -> Tensor:
        return _F.pow(self, exponent)

    def maximum(self, other: Any) -> Tensor:
        return _F.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return _F.minimum(self, other)

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        return _F.leaky_relu(self, negative_slope)

    def gelu(self, approximate: str = "none") -> Tensor:
        return _F.gelu(self, approximate)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
        return _F.softplus(self, beta, threshold)

    def diagonal(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
        return _F.diagonal(self, offset, axis1, axis2)

    def trace(self, offset: int = 0) -> Tensor:
        return _F.trace(self, offset)

    def take(self, indices: Any, axis: int | None = None) -> Tensor:
        return _F.take(self, indices, axis)

    def softmax(self, axis: int = -1) -> Tensor:
        return _F.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return _F.log_softmax(self, axis)


def _unary_method(name: str) -> Callable[[Tensor], Tensor]:
    def method(self: Tensor) -> Tensor:
        return getattr(_F, name)(self)

    method.__name__ = name
    method.__doc__ = f"``gg.{name}(self)``"
    return method


for _name in ("exp", "log", "log1p", "expm1", "log2", "log10", "sqrt", "rsqrt", "square", "abs", "sign",
              "sin", "cos", "tan", "tanh", "sinh", "cosh", "arcsin", "arccos", "arctan", "sigmoid", "relu",
              "silu", "erf", "floor", "ceil", "round", "reciprocal", "isnan", "isfinite", "logical_not"):
    setattr(Tensor, _name, _unary_method(_name))
del _name


def _init(t: Tensor, data: Any, device: str, requires_grad: bool, node: Any, version: list) -> None:
    t.data = data
    t.grad = None
    t.requires_grad = requires_grad
    t._node = node
    t._version = version
    t.device = device
    t._tangents = None
    t._extra = None
    t._lazy = None


def _computed_slot(name: str) -> property:
    """A PendingTensor's ``data`` or ``_node``: reading it computes the chain first."""
    slot = Tensor.__dict__[name]

    def get(self: Tensor) -> Any:
        from gpugrad.fusion.lazy import materialize

        materialize(self)
        return slot.__get__(self, Tensor)

    return property(get, slot.__set__, doc=f"Tensor.{name}, computed on first read")


# Pending tensors one of whose defaulted slots was set (or read and kept), by id, with a weak
# reference that drops the entry when the tensor dies (a WeakSet would compare tensors with
# ``==``, an op): ``settle_pending`` must keep those values. Any other is settled with four
# stores and no reads (a read of an unset slot raises inside the property: 0.6 us each).
_TOUCHED: dict[int, Any] = {}


def _touch(t: Tensor) -> None:
    key = id(t)
    if key not in _TOUCHED:
        _TOUCHED[key] = weakref.ref(t, lambda _, key=key: _TOUCHED.pop(key, None))


def _touched(t: Tensor) -> bool:
    ref = _TOUCHED.get(id(t))
    return ref is not None and ref() is t


def _defaulted_slot(name: str, default: Any, keep: bool = False) -> property:
    """A slot a pending tensor leaves unset (one store less per op): ``default()`` until set;
    with ``keep`` the first value read is stored (a version counter must stay the same list)."""
    slot = Tensor.__dict__[name]

    def get(self: Tensor) -> Any:
        try:
            return slot.__get__(self, Tensor)
        except AttributeError:
            value = default()
            if keep:
                slot.__set__(self, value)
                _touch(self)
            return value

    def set_(self: Tensor, value: Any) -> None:
        slot.__set__(self, value)
        _touch(self)

    return property(get, set_, doc=f"Tensor.{name}")


_GRAD_SLOT, _TANGENTS_SLOT, _EXTRA_SLOT, _VERSION_SLOT = (Tensor.__dict__[n] for n in
                                                          ("grad", "_tangents", "_extra", "_version"))


def pending_version(t: Tensor) -> list:
    """The version counter a pending tensor ``t`` will have once computed (a new one, unless
    one was read or set already): pass it to :func:`settle_pending`."""
    return t._version if _TOUCHED and _touched(t) else [0]


def settle_pending(t: Tensor, version: list) -> None:
    """Set the slots a pending tensor leaves unset (``grad``, ``_tangents``, ``_extra``: None
    unless set) and its version counter, before ``t`` becomes a plain Tensor (internal:
    gpugrad.fusion.lazy)."""
    if _TOUCHED and _touched(t):
        del _TOUCHED[id(t)]
        _GRAD_SLOT.__set__(t, t.grad)
        _TANGENTS_SLOT.__set__(t, t._tangents)
        _EXTRA_SLOT.__set__(t, t._extra)
    else:
        _GRAD_SLOT.__set__(t, None)
        _TANGENTS_SLOT.__set__(t, None)
        _EXTRA_SLOT.__set__(t, None)
    _VERSION_SLOT.__set__(t, version)


class PendingTensor(Tensor):
    """A tensor of a fused chain not computed yet (gpugrad.fusion.lazy): its ``data`` and
    ``_node`` slots are unset, and reading either computes the chain. Computing it makes it a
    plain Tensor again (its class is switched back), so that reads of an ordinary tensor never
    meet these properties. Its other slots are read as a Tensor's (the properties below are
    data descriptors found before the slots; a ``__getattr__`` instead would slow every
    attribute read of a pending tensor threefold, 22 ns against 7, and the recording of an op
    reads several). ``grad``, ``_tangents``, ``_extra`` (None until set) and ``_version`` (made on
    first read) are left unset by recording; gpugrad.fusion.lazy sets them before a computed
    tensor becomes a plain Tensor. ``isinstance(t, Tensor)`` holds for both.
    """

    __slots__ = ()

    data = _computed_slot("data")
    _node = _computed_slot("_node")
    grad = _defaulted_slot("grad", lambda: None)
    _tangents = _defaulted_slot("_tangents", lambda: None)
    _extra = _defaulted_slot("_extra", lambda: None)
    _version = _defaulted_slot("_version", lambda: [0], keep=True)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # pickle and copy: computed first, so that they see (and rebuild) a plain Tensor
        self.data  # noqa: B018
        return Tensor.__reduce_ex__(self, protocol)


def make_tensor(data: Any, device: str, requires_grad: bool = False, node: Any = None,
                version: list | None = None) -> Tensor:
    """Wrap an array without copying (internal: no validation, the fast path of every op)."""
    t = _new(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = requires_grad
    t._node = node
    t._version = [0] if version is None else version
    t.device = device
    t._tangents = None
    t._extra = None
    t._lazy = None
    return t


def _host(t: Tensor) -> np.ndarray:
    """The data on the host without a copy on the CPU (internal, read-only use)."""
    return t.data if t.device == "cpu" else t.data.get()


def _shape_args(args: tuple) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(args) == 1 and not isinstance(args[0], numbers.Integral):
        if args[0] is None:
            return None  # type: ignore[return-value]
        return tuple(args[0])
    return tuple(args)


def _looks_like_dtype(name: str) -> bool:
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


def _no_out(out: Any, name: str) -> None:
    if out is not None:
        raise GpugradError(f"{name}: the out= argument is not supported (tensors are immutable results)")


def _grad_argument(t: Tensor, grad: Any) -> Any:
    """Validate the ``grad`` passed to backward: same shape and device as the tensor."""
    from gpugrad.errors import DeviceError, ShapeError

    if isinstance(grad, Tensor):
        if grad.device != t.device:
            raise DeviceError(f"backward: grad is on {grad.device} but the output is on {t.device}")
        if grad.shape != t.shape:
            raise ShapeError(f"backward: grad has shape {grad.shape} but the output has shape {t.shape}")
        return grad
    arr = backend_for(t.device).asarray(grad, dtype=t.dtype)
    if arr.shape != t.shape:
        raise ShapeError(f"backward: grad has shape {arr.shape} but the output has shape {t.shape}")
    return arr


_ = STATE  # the op path reads grad mode through gpugrad.autograd.state

_ENGINE_RUN: list = []  # the engine's run_backward, imported at the first backward (the engine imports this module)


def _engine_run() -> Any:
    from gpugrad.autograd.engine import run_backward

    _ENGINE_RUN.append(run_backward)
    return run_backward


_NO_PARAMS: dict = {}  # shared by operator calls: elementwise ops never modify their params
# Bound by gpugrad.ops.elementwise once the ops exist (they import this module).
_ADD: Any = None
_SUB: Any = None
_MUL: Any = None
_DIV: Any = None

from gpugrad import ops as _F  # noqa: E402  (ops import this module; methods resolve names at call time)

# PyTorch's dim=/keepdim= beside axis=/keepdims= on the methods (gpugrad.ops.spellings).
from gpugrad.ops.spellings import accepts_dim as _accepts_dim  # noqa: E402

for _name in ("sum", "mean", "var", "std", "max", "min", "prod", "logsumexp", "norm", "argmax", "argmin", "cumsum",
              "cumprod", "any", "all", "squeeze", "expand_dims", "flip", "repeat", "split", "softmax", "log_softmax",
              "take"):
    setattr(Tensor, _name, _accepts_dim(getattr(Tensor, _name)))
del _name
