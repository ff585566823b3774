"""Distributed benchmark: all-reduce bandwidth over message sizes, and data-parallel training
steps per second with 1 and 2 ranks.

    python benchmarks/distributed.py --json benchmarks/results/distributed-<machine>-<date>.json

launches itself under ``mpirun -n 1`` and ``mpirun -n 2`` (needs ``pip install 'gpugrad[mpi]'``),
prints a Markdown table and writes the JSON. Each rank runs one BLAS/OpenMP thread (set before
NumPy loads), so 2 ranks on a 2-core machine use both cores without oversubscribing them; the
1-rank run also uses one thread, so the two are the same per-rank work.

What is timed:

- ``all_reduce``: ``gpugrad.distributed.all_reduce(t)`` (sum, in place) of a float32 CPU tensor,
  1 KB to 64 MB; the median time of one call over repeated batches, after a barrier. Reported as
  algorithm bandwidth (message bytes / time) and bus bandwidth (x 2(n-1)/n, the bytes each rank
  must send and receive in a ring all-reduce: NCCL-tests' convention). The peer is mpi4py's
  blocking ``Allreduce`` on the same NumPy buffer: the cost of gpugrad's non-blocking start
  and deadline polling shows as the difference.
- ``training``: one SGD step (forward, backward with DDP's bucketed all-reduce, update) of the
  digits MLP 64-256-256-10 on a per-rank batch of 64 (so the global batch is 64 x ranks); steps
  per second and samples per second over all ranks. ``no_sync`` is the same step without any
  communication (each rank alone): the gap is what averaging the gradients costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = [1 << k for k in range(10, 27, 2)]  # 1 KB .. 64 MB, x4
PER_RANK_BATCH = 64


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _time_call(fn: Callable[[], object], budget: float) -> float:
    """Median seconds per call over batches (each at least 2 ms), for ``budget`` seconds and at
    least 5 batches. Rank 0 decides the batch length and when to stop, so every rank makes the
    same calls."""
    import gpugrad as gg
    import gpugrad.distributed as dist

    for _ in range(3):
        fn()
    n = 1
    while True:  # a batch lasts at least 2 ms (the same count on every rank: rank 0 decides)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - start
        flag = gg.tensor([took < 2e-3])
        dist.broadcast(flag, 0)
        if not bool(flag.item()):
            break
        n *= 2
    samples = []
    spent = 0.0
    rounds = 0
    while True:
        dist.barrier()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - start
        samples.append(took / n)
        spent += took
        rounds += 1
        go = gg.tensor([spent < budget or rounds < 5])
        dist.broadcast(go, 0)  # every rank runs the same number of rounds
        if not bool(go.item()):
            break
    return _median(samples)


def worker(budget: float) -> dict:
    import numpy as np
    from mpi4py import MPI

    import gpugrad as gg
    import gpugrad.distributed as dist
    import gpugrad.nn.functional as F
    from gpugrad.models.mlp import MLP
    from gpugrad.nn.parallel import DistributedDataParallel

    dist.init()
    n = dist.world_size()
    comm = MPI.COMM_WORLD
    rows = []
    if n > 1:
        for size in SIZES:
            t = gg.tensor(np.ones(size // 4, dtype=np.float32))
            buf = np.ones(size // 4, dtype=np.float32)
            ours = _time_call(lambda t=t: dist.all_reduce(t), budget / len(SIZES))
            raw = _time_call(lambda buf=buf: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM), budget / len(SIZES))
            bus = 2 * (n - 1) / n
            rows.append({"bytes": size, "seconds": ours, "algbw_GBps": size / ours / 1e9,
                         "busbw_GBps": size * bus / ours / 1e9, "mpi4py_seconds": raw,
                         "mpi4py_busbw_GBps": size * bus / raw / 1e9})
    rng = np.random.default_rng(dist.rank())
    model = DistributedDataParallel(MLP(64, (256, 256), 10))
    opt = gg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = gg.tensor(rng.standard_normal((PER_RANK_BATCH, 64)).astype(np.float32))
    y = gg.tensor(rng.integers(0, 10, PER_RANK_BATCH))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def step_alone() -> None:
        with model.no_sync():
            step()

    synced = _time_call(step, budget / 2)
    alone = _time_call(step_alone, budget / 2)
    training = {"ranks": n, "per_rank_batch": PER_RANK_BATCH, "global_batch": PER_RANK_BATCH * n,
                "buckets": len(model._buckets), "step_seconds": synced, "steps_per_second": 1 / synced,
                "samples_per_second": PER_RANK_BATCH * n / synced, "no_sync_step_seconds": alone}
    dist.destroy()
    return {"all_reduce": rows, "training": training}


def launch(ranks: int, budget: float) -> dict:
    out = ROOT / "benchmarks" / "results" / f".distributed-{ranks}.json"
    mpirun = Path(sys.executable).parent / "mpirun"
    command = [str(mpirun if mpirun.is_file() else "mpirun"), "-n", str(ranks)]
    version = subprocess.run(command[:1] + ["--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version:
        command.append("--oversubscribe")
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    subprocess.run(command + [sys.executable, __file__, "--worker", str(out), "--budget", str(budget)],
                   check=True, env=env, cwd=ROOT)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def table(results: dict) -> str:
    lines = ["| message | gpugrad all_reduce | bus bandwidth | mpi4py Allreduce | bus bandwidth |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for row in results["2"]["all_reduce"]:
        size = row["bytes"]
        label = f"{size >> 20} MB" if size >= 1 << 20 else f"{size >> 10} KB"
        lines.append(f"| {label} | {row['seconds'] * 1e6:,.0f} µs | {row['busbw_GBps']:.2f} GB/s | "
                     f"{row['mpi4py_seconds'] * 1e6:,.0f} µs | {row['mpi4py_busbw_GBps']:.2f} GB/s |")
    lines += ["", "| ranks | global batch | step (DDP) | steps/s | samples/s | step without communication |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key in ("1", "2"):
        t = results[key]["training"]
        lines.append(f"| {t['ranks']} | {t['global_batch']} | {t['step_seconds'] * 1e3:.2f} ms | "
                     f"{t['steps_per_second']:.0f} | {t['samples_per_second']:,.0f} | "
                     f"{t['no_sync_step_seconds'] * 1e3:.2f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of timing per launch (default 20)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        result = worker(args.budget)
        from gpugrad.distributed.launcher import detect

        launch_info = detect()
        if launch_info is None or launch_info.rank == 0:
            args.worker.write_text(json.dumps(result))
        return
    import numpy

    load_before = os.getloadavg()
    results = {str(n): launch(n, args.budget) for n in (1, 2)}
    load_after = os.getloadavg()
    document = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": numpy.__version__, "mpi": _mpi_version()},
        "note": ("2 ranks on 2 cores shared with other users of the machine, one BLAS thread per rank, "
                 "CPU tensors, Open MPI's shared-memory transport"),
        "date": time.strftime("%Y-%m-%d"),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "results": results,
    }
    print(table(results))
    print(f"load average (1 min) before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {args.json}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mpi_version() -> str:
    import importlib.util

    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py missing"
    out = subprocess.run([sys.executable, "-c", "from mpi4py import MPI; print(MPI.Get_library_version())"],
                         capture_output=True, text=True)
    return out.stdout.replace("\x00", "").strip().splitlines()[0] if out.stdout else "unknown"


if __name__ == "__main__":
    main()
