"""The backward pass: walk the tape from the outputs to the leaves, applying each op's vjp.

Only nodes reachable from the outputs are visited (and, when gradients are asked for specific
inputs, only those that lead to one of them), in decreasing sequence order, which is a valid
reverse topological order because a node's inputs are always recorded before it. The walk is
iterative, so a chain of 100,000 ops needs no recursion. Gradients arriving at a node from
several consumers are summed before the node runs; each node's saved values are freed right
after it runs unless ``retain_graph``.

Fast mode works on raw arrays with the backend's functions. With ``create_graph`` (or when a
forward-mode tangent must flow through the gradient computation) the same rules run on tensors
with differentiable ops, so the gradients are themselves on the tape.
"""

from __future__ import annotations

import operator
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpugrad.autograd.node import Node
from gpugrad.autograd.state import STATE
from gpugrad.backends import backend_for
from gpugrad.errors import AnomalyError, GraphError, InplaceError
from gpugrad.ops.base import vjp
from gpugrad.ops.namespace import tensor_namespace
from gpugrad.tensor import Tensor, make_tensor

# NumPy's floating-point error state for the pass: np.errstate(all="ignore") costs 0.7 us, 5%
# of a small matmul's backward. It sets a context variable of NumPy's; setting that variable to
# the value errstate gives it (remembered per current value, so a user's own settings, such as
# the buffer size, are kept) costs 0.2 us. Without that variable, errstate itself.
try:
    from numpy._core._ufunc_config import _extobj_contextvar as _NP_ERRSTATE
except ImportError:  # pragma: no cover (another NumPy)
    _NP_ERRSTATE = None
_IGNORING: dict[Any, Any] = {}  # NumPy's state -> the same with every error ignored


def _ignore_fp_errors() -> Any:
    """Ignore NumPy's floating-point errors until :func:`_restore_fp_errors` (with the token)."""
    if _NP_ERRSTATE is None:
        state = np.errstate(all="ignore")
        state.__enter__()
        return state
    now = _NP_ERRSTATE.get()
    ignoring = _IGNORING.get(now)
    if ignoring is None:
        with np.errstate(all="ignore"):
            ignoring = _NP_ERRSTATE.get()
        if len(_IGNORING) > 16:  # (a caller's np.errstate block makes a new state each time)
            _IGNORING.clear()
        _IGNORING[now] = ignoring
    return _NP_ERRSTATE.set(ignoring)


def _restore_fp_errors(token: Any) -> None:
    if _NP_ERRSTATE is None:
        token.__exit__(None, None, None)
    else:
        _NP_ERRSTATE.reset(token)


def _collect(root_nodes: Sequence[Node], hooked: list) -> list[Node]:
    """All nodes reachable from ``root_nodes``, in decreasing sequence order.

    ``hooked`` receives a (node, leaf) pair for every edge from a node to a leaf with extras
    (hooks), so that such a leaf can be finished as soon as its last consumer has run.
    """
    seen = set(root_nodes)
    order = list(seen)
    stack = list(seen)
    pop, push, add, keep, note = stack.pop, stack.append, seen.add, order.append, hooked.append
    while stack:
        node = pop()
        for edge in node.next:
            if edge.__class__ is Node:
                if edge not in seen:
                    add(edge)
                    keep(edge)
                    push(edge)
            elif edge is not None and edge._extra is not None:
                note((node, edge))
    order.sort(key=_SEQ, reverse=True)
    return order


def _release_plan(hooked: list) -> dict[Node, list] | None:
    """{node: leaves whose gradient is complete once ``node`` has run} for leaves with hooks.

    A leaf's gradient is complete after the last node (lowest sequence number) that feeds it, so
    its hooks, accumulation and post-accumulate hooks run then, while the rest of the backward
    pass is still to come (PyTorch's timing; DistributedDataParallel overlaps its all-reduce
    with the remaining backward this way).
    """
    last: dict[Any, Node] = {}
    for node, leaf in hooked:
        extra = leaf._extra
        if "hooks" not in extra and "post_hooks" not in extra:
            continue
        prev = last.get(leaf)
        if prev is None or node.seq < prev.seq:
            last[leaf] = node
    if not last:
        return None
    plan: dict[Node, list] = {}
    for leaf, node in last.items():
        plan.setdefault(node, []).append(leaf)
    return plan


_SEQ = operator.attrgetter("seq")


