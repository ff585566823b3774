"""Minimal pytrees: tuples (named ones too), lists and dicts of leaves (arrays, tensors, scalars), as JAX's
simple case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def flatten(tree: Any) -> tuple[list[Any], Any]:
    """(leaves in order, a structure to rebuild the tree with :func:`unflatten`)."""
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list) -> Any:
    if isinstance(tree, tuple):
        if hasattr(tree, "_fields"):  # a named tuple (e.g. numpy.linalg's EighResult)
            return ("namedtuple", type(tree), [_flatten(t, leaves) for t in tree])
        return ("tuple", [_flatten(t, leaves) for t in tree])
    if isinstance(tree, list):
        return ("list", [_flatten(t, leaves) for t in tree])
    if isinstance(tree, dict):
        keys = list(tree.keys())
        return ("dict", keys, [_flatten(tree[k], leaves) for k in keys])
    leaves.append(tree)
    return ("leaf",)


def unflatten(structure: Any, leaves: list[Any]) -> Any:
    it = iter(leaves)
    return _unflatten(structure, it)


def _unflatten(structure: Any, it: Any) -> Any:
    kind = structure[0]
    if kind == "leaf":
        return next(it)
    if kind == "tuple":
        return tuple(_unflatten(s, it) for s in structure[1])
    if kind == "namedtuple":
        return structure[1](*[_unflatten(s, it) for s in structure[2]])
    if kind == "list":
        return [_unflatten(s, it) for s in structure[1]]
    keys, subs = structure[1], structure[2]
    return {k: _unflatten(s, it) for k, s in zip(keys, subs)}


def tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    leaves, structure = flatten(tree)
    return unflatten(structure, [fn(leaf) for leaf in leaves])
