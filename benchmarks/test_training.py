"""pytest-benchmark suite: MLP, CNN and small-transformer training steps.

Run with ``pytest benchmarks/test_training.py --benchmark-enable`` (see benchmarks/README.md).
"""

from collections.abc import Callable

WORKLOADS = ["mlp", "cnn", "transformer"]


def test_training(bench_case: tuple, run_case_benchmark: Callable[[tuple], None]) -> None:
    run_case_benchmark(bench_case)
