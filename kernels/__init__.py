"""The CUDA sources of gpugrad (installed as package data; see gpugrad/backends/cuda_codegen.py)."""
