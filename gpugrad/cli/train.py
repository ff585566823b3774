"""``gpugrad train``: train an MLP or CNN on the digits, or a small GPT on Python source, on the
GPU when one is present, with checkpoints, metrics, a plot, resume and Ctrl-C handling.

Runs are deterministic for a given seed and device: the data order of epoch ``e`` comes from
``rng([seed, e])`` and the random generators are re-seeded from ``(seed, epoch, step)`` before
every step, so a run resumed from any checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import gpugrad as gg
from gpugrad.cli import UsageError as _CliUsageError

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
PLOT = "plot.png"

DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"dataset": "digits", "epochs": 30, "batch_size": 64, "lr": 1e-3},
    "cnn": {"dataset": "digits", "epochs": 20, "batch_size": 64, "lr": 2e-3},
    "gpt": {"dataset": "pysource", "epochs": 10, "batch_size": 32, "lr": 1e-3},
}
GPT_STEPS_PER_EPOCH = 250
GPT_EVAL_BATCHES = 8
LABEL_SMOOTHING = 0.1  # digits: +1 point of test accuracy for both models (measured over 5 seeds)


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
    progress: bool = True
    steps_per_epoch: int = GPT_STEPS_PER_EPOCH
    gpt: dict = field(default_factory=dict)
    # The learning-rate schedule's horizon: the --epochs of the run's first start. Resuming up
    # to a larger --epochs trains on at the schedule's final rate.
    plan_epochs: int = 0

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

    def validate(self) -> None:
        if self.dataset not in ("digits", "pysource"):
            raise UsageError(f"--dataset must be digits or pysource, got {self.dataset!r}")
        if self.model == "gpt" and self.dataset != "pysource":
            raise UsageError("--model gpt is a language model: it trains on --dataset pysource")
        if self.model != "gpt" and self.dataset != "digits":
            raise UsageError(f"--model {self.model} classifies images: it trains on --dataset digits")
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if self.resume and not self.out:
            raise UsageError("--resume needs --out DIR (the folder holding the checkpoint)")


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
    unit = "samples"

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
        self.x_train = gg.tensor(x_train.reshape(shape), device=device)
        self.y_train = gg.tensor(split.y_train, device=device)
        self.x_test = gg.tensor(x_test.reshape(shape), device=device)
        self.y_test = gg.tensor(split.y_test, device=device)
        self.n_train = len(split.y_train)
        self._order: tuple[int, np.ndarray | None] = (-1, None)

    def build_model(self) -> gg.nn.Module:
        from gpugrad.models import MLP, DigitsCNN

        if self.cfg.model == "cnn":
            return DigitsCNN()
        return MLP(64, (256, 256), 10)

    def build_optimizer(self, model: gg.nn.Module) -> tuple[Any, Any]:
        opt = gg.optim.Adam(model.parameters(), lr=self.cfg.lr)
        return opt, gg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.schedule_steps())

    def schedule_steps(self) -> int:
        return self.cfg.plan_epochs * self.steps(0)

    def steps(self, epoch: int) -> int:
        return math.ceil(self.n_train / self.cfg.batch_size)

    def batch(self, epoch: int, step: int) -> tuple[gg.Tensor, gg.Tensor, int]:
        if self._order[0] != epoch:  # the epoch's data order, drawn once
            self._order = (epoch, np.random.default_rng([self.cfg.seed, epoch]).permutation(self.n_train))
        idx = self._order[1][step * self.cfg.batch_size:(step + 1) * self.cfg.batch_size]
        return self.x_train[idx], self.y_train[idx], len(idx)

    def loss(self, model: gg.nn.Module, x: gg.Tensor, y: gg.Tensor) -> tuple[gg.Tensor, gg.Tensor]:
        logits = model(x)
        return gg.nn.functional.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING), logits

    def evaluate(self, model: gg.nn.Module) -> dict[str, float]:
        model.eval()
        with gg.no_grad():
            logits = model(self.x_test)
            loss = gg.nn.functional.cross_entropy(logits, self.y_test)
        model.train()
        correct = int(correct_count(logits, self.y_test).item())
        return {"test_loss": float(loss.item()), "test_acc": correct / len(self.y_test)}

    def finish(self, model: gg.nn.Module, metrics: dict[str, float], log: Callable[[str], None]) -> None:
        log(f"test accuracy: {100 * metrics['test_acc']:.2f}% ({self.cfg.model} on digits, "
            f"{len(self.y_test)} held-out images)")


class TextTask:
    unit = "tokens"

    def __init__(self, cfg: TrainConfig, device: str) -> None:
        from gpugrad.data import load_pysource

        self.cfg = cfg
        self.device = device
        self.corpus = load_pysource()
        from gpugrad.models import GPTConfig

        self.gpt_cfg = GPTConfig(vocab_size=self.corpus.vocab_size, **cfg.gpt)

    def build_model(self) -> gg.nn.Module:
        from gpugrad.models import GPT

        return GPT(self.gpt_cfg)

    def build_optimizer(self, model: gg.nn.Module) -> tuple[Any, Any]:
        opt = gg.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=0.01)
        return opt, gg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.schedule_steps(),
                                                             eta_min=self.cfg.lr * 0.1)

    def schedule_steps(self) -> int:
        return self.cfg.plan_epochs * self.cfg.steps_per_epoch

    def steps(self, epoch: int) -> int:
        return self.cfg.steps_per_epoch

    def batch(self, epoch: int, step: int) -> tuple[gg.Tensor, gg.Tensor, int]:
        rng = np.random.default_rng([self.cfg.seed, epoch, step])
        x, y = self.corpus.batch("train", self.cfg.batch_size, self.gpt_cfg.block_size, rng)
        return gg.tensor(x, device=self.device), gg.tensor(y, device=self.device), x.size

    def loss(self, model: gg.nn.Module, x: gg.Tensor, y: gg.Tensor) -> tuple[gg.Tensor, gg.Tensor]:
        logits = model(x)
        b, t, v = logits.shape
        return gg.nn.functional.cross_entropy(logits.reshape(b * t, v), y.reshape(b * t)), logits

    def evaluate(self, model: gg.nn.Module) -> dict[str, float]:
        model.eval()
        rng = np.random.default_rng([self.cfg.seed, 10**6])  # the same validation windows every epoch
        total, correct, count = 0.0, 0, 0
        with gg.no_grad():
            for _ in range(GPT_EVAL_BATCHES):
                x, y = self.corpus.batch("val", self.cfg.batch_size, self.gpt_cfg.block_size, rng)
                xt, yt = gg.tensor(x, device=self.device), gg.tensor(y, device=self.device)
                loss, logits = self.loss(model, xt, yt)
                total += float(loss.item()) * y.size
                correct += int(correct_count(logits, yt).item())
                count += y.size
        model.train()
        return {"val_loss": total / count, "val_acc": correct / count}

    def finish(self, model: gg.nn.Module, metrics: dict[str, float], log: Callable[[str], None]) -> None:
        prompt = "def "
        ids = model.generate(self.corpus.encode(prompt), 300, temperature=0.8, seed=self.cfg.seed)
        log(f"validation loss: {metrics['val_loss']:.3f} nats/char")
        log("sample:\n" + self.corpus.decode(ids))


def make_task(cfg: TrainConfig, device: str) -> DigitsTask | TextTask:
    return TextTask(cfg, device) if cfg.model == "gpt" else DigitsTask(cfg, device)


# ---------------------------------------------------------------------------------------------
# checkpoints and outputs


class _Interrupt:
    """SIGINT sets a flag; the loop stops at the next step boundary and saves a checkpoint."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not in the main thread: Ctrl-C is not ours to catch
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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