def _prune(order: list[Node], targets: set[int]) -> list[Node]:
    """Keep only the nodes from which some target (node or leaf id) is reachable."""
    needed: set[int] = set()
    for node in reversed(order):  # increasing seq: inputs before consumers
        if id(node) in targets:
            needed.add(id(node))
            continue
        for edge in node.next:
            if edge is not None and (id(edge) in needed or id(edge) in targets):
                needed.add(id(node))
                break
    return [n for n in order if id(n) in needed]


def run_backward(
    roots: Sequence[Any],
    root_grads: Sequence[Any],
    *,
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Any] | None = None,
    stop_at_inputs: bool = False,
) -> list[Any] | None:
    """Backpropagate ``root_grads`` (arrays, or tensors when ``create_graph``) from ``roots``.

    Without ``inputs`` the gradients are accumulated into the ``.grad`` of the leaves (as
    ``Tensor.backward`` does) and None is returned. With ``inputs`` nothing is accumulated:
    the gradient with respect to each input is returned as a tensor (None where the outputs do
    not depend on it). ``stop_at_inputs``: an input that is an op's output is a boundary: the
    gradient reaching it is returned, but not pulled further back (checkpoint uses this).
    """
    grads: dict[Any, Any] = {}
    for root, g in zip(roots, root_grads):
        key = root._node if root._node is not None else root
        prev = grads.get(key)
        grads[key] = g if prev is None else prev + g
    hooked: list = []
    order = _collect([k for k in grads if k.__class__ is Node], hooked)
    # With ``inputs`` nothing is accumulated: hooks run on the captured gradients at the end.
    release = _release_plan(hooked) if hooked and inputs is None else None
    due: list | None = None  # leaves complete after the previous node

    live: set[int] | None = None
    targets: set[int] = set()
    if inputs is not None:
        targets = {id(t._node if t._node is not None else t) for t in inputs}
        order = _prune(order, targets)
        live = targets | {id(n) for n in order}

    anomaly = STATE.anomaly
    tensor_ns = tensor_namespace() if create_graph else None
    last_device = None
    ns = tensor_ns
    # The gradient buffers this pass owns (see _add_gradient); none when the gradients are tensors.
    owned: set[Any] = set()
    track = None if create_graph else owned

    prev_enabled = STATE.grad_enabled
    STATE.grad_enabled = create_graph
    fp = None
    try:
        fp = _ignore_fp_errors()  # a rule may overflow to inf, or 0 * inf: as PyTorch, silently
        captured: dict[int, Any] = {}
        for node in order:
            if release is not None:
                if due is not None:
                    _finish_leaves(due, grads, owned, create_graph)
                due = release.get(node)
            g = grads.pop(node, None)
            if g is None:
                continue
            if node.extra is not None:
                g = _node_extras(node, g, create_graph)
            if live is not None:
                if id(node) in targets:
                    captured[id(node)] = g
                    if stop_at_inputs:
                        continue
                needs = tuple(e is not None and id(e) in live for e in node.next)
                if not any(needs):
                    continue
            else:
                needs = node.needs
            if tensor_ns is None and node.device is not last_device:
                last_device = node.device
                ns = backend_for(last_device)
            op = node.op
            saved = node.inputs
            if saved is not None:
                for value, version in zip(saved, node.versions):
                    if version is not None and value._version[0] != version:
                        _modified(op, value._version[0], version)
            out = node.out
            if out is not None:
                if node.out_vc[0] != node.out_version:
                    _modified(op, node.out_vc[0], node.out_version, output=True)
            elif node.freed:
                _freed(op)
            if owned and node in owned:
                g_owned = node.extra is None and (live is None or id(node) not in targets)
                owned.discard(node)
            else:
                g_owned = False
            g_in, fresh, acc = _node_vjp(ns, node, g, g_owned, needs, grads, owned, create_graph, live)
            if anomaly:
                _check_finite_backward(node, g_in, create_graph)
            for i, (edge, gi) in enumerate(zip(node.next, g_in)):
                if gi is None or edge is None or (live is not None and id(edge) not in live):
                    continue
                if acc is not None and gi is acc[i]:
                    continue  # the backend already added it into grads[edge]
                B = ns if create_graph or edge.device == node.device else backend_for(edge.device)
                if fresh.__class__ is tuple:
                    f = fresh[i]
                else:  # the op's gradients are new arrays: g itself, a view or a NumPy scalar are not
                    f = fresh and gi is not g and gi.base is None and not isinstance(gi, np.generic)
                if gi.shape != edge.shape:
                    gi = B.sum_to(gi, edge.shape)
                    # a new reduction result (not a view, not a NumPy scalar)
                    f = not create_graph and gi.base is None and not isinstance(gi, np.generic)
                if gi.dtype is not edge.dtype and gi.dtype != edge.dtype:
                    gi = B.astype(gi, edge.dtype)
                    f = not create_graph and not isinstance(gi, np.generic)
                if track is not None and edge not in grads:  # its first gradient (_add_gradient's
                    grads[edge] = gi                        # first case, inline: once per edge)
                    if f:
                        owned.add(edge)
                else:
                    _add_gradient(grads, track, edge, gi, f, B)
            if not retain_graph and (saved is not None or out is not None):
                node.inputs = None
                node.out = None
                node.freed = True
        # What is left is keyed by leaf tensors (and, when pruning, by nodes not needed).
        if inputs is not None:
            for key, g in grads.items():
                if key.__class__ is not Node and id(key) in targets:
                    captured[id(key)] = g if key._extra is None else _leaf_hooks(key, g, create_graph)
            result = []
            for t in inputs:
                g = captured.get(id(t._node if t._node is not None else t))
                if g is not None and not create_graph:
                    g = make_tensor(g, t.device)
                result.append(g)
            return result
        for leaf, g in grads.items():
            if leaf.__class__ is Node:
                continue
            if leaf._extra is not None:
                _finish_leaf(leaf, g, owned, create_graph)
            else:
                _accumulate(leaf, g, create_graph, leaf in owned)
        return None
    finally:
        STATE.grad_enabled = prev_enabled
        if fp is not None:
            _restore_fp_errors(fp)


