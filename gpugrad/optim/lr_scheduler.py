"""Learning-rate schedules (PyTorch's protocol): construct with an optimiser (which sets each
group's lr to the schedule's value at step 0), call ``step()`` once per epoch or iteration after
``optimizer.step()``; ``get_last_lr()`` returns the current rates; ``state_dict()`` /
``load_state_dict()`` resume a schedule.

Each schedule is a closed form of the step count t = ``last_epoch`` and of each group's
``initial_lr`` (so rounding errors never accumulate):

* StepLR:            lr_t = initial_lr * gamma ** (t // step_size)
* CosineAnnealingLR: lr_t = eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2
* LinearWarmup:      lr_t = initial_lr * (start_factor + (1 - start_factor) * min(t, warmup_steps) / warmup_steps)
* LambdaLR:          lr_t = initial_lr * lr_lambda(t)
* MultiStepLR:       lr_t = initial_lr * gamma ** (number of milestones <= t)
* ExponentialLR:     lr_t = initial_lr * gamma ** t
* OneCycleLR:        PyTorch's phases (warm-up to max_lr, anneal to max_lr / div_factor / final_div_factor),
                     cosine or linear within each phase, cycling momentum (or Adam's beta1) inversely

PyTorch computes MultiStepLR, ExponentialLR and StepLR by multiplying the previous rate; the
closed forms give the same rates to rounding (1e-15 relative). ``ReduceLROnPlateau`` is not a
function of t: ``step(metric)`` lowers the rates when the metric stops improving.
"""

from __future__ import annotations

import bisect
import math
import types
from collections.abc import Callable
from typing import Any

from gpugrad.errors import ArgumentError, GpugradError
from gpugrad.optim.optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "LinearWarmup", "LambdaLR", "MultiStepLR", "ExponentialLR",
           "OneCycleLR", "ReduceLROnPlateau"]


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


