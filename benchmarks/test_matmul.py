"""pytest-benchmark suite: matmul forward+backward over sizes and dtypes.

Run with ``pytest benchmarks/test_matmul.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["matmul"]


def test_matmul(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
