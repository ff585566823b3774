"""``gpugrad train``: train an MLP or CNN on the digits, or a small GPT or a character-level LSTM
on Python source, on the GPU when one is present, with checkpoints, metrics, a plot, resume and
Ctrl-C handling.

Runs are deterministic for a given seed and device: the data order of epoch ``e`` comes from a
DistributedSampler seeded with ``seed`` (``set_epoch(e)``) and the random generators are
re-seeded from ``(seed, epoch, step)`` before every step, so a run resumed from any checkpoint
continues exactly as an uninterrupted one.

The work is split into one function per job (options -> config, the output folder, resuming,
building the model and optimiser, one epoch of steps, evaluation, writing the outputs), so that
each can be changed (e.g. for data-parallel training) without touching the others.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import gpugrad as gg
from gpugrad.cli import UsageError as _CliUsageError
from gpugrad.cli._distributed import DataParallel
from gpugrad.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

CHECKPOINT = "checkpoint.safetensors"  # everything needed to resume (gg.load gives a dict)
WEIGHTS = "model.safetensors"  # the model's state_dict alone: loads into gpugrad.models.<name>()
METRICS = "metrics.jsonl"
PLOT = "plot.png"
RUN_FILES = (CHECKPOINT, WEIGHTS, METRICS, PLOT)

DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"dataset": "digits", "epochs": 30, "batch_size": 64, "lr": 1e-3},
    "cnn": {"dataset": "digits", "epochs": 20, "batch_size": 64, "lr": 2e-3},
    "gpt": {"dataset": "pysource", "epochs": 10, "batch_size": 32, "lr": 1e-3},
    "lstm": {"dataset": "pysource", "epochs": 10, "batch_size": 32, "lr": 3e-3},
}
TEXT_MODELS = ("gpt", "lstm")
STEPS_PER_EPOCH = 250  # text models: an "epoch" is this many steps of random windows
EVAL_BATCHES = 8  # text models: validation windows per evaluation, in batches
LABEL_SMOOTHING = 0.1  # digits: +1 point of test accuracy for both models (measured over 5 seeds)
# During a run, the checkpoint is saved after an epoch at most this often, and the plot redrawn;
# both are always written at the end and on Ctrl-C.
CHECKPOINT_EVERY_S = 30.0
PLOT_EVERY_S = 60.0
LSTM_CLIP_NORM = 1.0  # the LSTM's gradient norm is clipped, as is usual for recurrent networks


class UsageError(_CliUsageError):
    """A bad combination of training options (one line on stderr, exit status 2)."""


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in each checkpoint."""

    model: str = "mlp"
    dataset: str = "digits"
    device: str = "auto"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    out: str | None = None
    resume: bool = False
    force: bool = False
    progress: bool = True
    steps_per_epoch: int = STEPS_PER_EPOCH
    gpt: dict = field(default_factory=dict)  # GPTConfig overrides
    lstm: dict = field(default_factory=dict)  # CharLSTMConfig overrides
    # The learning-rate schedule's horizon: the --epochs of the run's first start. Resuming up
    # to a larger --epochs trains on at the schedule's final rate.
    plan_epochs: int = 0
    ranks: int = 1  # data-parallel processes (mpirun -n); a run resumes with the same number

    @classmethod
    def from_options(cls, model: str = "mlp", dataset: str | None = None, **options: Any) -> TrainConfig:
        if model not in DEFAULTS:
            raise UsageError(f"--model must be one of {', '.join(DEFAULTS)}, got {model!r}")
        values = {**DEFAULTS[model], **{k: v for k, v in options.items() if v is not None}}
        values["dataset"] = dataset or DEFAULTS[model]["dataset"]
        cfg = cls(model=model, **values)
        cfg.plan_epochs = cfg.plan_epochs or cfg.epochs
        cfg.validate()
        return cfg

    @classmethod
    def from_checkpoint(cls, saved: dict) -> TrainConfig:
        """The config stored in a checkpoint (keys added since it was written take their defaults)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in saved.items() if k in known})

    def validate(self) -> None:
        if self.dataset not in ("digits", "pysource"):
            raise UsageError(f"--dataset must be digits or pysource, got {self.dataset!r}")
        if self.model in TEXT_MODELS and self.dataset != "pysource":
            raise UsageError(f"--model {self.model} is a language model: it trains on --dataset pysource")
        if self.model not in TEXT_MODELS and self.dataset != "digits":
            raise UsageError(f"--model {self.model} classifies images: it trains on --dataset digits")
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if self.resume and not self.out:
            raise UsageError("--resume needs --out DIR (the folder holding the checkpoint)")
        if self.resume and self.force:
            raise UsageError("--resume continues the run in --out and --force starts it over: give one")


def resolve_device(name: str) -> str:
    if name == "auto":
        # the emulated CUDA device (for tests) is never chosen by "auto", only when asked for
        return "cuda:0" if gg.cuda.is_available() and not gg.cuda.is_emulated() else "cpu"
    from gpugrad.backends import normalize_device

    return normalize_device(name)


def step_seed(seed: int, epoch: int, step: int) -> int:
    """The seed of the random generators for one step (dropout masks)."""
    return (seed * 1_000_003 + epoch * 100_003 + step) % (2**63)


# ---------------------------------------------------------------------------------------------
# tasks: data, model, loss and evaluation for each (model, dataset)


def correct_count(logits: gg.Tensor, y: gg.Tensor) -> gg.Tensor:
    """How many rows' argmax equals the label, as a tensor on the logits' device (no sync)."""
    return (logits.argmax(axis=-1) == y).sum()


class DigitsTask:
    """Classify scikit-learn's 8x8 digits (MLP or CNN)."""

    unit = "samples"
    split = "test"
    clip_norm: float | None = None
    train_loss_label = f"train loss (label-smoothed {LABEL_SMOOTHING}, mean over the epoch)"

    def __init__(self, cfg: TrainConfig, device: str) -> None:
        from gpugrad.data import load_digits

        self.cfg = cfg
        self.device = device
        split = load_digits(seed=0)
        shape = (-1, 1, 8, 8) if cfg.model == "cnn" else (-1, 64)
        # Standardise each pixel with the training set's statistics (the border pixels are
        # nearly constant; the 0.01 keeps them from blowing up).
        mean, std = split.x_train.mean(0), split.x_train.std(0) + 0.01
        x_train = ((split.x_train - mean) / std).astype(np.float32)
        x_test = ((split.x_test - mean) / std).astype(np.float32)
        self.train_set = TensorDataset(gg.tensor(x_train.reshape(shape), device=device),
                                       gg.tensor(split.y_train, device=device))
        self.x_test = gg.tensor(x_test.reshape(shape), device=device)
        self.y_test = gg.tensor(split.y_test, device=device)
        self.sampler = DistributedSampler(self.train_set, shuffle=True, seed=cfg.seed)
        self.loader = DataLoader(self.train_set, batch_size=cfg.batch_size, sampler=self.sampler)

    def build_model(self) -> gg.nn.Module:
        from gpugrad import models

        return models.cnn() if self.cfg.model == "cnn" else models.mlp()

    def build_optimizer(self, model: gg.nn.Module) -> tuple[Any, Any]:
        opt = gg.optim.Adam(model.parameters(), lr=self.cfg.lr)
        return opt, gg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.schedule_steps())

    def schedule_steps(self) -> int:
        return self.cfg.plan_epochs * self.steps(0)

    def steps(self, epoch: int) -> int:
        return len(self.loader)

    def batches(self, epoch: int, first: int) -> Iterator[tuple[gg.Tensor, gg.Tensor]]:
        """The epoch's batches from step ``first`` on (the order is drawn once per epoch)."""
        self.sampler.set_epoch(epoch)
        return islice(iter(self.loader), first, None)

    def items(self, x: gg.Tensor) -> int:
        return x.shape[0]

    def loss(self, model: gg.nn.Module, x: gg.Tensor, y: gg.Tensor) -> tuple[gg.Tensor, gg.Tensor]:
        logits = model(x)
        return gg.nn.functional.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING), logits

    def evaluate(self, model: gg.nn.Module) -> dict[str, float]:
        model.eval()
        with gg.inference_mode():
            logits = model(self.x_test)
            loss = gg.nn.functional.cross_entropy(logits, self.y_test)
        model.train()
        correct = int(correct_count(logits, self.y_test).item())
        return {"test_loss": float(loss.item()), "test_acc": correct / len(self.y_test)}

    def finish(self, model: gg.nn.Module, metrics: dict[str, float], log: Callable[[str], None]) -> None:
        log(f"test accuracy: {100 * metrics['test_acc']:.2f}% ({self.cfg.model} on digits, "
            f"{len(self.y_test)} held-out images)")


