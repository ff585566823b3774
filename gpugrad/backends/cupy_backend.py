"""The CUDA backend's former single module, kept as an import path: the code is in the package
:mod:`gpugrad.backends.cuda` (one module per job)."""

from gpugrad.backends.cuda import CupyBackend, aot_dir, broadcast_shape, layout, reduction_plan

__all__ = ["CupyBackend", "aot_dir", "broadcast_shape", "layout", "reduction_plan"]
