"""``gpugrad train`` through its Python entry point: accuracy with the defaults, determinism,
checkpoints, metrics and plot, resume after Ctrl-C equal to an uninterrupted run, and usage errors."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

import gpugrad as gg

pytest.importorskip("sklearn")
from gpugrad.cli.train import TrainConfig, UsageError, train  # noqa: E402

TIMING_KEYS = {"seconds", "samples_per_s", "tokens_per_s"}


def _quiet(*_args: object) -> None:
    pass


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def test_mlp_defaults_reach_97_percent() -> None:
    result = train(TrainConfig.from_options(model="mlp", progress=False), log=_quiet)
    assert result["final"]["test_acc"] >= 0.97


def test_cnn_defaults_reach_98_percent() -> None:
    result = train(TrainConfig.from_options(model="cnn", progress=False), log=_quiet)
    assert result["final"]["test_acc"] >= 0.98


def test_same_seed_same_device_identical_metrics() -> None:
    runs = [train(TrainConfig.from_options(model="mlp", epochs=2, seed=5, progress=False), log=_quiet)
            for _ in range(2)]
    assert _strip(runs[0]["metrics"]) == _strip(runs[1]["metrics"])
    other = train(TrainConfig.from_options(model="mlp", epochs=2, seed=6, progress=False), log=_quiet)
    assert _strip(other["metrics"]) != _strip(runs[0]["metrics"])


def test_outputs_checkpoint_metrics_and_plot(tmp_path) -> None:  # noqa: ANN001
    lines: list[str] = []
    train(TrainConfig.from_options(model="mlp", epochs=2, out=str(tmp_path), progress=False), log=lines.append)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "samples_per_s", "lr"} <= rows[0].keys()
    state = gg.load(tmp_path / "checkpoint.safetensors")
    assert state["epoch"] == 2 and state["config"]["model"] == "mlp" and "model" in state and "optimizer" in state
    try:
        import matplotlib  # noqa: F401

        assert (tmp_path / "plot.png").stat().st_size > 1000
    except ImportError:
        assert any("matplotlib is not installed" in line for line in lines)
    assert any(line.startswith("epoch 2/2") and "samples/s" in line for line in lines)
    assert lines[-1].startswith("test accuracy:")
    assert any(line.startswith(f"saved in {tmp_path}/") for line in lines)


def test_weights_load_straight_into_the_model_built_by_hand(tmp_path) -> None:  # noqa: ANN001
    from gpugrad import models

    result = train(TrainConfig.from_options(model="mlp", epochs=2, out=str(tmp_path), progress=False), log=_quiet)
    weights = gg.load(tmp_path / "model.safetensors")
    assert list(weights) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    by_hand = models.mlp()
    assert by_hand.load_state_dict(weights) == ([], [])
    also = models.mlp()
    also.load_state_dict(gg.load(tmp_path / "checkpoint.safetensors")["model"])  # the checkpoint's copy too
    from gpugrad.data import load_digits

    split = load_digits(seed=0)
    mean, std = split.x_train.mean(0), split.x_train.std(0) + 0.01
    x = gg.tensor(((split.x_test - mean) / std).astype(np.float32))
    by_hand.eval()
    acc = float((by_hand(x).argmax(axis=1).numpy() == split.y_test).mean())
    assert acc == pytest.approx(result["final"]["test_acc"])
    np.testing.assert_array_equal(also(x).numpy(), by_hand(x).numpy())


def test_checkpoints_from_before_the_sequential_mlp_still_load() -> None:
    from gpugrad import models

    old_layout = {f"net.{k}": v.numpy() * 0 + 1 for k, v in models.mlp().state_dict().items()}
    m = models.mlp()
    m.load_state_dict(old_layout)
    assert all(np.all(v.numpy() == 1) for v in m.state_dict().values())
    cfg = TrainConfig.from_checkpoint({"model": "mlp", "dataset": "digits", "epochs": 3, "a_removed_option": 1})
    assert (cfg.model, cfg.epochs, cfg.force, cfg.lstm) == ("mlp", 3, False, {})


def test_ctrl_c_saves_and_resume_matches_uninterrupted_run(tmp_path) -> None:  # noqa: ANN001
    base = dict(model="mlp", epochs=3, seed=1, progress=False)
    full = train(TrainConfig.from_options(**base), log=_quiet)

    def interrupt(epoch: int, step: int) -> None:
        if (epoch, step) == (1, 7):
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C

    out = str(tmp_path / "run")
    first = train(TrainConfig.from_options(**base, out=out), on_step=interrupt, log=_quiet)
    assert first["interrupted"] and len(first["metrics"]) == 1
    state = gg.load(tmp_path / "run" / "checkpoint.safetensors")
    assert (state["epoch"], state["step"]) == (1, 8)
    resumed = train(TrainConfig.from_options(**base, out=out, resume=True), log=_quiet)
    assert _strip(resumed["metrics"]) == _strip(full["metrics"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert _strip(rows) == _strip(full["metrics"])


def test_resume_extends_a_finished_run(tmp_path) -> None:  # noqa: ANN001
    out = str(tmp_path)
    two = train(TrainConfig.from_options(model="mlp", epochs=2, out=out, progress=False), log=_quiet)
    three = train(TrainConfig.from_options(model="mlp", epochs=3, out=out, resume=True, progress=False), log=_quiet)
    assert len(three["metrics"]) == 3
    assert _strip(three["metrics"][:2]) == _strip(two["metrics"])
    done = train(TrainConfig.from_options(model="mlp", epochs=3, out=out, resume=True, progress=False), log=_quiet)
    assert len(done["metrics"]) == 3


@pytest.mark.parametrize("model,arch,lr", [("gpt", {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32}, 3e-3),
                                           ("lstm", {"embed_dim": 16, "hidden_size": 48, "block_size": 32}, 1e-2)])
def test_text_models_train_and_sample(model, arch, lr) -> None:  # noqa: ANN001
    cfg = TrainConfig.from_options(model=model, epochs=2, batch_size=4, lr=lr, progress=False)
    cfg.steps_per_epoch = 15
    setattr(cfg, model, arch)
    lines: list[str] = []
    result = train(cfg, log=lines.append)
    rows = result["metrics"]
    assert np.isfinite(rows[-1]["val_loss"]) and rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] < np.log(96)  # better than a uniform guess
    assert any(line.startswith("sample:\ndef ") for line in lines)


@pytest.mark.parametrize("options,message", [
    ({"model": "gpt", "dataset": "digits"}, "pysource"),
    ({"model": "mlp", "dataset": "pysource"}, "digits"),
    ({"model": "resnet"}, "--model"),
    ({"model": "mlp", "epochs": 0}, "--epochs"),
    ({"model": "mlp", "lr": -1.0}, "--lr"),
    ({"model": "mlp", "resume": True}, "--out"),
    ({"model": "mlp", "resume": True, "force": True, "out": "x"}, "give one"),
    ({"model": "lstm", "dataset": "digits"}, "pysource"),
])
def test_usage_errors(options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TrainConfig.from_options(**options)


def test_resume_without_checkpoint(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(UsageError, match="no checkpoint"):
        train(TrainConfig.from_options(model="mlp", out=str(tmp_path), resume=True, progress=False), log=_quiet)


def _cli(*args: str, cwd: str | None = None):  # noqa: ANN202
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([sys.executable, "-m", "gpugrad.cli.main", "train", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["--model", "nope"], "invalid choice"),
    (["--model", "gpt", "--dataset", "digits"], "pysource"),
    (["--epochs", "-3"], "--epochs"),
    (["--resume"], "--out"),
    (["--device", "tpu"], "unknown device"),
])
def test_cli_bad_options_one_line_exit_2(args: list[str], message: str) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_cli_runs_and_writes_outputs(tmp_path) -> None:  # noqa: ANN001
    proc = _cli("--epochs", "1", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1" in proc.stdout and "test accuracy:" in proc.stdout
    assert (tmp_path / "checkpoint.safetensors").exists() and (tmp_path / "metrics.jsonl").exists()


def test_plot_is_skipped_with_a_note_without_matplotlib(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    lines: list[str] = []
    train(TrainConfig.from_options(model="mlp", epochs=1, out=str(tmp_path), progress=False), log=lines.append)
    assert not (tmp_path / "plot.png").exists()
    assert any("matplotlib is not installed" in line for line in lines)


def test_cli_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "gpugrad.cli.main", "train", "--epochs", "50", "--out", str(tmp_path),
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:  # wait until training is under way, then press "Ctrl-C"
            if line.startswith("epoch 1/50"):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: checkpoint saved" in out and "Traceback" not in err
    state = gg.load(tmp_path / "checkpoint.safetensors")
    assert state["epoch"] >= 1
    done = subprocess.run([*cmd[:5], "2", *cmd[6:], "--resume"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming mlp on digits" in done.stdout


def test_cli_without_out_writes_a_new_run_folder_and_says_so(tmp_path) -> None:  # noqa: ANN001
    proc = _cli("--epochs", "1", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("writing this run to runs/mlp-") and "--out" in first
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("mlp-") and first.split()[4] == f"runs/{run.name}/"
    assert {p.name for p in run.iterdir()} >= {"checkpoint.safetensors", "model.safetensors", "metrics.jsonl"}
    second = _cli("--epochs", "1", cwd=str(tmp_path))
    assert second.returncode == 0 and len(list((tmp_path / "runs").iterdir())) == 2  # never the same folder


def test_default_run_dir_names() -> None:
    from datetime import datetime

    from gpugrad.cli.train import default_run_dir

    when = datetime(2026, 11, 22, 7, 5, 9)
    assert str(default_run_dir("cnn", when)) == "runs/cnn-20261122-070509"


def test_an_out_holding_a_run_is_refused_unless_resume_or_force(tmp_path) -> None:  # noqa: ANN001
    out = str(tmp_path / "run")
    train(TrainConfig.from_options(model="mlp", epochs=1, out=out, progress=False), log=_quiet)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(UsageError, match="already holds a run.*--resume.*--force"):
        train(TrainConfig.from_options(model="mlp", epochs=1, out=out, progress=False), log=_quiet)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before  # nothing touched
    proc = _cli("--epochs", "1", "--out", out)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr and "Traceback" not in proc.stderr
    again = train(TrainConfig.from_options(model="mlp", epochs=2, seed=3, out=out, force=True, progress=False),
                  log=_quiet)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert _strip(rows) == _strip(again["metrics"]) and len(rows) == 2  # started over
    (tmp_path / "empty").mkdir()
    train(TrainConfig.from_options(model="mlp", epochs=1, out=str(tmp_path / "empty"), progress=False), log=_quiet)


def test_help_shows_every_default() -> None:
    import subprocess
    import sys

    from gpugrad.cli.main import build_parser

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        if action.dest != "help":
            assert "default" in (action.help or ""), action.option_strings
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "gpugrad.cli.main", "train", "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and "(default: mlp 30, cnn 20, gpt 10, lstm" in text
    assert "(default: a new runs/<model>-<date>-<time>/)" in text


class _Stream:
    """A stderr stand-in that is (or is not) a terminal."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.parts = tty, []

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> int:
        self.parts.append(s)
        return len(s)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [False, True])