class TextTask:
    """Next-character prediction on Python source (GPT or LSTM), on random windows."""

    unit = "tokens"
    split = "val"
    train_loss_label = "train loss (mean over the epoch)"

    def __init__(self, cfg: TrainConfig, device: str) -> None:
        from gpugrad.data import CharWindows, load_pysource
        from gpugrad.models import CharLSTMConfig, GPTConfig

        self.cfg = cfg
        self.device = device
        self.corpus = load_pysource()
        if cfg.model == "gpt":
            self.model_cfg: Any = GPTConfig(vocab_size=self.corpus.vocab_size, **cfg.gpt)
        else:
            self.model_cfg = CharLSTMConfig(vocab_size=self.corpus.vocab_size, **cfg.lstm)
        self.clip_norm = LSTM_CLIP_NORM if cfg.model == "lstm" else None
        block = self.model_cfg.block_size
        windows = CharWindows(self.corpus.train, block, device)
        self.sampler = DistributedSampler(windows, shuffle=True, seed=cfg.seed)
        self.loader = DataLoader(windows, batch_size=cfg.batch_size, sampler=self.sampler)
        val = CharWindows(self.corpus.val, block, device)
        # The same validation windows every epoch, drawn once from the run's seed.
        rng = np.random.default_rng([cfg.seed, 10**6])
        starts = rng.integers(0, len(val) - 1, size=EVAL_BATCHES * cfg.batch_size).tolist()
        self.val_loader = DataLoader(Subset(val, starts), batch_size=cfg.batch_size)

    def build_model(self) -> gg.nn.Module:
        from gpugrad.models import GPT, CharLSTM

        return GPT(self.model_cfg) if self.cfg.model == "gpt" else CharLSTM(self.model_cfg)

    def build_optimizer(self, model: gg.nn.Module) -> tuple[Any, Any]:
        if self.cfg.model == "gpt":
            opt: Any = gg.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=0.01)
        else:
            opt = gg.optim.Adam(model.parameters(), lr=self.cfg.lr)
        return opt, gg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.schedule_steps(),
                                                             eta_min=self.cfg.lr * 0.1)

    def schedule_steps(self) -> int:
        return self.cfg.plan_epochs * self.steps(0)

    def steps(self, epoch: int) -> int:
        return min(self.cfg.steps_per_epoch, len(self.loader))

    def batches(self, epoch: int, first: int) -> Iterator[tuple[gg.Tensor, gg.Tensor]]:
        self.sampler.set_epoch(epoch)
        return islice(iter(self.loader), first, self.steps(epoch))

    def items(self, x: gg.Tensor) -> int:
        return x.size

    def loss(self, model: gg.nn.Module, x: gg.Tensor, y: gg.Tensor) -> tuple[gg.Tensor, gg.Tensor]:
        logits = model(x)
        b, t, v = logits.shape
        return gg.nn.functional.cross_entropy(logits.reshape(b * t, v), y.reshape(b * t)), logits

    def evaluate(self, model: gg.nn.Module) -> dict[str, float]:
        model.eval()
        count = 0
        total = gg.zeros((), dtype=gg.float64, device=self.device)
        correct = gg.zeros((), dtype=gg.int64, device=self.device)
        with gg.inference_mode():
            for x, y in self.val_loader:
                loss, logits = self.loss(model, x, y)
                # sums stay on the device: one synchronisation for the whole evaluation
                total = total + loss.astype(gg.float64) * y.size
                correct = correct + correct_count(logits, y)
                count += y.size
        model.train()
        return {"val_loss": float(total.item()) / count, "val_acc": int(correct.item()) / count}

    def finish(self, model: gg.nn.Module, metrics: dict[str, float], log: Callable[[str], None]) -> None:
        prompt = "def "
        ids = model.generate(self.corpus.encode(prompt), 300, temperature=0.8, seed=self.cfg.seed)
        log(f"validation loss: {metrics['val_loss']:.3f} nats/char")
        log("sample:\n" + self.corpus.decode(ids))


