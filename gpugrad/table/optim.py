"""The optimisers' update rules, each declared once, in the expression language of :mod:`.expr`.

A rule is a list of assignments evaluated in order for every element of every parameter: the
inputs are ``p`` (the parameter) and ``g`` (its gradient), the rule's state arrays (``exp_avg``,
...) and its scalars (``lr``, ``beta1``...); an assignment writes the parameter (``p``), a state
array or a local value. An assignment may carry a guard over the rule's flags (``"decay &
!decoupled"``): flags are fixed per kernel, so a guard selects code, not data. From this one
declaration:

* the NumPy backend evaluates the assignments with ufuncs, in place where it can;
* the CUDA backend renders them into one multi-tensor kernel per (rule, flags, dtype) that
  updates every parameter of a group in a single launch (PyTorch's fused optimisers), with
  correctly rounded arithmetic so that GPU and CPU agree bit for bit.

Scalars are computed on the host in double precision from the hyper-parameters
(:meth:`UpdateRule.prepare`) and rounded to the state's dtype, as NumPy rounds a Python float
meeting a float32 array. float16 parameters compute in float32 and keep float32 state.

Example::

    RULES["adam"].variant({"decay": False, "decoupled": False, "amsgrad": False}).steps
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from gpugrad.table import expr as E


@dataclass(frozen=True)
class Step:
    target: str
    expr: E.Expr
    guard: tuple[tuple[str, bool], ...]  # (flag, required value) pairs, all of which must hold


@dataclass(frozen=True)
class Variant:
    """A rule with its flags fixed: the assignments that apply and the state arrays they use."""

    rule: UpdateRule
    flags: tuple[tuple[str, bool], ...]
    steps: tuple[Step, ...]
    reads: tuple[str, ...]  # state arrays read
    writes: tuple[str, ...]  # state arrays written
    writes_param: bool

    @property
    def state(self) -> tuple[str, ...]:
        return tuple(s for s in self.rule.state if s in self.reads or s in self.writes)

    @property
    def tag(self) -> str:
        """The flags as a bit string, in the rule's flag order (kernel names)."""
        return "".join("1" if v else "0" for _, v in self.flags)


class UpdateRule:
    """One optimiser's update, declared as guarded assignments (see the module docstring)."""

    def __init__(self, name: str, state: tuple[str, ...], scalars: tuple[str, ...], flags: tuple[str, ...],
                 steps: list[tuple[str, str] | tuple[str, str, str]],
                 prepare: Callable[[dict, dict], tuple[dict, dict]], doc: str = "") -> None:
        self.name = name
        self.state = state
        self.scalars = scalars
        self.flags = flags
        self.doc = doc
        self._prepare = prepare
        known = {"p", "g", *state, *scalars}
        parsed = []
        for item in steps:
            target, source = item[0], item[1]
            guard = _parse_guard(item[2], flags, name) if len(item) > 2 else ()
            e = E.parse(source)
            parsed.append(Step(target, e, guard))
            known.add(target)
        self.steps = tuple(parsed)
        for st in self.steps:
            unknown = st.expr.names - known
            if unknown:
                raise ValueError(f"update rule {name}: {st.target} = {st.expr.source} uses unknown names {unknown}")

    def prepare(self, hyper: dict, state: dict) -> tuple[dict[str, float], dict[str, bool]]:
        """(scalars, flags) for one parameter, from its hyper-parameters and state arrays (a state
        array that is None is one the flags leave unused)."""
        scalars, flags = self._prepare(hyper, state)
        return {k: float(scalars[k]) for k in self.scalars}, {k: bool(flags[k]) for k in self.flags}

    def variant(self, flags: dict[str, bool]) -> Variant:
        return _variant(self, tuple((f, bool(flags[f])) for f in self.flags))

    def variants(self) -> list[Variant]:
        """Every combination of the flags (what the ahead-of-time build compiles)."""
        out = []
        for bits in range(2 ** len(self.flags)):
            out.append(self.variant({f: bool(bits >> i & 1) for i, f in enumerate(self.flags)}))
        return out

    def __repr__(self) -> str:
        return f"<update rule {self.name}>"


def _parse_guard(text: str, flags: tuple[str, ...], rule: str) -> tuple[tuple[str, bool], ...]:
    out = []
    for term in text.split("&"):
        term = term.strip()
        want = not term.startswith("!")
        flag = term.lstrip("!").strip()
        if flag not in flags:
            raise ValueError(f"update rule {rule}: guard {text!r} names unknown flag {flag!r}")
        out.append((flag, want))
    return tuple(out)


@cache
def _variant(rule: UpdateRule, flags: tuple[tuple[str, bool], ...]) -> Variant:
    values = dict(flags)
    steps = tuple(s for s in rule.steps if all(values[f] == want for f, want in s.guard))
    assigned: set[str] = set()
    reads: list[str] = []
    writes: list[str] = []
    for s in steps:
        for n in sorted(s.expr.names):
            if n in rule.state and n not in assigned and n not in reads:
                reads.append(n)
        assigned.add(s.target)
        if s.target in rule.state and s.target not in writes:
            writes.append(s.target)
    return Variant(rule, flags, steps, tuple(reads), tuple(writes), "p" in assigned)


RULES: dict[str, UpdateRule] = {}


def update_rule(name: str, **kw: Any) -> UpdateRule:
    rule = UpdateRule(name, **kw)
    if name in RULES:
        raise ValueError(f"update rule {name!r} declared twice")
    RULES[name] = rule
    return rule