def _plot(out: Path, rows: list[dict], log: Callable[[str], None]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("note: matplotlib is not installed, so no plot was drawn (pip install matplotlib)")
        return
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss", "test_loss", "val_loss"):
        if key in rows[0]:
            ax_loss.plot(epochs, [r[key] for r in rows], marker="o", label=key.replace("_", " "))
    for key in ("train_acc", "test_acc", "val_acc"):
        if key in rows[0]:
            ax_acc.plot(epochs, [100 * r[key] for r in rows], marker="o", label=key.replace("_", " "))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = out / (PLOT + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out / PLOT)


# ---------------------------------------------------------------------------------------------
# the loop


def train(cfg: TrainConfig, on_step: Callable[[int, int], None] | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run training as configured; returns {"metrics": [...], "final": {...}, "interrupted": bool}.

    ``on_step(epoch, step)`` is called after every optimiser step (tests use it to interrupt).
    Example::

        result = train(TrainConfig.from_options(model="mlp", epochs=2))
    """
    device = resolve_device(cfg.device)
    out = Path(cfg.out) if cfg.out else None
    state = None
    if cfg.resume:
        path = out / CHECKPOINT
        if not path.exists():
            raise UsageError(f"--resume: no checkpoint at {path}")
        state = gg.load(path, device=device)
        saved = state["config"]
        for key in ("model", "dataset"):  # the run's other settings come from the checkpoint
            if saved[key] != getattr(cfg, key):
                raise UsageError(f"--resume: the checkpoint is a {key}={saved[key]!r} run, not {getattr(cfg, key)!r}")
        epochs = cfg.epochs
        cfg = TrainConfig(**{**saved, "epochs": epochs, "out": cfg.out, "resume": True, "device": cfg.device,
                             "progress": cfg.progress})
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    gg.manual_seed(cfg.seed)
    task = make_task(cfg, device)
    model = task.build_model().to(device)
    optimizer, scheduler = task.build_optimizer(model)
    metrics: list[dict] = []
    start_epoch, start_step, running = 0, 0, {"loss": 0.0, "correct": 0, "count": 0, "items": 0, "seconds": 0.0}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        metrics = list(state["metrics"])
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        running = dict(state["running"])
        if out is not None:
            _rewrite_metrics(out, metrics)
        log(f"resuming {cfg.model} on {cfg.dataset} from epoch {start_epoch + 1}, step {start_step}")
    if start_epoch >= cfg.epochs:
        log(f"nothing to do: the checkpoint has already finished {start_epoch} of --epochs {cfg.epochs}")
        return {"metrics": metrics, "final": metrics[-1] if metrics else {}, "interrupted": False}

    n_params = sum(p.size for p in model.parameters())
    log(f"training {cfg.model} ({n_params:,} parameters) on {cfg.dataset}, device {device}, "
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr}, seed {cfg.seed}")
    progress = _progress_factory(cfg.progress)

    # The epoch's loss and accuracy sums stay on the device (no host sync per step); they start
    # from the host totals, so a resumed epoch adds in the same order as an uninterrupted one.
    sums: dict[str, gg.Tensor] = {}

    def start_sums() -> None:
        sums["loss"] = gg.tensor(running["loss"], dtype=gg.float64, device=device)
        sums["correct"] = gg.tensor(running["correct"], dtype=gg.int64, device=device)

    def settle_sums() -> None:
        running["loss"] = float(sums["loss"].item())
        running["correct"] = int(sums["correct"].item())

    def snapshot(epoch: int, step: int) -> dict:
        return {"config": asdict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "step": step, "running": dict(running), "metrics": metrics}

    model.train()
    with _Interrupt() as interrupt:
        for epoch in range(start_epoch, cfg.epochs):
            n_steps = task.steps(epoch)
            first = start_step if epoch == start_epoch else 0
            if first == 0:
                running = {"loss": 0.0, "correct": 0, "count": 0, "items": 0, "seconds": 0.0}
            start_sums()
            bar = progress(total=n_steps, initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}")
            tick = time.perf_counter()
            for step in range(first, n_steps):
                gg.manual_seed(step_seed(cfg.seed, epoch, step))
                x, y, items = task.batch(epoch, step)
                loss, logits = task.loss(model, x, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if scheduler is not None and scheduler.last_epoch < task.schedule_steps():
                    scheduler.step()
                n = int(np.prod(y.shape))
                with gg.no_grad():
                    sums["loss"] = sums["loss"] + loss.astype(gg.float64) * n
                    sums["correct"] = sums["correct"] + correct_count(logits, y)
                running["count"] += n
                running["items"] += items
                bar.update(1)
                if on_step is not None:
                    on_step(epoch, step)
                if interrupt.requested:
                    settle_sums()
                    running["seconds"] += time.perf_counter() - tick
                    bar.close()
                    if out is not None:
                        path = _save_checkpoint(out, snapshot(epoch, step + 1))
                        log(f"interrupted: checkpoint saved to {path}; continue with --resume")
                    else:
                        log("interrupted (no --out given, so nothing was saved)")
                    return {"metrics": metrics, "final": metrics[-1] if metrics else {}, "interrupted": True}
            bar.close()
            settle_sums()
            running["seconds"] += time.perf_counter() - tick
            row = {"epoch": epoch + 1, "train_loss": running["loss"] / max(running["count"], 1),
                   "train_acc": running["correct"] / max(running["count"], 1)}
            row.update(task.evaluate(model))
            row["lr"] = float(optimizer.param_groups[0]["lr"])
            row["seconds"] = running["seconds"]
            row[f"{task.unit}_per_s"] = running["items"] / max(running["seconds"], 1e-9)
            metrics.append(row)
            log(_epoch_line(row, cfg.epochs, task.unit))
            if out is not None:
                _append_metrics(out, row)
                _save_checkpoint(out, snapshot(epoch + 1, 0))
                _plot(out, metrics, log)
    task.finish(model, metrics[-1], log)
    return {"metrics": metrics, "final": metrics[-1], "interrupted": False}


def _epoch_line(row: dict, epochs: int, unit: str) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.1f}%"]
    for split in ("test", "val"):
        if f"{split}_loss" in row:
            parts.append(f"{split} loss {row[f'{split}_loss']:.4f} acc {100 * row[f'{split}_acc']:.1f}%")
    parts.append(f"{row[f'{unit}_per_s']:,.0f} {unit}/s")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_factory(enabled: bool) -> Callable[..., Any]:
    if not enabled:
        return lambda **kw: _NoProgress()
    from tqdm import tqdm

    return lambda **kw: tqdm(leave=False, dynamic_ncols=True, file=sys.stderr, **kw)


# ---------------------------------------------------------------------------------------------
# command line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a model on real data (digits or Python source)",
                              description="Train an MLP or CNN on scikit-learn's digits, or a small GPT on the "
                                          "Python standard library's source code.")
    p.add_argument("--model", choices=sorted(DEFAULTS), default="mlp")
    p.add_argument("--dataset", choices=["digits", "pysource"], default=None,
                   help="default: pysource for gpt, digits otherwise")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    p.add_argument("--epochs", type=int, default=None, help="total epochs (--resume continues up to it)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for checkpoints, metrics.jsonl and plot.png")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=main)
    return p


def _check_optional_dependencies(cfg: TrainConfig) -> None:
    missing = []
    if cfg.progress:
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
        if cfg.out:
            missing.append("safetensors (checkpoints)")
    if missing:
        raise UsageError(f"missing optional dependencies: {', '.join(missing)}; pip install 'gpugrad[examples]'")


def main(args: argparse.Namespace) -> int:
    """Entry point of ``gpugrad train`` (returns the exit status)."""
    cfg = TrainConfig.from_options(
        model=args.model, dataset=args.dataset, device=args.device, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, out=args.out, resume=args.resume, progress=not args.no_progress,
    )
    _check_optional_dependencies(cfg)
    result = train(cfg)
    return 130 if result["interrupted"] else 0
