"""pytest-benchmark suites over gpugrad's benchmark workloads (the registry behind ``gpugrad bench``).

Each suite file names its workloads in ``WORKLOADS``; every (case, library) pair becomes one
benchmark, grouped by case so pytest-benchmark's table puts the libraries of a case together.
Each library's result is checked against the float64 hand-written reference before it is
timed (a mismatch fails the test). pytest-benchmark times one library after another; for
ratios measured interleaved in one run, use ``gpugrad bench``.

    pytest benchmarks/ --benchmark-enable                       # quick sizes, device auto
    pytest benchmarks/ --benchmark-enable --bench-full --bench-device cuda
    pytest benchmarks/test_training.py --benchmark-enable -k "mlp and gpugrad"

Without ``--benchmark-enable`` (pyproject's addopts disable timing) each benchmark runs once:
a correctness smoke test of every workload.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from gpugrad.bench import LIBRARIES, WORKLOADS, Settings
from gpugrad.bench.env import Env, detect_peers
from gpugrad.bench.runner import gpugrad_device_reason, make_inputs, prepare, reference, resolve_device, select


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpugrad-bench", "gpugrad benchmark suites")
    group.addoption("--bench-device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    group.addoption("--bench-full", action="store_true", help="the full size sweeps (default: gpugrad bench --quick's)")
    group.addoption("--bench-peers", default=None, help="comma-separated subset of torch,jax,jax.jit,autograd,numpy")


def _settings(config: pytest.Config) -> Settings:
    device, _ = resolve_device(config.getoption("--bench-device"))
    peers = config.getoption("--bench-peers")
    s = Settings(device=device, quick=not config.getoption("--bench-full"),
                 peers=[p for p in peers.split(",") if p] if peers else None)
    s.gpu = device != "cpu"
    return s


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bench_case" not in metafunc.fixturenames:
        return
    names = metafunc.module.WORKLOADS
    settings = _settings(metafunc.config)
    params, ids = [], []
    for w, case in select(Settings(device=settings.device, quick=settings.quick, only=list(names))):
        if w.name not in names:
            continue
        for lib in LIBRARIES:
            params.append((w.name, case.label, lib))
            ids.append(f"{case.key}|{lib}")
    metafunc.parametrize("bench_case", params, ids=ids)


@pytest.fixture(scope="session")
def bench_context(pytestconfig: pytest.Config) -> dict[str, Any]:
    settings = _settings(pytestconfig)
    peers = detect_peers(settings.device, settings.peers)
    return {"settings": settings, "env": Env(settings.device, peers), "peers": peers,
            "gg_reason": gpugrad_device_reason(settings.device), "cache": {}}


@pytest.fixture
def run_case_benchmark(benchmark: Any, bench_context: dict[str, Any]) -> Callable[[tuple], None]:
    """Gate one (workload, case, library) against the reference, then time its step."""

    def go(bench_case: tuple) -> None:
        workload, label, lib = bench_case
        ctx = bench_context
        settings, env = ctx["settings"], ctx["env"]
        w = WORKLOADS[workload]
        case = next(c for c in w.cases(settings) if c.label == label)
        if lib != "gpugrad" and lib not in ctx["peers"]:
            pytest.skip(f"{lib}: not requested (--bench-peers)")
        key = case.key
        if key not in ctx["cache"]:
            ctx["cache"].clear()  # one case's inputs at a time
            ins = make_inputs(w, case, settings)
            ctx["cache"][key] = (ins, reference(w, case, env, ins))
        ins, ref = ctx["cache"][key]
        impl, result = prepare(w, case, lib, env, ctx["peers"], ctx["gg_reason"], ins, ref)
        if result["status"] == "skipped":
            pytest.skip(f"{lib}: {result['reason']}")
        assert result["status"] == "ok", f"{lib} {key}: {result['reason']}"
        n = len(ins.sets)
        counter = itertools.count(1)
        step = impl.step
        if lib.startswith("jax"):
            import jax

            def timed() -> None:
                jax.block_until_ready(step(next(counter) % n))
        elif env.gpu:
            def timed() -> None:
                step(next(counter) % n)
                env.synchronize()
        else:
            def timed() -> None:
                step(next(counter) % n)
        benchmark.group = key
        benchmark.extra_info.update({"library": lib, "device": env.device, "per": case.per,
                                     "rel_err": result["check"]["rel_err"], "flops": case.flops,
                                     "bytes": case.bytes})
        benchmark(timed)

    return go
