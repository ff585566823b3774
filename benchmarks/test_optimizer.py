"""pytest-benchmark suite: Adam step over 100 parameter tensors (needs gpugrad.optim).

Run with ``pytest benchmarks/test_optimizer.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["optimizer"]


def test_optimizer(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
