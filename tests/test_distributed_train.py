"""``mpirun -n 2 gpugrad train``: data-parallel training on the CPU, rank 0 printing and writing,
a stop request reaching every rank, and ``--resume`` continuing exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import gpugrad as gg
from tests._mpirun import ROOT, mpirun, run, skip_without_mpi

pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn")
TRAIN = ["-m", "gpugrad.cli.main", "train", "--model", "mlp", "--epochs", "8", "--batch-size", "32", "--no-progress"]


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_s")} for row in rows]


def _start_and_signal(out: Path, sig: int) -> tuple[subprocess.Popen, str]:
    """Start a 2-rank run, send ``sig`` to mpirun once epoch 1 is printed; (process, output)."""
    proc = mpirun(2, TRAIN + ["--out", str(out)], timeout=60)
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if line.startswith("epoch 1/8"):
            proc.send_signal(sig)
            break
    try:
        rest, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("mpirun did not end after the signal:\n" + "".join(seen))
    return proc, "".join(seen) + rest


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    skip_without_mpi()
    out = tmp_path_factory.mktemp("train") / "reference"
    code, log = run(2, TRAIN + ["--out", str(out)], timeout=60, limit=300)
    assert code == 0, log[-4000:]
    return out, log


def test_rank_zero_alone_prints_and_writes(reference: tuple[Path, str]) -> None:
    out, log = reference
    assert "batch 32 per rank x 2 ranks" in log
    assert log.count("epoch 1/8") == 1 and log.count("test accuracy:") == 1  # one rank prints
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "metrics.jsonl",
                                                     "model.safetensors", "plot.png"]
    rows = _metrics(out)
    assert len(rows) == 8 and rows[-1]["test_acc"] > 0.85
    state = gg.load(out / "checkpoint.safetensors")
    assert state["config"]["ranks"] == 2 and state["epoch"] == 8


def test_a_stop_request_stops_every_rank_and_resume_continues_exactly(reference: tuple[Path, str],
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc, log = _start_and_signal(out, signal.SIGUSR1)  # Open MPI forwards SIGUSR1 to every rank
    assert proc.returncode == 130, log[-4000:]
    assert "interrupted: checkpoint saved" in log and log.count("interrupted") == 1
    state = gg.load(out / "checkpoint.safetensors")
    assert (state["epoch"], state["step"]) < (8, 0)
    code, resumed = run(2, TRAIN + ["--out", str(out), "--resume"], timeout=60, limit=300)
    assert code == 0, resumed[-4000:]
    assert "resuming mlp on digits" in resumed
    assert _metrics(out) == _metrics(reference[0])  # as if never interrupted


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return found


def test_ctrl_c_on_mpirun_ends_every_rank(tmp_path: Path) -> None:
    skip_without_mpi()
    out = tmp_path / "ctrl-c-run"
    proc, log = _start_and_signal(out, signal.SIGINT)  # mpirun: SIGTERM to every rank, then SIGKILL
    assert proc.returncode != 0
    assert _processes_mentioning(str(out)) == []  # no rank left behind
    if (out / "checkpoint.safetensors").exists():  # saved on the stop request if there was time: intact
        assert gg.load(out / "checkpoint.safetensors")["epoch"] >= 1


def test_resume_without_a_checkpoint_fails_on_every_rank(tmp_path: Path) -> None:
    skip_without_mpi()
    code, log = run(2, TRAIN + ["--out", str(tmp_path), "--resume"], timeout=60)
    assert code == 2
    assert log.count("--resume: no checkpoint at") == 2  # rank 0 looked; every rank says so


def test_an_out_folder_holding_a_run_is_refused_on_every_rank(reference: tuple[Path, str]) -> None:
    code, log = run(2, TRAIN + ["--out", str(reference[0])], timeout=60)
    assert code == 2
    assert log.count("already holds a run") == 2  # rank 0 looked; every rank stops with its message


def test_resuming_with_another_number_of_ranks_is_refused(reference: tuple[Path, str]) -> None:
    out, _ = reference
    done = subprocess.run([sys.executable, *TRAIN, "--out", str(out), "--resume", "--epochs", "9"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "written by a run on 2 process(es); resume it with the same number (mpirun -n), not 1" in done.stderr
