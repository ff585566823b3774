"""The op protocol and the one path every op call takes: unwrap, check devices, compute on the
backend, record a tape node when a gradient is needed, push forward-mode tangents.

An op declares, once:

* ``forward(B, args, params)``: the value, computed with backend ``B`` on raw arrays;
* ``vjp(ns, g, args, out, params, needs)``: input gradients from the output gradient ``g``,
  written with the functions of namespace ``ns``, which is the backend (raw arrays, the fast
  path) or the differentiable tensor namespace (``create_graph``), so one rule serves both;
* ``jvp(ns, tangents, args, out, params)``: the output tangent (forward mode, tensor namespace);
* ``saves(needs)``: which inputs and whether the output the vjp needs, so nothing else is kept.

Each rule is written once. A backend may register a faster implementation of an op's rule
(a hand-written CUDA kernel) in its ``lowerings``, keyed by ``(op name, "forward" | "vjp")``
(``op.kernel_key`` instead of the name where an op has one),
with the rule's signature; :func:`forward` and :func:`vjp` pick it, and fall back to the rule
when there is none or when it declines a case by returning ``NotImplemented``.
"""

from __future__ import annotations

import functools
import traceback
from typing import Any

import numpy as np

from gpugrad.autograd.node import Node
from gpugrad.autograd.state import STATE
from gpugrad.backends import _BACKENDS, backend_for, device_of_array
from gpugrad.errors import AnomalyError, DeviceError, GpugradError, ShapeError, describe
from gpugrad.tensor import Tensor, make_tensor

_SCALARS = (int, float, bool, complex, np.generic)
_ndarray = np.ndarray


