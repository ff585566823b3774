"""Compare gpugrad's step time on benchmark cases between two checkouts, alternating runs.

`gpugrad bench` medians move 5-10% between runs on a small shared machine, more than a 3%
regression to be judged. This runs one case's gpugrad step alone in a fresh interpreter per
checkout, alternating before and after ``--reps`` times (each run: warm-up, then the best of 7
timed batches, BLAS and gpugrad's fused-chain pool pinned to 1 thread as ``gpugrad bench
--threads 1`` does), and prints the mean and best per side and their ratio.

Example::

    git worktree add /tmp/before 0b783e8
    python tools/ab_steps.py --before /tmp/before --after . --only "matmul/n=64 f32,mlp/64-256" --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

# Run inside each checkout: the first case of WORKLOAD whose label contains CASE.
_STEP = r"""
import os, time
from gpugrad.bench import core, runner
from gpugrad.bench.env import Env
import gpugrad.bench.workloads  # noqa: F401
name, _, sub = os.environ["AB_CASE"].partition("/")
settings = runner.Settings(device="cpu")
case = next(c for c in core.WORKLOADS[name].cases(settings) if sub in c.label)
ins = runner.make_inputs(core.WORKLOADS[name], case, settings)
with runner.pinned_threads(1):
    impl = core.WORKLOADS[name].builders["gpugrad"](case, Env("cpu"), ins)
    n = len(ins.sets)
    for i in range(20):
        impl.step(i % n)
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.1:
        impl.step(k % n)
        k += 1
    reps = max(3, int(k * 0.3 / 0.1 / 7))
    best = 1e9
    for _ in range(7):
        t0 = time.perf_counter()
        for i in range(reps):
            impl.step(i % n)
        best = min(best, (time.perf_counter() - t0) / reps)
print(best)
"""


def _run(checkout: str, case: str) -> float:
    env = dict(os.environ, AB_CASE=case, PYTHONPATH=os.path.abspath(checkout))
    out = subprocess.run([sys.executable, "-c", _STEP], cwd=checkout, env=env, capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"{case} in {checkout} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="checkout of the code before")
    p.add_argument("--after", required=True, help="checkout of the code after")
    p.add_argument("--only", required=True, help="comma-separated workload/case-substring, e.g. 'matmul/n=64 f32'")
    p.add_argument("--reps", type=int, default=5, help="alternations per case (default 5)")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error(f"--reps must be at least 1, got {args.reps}")
    print("| case | before mean | after mean | after / before | before best | after best |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for case in [c.strip() for c in args.only.split(",") if c.strip()]:
        times: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(args.reps):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                times[side].append(_run(getattr(args, side), case))
        b, a = statistics.mean(times["before"]), statistics.mean(times["after"])
        print(f"| {case} | {b * 1e6:.1f} us | {a * 1e6:.1f} us | {a / b:.3f} | {min(times['before']) * 1e6:.1f} us "
              f"| {min(times['after']) * 1e6:.1f} us |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