def test_progress_bar_only_on_a_terminal(tty, monkeypatch) -> None:  # noqa: ANN001
    pytest.importorskip("tqdm")
    import sys

    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    lines: list[str] = []
    train(TrainConfig.from_options(model="mlp", epochs=1, progress=True), log=lines.append)
    drawn = "".join(stream.parts)
    assert ("epoch 1/1:" in drawn and "/23 [" in drawn) if tty else drawn == ""
    assert any(line.startswith("epoch 1/1") for line in lines)  # the per-epoch line always


def test_plot_title_whole_epoch_ticks_and_honest_labels(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    figures, real_close = [], plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    train(TrainConfig.from_options(model="mlp", epochs=3, out=str(tmp_path), progress=False), log=_quiet)
    fig = figures[-1]
    assert fig._suptitle.get_text() == "mlp on digits (cpu)"
    loss_ax, acc_ax = fig.axes
    for ax in (loss_ax, acc_ax):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert labels == ["train loss (label-smoothed 0.1, mean over the epoch)", "test loss (end of epoch)"]
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == [
        "train accuracy (mean over the epoch)", "test accuracy (end of epoch)"]
    for f in figures:
        real_close(f)


def test_checkpoints_of_short_epochs_are_throttled_but_always_written_at_the_end(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import gpugrad.cli.train as cli_train

    saved: list[tuple[int, int]] = []
    real = cli_train.save_state

    def spy(out, run, epoch, step, running):  # noqa: ANN001, ANN202
        saved.append((epoch, step))
        return real(out, run, epoch, step, running)

    monkeypatch.setattr(cli_train, "save_state", spy)
    train(TrainConfig.from_options(model="mlp", epochs=3, out=str(tmp_path / "a"), progress=False), log=_quiet)
    assert saved == [(3, 0)]  # 50 ms epochs: only the final checkpoint
    saved.clear()
    monkeypatch.setattr(cli_train, "CHECKPOINT_EVERY_S", 0.0)
    train(TrainConfig.from_options(model="mlp", epochs=3, out=str(tmp_path / "b"), progress=False), log=_quiet)
    assert saved == [(1, 0), (2, 0), (3, 0)]