# ---------------------------------------------------------------------------------------------
# The rules (PyTorch's formulations; hyper-parameter names are the optimisers').

sgd = update_rule(
    "sgd", state=("buf",), scalars=("lr", "momentum", "one_minus_dampening", "weight_decay"),
    flags=("decay", "use_momentum", "nesterov", "first"),
    steps=[
        ("g", "g + weight_decay * p", "decay"),
        ("buf", "g", "use_momentum & first"),
        ("buf", "buf * momentum + one_minus_dampening * g", "use_momentum & !first"),
        ("g", "g + momentum * buf", "use_momentum & nesterov"),
        ("g", "buf", "use_momentum & !nesterov"),
        ("p", "p - lr * g"),
    ],
    prepare=lambda h, s: (
        {"lr": h["lr"], "momentum": h["momentum"], "one_minus_dampening": 1 - h["dampening"],
         "weight_decay": h["weight_decay"]},
        {"decay": h["weight_decay"] != 0, "use_momentum": h["momentum"] != 0, "nesterov": h["nesterov"],
         "first": h["first"]}),
    doc="SGD: g = grad + wd p; buf = g (first step) or momentum buf + (1 - dampening) g; "
        "g = g + momentum buf (Nesterov) or buf; p -= lr g.")

rmsprop = update_rule(
    "rmsprop", state=("square_avg", "grad_avg", "buf"),
    scalars=("lr", "alpha", "one_minus_alpha", "eps", "weight_decay", "momentum"),
    flags=("decay", "centered", "use_momentum"),
    steps=[
        ("g", "g + weight_decay * p", "decay"),
        ("square_avg", "square_avg * alpha + one_minus_alpha * (g * g)"),
        ("grad_avg", "grad_avg * alpha + one_minus_alpha * g", "centered"),
        ("avg", "sqrt(square_avg - grad_avg * grad_avg)", "centered"),
        ("avg", "sqrt(square_avg)", "!centered"),
        ("avg", "avg + eps"),
        ("buf", "buf * momentum + g / avg", "use_momentum"),
        ("p", "p - lr * buf", "use_momentum"),
        ("p", "p - lr * (g / avg)", "!use_momentum"),
    ],
    prepare=lambda h, s: (
        {"lr": h["lr"], "alpha": h["alpha"], "one_minus_alpha": 1 - h["alpha"], "eps": h["eps"],
         "weight_decay": h["weight_decay"], "momentum": h["momentum"]},
        {"decay": h["weight_decay"] != 0, "centered": s.get("grad_avg") is not None,
         "use_momentum": h["momentum"] > 0}),
    doc="RMSprop: s = alpha s + (1 - alpha) g^2; avg = sqrt(s) (centered: sqrt(s - a^2), a = alpha a + "
        "(1 - alpha) g) + eps; p -= lr g / avg, or with momentum b = momentum b + g / avg, p -= lr b.")

adam = update_rule(
    "adam", state=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    scalars=("beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "eps", "weight_decay", "decay_factor",
             "step_size", "bias_correction2_sqrt"),
    flags=("decay", "decoupled", "amsgrad"),
    steps=[
        ("p", "p * decay_factor", "decay & decoupled"),
        ("g", "g + weight_decay * p", "decay & !decoupled"),
        ("exp_avg", "exp_avg * beta1 + one_minus_beta1 * g"),
        ("exp_avg_sq", "exp_avg_sq * beta2 + one_minus_beta2 * (g * g)"),
        ("max_exp_avg_sq", "maximum(max_exp_avg_sq, exp_avg_sq)", "amsgrad"),
        ("denom", "sqrt(max_exp_avg_sq)", "amsgrad"),
        ("denom", "sqrt(exp_avg_sq)", "!amsgrad"),
        ("denom", "denom / bias_correction2_sqrt + eps"),
        ("p", "p - step_size * (exp_avg / denom)"),
    ],
    prepare=lambda h, s: (
        {"beta1": h["beta1"], "one_minus_beta1": 1 - h["beta1"], "beta2": h["beta2"],
         "one_minus_beta2": 1 - h["beta2"], "eps": h["eps"], "weight_decay": h["weight_decay"],
         "decay_factor": 1 - h["lr"] * h["weight_decay"], "step_size": h["lr"] / (1 - h["beta1"] ** h["step"]),
         "bias_correction2_sqrt": (1 - h["beta2"] ** h["step"]) ** 0.5},
        {"decay": h["weight_decay"] != 0, "decoupled": h["decoupled"],
         "amsgrad": s.get("max_exp_avg_sq") is not None}),
    doc="Adam/AdamW: decoupled p *= 1 - lr wd, else g = grad + wd p; m = b1 m + (1 - b1) g; "
        "v = b2 v + (1 - b2) g^2; AMSGrad vmax = max(vmax, v); p -= lr / (1 - b1^t) m / (sqrt(v) / "
        "sqrt(1 - b2^t) + eps).")

adagrad = update_rule(
    "adagrad", state=("state_sum",), scalars=("clr", "weight_decay", "eps"), flags=("decay",),
    steps=[
        ("g", "g + weight_decay * p", "decay"),
        ("state_sum", "state_sum + g * g"),
        ("std", "sqrt(state_sum) + eps"),
        ("p", "p - clr * (g / std)"),
    ],
    prepare=lambda h, s: (
        {"clr": h["lr"] / (1 + (h["step"] - 1) * h["lr_decay"]), "weight_decay": h["weight_decay"],
         "eps": h["eps"]},
        {"decay": h["weight_decay"] != 0}),
    doc="Adagrad: g = grad + wd p; s += g^2; p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps).")
