"""Run the registered workloads: correctness gate first, then interleaved timing, then ratios,
achieved bandwidth and FLOP rate against the ceilings measured in the same run.

Example::

    from gpugrad.bench import Settings, run
    result = run(Settings(quick=True, only=["chain"]))
    result["rows"][0]["results"]["gpugrad"]["median_s"]
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import gc
import importlib.util
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpugrad.bench import hardware
from gpugrad.bench.core import LIBRARIES, PEERS, WORKLOADS, Case, Inputs, Skip, Workload, compare, tolerance
from gpugrad.bench.env import Env, Peer, detect_peers
from gpugrad.bench.timing import (
    Budget,
    CupyEvents,
    Entry,
    PerfCounter,
    TorchEvents,
    count_with_counter,
    count_with_profiler,
    gpugrad_launch_counter,
    interleave,
    sets_for,
)

SCHEMA = "gpugrad-bench/1"


class BenchError(Exception):
    """A problem with the run's settings or environment (bad device, missing optional tool)."""


@dataclass
class Settings:
    """What to run. ``device``: "auto", "cpu", "cuda" or "cuda:N". ``quick``: small sizes and
    short budgets (under a minute on a 2-core CPU). ``only``: workload names, families or
    glob patterns over "workload/case". ``peers``: a subset of the peer libraries.
    ``threads``: pin BLAS/OpenMP/PyTorch thread pools for the run (needs threadpoolctl).

    Example: ``Settings(device="cpu", quick=True, only=["chain", "mlp"])``.
    """

    device: str = "auto"
    quick: bool = False
    only: list[str] | None = None
    peers: list[str] | None = None
    threads: int | None = None
    seed: int = 0
    budget: Budget | None = None
    command: str | None = None  # the command line, recorded in the JSON
    gpu: bool = field(default=False, init=False)
    emulated: bool = field(default=False, init=False)


def default_budget(quick: bool) -> Budget:
    """Per-case timing budget: 0.25 s (hard stop 1 s) with ``quick``, else 2.5 s (hard stop 40 s).

    A timed batch lasts at least 5 ms (2 ms with ``quick``): short steps are repeated within
    a batch so that the first step after another library's, slowed by the caches and branch
    predictors that library left behind, does not dominate (a 400 us chain of small ops measured
    40-90% slower one step at a time right after JAX's eager dispatch).
    """
    if quick:
        return Budget(budget_s=0.25, min_rounds=5, max_rounds=40, warmup=2, max_case_s=1.0, target_sample_s=2e-3)
    return Budget(budget_s=2.5, min_rounds=9, max_rounds=300, warmup=3, max_case_s=40.0, target_sample_s=5e-3)


def thread_warning(device: str, threads: dict[str, Any], pinned: int | None) -> str | None:
    """A note when several multi-threaded pools share a few CPUs unpinned: libraries interleaved
    in one process then spin their idle threads against each other and times can collapse."""
    if device != "cpu" or pinned is not None:
        return None
    cpus = threads.get("affinity") or threads.get("cpus") or 0
    pools = [p for p in threads.get("pools") or [] if (p.get("threads") or 0) > 1]
    torch_threads = threads.get("torch_threads") or 0
    if cpus <= 4 and len(pools) + (torch_threads > 1) >= 2:
        return (f"{len(pools)} thread pools of more than one thread share {cpus} CPUs unpinned: interleaved "
                "libraries' spinning threads compete and times can collapse; --threads 1 gives stable numbers")
    return None


