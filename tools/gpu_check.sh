#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU and CuPy: build the CUDA kernels ahead of time
# (when nvcc and cmake are there), then run every test marked `gpu` (the CUDA backend against
# NumPy, forward and backward, float16/32/64; the ahead-of-time vs run-time compiled kernels;
# the other suites' GPU tests) and the host-library tests.
#
#   tools/gpu_check.sh                 # all gpu tests
#   tools/gpu_check.sh -k matmul -x    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if ! "$PY" -c "import cupy; n = cupy.cuda.runtime.getDeviceCount(); print(f'CuPy {cupy.__version__}, {n} GPU(s):', \
  cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())"; then
    echo "gpu_check: needs CuPy and an NVIDIA GPU (see the error above)" >&2
    exit 1
fi

if command -v cmake >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1; then
    start=$(date +%s)
    cmake -S . -B build -DPython3_EXECUTABLE="$(command -v "$PY")" >/dev/null
    cmake --build build -j"$(nproc)"
    echo "kernels built in $(( $(date +%s) - start )) s"
    export GPUGRAD_AOT_DIR="$PWD/build/kernels" GPUGRAD_HOST_LIB_DIR="$PWD/build/kernels"
else
    echo "note: cmake/nvcc missing: kernels compile at run time (NVRTC); the AOT comparison test skips"
fi

PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -m gpu -ra -q "$@" tests/
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -m "not gpu" -ra -q tests/test_kernels_host.py tests/test_cuda.py "$@"
