"""The registries of kernels that implement op rules, one per backend kind (gpugrad.ops.base):
``(op name or kernel_key, "forward" | "vjp") -> callable`` with the rule's signature. The NumPy
backend reads :data:`CPU`, every CUDA backend :data:`CUDA`; whoever provides a kernel (the CUDA
backend's hand-written ones, the fusion compiler) registers it here."""

from __future__ import annotations

from typing import Any

CPU: dict[tuple[str, str], Any] = {}
CUDA: dict[tuple[str, str], Any] = {}