def _node_vjp(ns: Any, node: Node, g: Any, g_owned: bool, needs: tuple, grads: dict, owned: set,
              create_graph: bool, live: set[int] | None) -> tuple[tuple, Any, Any]:
    """One node's input gradients: ``(g_in, fresh, acc)``.

    ``fresh``: per input, whether g_in[i] is a buffer this pass may own (see _add_gradient); or
    one bool for all, the op's ``fresh_grads`` (the caller then rules out g itself, views and
    NumPy scalars, which cannot be added into in place). An elementwise op's
    backend vjp also takes the owned buffers of its inputs' gradients (``acc``) and adds into
    them (on the GPU inside its one kernel): then ``g_in[i] is acc[i]``, already accumulated.
    """
    op = node.op
    if create_graph:
        out = node.output_tensor() if node.out is not None else None
        g_in = vjp(op, ns, g, node.inputs, out, node.params, needs)
        return g_in, False, None
    saved = node.inputs
    if saved is None:
        args = None
    elif len(saved) == 1:
        a = saved[0]
        args = (a.data if isinstance(a, Tensor) else a,)
    else:
        args = [a.data if isinstance(a, Tensor) else a for a in saved]
    if op.accumulates:
        acc = None
        if owned:
            for k, (edge, need) in enumerate(zip(node.next, needs)):
                if need and edge in owned and (live is None or id(edge) in live):
                    buf = grads[edge]
                    if buf.shape != node.shape or buf.dtype != node.dtype or (acc is not None and any(
                            b is buf for b in acc)):
                        continue  # the same input twice (x * x): one of them accumulates in place
                    if acc is None:
                        acc = [None] * len(needs)
                    acc[k] = buf
        g_in, fresh = ns.ew_vjp_acc(op, g, args, node.out, node.params, needs, acc, g_owned)
        return g_in, fresh, acc
    kernel = ns.lowerings.get(op.lowering_keys[1])  # (ops.base.vjp, inline: once per node)
    g_in = NotImplemented if kernel is None else kernel(ns, g, args, node.out, node.params, needs)
    if g_in is NotImplemented:
        g_in = op.vjp(ns, g, args, node.out, node.params, needs)
    return g_in, op.fresh_grads, None


def _add_gradient(grads: dict, owned: set | None, key: Any, gi: Any, fresh: bool, B: Any) -> None:
    """Add ``gi`` into the gradient of ``key`` (a node or a leaf): the one accumulation rule.

    ``owned`` holds the keys whose array in ``grads`` this pass allocated and nothing else
    refers to (a gradient a rule made anew, a sum of two gradients; never the incoming g
    itself, a view, or an array a hook has seen): such a buffer is added into in place and
    may become a leaf's ``.grad`` without a copy. Any other array is left untouched. With
    ``owned`` None (``create_graph``: the gradients are tensors on the tape) nothing is owned.
    """
    prev = grads.get(key)
    if owned is None:
        grads[key] = gi if prev is None else prev + gi
    elif prev is None:
        grads[key] = gi
        if fresh:
            owned.add(key)
    elif key in owned:
        B.add_into(prev, gi)
    else:
        grads[key] = B.accumulate(prev, gi)
        owned.add(key)


