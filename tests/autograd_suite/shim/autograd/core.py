"""autograd.core: ``make_vjp``/``make_jvp`` map onto gpugrad; the rest is autograd-internal."""

from __future__ import annotations

from autograd.differential_operators import _make_jvp as make_jvp  # noqa: F401
from autograd.differential_operators import _make_vjp as make_vjp  # noqa: F401
from autograd.tracer import _internal, primitive  # noqa: F401

vspace = _internal("core.vspace")
defvjp = _internal("core.defvjp")
primitive_vjps: dict = {}
primitive_jvps: dict = {}
