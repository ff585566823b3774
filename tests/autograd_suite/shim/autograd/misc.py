"""autograd.misc: ``flatten`` (a pytree as one differentiable vector and its inverse) on
gpugrad.numpy; ``const_graph`` (graph caching by the tracer) is autograd-internal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as onp

import gpugrad.numpy as gnp
from autograd.tracer import _internal
from gpugrad.autograd import pytree

const_graph = _internal("misc.const_graph")


def flatten(value: Any) -> tuple[Any, Callable[[Any], Any]]:
    leaves, structure = pytree.flatten(value)
    shapes = [onp.shape(leaf) if not hasattr(leaf, "shape") else tuple(leaf.shape) for leaf in leaves]
    if not leaves:
        return onp.zeros(0), lambda vector: pytree.unflatten(structure, [])
    vector = gnp.concatenate([gnp.ravel(leaf) for leaf in leaves])

    def unflatten(vector: Any) -> Any:
        out, pos = [], 0
        for shape in shapes:
            n = int(onp.prod(shape, dtype=onp.int64))
            piece = gnp.reshape(vector[pos:pos + n], shape)
            out.append(piece if shape else piece[()] if not hasattr(piece, "requires_grad") else piece)
            pos += n
        return pytree.unflatten(structure, out)

    return vector, unflatten
