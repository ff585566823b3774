"""Time gpugrad's step and one peer's on a benchmark case, alternating in one process.

`gpugrad bench` interleaves every library, so each step starts after the others' have run (cold
caches); this isolates two: per round, 40 steps of gpugrad then 40 of the peer, 15 rounds, with
BLAS and gpugrad's pools pinned to 1 thread as ``gpugrad bench --threads 1`` does. Prints each
side's best and median time per step and their ratios.

Example::

    python tools/vs_peer.py --case mlp/64-256 --peer numpy
"""

from __future__ import annotations

import argparse

import gpugrad.bench.workloads  # noqa: F401  (registers the workloads)
from gpugrad.bench import core, runner
from gpugrad.bench.env import Env, detect_peers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="mlp/64-256", help="WORKLOAD/part of the case's label")
    ap.add_argument("--peer", default="numpy", help="torch, jax, jax.jit, autograd or numpy")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=40, help="steps per side per round")
    args = ap.parse_args()
    if args.rounds < 1 or args.steps < 1:
        raise SystemExit(f"vs_peer: --rounds and --steps must be at least 1, got {args.rounds} and {args.steps}")
    name, _, sub = args.case.partition("/")
    settings = runner.Settings(device="cpu")
    workload = core.WORKLOADS.get(name)
    if workload is None:
        raise SystemExit(f"vs_peer: no workload {name!r}; workloads: {', '.join(sorted(core.WORKLOADS))}")
    case = next((c for c in workload.cases(settings) if sub in c.label), None)
    if case is None:
        raise SystemExit(f"vs_peer: no case of {name} matches {sub!r}; cases: "
                         + ", ".join(c.label for c in workload.cases(settings)))
    if args.peer not in workload.builders or args.peer == "gpugrad":
        raise SystemExit(f"vs_peer: no peer {args.peer!r} for {name}; peers: "
                         + ", ".join(k for k in workload.builders if k != "gpugrad"))
    ins = runner.make_inputs(workload, case, settings)
    detect_peers("cpu", [args.peer])  # imports JAX now, so that pinned_threads starts it on one CPU
    n = len(ins.sets)
    with runner.pinned_threads(1) as pinned:
        if args.peer.startswith("jax"):
            print(f"vs_peer: {pinned['note']}")
        env = Env("cpu")
        impls = {k: workload.builders[k](case, env, ins) for k in ("gpugrad", args.peer)}
        clocks = {k: runner.clock_for(k, env) for k in impls}  # JAX's: blocks on the last result
        for k, impl in impls.items():
            clocks[k].measure(impl.step, 0, 30, n)
        times: dict[str, list[float]] = {k: [] for k in impls}
        for _ in range(args.rounds):
            for k, impl in impls.items():
                times[k].append(clocks[k].measure(impl.step, 0, args.steps, n))
    for v in times.values():
        v.sort()
    mid = args.rounds // 2
    for k, v in times.items():
        print(f"{k:8s} best {v[0] * 1e6:9.1f} us   median {v[mid] * 1e6:9.1f} us")
    g, p = times["gpugrad"], times[args.peer]
    print(f"gpugrad / {args.peer}: best {g[0] / p[0]:.3f}, median {g[mid] / p[mid]:.3f}")


if __name__ == "__main__":
    main()