def _finish_leaves(leaves: list, grads: dict, owned: set, create_graph: bool) -> None:
    """Finish leaves whose gradient is complete before the end of the pass (see _release_plan)."""
    for leaf in leaves:
        g = grads.pop(leaf, None)
        if g is not None:
            _finish_leaf(leaf, g, owned, create_graph)


def _finish_leaf(leaf: Any, g: Any, owned: set, create_graph: bool) -> None:
    """A leaf with hooks: its gradient hooks, accumulation into .grad, then post-accumulate hooks."""
    g = _leaf_hooks(leaf, g, create_graph)
    if leaf._extra.get("hooks"):
        owned.discard(leaf)  # a hook saw (and may keep) the array: .grad gets a copy
    _accumulate(leaf, g, create_graph, leaf in owned)
    owned.discard(leaf)
    post = leaf._extra.get("post_hooks")
    if post:
        for hook in tuple(post):
            hook(leaf)


def _freed(op: Any) -> None:
    raise GraphError(
        f"{op.name}: trying to backward through the graph a second time (its saved values were "
        "freed after the first backward); pass retain_graph=True to the first backward"
    )


def _modified(op: Any, now: int, expected: int, output: bool = False) -> None:
    what = "its output" if output else "one of the tensors saved for its gradient"
    raise InplaceError(
        f"{op.name}: {what} was modified in place after being saved for backward "
        f"(version {now}, expected {expected}); use an out-of-place op (e.g. x = x + 1 instead of x += 1)"
    )


def _run_hooks(hooks: list, g: Any, create_graph: bool, device: str) -> Any:
    for hook in hooks:
        gt = g if create_graph else make_tensor(g, device)
        result = hook(gt)
        if result is not None:
            if not isinstance(result, Tensor):
                raise GraphError(f"a gradient hook must return a Tensor or None, got {type(result).__name__}")
            g = result if create_graph else result.data
    return g


def _leaf_hooks(leaf: Any, g: Any, create_graph: bool) -> Any:
    hooks = leaf._extra.get("hooks") if leaf._extra else None
    if hooks:
        g = _run_hooks(hooks, g, create_graph, leaf.device)
    return g


def _node_extras(node: Node, g: Any, create_graph: bool) -> Any:
    """Run a non-leaf tensor's hooks and fill its .grad when retain_grad() was called."""
    hooks = node.extra.get("hooks")
    if hooks:
        g = _run_hooks(hooks, g, create_graph, node.device)
    retained = node.extra.get("retained")
    if retained is not None:
        tensor = retained()
        if tensor is not None:
            _accumulate(tensor, g, create_graph)
    return g


def _accumulate(leaf: Any, g: Any, create_graph: bool, owned: bool = False) -> None:
    """Add ``g`` into ``leaf.grad`` (PyTorch's rule: gradients accumulate across backward calls).

    ``owned``: g was allocated by this backward pass and nothing else refers to it, so it can
    become ``.grad`` without a copy.
    """
    if create_graph:
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        return
    if leaf.grad is None:
        # A fresh, writable, unshared array: g may be a broadcast view or shared with another leaf.
        leaf.grad = make_tensor(g if owned else g.copy(), leaf.device)
    else:
        existing = leaf.grad
        if existing.requires_grad or existing.data.shape != g.shape:
            leaf.grad = make_tensor(existing.data + g, leaf.device)
        else:
            existing.data = existing.data + g


def _check_finite_backward(node: Node, g_in: tuple, create_graph: bool) -> None:
    backend = backend_for(node.device)
    for i, gi in enumerate(g_in):
        if gi is None:
            continue
        arr = gi.data if create_graph else gi
        if arr.dtype.kind == "f" and not backend.all_finite(arr):
            where = ""
            if node.trace:
                where = "\nThe forward op was called at:\n" + "".join(traceback.format_list(node.trace))
            raise AnomalyError(
                f"{node.op.name} backward produced NaN or Inf in the gradient of input {i} "
                f"(shape {tuple(arr.shape)}).{where}"
            )
