"""Utilities in PyTorch's layout (``gpugrad.utils.checkpoint``, ``gpugrad.utils.data``)."""
