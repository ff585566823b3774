"""Learning-rate schedules (PyTorch's protocol): construct with an optimiser (which sets each
group's lr to the schedule's value at step 0), call ``step()`` once per epoch or iteration after
``optimizer.step()``; ``get_last_lr()`` returns the current rates; ``state_dict()`` /
``load_state_dict()`` resume a schedule.

Each schedule is a closed form of the step count t = ``last_epoch`` and of each group's
``initial_lr`` (so rounding errors never accumulate):

* StepLR:            lr_t = initial_lr * gamma ** (t // step_size)
* CosineAnnealingLR: lr_t = eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2
* LinearWarmup:      lr_t = initial_lr * (start_factor + (1 - start_factor) * min(t, warmup_steps) / warmup_steps)
"""

from __future__ import annotations

import math
from typing import Any

from gpugrad.errors import ArgumentError, GpugradError
from gpugrad.optim.optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "LinearWarmup"]


class LRScheduler:
    """Base class: subclasses define :meth:`factor_lr` (the rate of one group at step t)."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise GpugradError(f"{type(self).__name__}: expected a gpugrad optimiser, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise GpugradError(f"{type(self).__name__}: resuming (last_epoch={last_epoch}) needs "
                                       f"'initial_lr' in parameter group {i}")
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._last_lr: list[float] = []
        self.step()

    def lr_at(self, base_lr: float, t: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The rates of the current step (``last_epoch``)."""
        return [self.lr_at(b, self.last_epoch) for b in self.base_lrs]

    def step(self) -> None:
        """Advance one step and write the new rates into the optimiser's groups."""
        self.last_epoch += 1
        lrs = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = lrs

    def get_last_lr(self) -> list[float]:
        """The rates set by the last ``step()`` (one per parameter group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimiser (plain values: gg.save stores them as JSON)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        unknown = set(state_dict) - set(self.__dict__)
        if unknown:
            raise GpugradError(f"{type(self).__name__}.load_state_dict: unexpected keys {sorted(unknown)}")
        for k, v in state_dict.items():
            setattr(self, k, list(v) if isinstance(v, tuple) else v)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps (PyTorch's StepLR).

    Example: ``sched = StepLR(opt, step_size=10, gamma=0.5)``; ``sched.step()`` after each epoch.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if int(step_size) <= 0:
            raise ArgumentError(f"StepLR: step_size must be positive, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial rate to ``eta_min`` over ``T_max`` steps (PyTorch's
    CosineAnnealingLR; beyond T_max the cosine continues, as there)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:  # noqa: N803
        if int(T_max) <= 0:
            raise ArgumentError(f"CosineAnnealingLR: T_max must be positive, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearWarmup(LRScheduler):
    """Linear warm-up: the rate grows linearly from ``start_factor * initial_lr`` at step 0 to
    ``initial_lr`` at step ``warmup_steps`` and stays there:

        lr_t = initial_lr * (start_factor + (1 - start_factor) * min(t, warmup_steps) / warmup_steps)

    (the same values as PyTorch's ``LinearLR(start_factor, end_factor=1, total_iters=warmup_steps)``).
    Example: ``LinearWarmup(opt, warmup_steps=100)``, stepped after every optimiser step.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float = 0.1,
                 last_epoch: int = -1) -> None:
        if int(warmup_steps) < 0:
            raise ArgumentError(f"LinearWarmup: warmup_steps must be >= 0, got {warmup_steps}")
        if not 0.0 <= float(start_factor) <= 1.0:
            raise ArgumentError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor}")
        self.warmup_steps, self.start_factor = int(warmup_steps), float(start_factor)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        if self.warmup_steps == 0:
            return base_lr
        frac = min(t, self.warmup_steps) / self.warmup_steps
        return base_lr * (self.start_factor + (1.0 - self.start_factor) * frac)
