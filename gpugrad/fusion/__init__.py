"""Fusion of elementwise chains (see :mod:`gpugrad.fusion.lazy`)."""

from gpugrad.fusion.lazy import enabled, flush, no_fusion

__all__ = ["enabled", "flush", "no_fusion"]