def resolve_device(device: str) -> tuple[str, str | None]:
    """``(device, note)``: "auto" picks cuda:0 when a GPU is usable, else the CPU with a note.

    An explicit "cuda" without CuPy or a GPU raises BenchError saying which is missing.
    """
    device = (device or "auto").strip().lower()
    if device == "auto":
        reason = hardware.no_gpu_reason()
        if reason is None and hardware.emulated():
            return "cpu", "the CUDA device is emulated (counts, not times): --device cuda to count on it"
        if reason is None:
            return "cuda:0", None
        return "cpu", f"no GPU ({reason}): GPU measurements skipped, running on the CPU"
    if device == "cpu":
        return "cpu", None
    if device == "cuda" or device.startswith("cuda:"):
        reason = hardware.no_gpu_reason()
        if reason is not None:
            raise BenchError(f"--device {device}: {reason}")
        from gpugrad.backends import normalize_device
        from gpugrad.errors import GpugradError

        try:
            return normalize_device(device), None
        except GpugradError as exc:
            raise BenchError(f"--device {device}: {exc}") from None
    raise BenchError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def gpugrad_device_reason(device: str) -> str | None:
    """Why gpugrad itself cannot run on ``device`` in this build (its CUDA backend missing), or None."""
    if device == "cpu":
        return None
    if importlib.util.find_spec("gpugrad.backends.cuda") is None:
        return "gpugrad's CUDA backend (gpugrad.backends.cuda) is not in this build"
    return None


def select(settings: Settings) -> list[tuple[Workload, Case]]:
    """The (workload, case) pairs a run will measure, after ``settings.only``."""
    import gpugrad.bench.workloads  # noqa: F401  (registers the workloads)

    pairs = []
    for w in WORKLOADS.values():
        cases = [c for c in w.cases(settings) if _wanted(settings.only, w, c)]
        if settings.emulated and cases:
            # Counts barely depend on size (launches not at all, bytes linearly): the smallest
            # case of each dtype, so that the emulator's CPU speed does not decide the run time
            by_dtype: dict[str, Case] = {}
            for c in cases:
                best = by_dtype.get(c.dtype)
                if best is None or (c.size or 0) < (best.size or 0):
                    by_dtype[c.dtype] = c
            cases = list(by_dtype.values())
        pairs += [(w, c) for c in cases]
    return pairs


def _wanted(only: list[str] | None, w: Workload, case: Case) -> bool:
    if not only:
        return True
    for pat in only:
        if pat in (w.name, w.family) or fnmatch.fnmatch(case.key, pat) or fnmatch.fnmatch(w.name, pat):
            return True
    return False


def start_jax_on_cpus(n: int) -> str:
    """Start JAX's CPU client (if JAX is imported and has not started it) with its threads
    confined to ``n`` of this process's CPUs; what was done, for the run's notes.

    XLA takes no thread count once started, and ignores threadpoolctl: it sizes its pool from the
    CPU affinity of the thread that starts it, whose affinity its threads inherit. Unpinned, a
    ``--threads 1`` run compared gpugrad on one core with JAX jit on two (sum(tanh(x) *
    sigmoid(x)) on 4M floats, 2 CPUs: 5.3 ms a step using 8.7 ms of CPU time; confined to one
    CPU, 6.2 ms using 6.2). The calling thread's affinity is narrowed for the start only; JAX's
    threads stay where they started for the rest of the process (XLA cannot be restarted).
    A JAX whose CPU client fails to start is left to fail in its own cells, as before.
    """
    jax = sys.modules.get("jax")
    if jax is None:
        return "JAX not loaded"
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except Exception:  # a JAX without this (private) function
        return "JAX/XLA's CPU threads not pinned (this JAX does not say whether it has started)"
    if started:
        return "JAX's CPU client had already started: its threads use every CPU"
    if not hasattr(os, "sched_setaffinity"):
        return "JAX/XLA's CPU threads use every CPU (no CPU affinity on this system)"
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus[:n])
    try:
        jax.devices("cpu")
    except Exception as exc:
        return f"JAX's CPU client failed to start ({exc.__class__.__name__}); its threads not pinned"
    finally:
        os.sched_setaffinity(0, cpus)
    return (f"JAX/XLA's CPU threads confined to CPU(s) {cpus[:n]} (started with that affinity; for the rest "
            "of the process)")