def make_task(cfg: TrainConfig, device: str) -> DigitsTask | TextTask:
    return TextTask(cfg, device) if cfg.model in TEXT_MODELS else DigitsTask(cfg, device)


# ---------------------------------------------------------------------------------------------
# the output folder, checkpoints and outputs


def default_run_dir(model: str, now: datetime | None = None, root: Path = Path("runs")) -> Path:
    """A new folder ``runs/<model>-<date>-<time>`` (with a suffix if that one exists already)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = root / f"{model}-{stamp}"
    k = 2
    while path.exists():
        path = root / f"{model}-{stamp}-{k}"
        k += 1
    return path


def holds_run(out: Path) -> bool:
    return any((out / name).exists() for name in RUN_FILES)


def prepare_output(cfg: TrainConfig) -> Path | None:
    """The run's output folder, created: ``--out``, which must not hold another run unless
    ``--resume`` (continue it) or ``--force`` (start over: its run files are removed)."""
    if cfg.out is None:
        return None
    out = Path(cfg.out)
    if cfg.resume:  # load_resume_state found the checkpoint there
        return out
    if holds_run(out):
        if not cfg.force:
            present = ", ".join(name for name in RUN_FILES if (out / name).exists())
            raise UsageError(f"--out {out} already holds a run ({present}); pass --resume to continue it or --force "
                             "to start over")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


class _Interrupt:
    """SIGINT (and, under mpirun, the signals of DataParallel.stop_signals) sets a flag; the loop
    stops at the next step boundary that every rank agrees on, and saves a checkpoint."""

    def __init__(self, dp: DataParallel | None = None) -> None:
        self.requested = False
        self._dp = dp or DataParallel()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupt:
        for sig in self._dp.stop_signals():
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: Ctrl-C is not ours to catch
                break
        return self

    def agreed(self) -> bool:
        """Whether to stop after this step (every rank gets the same answer)."""
        return self._dp.agree_to_stop(self.requested)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def _save_checkpoint(out: Path, state: dict) -> Path:
    path = out / CHECKPOINT
    gg.save(state, path)
    return path


def _append_metrics(out: Path, row: dict) -> None:
    with open(out / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _rewrite_metrics(out: Path, rows: list[dict]) -> None:
    tmp = out / (METRICS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    tmp.replace(out / METRICS)


def _plot(out: Path, rows: list[dict], title: str, train_loss_label: str, log: Callable[[str], None]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        log("note: matplotlib is not installed, so no plot was drawn (pip install matplotlib)")
        return
    epochs = [r["epoch"] for r in rows]
    split = "test" if "test_loss" in rows[0] else "val"
    split_name = "test" if split == "test" else "validation"
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker="o", label=train_loss_label)
    ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], marker="o", label=f"{split_name} loss (end of epoch)")
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in rows], marker="o", label="train accuracy (mean over the epoch)")
    ax_acc.plot(epochs, [100 * r[f"{split}_acc"] for r in rows], marker="o",
                label=f"{split_name} accuracy (end of epoch)")
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    tmp = out / (PLOT + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out / PLOT)


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class Run:
    """What a training run works on: its config, device, task, model, optimiser and schedule."""

    cfg: TrainConfig
    device: str
    task: DigitsTask | TextTask
    model: gg.nn.Module
    optimizer: Any
    scheduler: Any
    metrics: list = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.cfg.model} on {self.cfg.dataset} ({self.device})"

    def snapshot(self, epoch: int, step: int, running: dict) -> dict:
        return {"config": asdict(self.cfg), "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "epoch": epoch, "step": step, "running": dict(running), "metrics": self.metrics}


def _fresh_running() -> dict:
    return {"loss": 0.0, "correct": 0, "count": 0, "items": 0, "seconds": 0.0}


def load_resume_state(cfg: TrainConfig, device: str,
                      dp: DataParallel | None = None) -> tuple[TrainConfig, dict | None]:
    """With ``--resume``: the checkpoint, and the run's config from it (this call's --epochs,
    --out, --device and progress choice kept)."""
    if not cfg.resume:
        return cfg, None
    dp = dp or DataParallel()
    path = Path(cfg.out) / CHECKPOINT  # type: ignore[arg-type]
    state = dp.load(path, device)  # read by rank 0 alone under mpirun
    if state is None:
        raise UsageError(f"--resume: no checkpoint at {path}")
    saved = state["config"]
    if saved.get("ranks", 1) != dp.world_size:
        raise UsageError(f"--resume: the checkpoint was written by a run on {saved.get('ranks', 1)} process(es); "
                         f"resume it with the same number (mpirun -n), not {dp.world_size}")
    for key in ("model", "dataset"):  # the run's other settings come from the checkpoint
        if saved[key] != getattr(cfg, key):
            raise UsageError(f"--resume: the checkpoint is a {key}={saved[key]!r} run, not {getattr(cfg, key)!r}")
    resumed = TrainConfig.from_checkpoint({**saved, "epochs": cfg.epochs, "out": cfg.out, "resume": True,
                                           "force": False, "device": cfg.device, "progress": cfg.progress})
    return resumed, state


def build_run(cfg: TrainConfig, device: str, state: dict | None) -> tuple[Run, int, int, dict]:
    """The task, model, optimiser and schedule, restored from ``state`` when resuming; also the
    epoch and step to start from and the running sums of a part-done epoch."""
    gg.manual_seed(cfg.seed)
    task = make_task(cfg, device)
    model = task.build_model().to(device)
    optimizer, scheduler = task.build_optimizer(model)
    run = Run(cfg, device, task, model, optimizer, scheduler)
    if state is None:
        return run, 0, 0, _fresh_running()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    run.metrics = list(state["metrics"])
    return run, int(state["epoch"]), int(state["step"]), dict(state["running"])


def train_epoch(run: Run, epoch: int, first: int, running: dict, interrupt: _Interrupt,
                on_step: Callable[[int, int], None] | None, progress: Callable[..., Any]) -> tuple[int, bool]:
    """Steps ``first``.. of one epoch, adding to ``running``; returns (next step, interrupted)."""
    cfg, task, model, optimizer, scheduler = run.cfg, run.task, run.model, run.optimizer, run.scheduler
    # The epoch's loss and accuracy sums stay on the device (no host sync per step); they start
    # from the host totals, so a resumed epoch adds in the same order as an uninterrupted one.
    loss_sum = gg.tensor(running["loss"], dtype=gg.float64, device=run.device)
    correct_sum = gg.tensor(running["correct"], dtype=gg.int64, device=run.device)
    bar = progress(total=task.steps(epoch), initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}")
    tick = time.perf_counter()
    step = first
    interrupted = False
    for x, y in task.batches(epoch, first):
        gg.manual_seed(step_seed(cfg.seed, epoch, step))
        loss, logits = task.loss(model, x, y)
        optimizer.zero_grad()
        loss.backward()
        if task.clip_norm is not None:
            gg.nn.utils.clip_grad_norm_(model.parameters(), task.clip_norm)
        optimizer.step()
        if scheduler is not None and scheduler.last_epoch < task.schedule_steps():
            scheduler.step()
        n = y.size
        with gg.no_grad():
            loss_sum = loss_sum + loss.astype(gg.float64) * n
            correct_sum = correct_sum + correct_count(logits, y)
        running["count"] += n
        running["items"] += task.items(x)
        step += 1
        bar.update(1)
        if on_step is not None:
            on_step(epoch, step - 1)
        if interrupt.agreed():
            interrupted = True
            break
    bar.close()
    running["loss"] = float(loss_sum.item())
    running["correct"] = int(correct_sum.item())
    running["seconds"] += time.perf_counter() - tick
    return step, interrupted


def epoch_metrics(run: Run, epoch: int, running: dict) -> dict:
    """The epoch's row of metrics.jsonl: training sums, evaluation, rate, time, throughput."""
    row = {"epoch": epoch + 1, "train_loss": running["loss"] / max(running["count"], 1),
           "train_acc": running["correct"] / max(running["count"], 1)}
    row.update(run.task.evaluate(run.model))
    row["lr"] = float(run.optimizer.param_groups[0]["lr"])
    row["seconds"] = running["seconds"]
    row[f"{run.task.unit}_per_s"] = running["items"] / max(running["seconds"], 1e-9)
    return row


