"""Errors of ``gpugrad.distributed``."""

from __future__ import annotations

from gpugrad.errors import GpugradError


class DistributedError(GpugradError, RuntimeError):
    """A distributed call failed: not initialised, a backend missing, mismatched ranks."""


class DistributedTimeoutError(DistributedError, TimeoutError):
    """A collective did not complete in time: another rank died, hung, or skipped it."""
