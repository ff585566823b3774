"""gpugrad's benchmark engine: the workloads behind ``gpugrad bench`` and the pytest-benchmark
suites in benchmarks/.

Every workload runs each library (gpugrad, PyTorch, JAX eager and jit, HIPS autograd and a
hand-written NumPy version, each where installed) on the same inputs, checks each result
against a float64 hand-written reference before timing it (a wrong answer is a failure, not a
time), then times the libraries interleaved, run by run, and reports medians, ratios, and on a
GPU achieved GB/s and TFLOP/s against the copy bandwidth and matmul rate measured in the same
run.

Example::

    from gpugrad.bench import Settings, format_table, run
    result = run(Settings(device="cpu", quick=True, only=["chain"]))
    print(format_table(result))
"""

from gpugrad.bench import workloads  # importing it registers the workloads
from gpugrad.bench.core import LIBRARIES, PEERS, WORKLOADS, Case, Impl, Inputs, Skip, Workload, register
from gpugrad.bench.report import format_table, goals, plot, to_jsonable, write_json
from gpugrad.bench.runner import BenchError, Settings, make_inputs, run, run_case, select
from gpugrad.bench.timing import Budget

__all__ = [
    "LIBRARIES", "PEERS", "WORKLOADS", "BenchError", "Budget", "Case", "Impl", "Inputs", "Settings", "Skip",
    "Workload", "format_table", "goals", "make_inputs", "plot", "register", "run", "run_case", "select",
    "to_jsonable", "write_json",
]