class LambdaLR(LRScheduler):
    """The initial rate times ``lr_lambda(t)`` (one function, or one per parameter group), as
    PyTorch's LambdaLR. ``state_dict`` leaves plain functions out (they cannot be saved) and keeps
    the attributes of callable objects. Example: ``LambdaLR(opt, lambda t: 0.95 ** t)``.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != groups:
                raise ArgumentError(f"LambdaLR: expected {groups} lr_lambdas (one per parameter group), "
                                    f"got {len(lr_lambda)}")
            self.lr_lambdas: list[Callable[[int], float]] = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * groups
        if not all(callable(f) for f in self.lr_lambdas):
            raise ArgumentError("LambdaLR: lr_lambda must be a function of the step (or a list of them)")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(f, _FUNCTION_TYPES) else dict(f.__dict__) for f in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        lambdas = state.pop("lr_lambdas", None) or []
        super().load_state_dict(state)
        for f, saved in zip(self.lr_lambdas, lambdas):
            if saved is not None:
                f.__dict__.update(saved)


_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone (a milestone given twice counts twice), as
    PyTorch's MultiStepLR. Example: ``MultiStepLR(opt, milestones=[30, 80], gamma=0.1)``."""

    def __init__(self, optimizer: Optimizer, milestones: Any, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every step (PyTorch's ExponentialLR).
    Example: ``ExponentialLR(opt, gamma=0.95)``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** t


def _per_group(name: str, optimizer: Optimizer, value: Any) -> list[float]:
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ArgumentError(f"OneCycleLR: expected {n} values of {name} (one per parameter group), "
                                f"got {len(value)}")
        return [float(v) for v in value]
    return [float(value)] * n


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), as PyTorch's OneCycleLR: from ``max_lr / div_factor`` up
    to ``max_lr`` over the first ``pct_start`` of ``total_steps`` (or ``epochs * steps_per_epoch``),
    then down to ``max_lr / div_factor / final_div_factor`` (``three_phase``: back to the start
    first), cosine or linear; with ``cycle_momentum`` the momentum (SGD, RMSprop) or beta1 (Adam)
    moves the other way between ``max_momentum`` and ``base_momentum``. Step it after every batch.

    Example: ``OneCycleLR(opt, max_lr=0.1, total_steps=1000)``.
    """

    def __init__(self, optimizer: Optimizer, max_lr: Any, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: Any = 0.85, max_momentum: Any = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise GpugradError(f"OneCycleLR: expected a gpugrad optimiser, got {type(optimizer).__name__}")
        if total_steps is not None:
            if int(total_steps) != total_steps or total_steps <= 0:
                raise ArgumentError(f"OneCycleLR: total_steps must be a positive int, got {total_steps!r}")
            self.total_steps = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            if int(epochs) != epochs or epochs <= 0 or int(steps_per_epoch) != steps_per_epoch or steps_per_epoch <= 0:
                raise ArgumentError(f"OneCycleLR: epochs and steps_per_epoch must be positive ints, got {epochs!r} "
                                    f"and {steps_per_epoch!r}")
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ArgumentError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
        if not 0.0 <= float(pct_start) <= 1.0:
            raise ArgumentError(f"OneCycleLR: pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ArgumentError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        n = self.total_steps
        # (end step, start key, end key, start momentum key, end momentum key) of each phase
        if three_phase:
            self.phases = [(float(pct_start * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                           (float(2 * pct_start * n) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                           (n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self.phases = [(float(pct_start * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                           (n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        if last_epoch == -1:
            for group, top in zip(optimizer.param_groups, _per_group("max_lr", optimizer, max_lr)):
                group["initial_lr"] = top / float(div_factor)
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / float(final_div_factor)
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ArgumentError(f"OneCycleLR: cycle_momentum needs an optimiser with momentum or betas; "
                                    f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)")
            self.use_beta1 = "betas" in optimizer.defaults
            if last_epoch == -1:
                tops = _per_group("max_momentum", optimizer, max_momentum)
                bases = _per_group("base_momentum", optimizer, base_momentum)
                for group, top, base in zip(optimizer.param_groups, tops, bases):
                    self._set_momentum(group, top)
                    group["max_momentum"], group["base_momentum"] = top, base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if t > self.total_steps:
            raise GpugradError(f"OneCycleLR: stepped {t} times, but total_steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, lr0, lr1, m0, m1) in enumerate(self.phases):
                if t <= end_step or i == len(self.phases) - 1:
                    pct = (t - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[lr0], group[lr1], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m0], group[m1], pct))
                    break
                start_step = end_step
        return lrs


class ReduceLROnPlateau:
    """Lower the rates by ``factor`` when a metric has not improved for more than ``patience``
    steps (PyTorch's ReduceLROnPlateau): improvement means below ``best * (1 - threshold)``
    (``mode="min"``, ``threshold_mode="rel"``), or below ``best - threshold`` (``"abs"``), or
    above for ``mode="max"``; after a reduction, ``cooldown`` steps pass before counting again;
    no rate goes below ``min_lr``, and a change smaller than ``eps`` is skipped.

    Example::

        sched = ReduceLROnPlateau(opt, patience=2)
        for epoch in range(epochs):
            ...
            sched.step(val_loss)
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr: Any = 0,
                 eps: float = 1e-8) -> None:
        if not isinstance(optimizer, Optimizer):
            raise GpugradError(f"ReduceLROnPlateau: expected a gpugrad optimiser, got {type(optimizer).__name__}")
        if not float(factor) < 1.0:
            raise ArgumentError(f"ReduceLROnPlateau: factor must be < 1.0, got {factor}")
        if mode not in ("min", "max"):
            raise ArgumentError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ArgumentError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ArgumentError(f"ReduceLROnPlateau: expected {n} min_lrs (one per parameter group), "
                                    f"got {len(min_lr)}")
            self.min_lrs = [float(v) for v in min_lr]
        else:
            self.min_lrs = [float(min_lr)] * n
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.eps = int(cooldown), float(eps)
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    def _is_better(self, a: float) -> bool:
        sign = 1.0 if self.mode == "min" else -1.0
        if self.threshold_mode == "rel":
            return sign * a < sign * self.best * (1.0 - sign * self.threshold)
        return sign * a < sign * self.best - self.threshold

    def step(self, metrics: Any) -> None:
        """Record this step's metric (a number or a one-element tensor) and lower the rates if it has
        not improved for more than ``patience`` steps."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, floor)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    load_state_dict = LRScheduler.load_state_dict
