"""pytest-benchmark suite: elementwise forward+backward over a size sweep (1K to 64M with --bench-full).

Run with ``pytest benchmarks/test_elementwise.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["elementwise"]


def test_elementwise(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
