"""Benchmark gpugrad against PyTorch, JAX, HIPS autograd and hand-written NumPy (those
installed), with every result checked against a float64 reference before it is timed.

Prints one table per workload: gpugrad's median time per step, each peer's median measured in
the same process and interleaved run by run, the ratios gpugrad/peer, and achieved GB/s and
TFLOP/s against the copy bandwidth and matmul rate measured in the same run. Exit status: 0,
1 when a correctness check failed or a library raised, 2 for a usage error.

Example::

    gpugrad bench --quick
    gpugrad bench --device cuda --json benchmarks/results/h100.json --plot h100.png
    gpugrad bench --only chain,mlp --threads 1
    gpugrad bench --show benchmarks/results/cpu-amd-epyc-2cpu-2026-11-22.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Any

HELP = "benchmark against PyTorch, JAX, autograd and hand-written NumPy (--quick < 1 min)"


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return x


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gpugrad bench``."""
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where to run (default auto: the first GPU if CuPy sees one, else the CPU)")
    p.add_argument("--quick", action="store_true", help="small sizes and short budgets: under a minute on 2 CPU cores")
    p.add_argument("--json", metavar="FILE", help="write every number, the device, driver, versions and date as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw time-vs-size curves per library (needs matplotlib)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="pin BLAS/OpenMP/PyTorch threads to N for the run (needs threadpoolctl)")
    p.add_argument("--only", type=_list, action="extend", metavar="NAMES",
                   help="comma-separated workloads, families or workload/case globs (see --list)")
    p.add_argument("--peers", type=_list, metavar="LIBS",
                   help="comma-separated subset of torch,jax,jax.jit,autograd,numpy (default: all installed)")
    p.add_argument("--budget", type=_positive_float, metavar="SECONDS",
                   help="timing budget per case, all libraries together (default 2.5, 0.25 with --quick)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    p.add_argument("--list", action="store_true", help="list the workloads and their cases, then exit")
    p.add_argument("--show", metavar="FILE", help="print the table of a run saved with --json, then exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    """Run ``gpugrad bench``; see the module docstring."""
    from gpugrad.bench import BenchError, Settings, format_table, plot, select, write_json
    from gpugrad.bench.runner import default_budget
    from gpugrad.cli import UsageError

    if args.show:
        return _show(args.show, args.plot)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib (pip install matplotlib)")
    if args.threads and importlib.util.find_spec("threadpoolctl") is None:
        raise UsageError("--threads needs threadpoolctl (pip install threadpoolctl)")
    for opt, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise UsageError(f"{opt} {path}: directory {directory} does not exist")
    settings = Settings(device=args.device, quick=args.quick, only=args.only, peers=args.peers,
                        threads=args.threads, seed=args.seed, command=getattr(args, "_argv", None))
    if args.budget:
        base = default_budget(args.quick)
        base.budget_s = args.budget
        base.max_case_s = max(base.max_case_s, 8 * args.budget)
        settings.budget = base
    try:
        if args.list:
            from gpugrad.bench.runner import resolve_device

            device, _ = resolve_device(args.device)
            settings.gpu = device != "cpu"
            _print_list(select(settings), device)
            return 0
        progress = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        result = run_bench(settings, progress)
    except BenchError as exc:
        raise UsageError(str(exc)) from None
    print(format_table(result), flush=True)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        panels = plot(result, args.plot)
        print(f"wrote {args.plot} ({panels} panels)", file=sys.stderr)
    failed = [(row["workload"], row["case"], lib) for row in result["rows"]
              for lib, r in row["results"].items() if r.get("status") == "failed"]
    return 1 if failed else 0


def _show(path: str, plot_path: str | None) -> int:
    """Print the table (and with --plot draw the curves) of a saved run."""
    import json

    from gpugrad.bench import format_table, plot
    from gpugrad.cli import UsageError

    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--show {path}: {exc}") from None
    if result.get("schema") != "gpugrad-bench/1":
        raise UsageError(f"--show {path}: not a gpugrad bench result (schema {result.get('schema')!r})")
    print(format_table(result))
    if plot_path:
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--plot needs matplotlib (pip install matplotlib)")
        plot(result, plot_path)
    return 0


def run_bench(settings: Any, progress: Any) -> dict:
    from gpugrad.bench import run as _run

    return _run(settings, progress)


def _print_list(pairs: list, device: str) -> None:
    print(f"workloads on {device} (pass names, families or workload/case globs to --only):")
    last = None
    for w, case in pairs:
        if w.name != last:
            print(f"  {w.name} [{w.family}]: {w.title}")
            last = w.name
        print(f"      {case.label}")