def save_state(out: Path, run: Run, epoch: int, step: int, running: dict) -> Path:
    """The checkpoint (everything needed to resume at ``epoch``, ``step``) and the weights alone."""
    path = _save_checkpoint(out, run.snapshot(epoch, step, running))
    gg.save(run.model.state_dict(), out / WEIGHTS)
    return path


class _Every:
    """True at most once every ``seconds`` (what is cheap to skip when epochs are short: saving
    and plotting take tens of milliseconds to a second, an MLP epoch on the digits 50 ms)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.last = seconds, time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


def plot_run(out: Path, run: Run, log: Callable[[str], None]) -> None:
    """Draw plot.png from the metrics so far (title: model, dataset, device)."""
    if run.metrics:
        _plot(out, run.metrics, run.title, run.task.train_loss_label, log)


def train(cfg: TrainConfig, on_step: Callable[[int, int], None] | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run training as configured; returns {"metrics": [...], "final": {...}, "interrupted": bool}.

    Writes to ``cfg.out`` when it is set (the command line sets a default), nothing otherwise.
    ``on_step(epoch, step)`` is called after every optimiser step (tests use it to interrupt).
    Example::

        result = train(TrainConfig.from_options(model="mlp", epochs=2))
    """
    dp = DataParallel()  # one process, or one rank of mpirun -n N (see gpugrad/cli/_distributed.py)
    device = dp.device(cfg.device, resolve_device(cfg.device))
    dp.start(device)
    try:
        return _train(cfg, dp, device, on_step, log if dp.main else _quiet)
    except UsageError:
        raise  # found on every rank alike (checked by rank 0 and shared)
    except BaseException as exc:
        dp.abort(exc)  # under mpirun: one rank failed, so end them all (nothing without mpirun)
        raise
    finally:
        dp.stop()


