"""Adagrad and the schedulers LambdaLR, MultiStepLR, ExponentialLR, OneCycleLR, ReduceLROnPlateau:
the published rule by hand, PyTorch's trajectories and rates step for step, state_dict resume."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn, optim
from gpugrad.optim import lr_scheduler

ADAGRAD_CASES = [dict(), dict(lr=0.1, lr_decay=0.05), dict(weight_decay=0.1, initial_accumulator_value=0.5),
                 dict(lr=0.3, eps=1e-3, lr_decay=0.01, weight_decay=0.02)]


def ref_adagrad(p, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    s = np.full_like(p, initial_accumulator_value)
    out = []
    for t, g in enumerate(grads, start=1):
        d = g + weight_decay * p
        s = s + d * d
        p = p - lr / (1 + (t - 1) * lr_decay) * d / (np.sqrt(s) + eps)
        out.append(p)
    return out


def _run(make_opt, p0, grads):
    p = nn.Parameter(gg.tensor(p0.copy()))
    opt = make_opt([p])
    out = []
    for g in grads:
        p.grad = gg.tensor(g)
        opt.step()
        out.append(p.numpy().copy())
    return out, opt


@pytest.mark.parametrize("kw", ADAGRAD_CASES)
def test_adagrad_matches_rule_and_torch(kw):
    rng = np.random.default_rng(0)
    p0, grads = rng.standard_normal((3, 4)), [rng.standard_normal((3, 4)) for _ in range(6)]
    mine, opt = _run(lambda ps: optim.Adagrad(ps, **kw), p0, grads)
    for a, b in zip(mine, ref_adagrad(p0.copy(), grads, **kw)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    torch = pytest.importorskip("torch")
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch.optim.Adagrad([tp], **kw)
    for a, g in zip(mine, grads):
        tp.grad = torch.tensor(g)
        topt.step()
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    mine_state, their_state = opt.state_dict()["state"][0], topt.state_dict()["state"][0]
    assert set(mine_state) == set(their_state) == {"step", "sum"}
    np.testing.assert_allclose(mine_state["sum"].numpy(), their_state["sum"].numpy(), rtol=1e-12)
    assert {k: v for k, v in opt.defaults.items()} == {k: topt.defaults[k] for k in opt.defaults}


def test_adagrad_defaults_resume_and_float16(tmp_path):
    torch_defaults = dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10)
    assert optim.Adagrad([nn.Parameter(gg.zeros(2))]).defaults == torch_defaults
    rng = np.random.default_rng(1)
    p0, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(6)]
    full, _ = _run(lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.1), p0, grads)
    half, opt = _run(lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.1), p0, grads[:3])
    gg.save(opt.state_dict(), tmp_path / "opt.safetensors")
    rest, _ = _run(lambda ps: _loaded(optim.Adagrad(ps, lr=0.1, lr_decay=0.1), tmp_path), half[-1], grads[3:])
    np.testing.assert_array_equal(rest[-1], full[-1])
    p = nn.Parameter(gg.tensor(np.ones(3, np.float16)))
    opt16 = optim.Adagrad([p], lr=0.1)
    p.grad = gg.tensor(np.ones(3, np.float16))
    opt16.step()
    assert p.dtype == np.float16 and opt16.state[id(p)]["sum"].dtype == np.float32
    np.testing.assert_allclose(p.numpy(), 0.9, rtol=1e-3)
    with pytest.raises(gg.ArgumentError, match="lr_decay"):
        optim.Adagrad([p], lr_decay=-1)


def _loaded(opt, path):
    opt.load_state_dict(gg.load(path / "opt.safetensors"))
    return opt


def _trace(sched, opt, n, metrics=None):
    """Rates (and momentum/beta1) of each group before every step."""
    out = []
    for i in range(n):
        groups = opt.param_groups
        out.append([(g["lr"], g.get("momentum"), g["betas"][0] if "betas" in g else None) for g in groups])
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
    return out


def _pair_of_optimizers(torch, kind, **kw):
    p1, p2 = nn.Parameter(gg.zeros(1)), nn.Parameter(gg.zeros(1))
    t1, t2 = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    mine = getattr(optim, kind)([{"params": [p1]}, {"params": [p2], "lr": 0.05}], lr=0.3, **kw)
    theirs = getattr(torch.optim, kind)([{"params": [t1]}, {"params": [t2], "lr": 0.05}], lr=0.3, **kw)
    return mine, theirs


SCHEDULES = [
    ("SGD", "LambdaLR", lambda m: dict(lr_lambda=lambda t: 1.0 / (1 + t) ** 0.5)),
    ("SGD", "LambdaLR", lambda m: dict(lr_lambda=[lambda t: 0.9 ** t, lambda t: min(1.0, (t + 1) / 5)])),
    ("SGD", "MultiStepLR", lambda m: dict(milestones=[3, 7, 7, 12], gamma=0.5)),
    ("Adam", "ExponentialLR", lambda m: dict(gamma=0.93)),
    ("SGD", "OneCycleLR", lambda m: dict(max_lr=1.0, total_steps=20)),
    ("Adam", "OneCycleLR", lambda m: dict(max_lr=[0.5, 0.1], epochs=4, steps_per_epoch=5, pct_start=0.25,
                                          anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)),
    ("SGD", "OneCycleLR", lambda m: dict(max_lr=0.2, total_steps=20, three_phase=True, base_momentum=0.8,
                                         max_momentum=0.9)),
    ("RMSprop", "OneCycleLR", lambda m: dict(max_lr=0.2, total_steps=19, cycle_momentum=False)),
]


@pytest.mark.parametrize("opt_kind,name,kw", SCHEDULES, ids=[f"{s[1]}-{i}" for i, s in enumerate(SCHEDULES)])
def test_schedulers_match_torch_step_for_step(opt_kind, name, kw):
    torch = pytest.importorskip("torch")
    mine_opt, their_opt = _pair_of_optimizers(torch, opt_kind)
    mine = getattr(lr_scheduler, name)(mine_opt, **kw(lr_scheduler))
    theirs = getattr(torch.optim.lr_scheduler, name)(their_opt, **kw(torch))
    n = 20 if name == "OneCycleLR" else 16
    if name == "OneCycleLR":
        n = mine.total_steps
    a, b = _trace(mine, mine_opt, n), _trace(theirs, their_opt, n)
    for step, (x, y) in enumerate(zip(a, b)):
        for gx, gy in zip(x, y):
            for u, v in zip(gx, gy):
                assert (u is None) == (v is None), step
                if u is not None:
                    assert u == pytest.approx(v, rel=1e-13, abs=1e-17), (step, x, y)
    assert mine.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-13)


def test_one_cycle_refuses_to_step_past_total_and_needs_momentum():
    opt = optim.SGD([nn.Parameter(gg.zeros(1))], lr=0.1)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(gg.GpugradError, match="total_steps"):
        sched.step()
    with pytest.raises(gg.ArgumentError, match="total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(gg.ArgumentError, match="anneal_strategy"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="exp")
    with pytest.raises(gg.ArgumentError, match="momentum"):
        lr_scheduler.OneCycleLR(optim.Adagrad([nn.Parameter(gg.zeros(1))]), max_lr=1.0, total_steps=5)


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", patience=1, factor=0.5), dict(threshold_mode="abs",
                                threshold=0.1, cooldown=2, patience=0, min_lr=[0.01, 0.02]),
                                dict(mode="max", threshold_mode="abs", patience=2, eps=0.1)])
def test_reduce_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    mine_opt, their_opt = _pair_of_optimizers(torch, "SGD", momentum=0.9)
    mine = lr_scheduler.ReduceLROnPlateau(mine_opt, **kw)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(their_opt, **kw)
    metrics = list(np.r_[np.linspace(1, 0.5, 5), np.full(8, 0.5), np.linspace(0.5, 0.45, 4), np.full(20, 0.6)])
    assert _trace(mine, mine_opt, len(metrics), metrics) == _trace(theirs, their_opt, len(metrics), metrics)
    assert mine.get_last_lr() == theirs.get_last_lr()
    assert mine.num_bad_epochs == theirs.num_bad_epochs and mine.best == theirs.best


def test_reduce_on_plateau_state_round_trip_and_errors(tmp_path):
    opt = optim.SGD([nn.Parameter(gg.zeros(1))], lr=1.0)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for m in (1.0, 1.0, 1.0):
        sched.step(gg.tensor(m))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    gg.save(sched.state_dict(), tmp_path / "s.safetensors")
    fresh = lr_scheduler.ReduceLROnPlateau(optim.SGD([nn.Parameter(gg.zeros(1))], lr=1.0), patience=1)
    fresh.load_state_dict(gg.load(tmp_path / "s.safetensors"))
    assert fresh.best == 1.0 and fresh.last_epoch == 3 and fresh.get_last_lr() == [pytest.approx(0.1)]
    with pytest.raises(gg.ArgumentError, match="factor"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(gg.ArgumentError, match="mode"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="up")
    unsaved = lr_scheduler.ReduceLROnPlateau(opt)
    assert unsaved.state_dict()["best"] == float("inf")
    gg.save(unsaved.state_dict(), tmp_path / "u.safetensors")
    assert gg.load(tmp_path / "u.safetensors")["best"] == float("inf")


def test_lambda_lr_state_dict_skips_functions_and_keeps_objects(tmp_path):
    class Warm:
        def __init__(self):
            self.scale = 2.0

        def __call__(self, t):
            return self.scale * (t + 1)

    opt = optim.SGD([{"params": [nn.Parameter(gg.zeros(1))]}, {"params": [nn.Parameter(gg.zeros(1))]}], lr=0.1)
    warm = Warm()
    sched = lr_scheduler.LambdaLR(opt, [lambda t: 0.5 ** t, warm])
    sched.step()
    warm.scale = 3.0
    gg.save(sched.state_dict(), tmp_path / "s.safetensors")
    state = gg.load(tmp_path / "s.safetensors")
    assert state["lr_lambdas"] == [None, {"scale": 3.0}]
    other = Warm()
    fresh = lr_scheduler.LambdaLR(optim.SGD([{"params": [nn.Parameter(gg.zeros(1))]},
                                             {"params": [nn.Parameter(gg.zeros(1))]}], lr=0.1),
                                  [lambda t: 0.5 ** t, other])
    fresh.load_state_dict(state)
    assert other.scale == 3.0 and fresh.last_epoch == 1
    fresh.step()
    assert fresh.get_last_lr() == pytest.approx([0.1 * 0.25, 0.1 * 3.0 * 3])
    with pytest.raises(gg.ArgumentError, match="2 lr_lambdas"):
        lr_scheduler.LambdaLR(opt, [lambda t: 1.0])


@pytest.mark.gpu
def test_adagrad_on_gpu_matches_cpu():
    rng = np.random.default_rng(3)
    p0, grads = rng.standard_normal((4, 3)), [rng.standard_normal((4, 3)) for _ in range(4)]
    cpu, _ = _run(lambda ps: optim.Adagrad(ps, lr=0.1, weight_decay=0.01), p0, grads)
    p = nn.Parameter(gg.tensor(p0.copy(), device="cuda"))
    opt = optim.Adagrad([p], lr=0.1, weight_decay=0.01)
    for g in grads:
        p.grad = gg.tensor(g, device="cuda")
        opt.step()
    np.testing.assert_allclose(p.numpy(), cpu[-1], rtol=1e-12)
