"""Optimisers with PyTorch's names, hyper-parameters, defaults and update rules.

Each update rule is declared once, as expressions (gpugrad/table/optim.py): the NumPy backend
evaluates it with ufuncs, and the CUDA backend renders it into one multi-tensor kernel that
updates every parameter of a group (same device, dtype, flags and scalars) and all of their
state in a single launch, as PyTorch's fused optimisers do. The
update is applied in place to the parameter's storage, outside the tape, and bumps the
parameter's version counter (a graph that saved the old value notices it at backward).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from gpugrad.autograd.grad_mode import enable_grad
from gpugrad.backends import backend_for, device_of_array
from gpugrad.errors import ArgumentError, DeviceError, DTypeError, GpugradError, ShapeError
from gpugrad.fusion import lazy as _fusion  # (a module: fusion.lazy imports the ops)
from gpugrad.table.optim import RULES
from gpugrad.tensor import Tensor, make_tensor


def apply_rule(rule: str, param: Any, grad: Any, state: dict, hyper: dict) -> None:
    """One parameter's update by ``rule`` (a name of gpugrad.table.optim.RULES) on raw arrays of
    its device: ``state`` holds its state arrays (None where unused), ``hyper`` its
    hyper-parameters (as an optimiser's ``_arguments`` gives them). Example::

        apply_rule("sgd", p, g, {"buf": None}, dict(lr=0.1, momentum=0.0, dampening=0.0,
                   weight_decay=0.0, nesterov=False, first=True))
    """
    r = RULES[rule]
    scalars, flags = r.prepare(hyper, state)
    backend_for(device_of_array(param)).optimizer_update(r.variant(flags), scalars, [(param, grad, state)])


def _state_dtype(param: Tensor) -> np.dtype:
    """float16 parameters keep float32 optimiser state (as mixed-precision training does)."""
    return np.dtype(np.float32) if param.dtype == np.float16 else param.dtype


class Optimizer:
    """Base class: parameter groups (lists of parameters sharing hyper-parameters, as PyTorch's),
    per-parameter state, ``step()``, ``zero_grad()``, ``state_dict()``, ``load_state_dict()``.

    ``params``: an iterable of Parameters, or of dicts ``{"params": [...], "lr": ...}`` giving
    per-group hyper-parameters (the others fall back to the constructor's).
    """

    _rule = ""
    _state_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(param); params live in param_groups
        if isinstance(params, Tensor):
            raise GpugradError(f"{type(self).__name__}: params must be an iterable of tensors (e.g. "
                               "model.parameters()), got a single Tensor")
        groups = list(params)
        if not groups:
            raise GpugradError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters (with optional hyper-parameters of its own)."""
        if not isinstance(group, dict) or "params" not in group:
            raise GpugradError(f"{type(self).__name__}: a parameter group must be a dict with a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise GpugradError(f"{type(self).__name__}: can only optimise Tensors, got {type(p).__name__}")
            if p.dtype.kind != "f":
                raise DTypeError(f"{type(self).__name__}: can only optimise floating-point tensors, got {p.dtype}")
            if not p.is_leaf:
                raise GpugradError(f"{type(self).__name__}: can only optimise leaf tensors (parameters), got a tensor "
                                   "computed by an op")
            if id(p) in seen:
                raise GpugradError(f"{type(self).__name__}: a parameter appears in more than one group (or twice)")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ArgumentError(f"{type(self).__name__}: unknown hyper-parameters {sorted(unknown)}")
        full = {k: group.get(k, v) for k, v in self.defaults.items()}
        self._check(full)
        full.update({k: v for k, v in group.items() if k not in full})
        full["params"] = params
        self.param_groups.append(full)

    def _check(self, h: dict[str, Any]) -> None:
        if not h["lr"] >= 0:
            raise ArgumentError(f"{type(self).__name__}: invalid learning rate {h['lr']} (must be >= 0)")
        if not h.get("weight_decay", 0.0) >= 0:
            raise ArgumentError(f"{type(self).__name__}: invalid weight_decay {h['weight_decay']} (must be >= 0)")
        if "eps" in h and not h["eps"] >= 0:
            raise ArgumentError(f"{type(self).__name__}: invalid eps {h['eps']} (must be >= 0)")

    # ---- the update ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (None by default, as PyTorch; zeros with ``set_to_none=False``)."""
        from gpugrad.nn.module import clear_grads

        for g in self.param_groups:
            clear_grads(g["params"], set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` (re-evaluating the loss) is
        called first when given and its result returned. Example::

            loss.backward(); opt.step(); opt.zero_grad()
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        _fusion.flush()  # pending chains read the parameters as they are before the update
        work = []
        for group in self.param_groups:  # check everything first: a bad gradient changes nothing
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                if grad.shape != p.shape:
                    raise ShapeError(f"{type(self).__name__}.step: the gradient has shape {grad.shape} but the "
                                     f"parameter has shape {p.shape}")
                if p.grad.device != p.device:
                    raise DeviceError(f"{type(self).__name__}.step: the gradient is on {p.grad.device} but the "
                                      f"parameter is on {p.device}")
                work.append((group, p, grad if grad.dtype == p.dtype else grad.astype(p.dtype)))
        # One backend call per (device, dtype, rule variant, scalars): on a GPU one fused kernel
        # updates the whole group (every parameter and its state) in a single launch.
        batches: dict[tuple, list] = {}
        rule = RULES[self._rule]
        for group, p, grad in work:
            arr = p.data
            if isinstance(arr, np.ndarray) and not arr.flags.writeable:
                p.data = arr = arr.copy()  # e.g. a parameter made from a read-only array
            state = self.state.get(id(p))
            if state is None:
                state = self.state[id(p)] = self._init_state(p, group)
            arrays, hyper = self._arguments(p, state, group)
            scalars, flags = rule.prepare(hyper, arrays)
            variant = rule.variant(flags)
            key = (p.device, arr.dtype, variant, tuple(scalars.values()))
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = [variant, scalars, []]
            batch[2].append((arr, grad, arrays, p))
        for (device, _, _, _), (variant, scalars, items) in batches.items():
            backend_for(device).optimizer_update(variant, scalars, [(a, g, s) for a, g, s, _ in items])
            for *_, p in items:
                p._version[0] += 1
        return loss

    def _zeros(self, p: Tensor) -> Any:
        return backend_for(p.device).xp.zeros(p.shape, dtype=_state_dtype(p))

    def _init_state(self, p: Tensor, group: dict) -> dict[str, Any]:
        raise NotImplementedError

    def _arguments(self, p: Tensor, state: dict, group: dict) -> tuple[dict, dict]:
        raise NotImplementedError

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout: ``{"state": {index: {"step": int, name: Tensor, ...}}, "param_groups":
        [{hyper-parameters..., "params": [indices]}]}``, parameters numbered in group order. The
        tensors share the optimiser's storage (save or copy them before stepping again)."""
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index[id(p)] = len(index)
                ids.append(index[id(p)])
            entry = {k: v for k, v in g.items() if k != "params"}
            entry["params"] = ids
            groups.append(entry)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                s = self.state.get(id(p))
                if s is None:
                    continue
                state[index[id(p)]] = {k: (make_tensor(v, p.device) if not isinstance(v, (int, float)) else v)
                                       for k, v in s.items() if v is not None}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by :meth:`state_dict` (e.g. through gg.save/gg.load)
        onto this optimiser's parameters (same groups, same sizes, same order). Everything is checked
        before anything changes; arrays are copied onto each parameter's device and state dtype."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise GpugradError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise GpugradError(f"{name}.load_state_dict: the state has {len(groups)} parameter groups, this "
                               f"optimiser has {len(self.param_groups)}")
        params = []
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise GpugradError(f"{name}.load_state_dict: group {i} has {len(saved['params'])} parameters in the "
                                   f"state but {len(own['params'])} here")
            params.extend(zip(saved["params"], own["params"]))
        by_index = dict(params)
        new_state: dict[int, dict[str, Any]] = {}
        for key, entry in state_dict["state"].items():
            k = int(key)
            if k not in by_index:
                raise GpugradError(f"{name}.load_state_dict: state for unknown parameter index {key}")
            p = by_index[k]
            restored: dict[str, Any] = {}
            for sname, value in entry.items():
                if sname == "step":
                    restored["step"] = int(value.item() if isinstance(value, Tensor) else value)
                    continue
                if sname not in self._state_names:
                    raise GpugradError(f"{name}.load_state_dict: unexpected state {sname!r} for parameter {k}")
                arr = value.data if isinstance(value, Tensor) else value
                if tuple(arr.shape) != tuple(p.shape):
                    raise ShapeError(f"{name}.load_state_dict: state {sname!r} of parameter {k} has shape "
                                     f"{tuple(arr.shape)}, the parameter has shape {p.shape}")
                src = device_of_array(arr)
                if src == p.device:
                    restored[sname] = arr.astype(_state_dtype(p), copy=True)
                else:
                    host = arr if src in (None, "cpu") else backend_for(src).to_host(arr)
                    restored[sname] = backend_for(p.device).from_host(np.array(host, dtype=_state_dtype(p)))
            new_state[id(p)] = restored
        hyper = []
        for saved in groups:
            h = {k: v for k, v in saved.items() if k != "params"}
            for k, v in h.items():
                if isinstance(v, list):
                    h[k] = tuple(v)
            hyper.append(h)
        for h, own in zip(hyper, self.param_groups):
            own.update(h)
        for p in (p for g in self.param_groups for p in g["params"]):
            self.state.pop(id(p), None)
        for k, v in new_state.items():
            self.state[k] = self._complete_state(v)

    def _complete_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k, v in g.items():
                if k != "params":
                    lines.append(f"    {k}: {v}")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's formulation: buffer b = g on
    the first step, then b = momentum b + (1 - dampening) g), Nesterov momentum (g + momentum b)
    and L2 weight decay (g = grad + weight_decay p); then p -= lr g.

    Example: ``opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)``.
    """

    _rule = "sgd"
    _state_names = ("momentum_buffer",)

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if momentum < 0:
            raise ArgumentError(f"SGD: invalid momentum {momentum} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ArgumentError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _init_state(self, p: Tensor, group: dict) -> dict[str, Any]:
        return {"momentum_buffer": None}

    def _arguments(self, p: Tensor, state: dict, group: dict) -> tuple[dict, dict]:
        first = False
        if group["momentum"] != 0 and state.get("momentum_buffer") is None:
            state["momentum_buffer"] = self._zeros(p)
            first = True
        return ({"buf": state.get("momentum_buffer") if group["momentum"] != 0 else None},
                {"lr": float(group["lr"]), "momentum": float(group["momentum"]),
                 "dampening": float(group["dampening"]), "weight_decay": float(group["weight_decay"]),
                 "nesterov": bool(group["nesterov"]), "first": first})

    def _complete_state(self, state: dict[str, Any]) -> dict[str, Any]:
        state.setdefault("momentum_buffer", None)
        return state


class RMSprop(Optimizer):
    """RMSprop (PyTorch's): s = alpha s + (1 - alpha) g^2; avg = sqrt(s) + eps (centered: sqrt(s -
    a^2) + eps with a = alpha a + (1 - alpha) g); p -= lr g / avg, or with momentum
    b = momentum b + g / avg, p -= lr b. L2 weight decay g = grad + weight_decay p.

    Example: ``optim.RMSprop(model.parameters(), lr=1e-3)``.
    """

    _rule = "rmsprop"
    _state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        if not 0.0 <= alpha:
            raise ArgumentError(f"RMSprop: invalid alpha {alpha} (must be >= 0)")
        if momentum < 0:
            raise ArgumentError(f"RMSprop: invalid momentum {momentum} (must be >= 0)")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered})

    def _init_state(self, p: Tensor, group: dict) -> dict[str, Any]:
        return {"step": 0, "square_avg": self._zeros(p),
                "grad_avg": self._zeros(p) if group["centered"] else None,
                "momentum_buffer": self._zeros(p) if group["momentum"] > 0 else None}

    def _complete_state(self, state: dict[str, Any]) -> dict[str, Any]:
        state.setdefault("step", 0)
        state.setdefault("grad_avg", None)
        state.setdefault("momentum_buffer", None)
        return state

    def _arguments(self, p: Tensor, state: dict, group: dict) -> tuple[dict, dict]:
        state["step"] += 1
        if group["centered"] and state.get("grad_avg") is None:
            state["grad_avg"] = self._zeros(p)
        if group["momentum"] > 0 and state.get("momentum_buffer") is None:
            state["momentum_buffer"] = self._zeros(p)
        return ({"square_avg": state["square_avg"], "grad_avg": state["grad_avg"] if group["centered"] else None,
                 "buf": state["momentum_buffer"] if group["momentum"] > 0 else None},
                {"lr": float(group["lr"]), "alpha": float(group["alpha"]), "eps": float(group["eps"]),
                 "weight_decay": float(group["weight_decay"]), "momentum": float(group["momentum"])})


class Adam(Optimizer):
    """Adam (Kingma & Ba, PyTorch's formulation): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps); ``weight_decay`` is L2
    (g = grad + wd p); ``amsgrad`` uses the running maximum of v.

    Example: ``optim.Adam(model.parameters(), lr=3e-4)``.
    """

    _rule = "adam"
    _decoupled = False
    _state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        b1, b2 = betas
        for i, b in enumerate((b1, b2)):
            if not 0.0 <= b < 1.0:
                raise ArgumentError(f"{type(self).__name__}: invalid beta parameter at index {i}: {b} "
                                    "(must be in [0, 1))")
        super().__init__(params, {"lr": lr, "betas": (float(b1), float(b2)), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad})

    def _init_state(self, p: Tensor, group: dict) -> dict[str, Any]:
        return {"step": 0, "exp_avg": self._zeros(p), "exp_avg_sq": self._zeros(p),
                "max_exp_avg_sq": self._zeros(p) if group["amsgrad"] else None}

    def _complete_state(self, state: dict[str, Any]) -> dict[str, Any]:
        state.setdefault("step", 0)
        state.setdefault("max_exp_avg_sq", None)
        return state

    def _arguments(self, p: Tensor, state: dict, group: dict) -> tuple[dict, dict]:
        state["step"] += 1
        if group["amsgrad"] and state.get("max_exp_avg_sq") is None:
            state["max_exp_avg_sq"] = self._zeros(p)
        b1, b2 = group["betas"]
        return ({"exp_avg": state["exp_avg"], "exp_avg_sq": state["exp_avg_sq"],
                 "max_exp_avg_sq": state["max_exp_avg_sq"] if group["amsgrad"] else None},
                {"lr": float(group["lr"]), "beta1": float(b1), "beta2": float(b2), "eps": float(group["eps"]),
                 "weight_decay": float(group["weight_decay"]), "step": int(state["step"]),
                 "decoupled": self._decoupled})


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr weight_decay before the
    Adam step; PyTorch's default ``weight_decay=0.01``. Example: ``optim.AdamW(params, lr=3e-4)``."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., PyTorch's formulation): s += g^2, p -= clr * g / (sqrt(s) + eps) with
    clr = lr / (1 + (t - 1) lr_decay); L2 ``weight_decay`` (g = grad + wd p); ``s`` starts at
    ``initial_accumulator_value``. State: ``step`` and ``sum`` (PyTorch's names).

    Example: ``optim.Adagrad(model.parameters(), lr=0.01)``.
    """

    _rule = "adagrad"
    _state_names = ("sum",)

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        if not lr_decay >= 0:
            raise ArgumentError(f"Adagrad: invalid lr_decay {lr_decay} (must be >= 0)")
        if not initial_accumulator_value >= 0:
            raise ArgumentError(f"Adagrad: invalid initial_accumulator_value {initial_accumulator_value} "
                                "(must be >= 0)")
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value, "eps": eps})

    def _init_state(self, p: Tensor, group: dict) -> dict[str, Any]:
        s = self._zeros(p)
        s += float(group["initial_accumulator_value"])
        return {"step": 0, "sum": s}

    def _complete_state(self, state: dict[str, Any]) -> dict[str, Any]:
        state.setdefault("step", 0)
        return state

    def _arguments(self, p: Tensor, state: dict, group: dict) -> tuple[dict, dict]:
        state["step"] += 1
        return ({"state_sum": state["sum"]},
                {"lr": float(group["lr"]), "lr_decay": float(group["lr_decay"]),
                 "weight_decay": float(group["weight_decay"]), "eps": float(group["eps"]),
                 "step": int(state["step"])})


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their joint norm is at most
    ``max_norm`` (PyTorch's rule: multiply by min(1, max_norm / (total_norm + 1e-6))), and return
    the total norm before clipping as a 0-d tensor. No host synchronisation (unless
    ``error_if_nonfinite``). Example: ``optim.clip_grad_norm_(model.parameters(), 1.0)``.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if not grads:
        from gpugrad.factories import tensor

        return tensor(0.0)
    device = grads[0].device
    B = backend_for(device)
    xp = B.xp
    norms = []
    for g in grads:
        if g.device != device:
            raise DeviceError(f"clip_grad_norm_: gradients are on {device} and {g.device}; keep the parameters on one "
                              "device")
        a = g.data
        if a.dtype == np.float16:
            a = a.astype(np.float32)
        if math.isinf(norm_type):
            norms.append(xp.max(xp.abs(a)) if a.size else xp.zeros((), a.dtype))
        elif norm_type == 2.0:
            flat = a.reshape(-1)
            norms.append(xp.sqrt(xp.dot(flat, flat)))
        else:
            norms.append(xp.sum(xp.abs(a) ** norm_type) ** (1.0 / norm_type))
    stacked = xp.stack([n.astype(norms[0].dtype) for n in norms])
    if math.isinf(norm_type):
        total = xp.max(stacked)
    elif norm_type == 2.0:
        total = xp.sqrt(xp.dot(stacked, stacked))
    else:
        total = xp.sum(stacked ** norm_type) ** (1.0 / norm_type)
    total = xp.asarray(total)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise GpugradError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite, "
                           "so it cannot be clipped (pass error_if_nonfinite=False to skip this check)")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g.data = g.data * coef.astype(g.dtype)
        g._version[0] += 1
    return make_tensor(total, device)
