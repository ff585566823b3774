"""The ``gpugrad`` command line: ``gpugrad train``, ``gpugrad bench`` and ``gpugrad info`` (see
gpugrad.cli.main)."""

from gpugrad.errors import GpugradError


class UsageError(GpugradError):
    """A bad option or a missing optional dependency: ``gpugrad`` prints one line on stderr and
    exits with status 2. Example: ``raise UsageError("--plot needs matplotlib")``."""
