"""Gradient checkpointing: run a function without keeping its intermediates and recompute them
during the backward pass (memory for time), as HIPS autograd's ``checkpoint`` and PyTorch's
``torch.utils.checkpoint.checkpoint``.

The whole call is one node on the tape that saves only its inputs. Its backward runs the
function again with gradients enabled and pulls the incoming gradient through that fresh graph;
with ``create_graph`` (and in forward mode) the recomputation is itself differentiable. The CPU
random stream is rewound for the recomputation, so dropout masks agree.

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
from gpugrad.autograd.grad_mode import enable_grad, no_grad
from gpugrad.autograd.state import STATE
from gpugrad.errors import GpugradError
from gpugrad.ops.base import Op, apply
from gpugrad.tensor import Tensor, make_tensor


class _Checkpoint(Op):
    """params: ``fn`` (tensors -> list of output tensors), ``info`` (filled by forward: output
    shapes and dtypes, the packed dtype, the RNG state to replay)."""

    name = "checkpoint"
    save_inputs = True

    def forward(self, B: Any, args: list, params: dict) -> Any:
        from gpugrad.factories import cpu_generator

        info = params["info"]
        info["rng"] = cpu_generator().bit_generator.state
        device = params["device"]
        with no_grad():
            outs = params["fn"](*[make_tensor(a, device) for a in args])
        info["shapes"] = [o.shape for o in outs]
        info["dtypes"] = [o.dtype for o in outs]
        info["dtype"] = np.result_type(*info["dtypes"])
        return B.concatenate([B.reshape(B.astype(o.data, info["dtype"]), (-1,)) for o in outs], 0)

    def _recompute(self, inputs: list, params: dict) -> Tensor:
        """The packed output of the function run again, recorded on the tape."""
        import gpugrad.ops as ops
        from gpugrad.factories import cpu_generator

        info = params["info"]
        rng = cpu_generator().bit_generator
        state = rng.state
        rng.state = info["rng"]
        try:
            with enable_grad():
                outs = params["fn"](*inputs)
                return ops.concatenate([ops.reshape(ops.astype(o, info["dtype"]), (-1,)) for o in outs], 0)
        finally:
            rng.state = state

    def vjp(self, ns: Any, g: Any, args: Any, out: Any, params: dict, needs: tuple) -> tuple:
        from gpugrad.autograd.engine import run_backward

        create_graph = isinstance(g, Tensor)
        device = params["device"]
        if create_graph:
            inputs = list(args)
        else:
            inputs = [make_tensor(a, device, need) for a, need in zip(args, needs)]
        packed = self._recompute(inputs, params)
        wanted = [t for t, need in zip(inputs, needs) if need]
        grads = iter(run_backward([packed], [g], retain_graph=create_graph, create_graph=create_graph,
                                  inputs=wanted) if packed.requires_grad else [None] * len(wanted))
        result = []
        for t, need in zip(inputs, needs):
            if not need:
                result.append(None)
                continue
            gi = next(grads)
            if gi is None:
                from gpugrad.factories import zeros_like

                gi = zeros_like(t)
            result.append(gi if create_graph else gi.data)
        return tuple(result)

    def jvp(self, ns: Any, tangents: tuple, args: tuple, out: Any, params: dict) -> Any:
        from gpugrad.autograd.functional import jvp
        from gpugrad.factories import zeros_like

        tans = tuple(t if t is not None else zeros_like(a) for t, a in zip(tangents, args))
        return jvp(lambda *xs: self._recompute(list(xs), params), args, tans)[1]


_CHECKPOINT = _Checkpoint()


def checkpoint(fun: Callable[..., Any]) -> Callable[..., Any]:
    """``fun`` wrapped so that its intermediates are recomputed in the backward pass instead of
    being kept (HIPS autograd's ``checkpoint``). ``fun`` takes and returns tensors (any
    tuple/list/dict nesting of them; other arguments pass through unchanged).

    Example: ``layer = gg.checkpoint(lambda x: gg.relu(x @ w)); layer(x).sum().backward()``.
    """

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        leaves, structure = pytree.flatten(list(args))
        slots = [i for i, leaf in enumerate(leaves) if isinstance(leaf, Tensor)]
        tracked = any(leaves[i].requires_grad or leaves[i]._tangents for i in slots)
        if not tracked or not STATE.grad_enabled and not STATE.fw_levels:
            return fun(*args, **kwargs)
        out_structure: list = []

        def flat_fn(*tensors: Tensor) -> list[Tensor]:
            filled = list(leaves)
            for i, t in zip(slots, tensors):
                filled[i] = t
            result = fun(*pytree.unflatten(structure, filled), **kwargs)
            out_leaves, out_struct = pytree.flatten(result)
            if not all(isinstance(o, Tensor) for o in out_leaves) or not out_leaves:
                raise GpugradError("checkpoint: the function must return tensors (or a tuple/list/dict of them)")
            out_structure[:] = [out_struct]
            return out_leaves

        info: dict = {}
        device = leaves[slots[0]].device
        packed = apply(_CHECKPOINT, tuple(leaves[i] for i in slots), {"fn": flat_fn, "info": info, "device": device})
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
