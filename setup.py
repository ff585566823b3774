"""Packaging glue that pyproject.toml cannot express (all other settings are there).

Every ``gpugrad*`` package is found automatically, and the top-level ``kernels/`` folder (the
CUDA sources, where CMake and nvcc read them) is installed as the package ``gpugrad.kernels``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["gpugrad", "gpugrad.*"]), "gpugrad.kernels"],
    package_dir={"gpugrad.kernels": "kernels"},
)
