"""pytest-benchmark suite: sum / mean / softmax over rows and columns.

Run with ``pytest benchmarks/test_reductions.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["reductions"]


def test_reductions(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