class Op:
    """Base class of every differentiable (or explicitly non-differentiable) op."""

    name = "op"
    differentiable = True
    view = False  # the output may share memory with input 0 (reshape, transpose, basic indexing)
    moves = False  # the output lives on params["device"] (to_device)
    fresh_grads = False  # vjp returns newly allocated arrays (or g itself): no copy needed for .grad
    accumulates = False  # the backend's ew_vjp_acc runs its backward (elementwise ops)
    save_inputs: Any = True  # True, False, or a per-input tuple of bools
    save_out = False
    kernel_key: str | None = None  # the name backends register kernels for it under (default: name)

    def __call__(self, *args: Any, **params: Any) -> Tensor:
        return apply(self, args, params)

    @functools.cached_property
    def lowering_keys(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """The keys backends register kernels for this op under: (forward, vjp)."""
        name = self.kernel_key or self.name
        return (name, "forward"), (name, "vjp")

    def saves(self, needs: tuple[bool, ...]) -> tuple[Any, bool]:
        return self.save_inputs, self.save_out

    def forward(self, B: Any, args: tuple, params: dict) -> Any:
        raise NotImplementedError

    def vjp(self, ns: Any, g: Any, args: tuple, out: Any, params: dict, needs: tuple) -> tuple:
        raise NotImplementedError(f"{self.name} has no reverse-mode rule")

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        raise NotImplementedError(f"{self.name} has no forward-mode rule")

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def forward(op: Op, B: Any, args: list, params: dict) -> Any:
    """``op``'s value on backend ``B``: the backend's registered kernel if it has one for the
    case, else the op's rule."""
    impl = B.lowerings.get(op.lowering_keys[0])
    if impl is not None:
        out = impl(B, args, params)
        if out is not NotImplemented:
            return out
    return op.forward(B, args, params)


def vjp(op: Op, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
    """``op``'s input gradients in namespace ``ns`` (a backend or the tensor namespace): a
    registered kernel if ``ns`` has one for the case, else the op's rule."""
    impl = ns.lowerings.get(op.lowering_keys[1])
    if impl is not None:
        g_in = impl(ns, g, args, out, params, needs)
        if g_in is not NotImplemented:
            return g_in
    return op.vjp(ns, g, args, out, params, needs)


def apply(op: Op, args: tuple, params: dict, impl: Any = None) -> Tensor:
    """Run ``op`` on ``args`` (tensors, arrays or scalars) and record it when needed.

    ``impl``: the op's forward already resolved for these operands, called on their arrays
    (fusion passes it for an op it learned to run at once: the NumPy function :func:`forward`
    reaches when no kernel is registered for the op)."""
    device = None
    rg = False
    datas = []
    vals = args
    for a in args:
        if isinstance(a, Tensor):
            d = a.device
            if device is None:
                device = d
            elif d != device:
                _mixed_devices(op, args)
            if a.requires_grad:
                rg = True
            datas.append(a.data)
        elif a is None or isinstance(a, _SCALARS):
            datas.append(a)
        else:
            vals, datas, device = _convert_constants(op, args)
            rg = any(isinstance(v, Tensor) and v.requires_grad for v in vals)
            break
    if device is None:
        device = "cpu"
    backend = _BACKENDS.get(device)
    if backend is None:
        backend = backend_for(device)
    try:
        if impl is None:  # (forward(), inline: this runs once per op)
            kernel = backend.lowerings.get(op.lowering_keys[0])
            out = NotImplemented if kernel is None else kernel(backend, datas, params)
            if out is NotImplemented:
                out = op.forward(backend, datas, params)
        else:
            out = impl(*datas)
    except GpugradError:
        raise
    except (ValueError, IndexError) as exc:
        raise ShapeError(f"{op.name}: {exc} (operands: {', '.join(describe(a) for a in args)})") from exc
    if out.__class__ is not _ndarray and isinstance(out, np.generic):
        out = np.asarray(out)
    if op.moves:
        device = params["device"]

    version = None
    base = None
    if op.view:
        a0 = vals[0]
        if isinstance(a0, Tensor) and _shares_memory(out, a0.data):
            version = a0._version
            base = a0._extra.get("base", a0) if a0._extra else a0
    if version is None:
        version = [0]
    if rg and STATE.grad_enabled and op.differentiable and out.dtype.kind in "fc":
        node = _record(op, vals, params, out, device, version)
        result = make_tensor(out, device, True, node, version)
    else:
        result = make_tensor(out, device, False, None, version)
    if base is not None:
        result._extra = {"base": base}
    if STATE.checks:
        if STATE.fw_levels:
            _forward_mode(op, vals, params, result)
        if STATE.anomaly:
            _check_forward(op, datas, out, device)
    return result


_new_node = object.__new__


def _edge(a: Any) -> Any:
    """What a consumer's node points to for input ``a``: its node, the leaf itself, or None."""
    if isinstance(a, Tensor) and a.requires_grad:
        return a if a._node is None else a._node
    return None


def _version_of(a: Any) -> Any:
    return a._version[0] if isinstance(a, Tensor) else None


_NEEDS = {(True,): (True,), (False,): (False,)}


def _record(op: Op, vals: tuple, params: dict, out: Any, device: str, version: list) -> Node:
    node = _new_node(Node)
    node.op = op
    node.params = params
    n = len(vals)
    # Unrolled for one and two inputs: this runs once per recorded op.
    if n == 1:
        e0 = _edge(vals[0])
        node.next = (e0,)
        needs = (e0 is not None,)
    elif n == 2:
        e0 = _edge(vals[0])
        e1 = _edge(vals[1])
        node.next = (e0, e1)
        needs = (e0 is not None, e1 is not None)
    else:
        node.next = nxt = tuple([_edge(a) for a in vals])
        needs = tuple([e is not None for e in nxt])
    node.needs = needs
    mask, save_out = op.saves(needs)
    if mask is True:
        node.inputs = vals if vals.__class__ is tuple else tuple(vals)
        node.versions = [_version_of(a) for a in vals]
    elif not mask:
        node.inputs = None
        node.versions = None
    elif n == 1:
        node.inputs = vals
        node.versions = (_version_of(vals[0]),)
    elif n == 2:
        a, b = vals
        m0, m1 = mask
        node.inputs = (a if m0 else None, b if m1 else None)
        node.versions = (_version_of(a) if m0 else None, _version_of(b) if m1 else None)
    else:
        node.inputs = tuple([a if m else None for a, m in zip(vals, mask)])
        node.versions = [_version_of(a) if m else None for a, m in zip(vals, mask)]
    if save_out:
        node.out = out
        node.out_vc = version
        node.out_version = version[0]
    else:
        node.out = None
        node.out_vc = None
    state = STATE
    node.seq = state.seq
    state.seq += 1
    node.shape = out.shape
    node.dtype = out.dtype
    node.device = device
    node.freed = False
    node.extra = {"trace": user_stack()} if state.anomaly else None
    return node


_PACKAGE_DIR = __file__.rsplit("/ops/", 1)[0]


def user_stack(limit: int = 6) -> list:
    """The innermost frames of the caller's code (gpugrad's own frames left out)."""
    frames = [f for f in traceback.extract_stack() if not f.filename.startswith(_PACKAGE_DIR)]
    return frames[-limit:]


def _shares_memory(out: Any, data: Any) -> bool:
    base = out.base
    if base is None:
        return False
    root = data.base if data.base is not None else data
    return base is root or base is data


def _mixed_devices(op: Op, args: tuple) -> None:
    devices = sorted({a.device for a in args if isinstance(a, Tensor)})
    raise DeviceError(
        f"{op.name}: all tensor operands must be on one device, got {' and '.join(devices)}; "
        "move one with .to(device) (nothing is copied implicitly)"
    )


def _convert_constants(op: Op, args: tuple) -> tuple[tuple, list, str | None]:
    """Slow path: some operands are arrays or nested lists; make them constants on the op's device."""
    from gpugrad.factories import _to_array

    device = None
    for a in args:
        if isinstance(a, Tensor):
            d = a.device
        elif a is None or isinstance(a, _SCALARS) or isinstance(a, (list, tuple)):
            continue
        else:
            d = device_of_array(a)
            if d is None:
                raise GpugradError(f"{op.name}: unsupported operand {describe(a)}")
        if device is None:
            device = d
        elif d != device:
            raise DeviceError(
                f"{op.name}: operands are on {device} and {d}; move one with .to(device) "
                "(nothing is copied implicitly)"
            )
    device = device or "cpu"
    vals = []
    datas = []
    for a in args:
        if isinstance(a, Tensor):
            vals.append(a)
            datas.append(a.data)
        elif a is None or isinstance(a, _SCALARS):
            vals.append(a)
            datas.append(a)
        else:
            arr, _ = _to_array(a, None, device, copy=False, python_floats_as=None)
            t = make_tensor(arr, device)
            vals.append(t)
            datas.append(arr)
    return tuple(vals), datas, device


def _forward_mode(op: Op, vals: tuple, params: dict, result: Tensor) -> None:
    """Push tangents of every active forward-mode level through ``op`` (outer levels first)."""
    masked = STATE.fw_masked
    active = STATE.fw_levels
    levels: set[int] = set()
    for a in vals:
        if isinstance(a, Tensor) and a._tangents:
            levels.update(level for level in a._tangents if level in active and level not in masked)
    if not levels or not op.differentiable or result.data.dtype.kind not in "fc":
        return
    from gpugrad.ops.namespace import tensor_namespace

    ns = tensor_namespace()
    for level in sorted(levels):
        tangents = tuple(
            a._tangents.get(level) if isinstance(a, Tensor) and a._tangents else None for a in vals
        )
        STATE.fw_masked = masked | {level}
        try:
            t = op.jvp(ns, tangents, vals, result, params)
        finally:
            STATE.fw_masked = masked
        if t is None:
            continue
        if t.shape != result.shape:
            t = ns.broadcast_to(t, result.shape)
        if t.dtype != result.dtype:
            t = ns.astype(t, result.dtype)
        if result._tangents is None:
            result._tangents = {}
            node = result._node
            if node is not None:
                # A rule that reads the saved output (create_graph, forward-over-reverse) must
                # see its tangents too: the node rebuilds the output tensor with this dict.
                if node.extra is None:
                    node.extra = {}
                node.extra["tangents"] = result._tangents
        result._tangents[level] = t


def _check_forward(op: Op, datas: list, out: Any, device: str) -> None:
    if out.dtype.kind != "f":
        return
    backend = backend_for(device)
    if backend.all_finite(out):
        return
    for d in datas:
        if getattr(d, "dtype", None) is not None and d.dtype.kind == "f" and not backend.all_finite(d):
            return  # the NaN/Inf came in with an input: an earlier op (or the user) produced it
        if isinstance(d, float) and not np.isfinite(d):
            return
    raise AnomalyError(
        f"{op.name} produced NaN or Inf in forward from finite inputs "
        f"(inputs: {', '.join(describe(d) for d in datas if d is not None)})"
    )
