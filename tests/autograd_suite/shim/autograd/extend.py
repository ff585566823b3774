"""autograd.extend: defining primitives is autograd-internal (gpugrad: gg.custom_vjp/custom_jvp)."""

from __future__ import annotations

from autograd.tracer import Box, _internal, notrace_primitive, primitive  # noqa: F401

defvjp = _internal("extend.defvjp")
defjvp = _internal("extend.defjvp")
defvjp_argnum = _internal("extend.defvjp_argnum")
defjvp_argnum = _internal("extend.defjvp_argnum")
def_linear = _internal("extend.def_linear")
vspace = _internal("extend.vspace")


class VSpace:
    """autograd's vector-space type (internal)."""
