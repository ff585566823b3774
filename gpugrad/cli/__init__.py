"""The `gpugrad` command line."""
