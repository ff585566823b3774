"""pytest-benchmark suite: conv2d forward+backward (needs gpugrad.nn).

Run with ``pytest benchmarks/test_conv.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["conv2d"]


def test_conv(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
