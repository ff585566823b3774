"""pytest-benchmark suite: gather and scatter-add backward.

Run with ``pytest benchmarks/test_indexing.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["indexing"]


def test_indexing(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
