"""CI smoke test of ``gpugrad bench`` and ``gpugrad info``: the quick run finishes, its JSON has
the documented schema, every row is timed after a passed correctness check or skipped with a
reason, a wrong result is reported as a failure, and usage errors exit with status 2.

Nothing here asserts a time: timing lives in benchmarks/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gpugrad
from gpugrad.bench import LIBRARIES, WORKLOADS, Budget, Case, Impl, Settings, Workload, run_case, select
from gpugrad.bench.env import Env, detect_peers
from gpugrad.cli import main as cli_main

ROOT = Path(gpugrad.__file__).resolve().parent.parent


def _cli(*args: str, timeout: float = 120, threads: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if threads:  # one thread per pool: interleaved libraries' pools do not fight over a small CI machine
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "gpugrad.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = _cli("bench", "--quick", "--device", "cpu", "--json", str(path), timeout=240)
    assert path.exists(), f"no JSON written; rc={proc.returncode}\nstderr:\n{proc.stderr[-3000:]}"
    return proc, json.loads(path.read_text())


def test_quick_run_succeeds_and_prints_the_table(quick_run: tuple) -> None:
    proc, result = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for row in result["rows"]:
        assert row["workload"] in proc.stdout
    assert "performance goals, measured in this run" in proc.stdout
    assert "issue" not in proc.stdout.lower() and "issue" not in proc.stderr.lower()  # users' numbers, not work items


def test_quick_json_schema(quick_run: tuple) -> None:
    _, result = quick_run
    assert result["schema"] == "gpugrad-bench/1"
    for key in ("date", "device", "versions", "threads", "limits", "peers", "settings", "rows", "goals",
                "libraries", "notes"):
        assert key in result, key
    assert result["device"]["name"] and result["device"]["kind"] == "cpu"
    assert result["settings"]["quick"] is True
    for key in ("gpugrad", "numpy", "python"):
        assert result["versions"][key]
    assert result["limits"]["copy"]["bytes_per_s"] > 0
    assert result["limits"]["matmul"]["float32"]["flop_per_s"] > 0
    for name, peer in result["peers"].items():
        assert name in LIBRARIES
        assert peer["available"] or peer["reason"]
    for key in ("workload", "family", "case", "params", "dtype", "unit", "per", "results", "input_sets"):
        assert all(key in row for row in result["rows"]), key


def test_every_row_timed_after_a_passed_check_or_skipped_with_a_reason(quick_run: tuple) -> None:
    _, result = quick_run
    assert {row["workload"] for row in result["rows"]} == set(WORKLOADS)
    for row in result["rows"]:
        assert row["results"].keys() == set(result["libraries"])
        for lib, r in row["results"].items():
            where = f"{row['workload']} {row['case']} {lib}: {r}"
            assert r["status"] in ("ok", "skipped"), where
            if r["status"] == "ok":
                assert r["check"]["passed"] is True and r["check"]["rel_err"] <= r["check"]["tol"], where
                assert r["median_s"] > 0 and r["p25_s"] <= r["median_s"] <= r["p75_s"], where
                assert r["samples"] >= 3 and r["inner"] >= 1, where
            else:
                assert isinstance(r["reason"], str) and r["reason"], where


def test_gpugrad_itself_is_timed_on_the_core_workloads(quick_run: tuple) -> None:
    _, result = quick_run
    for row in result["rows"]:
        if row["workload"] in ("chain", "elementwise", "reductions", "matmul", "indexing", "mlp", "jvp", "hvp"):
            assert row["results"]["gpugrad"]["status"] == "ok", row
        numpy_result = row["results"]["numpy"]
        assert numpy_result["status"] == "ok", row  # the hand-written version always runs
        gg = row["results"]["gpugrad"]
        if gg["status"] == "ok":
            assert numpy_result["ratio"] == pytest.approx(gg["median_s"] / numpy_result["median_s"])


def test_workloads_needing_gpugrad_nn_are_skipped_with_the_note(quick_run: tuple) -> None:
    _, result = quick_run
    for row in result["rows"]:
        reason = WORKLOADS[row["workload"]].gpugrad_reason()
        if reason is not None:
            assert row["results"]["gpugrad"] == {"status": "skipped", "reason": reason}
            assert "(not in this build)" in reason


@pytest.mark.parametrize("args", [
    ("bench", "--no-such-option"),
    ("bench", "--threads", "0"),
    ("bench", "--only", "no_such_workload"),
    ("bench", "--device", "tpu"),
    ("bench", "--peers", "tensorflow"),
    ("bench", "--json", "/no/such/dir/out.json"),
    ("no-such-command",),
])
def test_usage_errors_exit_2_with_one_line(args: tuple) -> None:
    proc = _cli(*args, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_cuda_without_a_gpu_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import GPU_DEVICE

    if GPU_DEVICE["kind"] == "gpu":
        pytest.skip("a real GPU is available here")
    monkeypatch.delenv("GPUGRAD_CUDA_EMULATOR", raising=False)  # a machine with neither a GPU nor the emulator
    proc = _cli("bench", "--quick", "--device", "cuda", timeout=60)
    assert proc.returncode == 2
    assert "CuPy" in proc.stderr or "GPU" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_matplotlib_for_plot_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert cli_main.main(["bench", "--quick", "--plot", "out.png"]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and len(err.strip().splitlines()) == 1


def test_info_runs(capsys: pytest.CaptureFixture) -> None:
    assert cli_main.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "versions: gpugrad" in out and "backends:" in out and "threads:" in out
    assert ("GPU: no GPU (" in out) or ("GPU 0:" in out)
    assert cli_main.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["gpugrad"] == gpugrad.__version__


def test_list_names_every_workload(capsys: pytest.CaptureFixture) -> None:
    assert cli_main.main(["bench", "--list", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in WORKLOADS:
        assert f"  {name} [" in out


def test_plot_draws_the_sweeps(quick_run: tuple, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from gpugrad.bench import plot

    _, result = quick_run
    path = tmp_path / "bench.png"
    assert plot(result, str(path)) >= 1
    assert path.stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# the correctness gate, in process


def _toy_workload(gpugrad_wrong: bool) -> Workload:
    """sum(x * x): gpugrad's gradient is 2x, or (wrong on purpose) 2x + 1e-3."""

    def cases(settings: Any) -> list[Case]:
        return [Case("toy", "n=256", {"n": 256}, size=256)]

    def inputs(case: Case, rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
        return {"x": rng.standard_normal(256).astype(np.float32)}

    def gg_builder(case: Case, env: Env, ins: Any) -> Impl:
        x = ins.sets[0]["x"]
        grad = 2 * x + (np.float32(1e-3) if gpugrad_wrong else 0)
        return Impl(lambda i: None, lambda: {"out": np.sum(x * x), "dx": grad})

    def np_builder(case: Case, env: Env, ins: Any) -> Impl:
        x = ins.sets[0]["x"]
        return Impl(lambda i: None, lambda: {"out": np.sum(x * x), "dx": 2 * x})

    return Workload("toy", "test", "sum(x*x)", cases, inputs, {"gpugrad": gg_builder, "numpy": np_builder})


@pytest.mark.parametrize("wrong", [False, True])
def test_a_wrong_gradient_is_a_failure_not_a_time(wrong: bool) -> None:
    w = _toy_workload(wrong)
    settings = Settings(device="cpu", quick=True)
    peers = detect_peers("cpu", ["numpy"])
    row = run_case(w, w.cases(settings)[0], Env("cpu", peers), peers, settings, None, {},
                   Budget(budget_s=0.01, min_rounds=3, max_rounds=3, warmup=1))
    r = row["results"]["gpugrad"]
    if wrong:
        assert r["status"] == "failed" and "wrong result" in r["reason"] and "median_s" not in r
        assert r["check"]["passed"] is False
        assert "ratio" not in row["results"]["numpy"]
    else:
        assert r["status"] == "ok" and r["median_s"] > 0
        assert row["results"]["numpy"]["ratio"] > 0


def test_select_filters_by_name_family_and_glob() -> None:
    def names(only: list[str]) -> set[str]:
        return {w.name for w, _ in select(Settings(device="cpu", quick=True, only=only))}

    assert names(["chain"]) == {"chain"}
    assert names(["training"]) == {"mlp", "cnn", "transformer"}
    assert names(["matmul/n=128*"]) == {"matmul"}


def test_show_reprints_a_saved_run(quick_run: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, result = quick_run
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result))
    assert cli_main.main(["bench", "--show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "chain: per-op overhead" in out and "performance goals, measured in this run" in out
    path.write_text("{}")
    assert cli_main.main(["bench", "--show", str(path)]) == 2


@pytest.mark.gpu
def test_bench_on_the_emulated_cuda_device_counts_instead_of_timing(tmp_path: Any, monkeypatch: Any) -> None:
    from tests.conftest import GPU_DEVICE

    if GPU_DEVICE["kind"] != "emulated":
        pytest.skip("checks the emulated device's report (a real GPU is in use)")
    kernels = ROOT / "build" / "kernels"
    monkeypatch.setenv("GPUGRAD_CUDA_EMULATOR", str(kernels) if (kernels / "emu_index.json").is_file() else "1")
    # fused chains as one generated kernel each way, as users get them (the suite turns them off);
    # on the emulated device each is also compiled by NVRTC alone when CI requires it
    monkeypatch.setenv("GPUGRAD_FUSION_CUDA", "1")
    path = tmp_path / "emu.json"
    proc = _cli("bench", "--device", "cuda", "--quick", "--only", "chain,elementwise,optimizer", "--json", str(path),
                timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "emulated" in proc.stdout and "launches" in proc.stdout
    assert "performance goals, measured in this run (counts of the emulated device)" in proc.stdout
    assert "fused chain launches" in proc.stdout and "not met" not in proc.stdout
    result = json.loads(path.read_text())
    assert result["device"]["emulated"] is True
    for row in result["rows"]:
        g = row["results"]["gpugrad"]
        assert "median_s" not in g, "no timing is presented for the emulated device"
        counts = g["emulated"]
        assert counts["launches"] > 0 and counts["compilations"] == 0 and counts["syncs"] == 0, row["case"]
    adam = next(r for r in result["rows"] if r["workload"] == "optimizer")["results"]["gpugrad"]["emulated"]
    assert adam["launches"] == 1  # one multi-tensor kernel for all 100 parameter tensors
    # fusion's targets: the 100-op chain in at most 4 launches forward and backward, the
    # elementwise workload in at most 3 with at most 1.5x its least possible traffic
    chain = next(r for r in result["rows"] if r["workload"] == "chain")["results"]["gpugrad"]["emulated"]
    assert chain["launches"] <= 4, chain
    ew = next(r for r in result["rows"] if r["workload"] == "elementwise")["results"]["gpugrad"]["emulated"]
    assert ew["launches"] <= 3 and ew["bytes_ratio"] <= 1.51, ew  # 1.5x, plus the partial sums (20 bytes)


def test_the_goal_summary_judges_fusions_targets_from_a_saved_run() -> None:
    from gpugrad.bench.report import goals

    def row(workload: str, n: int | None, results: dict) -> dict:
        return {"workload": workload, "case": f"{workload} case", "params": {"n": n}, "results": results}

    cpu = {"device": {"kind": "cpu"}, "settings": {}, "rows": [
        row("elementwise", 1 << 22, {"gpugrad": {}, "jax.jit": {"ratio": 0.68}, "numpy": {"ratio": 0.29}}),
        row("elementwise", 1 << 10, {"gpugrad": {}, "jax.jit": {"ratio": 3.0}}),  # only 4M is judged
        row("chain", 64, {"gpugrad": {}, "torch": {"ratio": 0.41}, "numpy": {"ratio": 1.63}}),
        row("mlp", None, {"gpugrad": {}, "numpy": {"ratio": 1.15}, "torch": {"ratio": 0.95}}),
    ]}
    got = {g["goal"]: (g["value"], g["target"], g["met"]) for g in goals(cpu)}
    assert got == {
        "CPU fused elementwise vs JAX jit": (0.68, 1.0, True),
        "CPU fused elementwise vs hand-NumPy": (0.29, 1.0, True),
        "CPU per-op overhead": (0.41, 0.5, True),
        "CPU per-op overhead vs hand-NumPy": (1.63, 1.0, False),
        "CPU MLP step": (1.15, 1.1, False),
        "CPU MLP step vs PyTorch": (0.95, 1.0, True),
    }
    emu = {"device": {"kind": "cuda", "emulated": True}, "settings": {}, "rows": [
        row("chain", 64, {"gpugrad": {"emulated": {"launches": 3, "compilations": 0}}}),
        row("elementwise", 1024, {"gpugrad": {"emulated": {"launches": 3, "bytes_ratio": 1.5024,
                                                            "compilations": 0}}}),
        row("mlp", None, {"gpugrad": {"emulated": {"launches": 27, "compilations": 1}}}),
    ]}
    got = {(g["goal"], g["line"].split(" case)")[0].rsplit("(", 1)[-1]): g["met"] for g in goals(emu)}
    assert got[("fused chain launches", "chain")] is True
    assert got[("fused elementwise launches", "elementwise")] is True
    assert got[("fused elementwise traffic", "elementwise")] is True  # 1.50 at the two decimals shown
    assert got[("no compilation after warm-up", "mlp mlp")] is False
    assert got[("no compilation after warm-up", "chain chain")] is True
    lines = [g["line"] for g in goals(emu)]
    assert "fwd+bwd (chain case) = 3 (goal <= 4): met" in lines[0]  # counts print as counts
    emu["settings"]["thread_warning"] = "pools unpinned"
    assert not any("unreliable" in line for line in (g["line"] for g in goals(emu)))  # threads change no count
    emu["rows"][1]["results"]["gpugrad"]["emulated"]["bytes_ratio"] = 1.52
    assert not next(g for g in goals(emu) if g["goal"] == "fused elementwise traffic")["met"]


def test_ab_steps_alternates_two_checkouts_and_prints_one_row_per_case() -> None:
    # the same checkout on both sides: the tool's mechanics, not a timing
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "ab_steps.py"), "--before", str(ROOT), "--after",
                           str(ROOT), "--only", "chain", "--reps", "1"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| chain")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1].endswith(" us") and float(cells[1].split()[0]) > 0 and float(cells[3]) > 0
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "ab_steps.py"), "--before", str(ROOT), "--after",
                          str(ROOT), "--only", "no-such-workload"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert bad.returncode != 0 and "no-such-workload" in bad.stderr


def test_vs_peer_alternates_gpugrad_and_a_peer_in_one_process() -> None:
    tool = str(ROOT / "tools" / "vs_peer.py")
    proc = subprocess.run([sys.executable, tool, "--case", "chain", "--peer", "numpy", "--rounds", "3", "--steps", "2"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:2]] == ["gpugrad", "numpy"]
    assert float(lines[0].split()[2]) > 0 and lines[2].startswith("gpugrad / numpy: best ")
    for bad, said in ((["--case", "no-such-workload"], "no workload 'no-such-workload'"),
                      (["--case", "chain/no-such-case"], "no case of chain matches 'no-such-case'"),
                      (["--peer", "no-such-peer"], "no peer 'no-such-peer'"),
                      (["--rounds", "0"], "must be at least 1")):
        out = subprocess.run([sys.executable, tool, *bad], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode != 0 and said in out.stderr


def _fake_jax(started: bool, fails: bool = False) -> tuple[dict[str, Any], list]:
    """Modules standing in for JAX: devices() records the CPUs its caller and a thread it starts
    may run on (XLA starts its pool there), or raises as a broken install does."""
    import threading
    import types

    seen: list = []

    def devices(kind: str = "cpu") -> list:
        if fails:
            raise AssertionError("no CPU backend")
        box: list = []
        t = threading.Thread(target=lambda: box.append(os.sched_getaffinity(0)))
        t.start()
        t.join()
        seen.append((os.sched_getaffinity(0), box[0]))
        return ["cpu:0"]

    jax, src, xb = types.ModuleType("jax"), types.ModuleType("jax._src"), types.ModuleType("jax._src.xla_bridge")
    jax.devices, src.xla_bridge, xb.backends_are_initialized = devices, xb, lambda: started
    return {"jax": jax, "jax._src": src, "jax._src.xla_bridge": xb}, seen


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity (Linux) and two CPUs to see one taken away")
def test_threads_1_starts_jax_with_its_threads_on_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpugrad.bench import runner

    before = os.sched_getaffinity(0)
    modules, seen = _fake_jax(started=False)
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    with runner.pinned_threads(1) as pinned:  # what `gpugrad bench --threads 1` runs in
        pass
    first = min(before)
    assert seen == [({first}, {first})] and "confined" in pinned["note"]
    assert os.sched_getaffinity(0) == before  # the caller's CPUs are given back

    modules, seen = _fake_jax(started=False, fails=True)  # a broken JAX fails in its own cells, later
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    assert "failed to start" in runner.start_jax_on_cpus(1) and os.sched_getaffinity(0) == before

    modules, seen = _fake_jax(started=True)  # already started: nothing to do, and the run says so
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    assert "already started" in runner.start_jax_on_cpus(1) and not seen
    monkeypatch.delitem(sys.modules, "jax")
    assert runner.start_jax_on_cpus(1) == "JAX not loaded"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs")
def test_threads_1_keeps_real_jax_on_one_cpu() -> None:
    pytest.importorskip("jax")
    code = ("import os, jax\nfrom gpugrad.bench import runner\n"
            "main = set(os.listdir('/proc/self/task'))\n"
            "print(runner.start_jax_on_cpus(1))\n"
            "import jax.numpy as jnp; jnp.ones(1 << 20).sum().block_until_ready()\n"
            "new = set(os.listdir('/proc/self/task')) - main\n"
            "print(sorted({len(os.sched_getaffinity(int(t))) for t in new}), len(new))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    note, widths = proc.stdout.strip().splitlines()[-2:]
    assert "confined" in note and widths.startswith("[1]"), proc.stdout
