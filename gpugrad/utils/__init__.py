"""``gpugrad.utils``: helpers around training, under PyTorch's names (``gpugrad.utils.data``)."""
