"""pytest-benchmark suite: forward-mode jvp and Hessian-vector product.

Run with ``pytest benchmarks/test_forward_mode.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["jvp", "hvp"]


def test_forward_mode(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