def _quiet(message: str) -> None:
    """Ranks other than 0 print nothing."""


def _train(cfg: TrainConfig, dp: DataParallel, device: str, on_step: Callable[[int, int], None] | None,
           log: Callable[[str], None]) -> dict[str, Any]:
    cfg, state = load_resume_state(cfg, device, dp)
    cfg.ranks = dp.world_size
    out = dp.on_main(lambda: prepare_output(cfg), UsageError)  # rank 0 alone writes
    run, start_epoch, start_step, running = build_run(cfg, device, state)
    run.model = dp.wrap(run.model)
    if state is not None:
        running = dp.own_share(running, _fresh_running())
        if out is not None:
            _rewrite_metrics(out, run.metrics)
        log(f"resuming {cfg.model} on {cfg.dataset} from epoch {start_epoch + 1}, step {start_step}")
    if start_epoch >= cfg.epochs:
        log(f"nothing to do: the checkpoint has already finished {start_epoch} of --epochs {cfg.epochs}")
        return {"metrics": run.metrics, "final": run.metrics[-1] if run.metrics else {}, "interrupted": False}

    n_params = sum(p.size for p in run.model.parameters())
    batch = f"{cfg.batch_size} per rank x {dp.world_size} ranks" if dp.enabled else cfg.batch_size
    log(f"training {cfg.model} ({n_params:,} parameters) on {cfg.dataset}, device {device}, "
        f"{cfg.epochs} epochs, batch {batch}, lr {cfg.lr}, seed {cfg.seed}")
    progress = _progress_factory(cfg.progress and _is_terminal(sys.stderr) and dp.main)
    run.model.train()
    checkpoint_due, plot_due = _Every(CHECKPOINT_EVERY_S), _Every(PLOT_EVERY_S)
    with _Interrupt(dp) as interrupt:
        for epoch in range(start_epoch, cfg.epochs):
            first = start_step if epoch == start_epoch else 0
            if first == 0:
                running = _fresh_running()
            step, interrupted = train_epoch(run, epoch, first, running, interrupt, on_step, progress)
            if interrupted:
                running = dp.totals(running)
                if out is not None:
                    path = save_state(out, run, epoch, step, running)
                    plot_run(out, run, log)
                    log(f"interrupted: checkpoint saved to {path}; continue with --resume --out {out}")
                else:
                    log("interrupted (no output folder, so nothing was saved)")
                dp.barrier()  # the other ranks exit only once rank 0 has saved
                return {"metrics": run.metrics, "final": run.metrics[-1] if run.metrics else {}, "interrupted": True}
            row = epoch_metrics(run, epoch, dp.totals(running))
            run.metrics.append(row)
            log(_epoch_line(row, cfg.epochs, run.task.unit))
            if out is not None:
                _append_metrics(out, row)
                if epoch + 1 < cfg.epochs and checkpoint_due.due():
                    save_state(out, run, epoch + 1, 0, _fresh_running())
                if epoch + 1 < cfg.epochs and plot_due.due():
                    plot_run(out, run, log)
    if out is not None:
        save_state(out, run, cfg.epochs, 0, _fresh_running())
        plot_run(out, run, log)
        log(f"saved in {out}/: {WEIGHTS} (the weights: gpugrad.models.{cfg.model}(...).load_state_dict("
            f"gg.load(path))), {CHECKPOINT} (to continue: --resume --out {out}), {METRICS}, {PLOT}")
    if dp.main:
        run.task.finish(getattr(run.model, "module", run.model), run.metrics[-1], log)
    return {"metrics": run.metrics, "final": run.metrics[-1], "interrupted": False}


