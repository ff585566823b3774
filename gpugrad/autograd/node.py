"""A node of the tape: one recorded op application.

A node keeps only what its backward rule needs (the saved inputs and/or output chosen by the
op), the edges to the nodes (or leaf tensors) that produced its inputs, and the shape and
dtype of its output so that incoming gradients can be summed back and cast. It never refers to
its own output tensor (that would be a reference cycle keeping memory alive); when a rule needs
the output as a differentiable tensor, :meth:`Node.output_tensor` rebuilds one around the saved
array.
"""

from __future__ import annotations

from typing import Any


class Node:
    __slots__ = (
        "op", "params", "inputs", "versions", "next", "needs", "out", "out_vc", "out_version",
        "seq", "shape", "dtype", "device", "extra", "freed", "__weakref__",
    )
    # Filled field by field by ops.base._record (faster than an __init__ with arguments).
    # ``extra`` is None or a dict of the rarely used parts: "hooks" (gradient hooks),
    # "retained" (a weak reference to the output tensor, for retain_grad) and "trace" (the
    # forward call site, under detect_anomaly).

    @property
    def hooks(self) -> list:
        if self.extra is None:
            self.extra = {}
        return self.extra.setdefault("hooks", [])

    @property
    def trace(self) -> Any:
        return None if self.extra is None else self.extra.get("trace")

    @property
    def name(self) -> str:
        return self.op.name

    def __repr__(self) -> str:
        return f"<{self.op.name} backward, seq={self.seq}>"

    def output_tensor(self) -> Any:
        """The op's output as a tensor attached to this node (for create_graph rules)."""
        from gpugrad.tensor import make_tensor

        t = make_tensor(self.out, self.device, True, self, self.out_vc)
        if self.extra is not None:
            t._tangents = self.extra.get("tangents")
        return t

