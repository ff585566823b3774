"""Testing aids that ship with gpugrad (as ``numpy.testing`` ships with NumPy).

:mod:`gpugrad.testing.cuda_emulator` is an emulated CUDA device: with it, ``device="cuda"`` runs
gpugrad's real CUDA backend and its real kernels, compiled for the host, on machines without a
GPU, so GPU code paths can be tested in CPU-only CI. Switch it on with the environment variable
``GPUGRAD_CUDA_EMULATOR=1`` (before ``import gpugrad``) or ``cuda_emulator.enable()``.
"""