@contextlib.contextmanager
def pinned_threads(n: int | None) -> Iterator[dict[str, Any]]:
    """Limit BLAS/OpenMP pools (threadpoolctl) and PyTorch's intra-op pool to ``n`` threads for
    the block, restoring them after; a no-op when ``n`` is None."""
    if n is None:
        yield {}
        return
    if n < 1:
        raise BenchError(f"--threads {n}: expected a positive integer")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise BenchError("--threads needs threadpoolctl (pip install threadpoolctl)") from None
    torch = sys.modules.get("torch")
    if torch is None and importlib.util.find_spec("torch") is not None:
        import torch
    old_torch = torch.get_num_threads() if torch is not None else None
    from gpugrad.fusion import numpy_eval  # gpugrad's own pool for fused chains

    old_fusion = numpy_eval.Settings.threads
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        numpy_eval.Settings.threads = n
        try:
            yield {"threads": n, "note": start_jax_on_cpus(n)}
        finally:
            numpy_eval.Settings.threads = old_fusion
            if torch is not None and old_torch is not None:
                torch.set_num_threads(old_torch)


@contextlib.contextmanager
def full_float32(gpu: bool) -> Iterator[dict[str, Any]]:
    """On a GPU, PyTorch's float32 matmuls and convolutions in full float32 for the block
    (``allow_tf32`` off for cuBLAS and cuDNN, restored after), so that every library computes
    the same thing: TF32 would fail the correctness gate (relative error near 3e-4 > 1e-4).
    JAX gets the same through :meth:`Env.jax_precise`; CuPy uses TF32 only with CUPY_TF32=1."""
    torch = sys.modules.get("torch")
    if not gpu or torch is None:
        yield {}
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield {"tf32": "off for PyTorch (cuBLAS, cuDNN) and JAX; CuPy: CUPY_TF32="
                       + os.environ.get("CUPY_TF32", "unset")}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def versions() -> dict[str, str]:
    """Versions of Python, gpugrad, NumPy and every peer or GPU library already importable."""
    import gpugrad

    out = {"python": platform.python_version(), "gpugrad": gpugrad.__version__, "numpy": np.__version__}
    from importlib.metadata import PackageNotFoundError, version

    for dist, key in (("torch", "torch"), ("jax", "jax"), ("jaxlib", "jaxlib"), ("autograd", "autograd"),
                      ("threadpoolctl", "threadpoolctl"), ("matplotlib", "matplotlib")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            pass
    for mod in ("cupy",):
        if importlib.util.find_spec(mod) is not None:
            try:
                out[mod] = importlib.import_module(mod).__version__
            except Exception:
                pass
    return out


def clock_for(lib: str, env: Env) -> Any:
    """The clock that times ``lib``'s steps on ``env``'s device (JAX's blocks on the last result:
    its calls return before the work is done)."""
    if lib.startswith("jax"):
        import jax

        return PerfCounter(sync=env.synchronize if env.gpu else None, block=jax.block_until_ready)
    if not env.gpu:
        return PerfCounter()
    if lib == "torch":
        return TorchEvents(env.index)
    return CupyEvents(env.index)


def _seed(settings: Settings, case: Case) -> np.random.Generator:
    return np.random.default_rng([settings.seed, zlib.crc32(case.key.encode())])


def make_inputs(w: Workload, case: Case, settings: Settings) -> Inputs:
    """The case's input sets (as many as :func:`sets_for` asks) and shared inputs, on the host."""
    rng = _seed(settings, case)
    shared = w.shared(case, rng) if w.shared is not None else {}
    first = w.inputs(case, rng, 0)
    set_bytes = int(sum(v.nbytes for v in first.values()))
    n = sets_for(set_bytes, most=4 if settings.quick else 8)
    return Inputs([first] + [w.inputs(case, rng, k) for k in range(1, n)], shared)


def first_step(workload: str, device: str = "cpu") -> tuple[Case, Any]:
    """gpugrad's step (an ``Impl``: ``step(i)``, ``outputs()``) of a workload's first case on
    ``device``, with its inputs made as a run makes them: for tools and tests that look at one
    step (tools/launch_trace.py, the launch-count tests).

    Example: ``case, impl = first_step("mlp", "cuda:0"); impl.step(0)``.
    """
    import gpugrad.bench.workloads  # noqa: F401  (registers the workloads)

    w = WORKLOADS[workload]
    settings = Settings(device=device)
    settings.gpu = device.startswith("cuda")
    case = w.cases(settings)[0]
    return case, w.builders["gpugrad"](case, Env(device), make_inputs(w, case, settings))


def _free(env: Env) -> None:
    gc.collect()
    if env.gpu:
        with contextlib.suppress(Exception):
            import cupy

            cupy.get_default_memory_pool().free_all_blocks()
        torch = sys.modules.get("torch")
        if torch is not None:
            with contextlib.suppress(Exception):
                torch.cuda.empty_cache()


def run_case(w: Workload, case: Case, env: Env, peers: dict[str, Peer], settings: Settings,
             gg_reason: str | None, limits: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """Gate, time and annotate one case; the row of the JSON."""
    row: dict[str, Any] = {"workload": w.name, "family": w.family, "case": case.label, "title": w.title,
                           "params": dict(case.params), "dtype": case.dtype, "size": case.size,
                           "series": case.series or w.name, "size_label": case.size_label,
                           "flops": case.flops, "bytes": case.bytes,
                           "bytes_floor": case.bytes_floor, "per": case.per, "unit": case.unit, "results": {}}
    results: dict[str, dict[str, Any]] = row["results"]
    t0 = time.perf_counter()
    ins = make_inputs(w, case, settings)
    row["input_sets"] = len(ins.sets)
    try:
        ref = reference(w, case, env, ins)
    except Exception as exc:  # without a reference nothing can be checked, so nothing is timed
        msg = f"the float64 reference failed ({exc.__class__.__name__}: {exc})"
        for lib in _libs(peers):
            results[lib] = {"status": "failed", "reason": msg}
        return row
    entries: list[Entry] = []
    impls = {}
    for lib in _libs(peers):
        impl, results[lib] = prepare(w, case, lib, env, peers, gg_reason, ins, ref)
        if impl is not None:
            clock = clock_for(lib, env)
            results[lib]["timer"] = clock.name
            impls[lib] = impl
            entries.append(Entry(lib, impl.step, clock))
    if env.emulated:  # counts, not times: nothing here is a GPU's speed
        for lib, impl in impls.items():
            results[lib]["emulated"] = emulated_counts(impl.step, len(ins.sets), case)
        entries = []
    try:
        stats = interleave(entries, len(ins.sets), budget) if entries else {}
    except Exception as exc:
        for e in entries:
            results[e.lib] = {"status": "failed", "reason": f"error while timing: {exc.__class__.__name__}: {exc}",
                              "check": results[e.lib].get("check")}
        stats = {}
    copy_bw = (limits.get("copy") or {}).get("bytes_per_s")
    mm = ((limits.get("matmul") or {}).get(case.dtype) or {}).get("flop_per_s")
    for lib, st in stats.items():
        r = results[lib]
        r.update(st.as_dict())
        if case.bytes:
            r["GBps"] = case.bytes / st.median / 1e9
            if copy_bw:
                r["frac_copy"] = case.bytes / st.median / copy_bw
        if case.flops:
            r["TFLOPs"] = case.flops / st.median / 1e12
            if mm:
                r["frac_matmul"] = case.flops / st.median / mm
    if env.gpu and not env.emulated:
        for lib in ("gpugrad", "torch"):
            if lib in impls:
                results[lib]["launches"], results[lib]["launches_method"] = _launches(lib, impls[lib].step, env)
    gg_time = results.get("gpugrad", {}).get("median_s")
    if gg_time:
        for lib, r in results.items():
            if lib != "gpugrad" and r.get("median_s"):
                r["ratio"] = gg_time / r["median_s"]
    del impls, entries
    _free(env)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def reference(w: Workload, case: Case, env: Env, ins: Inputs) -> dict[str, np.ndarray]:
    """The hand-written version's outputs in float64 on input set 0: what every library must match."""
    impl = w.builders["numpy"](case, env, ins.astype_float64())
    impl.step(0)
    return impl.outputs()


def prepare(w: Workload, case: Case, lib: str, env: Env, peers: dict[str, Peer], gg_reason: str | None,
            ins: Inputs, ref: dict[str, np.ndarray]) -> tuple[Any, dict[str, Any]]:
    """Build ``lib``'s version of the case and run the correctness gate: ``(impl, result)``, with
    impl None when the library is skipped (result has the reason) or failed (a wrong result, or
    an exception while building or stepping)."""
    if lib == "gpugrad":
        reason = gg_reason or w.gpugrad_reason()
        if reason:
            return None, {"status": "skipped", "reason": reason}
    else:
        peer = peers.get(lib)
        if peer is None or not peer.available:
            return None, {"status": "skipped", "reason": (peer.reason if peer else None) or "not requested"}
    builder = w.builders.get(lib)
    if builder is None:
        return None, {"status": "skipped", "reason": f"no {lib} version of this workload"}
    try:
        impl = builder(case, env, ins)
    except Skip as exc:
        return None, {"status": "skipped", "reason": str(exc)}
    except Exception as exc:
        return None, {"status": "failed", "reason": f"error while building: {exc.__class__.__name__}: {exc}"}
    try:
        impl.step(0)
        env.synchronize()
        got = impl.outputs()
    except Exception as exc:
        return None, {"status": "failed", "reason": f"error in the step: {exc.__class__.__name__}: {exc}"}
    tol = tolerance(case.dtype)
    passed, err, msg = compare(got, ref, tol)
    check = {"passed": passed, "rel_err": err if np.isfinite(err) else None, "tol": tol}
    if not passed:
        return None, {"status": "failed", "reason": f"wrong result: {msg}", "check": check}
    return impl, {"status": "ok", "check": check}


def emulated_counts(step: Callable[[int], Any], n_sets: int, case: Case) -> dict[str, Any]:
    """What one step costs on the emulated CUDA device, after warm-up: kernel launches, bytes
    its kernels read and wrote (and their ratio to the case's least possible traffic), host
    synchronisations and run-time compilations (all exact: the device counts them itself)."""
    import gpugrad as gg

    step(1 % n_sets)  # warm-up beyond the correctness gate's first step
    gg.cuda.reset_counters()
    step(0)
    c = gg.cuda.counters()
    floor = case.bytes_floor or case.bytes
    if floor:
        c["bytes_floor"] = int(floor)
        c["bytes_ratio"] = c["bytes"] / floor
    return c


def _launches(lib: str, step: Callable[[int], Any], env: Env) -> tuple[int | None, str]:
    if lib == "gpugrad":
        read = gpugrad_launch_counter(env.device)
        if read is not None:
            return count_with_counter(step, read, env.synchronize), "gpugrad backend counter"
    n = count_with_profiler(step, env.synchronize)
    if n is None:
        return None, "n/a (no launch counter; torch.profiler unavailable)"
    return n, "torch.profiler (CUPTI) kernel events"


def _libs(peers: dict[str, Peer]) -> list[str]:
    return ["gpugrad"] + [p for p in PEERS if p in peers]


def measure_limits(device: str, dtypes: set[str], quick: bool) -> dict[str, Any]:
    """The copy bandwidth and the library matmul rate per dtype, measured now."""
    limits: dict[str, Any] = {}
    try:
        limits["copy"] = hardware.copy_bandwidth(device, quick)
    except Exception as exc:
        limits["copy"] = {"bytes_per_s": None, "error": f"{exc.__class__.__name__}: {exc}"}
    limits["matmul"] = {}
    for dt in sorted(dtypes):
        try:
            limits["matmul"][dt] = hardware.matmul_rate(device, dt, quick)
        except Exception as exc:
            limits["matmul"][dt] = {"flop_per_s": None, "error": f"{exc.__class__.__name__}: {exc}"}
    return limits


def run(settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able result (see benchmarks/README.md for the schema).

    Raises BenchError for an unusable ``settings.device`` or a missing tool it asks for.
    """
    device, device_note = resolve_device(settings.device)
    settings.gpu = device != "cpu"
    settings.emulated = settings.gpu and hardware.emulated()
    notes: list[str] = [device_note] if device_note else []
    wanted_peers = settings.peers
    if wanted_peers is not None:
        unknown = sorted(set(wanted_peers) - set(PEERS))
        if unknown:
            raise BenchError(f"--peers: unknown {', '.join(unknown)} (expected some of {', '.join(PEERS)})")
    pairs = select(settings)
    if not pairs:
        raise BenchError(f"--only {','.join(settings.only or [])}: matches no workload (see gpugrad bench --list)")
    budget = settings.budget or default_budget(settings.quick)
    if settings.gpu and (wanted_peers is None or any(p.startswith("jax") for p in wanted_peers)):
        # JAX grabs 75% of the GPU's memory at its start unless told not to, starving the others.
        if "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ:
            os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
            notes.append("set XLA_PYTHON_CLIENT_PREALLOCATE=false so that JAX shares the GPU's memory")
    peers = detect_peers(device, wanted_peers)
    env = Env(device, peers)
    gg_reason = gpugrad_device_reason(device)
    say = progress or (lambda s: None)
    started = _dt.datetime.now(_dt.timezone.utc)
    with pinned_threads(settings.threads) as pinned, full_float32(settings.gpu) as precision:
        if pinned and any(name.startswith("jax") and p.available for name, p in peers.items()):
            notes.append(f"--threads {settings.threads}: {pinned['note']}")
        if env.emulated:
            limits: dict[str, Any] = {"copy": {}, "matmul": {}}
            notes.append("the CUDA device is emulated (gpugrad.testing.cuda_emulator): the table holds what one "
                         "step costs on a GPU in launches, bytes, syncs and compilations, counted exactly; it has "
                         "no timings (the emulator's speed says nothing about a GPU's)")
        else:
            say(f"measuring the copy bandwidth and matmul rate on {device}")
            dtypes = {c.dtype for w, c in pairs if c.flops}
            limits = measure_limits(device, dtypes or {"float32"}, settings.quick)
        rows = []
        for k, (w, case) in enumerate(pairs, 1):
            say(f"[{k}/{len(pairs)}] {w.name} {case.label}")
            rows.append(run_case(w, case, env, peers, settings, gg_reason, limits, budget))
        threads = hardware.thread_info()
    warning = thread_warning(device, threads, settings.threads)
    if warning:
        notes.append(warning)
    settings_extra = {"thread_warning": warning} if warning else {}
    finished = _dt.datetime.now(_dt.timezone.utc)
    return {
        "schema": SCHEMA,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((finished - started).total_seconds(), 1),
        "command": settings.command,
        "settings": {"device": device, "requested_device": settings.device, "quick": settings.quick,
                     "only": settings.only, "peers": settings.peers, "threads": settings.threads,
                     "seed": settings.seed, "budget_s_per_case": budget.budget_s,
                     "min_rounds": budget.min_rounds, **({"threads_note": pinned["note"]} if pinned else {}),
                     **settings_extra, **precision},
        "device": hardware.device_info(device),
        "threads": threads,
        "versions": versions(),
        "peers": {name: p.as_dict() for name, p in peers.items()},
        "gpugrad": {"available": gg_reason is None, **({"reason": gg_reason} if gg_reason else {})},
        "limits": limits,
        "libraries": [lib for lib in LIBRARIES if lib == "gpugrad" or lib in peers],
        "notes": notes,
        "rows": rows,
    }
