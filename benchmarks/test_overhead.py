"""pytest-benchmark suite: per-op overhead: 100 small elementwise ops, forward + backward.

Run with ``pytest benchmarks/test_overhead.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["chain"]


def test_overhead(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
