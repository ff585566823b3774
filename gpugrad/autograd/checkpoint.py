"""Gradient checkpointing: run a function without keeping its intermediates and recompute them
during the backward pass (memory for time), as HIPS autograd's ``checkpoint`` and PyTorch's
``torch.utils.checkpoint.checkpoint``.

The whole call becomes one node on the tape that keeps only its inputs. Tensors the function
closes over (parameters) are found by looking at the graph of the first run, which is dropped
right after, so they get their gradients too. The node's backward runs the function again with
gradients enabled and pulls the incoming gradient through that fresh graph; with
``create_graph`` the recomputation is itself differentiable. The CPU random stream is rewound for
the recomputation, so dropout masks agree. In forward mode (inside ``gg.jvp``) the function runs
as it is: there is nothing to recompute.

Example::

    block = gg.checkpoint(lambda x: gg.tanh(x @ w1) @ w2)
    loss = block(x).sum()
    loss.backward()            # block's activations are recomputed here
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from gpugrad.autograd import pytree
from gpugrad.autograd.grad_mode import enable_grad
from gpugrad.autograd.node import Node
from gpugrad.autograd.state import STATE
from gpugrad.errors import GpugradError
from gpugrad.fusion import lazy as _fusion
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor, make_tensor


class _Checkpoint(Op):
    """Inputs: the function's tensor arguments, then stand-ins for the tensors it closes over.
    params: ``fn`` (the arguments' tensors -> list of output tensors), ``n_args``, ``external``
    (the stand-ins), ``info`` (output shapes/dtypes, packed value, the RNG state to replay)."""

    name = "checkpoint"
    save_inputs = False

    def forward(self, B: Any, args: list, params: dict) -> Any:
        return params["info"].pop("packed")  # computed by the first run (see checkpoint())

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        from gpugrad.autograd.engine import run_backward
        from gpugrad.factories import zeros_like

        create_graph = isinstance(g, Tensor)
        n = params["n_args"]
        for t, version in zip(params["inputs"], params["versions"]):
            if t._version[0] != version:
                from gpugrad.errors import InplaceError

                raise InplaceError("checkpoint: an input of the checkpointed function was modified in place "
                                   "before the backward pass that recomputes the function")
        inputs = params["inputs"] if create_graph else [
            make_tensor(t.data, t.device, need) for t, need in zip(params["inputs"], needs[:n])]
        targets = inputs + params["external"]
        packed = _run(params, inputs, record=True)
        wanted = [t for t, need in zip(targets, needs) if need]
        if packed.requires_grad:
            grads = iter(run_backward([packed], [g], retain_graph=create_graph, create_graph=create_graph,
                                      inputs=wanted, stop_at_inputs=True))
        else:
            grads = iter([None] * len(wanted))
        result = []
        for t, need in zip(targets, needs):
            if not need:
                result.append(None)
                continue
            gi = next(grads)
            if gi is None:
                gi = zeros_like(t) if t.data is not None else None
            result.append(gi if create_graph or gi is None else gi.data)
        return tuple(result)


_CHECKPOINT = _Checkpoint()


def _run(params: dict, inputs: list, record: bool) -> Tensor:
    """The function's outputs packed into one flat tensor (recorded when ``record``), with the CPU
    random stream set to where the first run started."""
    import gpugrad.ops as ops
    from gpugrad.factories import cpu_generator

    info = params["info"]
    rng = cpu_generator().bit_generator
    state = rng.state
    if "rng" in info:
        rng.state = info["rng"]
    else:
        info["rng"] = state
    try:
        with enable_grad():
            outs = params["fn"](*inputs)
            if not all(isinstance(o, Tensor) for o in outs) or not outs:
                raise GpugradError("checkpoint: the function must return tensors (or a tuple/list/dict of them)")
            info["shapes"] = [o.shape for o in outs]
            info["dtypes"] = [o.dtype for o in outs]
            dtype = np.result_type(*info["dtypes"])
            return ops.concatenate([ops.reshape(ops.astype(o, dtype), (-1,)) for o in outs], 0)
    finally:
        if "rng" in info and record:
            rng.state = state


def _external(packed: Tensor, own: list[Tensor], start: int) -> list[Tensor]:
    """Stand-ins for what the graph of one run reaches outside the run (edges to leaves that
    require grad, or to nodes recorded before ``start``), other than the run's own inputs."""
    ours = {id(t) for t in own}
    found: dict[int, Tensor] = {}
    seen: set[int] = set()
    stack = [packed._node] if packed._node is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for edge in node.next:
            if edge is None:
                continue
            if edge.__class__ is Node:
                if edge.seq >= start:
                    stack.append(edge)
                elif id(edge) not in found:
                    found[id(edge)] = make_tensor(None, edge.device, True, edge)  # stands for the node's output
            elif id(edge) not in ours and id(edge) not in found:
                found[id(edge)] = edge  # a leaf the function closes over
    return list(found.values())


def checkpoint(fun: Callable[..., Any]) -> Callable[..., Any]:
    """``fun`` wrapped so that its intermediates are recomputed in the backward pass instead of
    being kept (HIPS autograd's ``checkpoint``). ``fun`` takes and returns tensors (any
    tuple/list/dict nesting of them; other arguments pass through unchanged); the tensors it
    closes over get their gradients as well.

    Example: ``layer = gg.checkpoint(lambda x: gg.relu(x @ w)); layer(x).sum().backward()``.
    """

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not STATE.grad_enabled or STATE.fw_levels:
            return fun(*args, **kwargs)
        leaves, structure = pytree.flatten(list(args))
        slots = [i for i, leaf in enumerate(leaves) if isinstance(leaf, Tensor)]
        out_structure: list = []

        def flat_fn(*tensors: Tensor) -> list[Tensor]:
            filled = list(leaves)
            for i, t in zip(slots, tensors):
                filled[i] = t
            out_leaves, out_struct = pytree.flatten(fun(*pytree.unflatten(structure, filled), **kwargs))
            out_structure[:] = [out_struct]
            return out_leaves

        inputs = [leaves[i] for i in slots]
        own = [make_tensor(t.data, t.device, t.requires_grad) for t in inputs]
        info: dict = {}
        params = {"fn": flat_fn, "info": info, "n_args": len(inputs), "inputs": inputs,
                  "versions": [t._version[0] for t in inputs]}
        _fusion.flush()  # a pending tensor the function closes over is computed before it, not in it
        start = STATE.seq
        first = _run(params, own, record=False)  # its graph shows what fn closes over, then is dropped
        external = _external(first, own, start)
        info["packed"] = first.data
        del first
        if not any(t.requires_grad for t in inputs) and not external:
            from gpugrad.factories import as_tensor

            packed = as_tensor(info.pop("packed"), device=inputs[0].device if inputs else None)
        else:
            params["external"] = external
            device = (inputs + external)[0].device
            packed = apply(_CHECKPOINT, tuple(inputs + external), {**params, "device": device})
        return pytree.unflatten(out_structure[0], _unpack(packed, info))

    return wrapped


def _unpack(packed: Tensor, info: dict) -> list[Tensor]:
    import gpugrad.ops as ops

    outs = []
    pos = 0
    for shape, dtype in zip(info["shapes"], info["dtypes"]):
        n = int(np.prod(shape, dtype=np.int64))
        piece = ops.reshape(ops.getitem(packed, (slice(pos, pos + n),)), shape)
        outs.append(piece if piece.dtype == dtype else ops.astype(piece, dtype))
        pos += n
    return outs