def _epoch_line(row: dict, epochs: int, unit: str) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.1f}%"]
    for split in ("test", "val"):
        if f"{split}_loss" in row:
            parts.append(f"{split} loss {row[f'{split}_loss']:.4f} acc {100 * row[f'{split}_acc']:.1f}%")
    parts.append(f"{row[f'{unit}_per_s']:,.0f} {unit}/s")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_factory(enabled: bool) -> Callable[..., Any]:
    """A tqdm bar on stderr, or nothing (``enabled`` is False off a terminal: logs get the per-epoch lines)."""
    if not enabled:
        return lambda **kw: _NoProgress()
    from tqdm import tqdm

    return lambda **kw: tqdm(leave=False, dynamic_ncols=True, file=sys.stderr, **kw)


# ---------------------------------------------------------------------------------------------
# command line


def _per_model(key: str) -> str:
    return ", ".join(f"{m} {d[key]}" for m, d in DEFAULTS.items())


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train a model on real data (digits or Python source)",
        description="Train an MLP or CNN on scikit-learn's digits, or a small GPT or character-level LSTM on the "
                    "Python standard library's source code. Without --out, the run is written to a new "
                    "runs/<model>-<date>-<time>/ folder.")
    p.add_argument("--model", choices=list(DEFAULTS), default="mlp", help="what to train (default: mlp)")
    p.add_argument("--dataset", choices=["digits", "pysource"], default=None,
                   help="default: pysource for gpt and lstm, digits for mlp and cnn")
    p.add_argument("--device", default="auto", help="auto (the GPU if there is one), cpu, cuda or cuda:N "
                                                    "(default: auto)")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help=f"total epochs, also when resuming (default: {_per_model('epochs')})")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help=f"(default: {_per_model('batch_size')})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate, cosine-annealed (default: "
                                                          f"{_per_model('lr')})")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for checkpoint.safetensors, model.safetensors, metrics.jsonl and plot.png "
                        "(default: a new runs/<model>-<date>-<time>/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (default: off)")
    p.add_argument("--force", action="store_true", help="start over in an --out that holds a run (default: off)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (default: a bar when stderr is a terminal; one line per epoch always)")
    p.set_defaults(handler=main)
    return p


def _check_optional_dependencies(cfg: TrainConfig) -> None:
    missing = []
    if cfg.progress and _is_terminal(sys.stderr):
        try:
            import tqdm  # noqa: F401
        except ImportError:
            missing.append("tqdm (the progress bar; or pass --no-progress)")
    if cfg.dataset == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            missing.append("scikit-learn (the digits dataset)")
    try:
        import safetensors  # noqa: F401
    except ImportError:
        missing.append("safetensors (checkpoints)")
    if missing:
        raise UsageError(f"missing optional dependencies: {', '.join(missing)}; pip install 'gpugrad[examples]'")


def main(args: argparse.Namespace) -> int:
    """Entry point of ``gpugrad train`` (returns the exit status)."""
    cfg = TrainConfig.from_options(
        model=args.model, dataset=args.dataset, device=args.device, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, out=args.out, resume=args.resume, force=args.force,
        progress=not args.no_progress,
    )
    _check_optional_dependencies(cfg)
    if cfg.out is None:
        cfg.out = str(default_run_dir(cfg.model))
        if DataParallel().main:
            print(f"writing this run to {cfg.out}/ (pass --out DIR to choose the folder)", flush=True)
    result = train(cfg)
    return 130 if result["interrupted"] else 0
