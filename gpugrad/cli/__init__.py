"""The ``gpugrad`` command line: ``gpugrad bench`` and ``gpugrad info`` (see gpugrad.cli.main)."""
