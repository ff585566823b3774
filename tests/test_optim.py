"""gpugrad.optim: every optimiser's trajectory against a hand-written NumPy reference of the
published rule (float64, several steps) and against torch.optim; state_dict resume; gradient
clipping and schedulers against PyTorch; the CUDA kernels (compiled with nvcc here, compared
with the NumPy reference on a GPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn, optim
from gpugrad.backends import numpy_backend as npb
from gpugrad.optim import lr_scheduler

RNG = np.random.default_rng(5)
STEPS = 6


def grads_sequence(shape, n=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(n)]


def run_gg(opt_cls, p0, grads, **kw):
    p = nn.Parameter(gg.tensor(p0.copy()))
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        p.grad = gg.tensor(g)
        opt.step()
        out.append(p.numpy().copy())
    return out


# ---- hand-written references of the published rules (float64) ---------------------------------


def ref_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    out, buf = [], None
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        out.append(p)
    return out


def ref_rmsprop(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    out = []
    s = np.zeros_like(p)
    a = np.zeros_like(p)
    b = np.zeros_like(p)
    for g in grads:
        d = g + weight_decay * p
        s = alpha * s + (1 - alpha) * d ** 2
        if centered:
            a = alpha * a + (1 - alpha) * d
            avg = np.sqrt(s - a ** 2) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum > 0:
            b = momentum * b + d / avg
            p = p - lr * b
        else:
            p = p - lr * d / avg
        out.append(p)
    return out


def ref_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    b1, b2 = betas
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * weight_decay * p
            d = g
        else:
            d = g + weight_decay * p
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d ** 2
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1 ** t)
        v_hat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


CASES = [
    (optim.SGD, ref_sgd, dict(lr=0.1)),
    (optim.SGD, ref_sgd, dict(lr=0.1, weight_decay=0.01)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-3)),
    (optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    (optim.RMSprop, ref_rmsprop, dict()),
    (optim.RMSprop, ref_rmsprop, dict(lr=1e-3, alpha=0.9, weight_decay=0.1)),
    (optim.RMSprop, ref_rmsprop, dict(momentum=0.8, centered=True, eps=1e-6)),
    (optim.RMSprop, ref_rmsprop, dict(centered=True)),
    (optim.Adam, ref_adam, dict()),
    (optim.Adam, ref_adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    (optim.Adam, ref_adam, dict(amsgrad=True, lr=0.02)),
    (optim.AdamW, lambda p, g, **k: ref_adam(p, g, decoupled=True, **{"weight_decay": 0.01, **k}), dict()),
    (optim.AdamW, lambda p, g, **k: ref_adam(p, g, decoupled=True, **k), dict(lr=0.01, weight_decay=0.5,
                                                                                amsgrad=True)),
]


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_trajectory_matches_published_rule(cls, ref, kw):
    p0 = RNG.standard_normal((3, 4))
    grads = grads_sequence((3, 4))
    mine = run_gg(cls, p0, grads, **kw)
    expected = ref(p0.copy(), grads, **kw)
    for step, (a, b) in enumerate(zip(mine, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15, err_msg=f"step {step + 1}")


@pytest.mark.parametrize("cls,ref,kw", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_trajectory_matches_torch_optim(cls, ref, kw):
    torch = pytest.importorskip("torch")
    p0 = RNG.standard_normal((5,))
    grads = grads_sequence((5,), seed=3)
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = getattr(torch.optim, cls.__name__)([tp], **kw)
    theirs = []
    for g in grads:
        tp.grad = torch.tensor(g)
        topt.step()
        theirs.append(tp.detach().numpy().copy())
    mine = run_gg(cls, p0, grads, **kw)
    for step, (a, b) in enumerate(zip(mine, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {step + 1}")


def test_sgd_reference_is_bit_exact():
    p0 = RNG.standard_normal(7)
    grads = grads_sequence(7)
    kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)
    for a, b in zip(run_gg(optim.SGD, p0, grads, **kw), ref_sgd(p0.copy(), grads, **kw)):
        np.testing.assert_array_equal(a, b)


def test_defaults_are_pytorchs():
    p = [nn.Parameter(gg.zeros(2))]
    assert optim.SGD(p).defaults == dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
    assert optim.RMSprop(p).defaults == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                                             centered=False)
    assert optim.Adam(p).defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False)
    assert optim.AdamW(p).defaults["weight_decay"] == 0.01


def test_training_trajectory_through_backward_matches_torch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((16, 4))
    y = RNG.integers(0, 3, 16)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    mine = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    mine.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    opt = optim.AdamW(mine.parameters(), lr=0.01)
    topt = torch.optim.AdamW(theirs.parameters(), lr=0.01)
    for _ in range(5):
        loss = gg.nn.functional.cross_entropy(mine(gg.tensor(x)), gg.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-12)
    for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-11, atol=1e-13, err_msg=name)


def test_param_groups_skipped_params_and_version_bump():
    a, b, c = (nn.Parameter(gg.ones(2)) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": [b, c], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = gg.ones(2), gg.ones(2)
    v = a.version
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_allclose(b.numpy(), 0.5)
    np.testing.assert_array_equal(c.numpy(), 1)  # no gradient: untouched
    assert a.version == v + 1
    # a graph that saved the parameter notices the in-place update
    w = nn.Parameter(gg.ones(3))
    x = gg.ones(3, requires_grad=True)
    out = (w * x).sum()
    w.grad = gg.ones(3)
    optim.SGD([w], lr=0.1).step()
    with pytest.raises(gg.InplaceError):
        out.backward()


def test_bad_gradient_changes_nothing():
    a, b = nn.Parameter(gg.ones(2)), nn.Parameter(gg.ones(3))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = gg.ones(2), gg.ones(4)
    with pytest.raises(gg.ShapeError, match=r"\(4,\).*\(3,\)"):
        opt.step()
    np.testing.assert_array_equal(a.numpy(), 1)  # a was checked fine but not updated either
    assert opt.state == {}


def test_optimizer_argument_errors():
    p = nn.Parameter(gg.zeros(2))
    with pytest.raises(gg.GpugradError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(gg.ArgumentError, match="learning rate"):
        optim.Adam([p], lr=-1)
    with pytest.raises(gg.ArgumentError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(gg.ArgumentError, match="beta"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(gg.GpugradError, match="leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(gg.GpugradError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(gg.GpugradError, match="iterable"):
        optim.SGD(p, lr=0.1)


@pytest.mark.parametrize("cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.RMSprop, dict(centered=True,
                                    momentum=0.5)), (optim.Adam, dict(amsgrad=True)), (optim.AdamW, dict())])
def test_state_dict_resume_is_bit_identical(cls, kw, tmp_path):
    p0 = RNG.standard_normal(6)
    grads = grads_sequence(6, n=8)
    full = run_gg(cls, p0, grads, **kw)[-1]
    p = nn.Parameter(gg.tensor(p0.copy()))
    opt = cls([p], **kw)
    for g in grads[:4]:
        p.grad = gg.tensor(g)
        opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"} and sd["param_groups"][0]["params"] == [0]
    q = nn.Parameter(gg.tensor(p.numpy().copy()))
    opt2 = cls([q], lr=123.0)  # hyper-parameters come back from the state dict
    gg.save(sd, tmp_path / "opt.safetensors")
    opt2.load_state_dict(gg.load(tmp_path / "opt.safetensors"))
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for g in grads[4:]:
        q.grad = gg.tensor(g)
        opt2.step()
    np.testing.assert_array_equal(q.numpy(), full)


def test_load_state_dict_validates_before_changing():
    p = nn.Parameter(gg.zeros(3))
    opt = optim.Adam([p])
    p.grad = gg.ones(3)
    opt.step()
    sd = opt.state_dict()
    other = optim.Adam([nn.Parameter(gg.zeros(4))])
    with pytest.raises(gg.ShapeError, match=r"exp_avg.*\(3,\).*\(4,\)"):
        other.load_state_dict(sd)
    assert other.state == {}
    with pytest.raises(gg.GpugradError, match="groups"):
        optim.Adam([{"params": [nn.Parameter(gg.zeros(3))]}, {"params": [nn.Parameter(gg.zeros(3))]}]) \
            .load_state_dict(sd)


def test_float16_parameters_keep_float32_state():
    p0 = (RNG.standard_normal(8) * 0.5).astype(np.float16)
    p = nn.Parameter(gg.tensor(p0))
    opt = optim.Adam([p], lr=0.01)
    grads = [g.astype(np.float16) for g in grads_sequence(8, n=3)]
    ref_p = p0.copy()
    m, v = np.zeros(8, np.float32), np.zeros(8, np.float32)
    for step, g in enumerate(grads, start=1):
        p.grad = gg.tensor(g)
        opt.step()
        npb.adam_step(ref_p, g, m, v, None, 0.01, 0.9, 0.999, 1e-8, 0.0, step, False)
    assert p.dtype == np.float16 and opt.state[id(p)]["exp_avg"].dtype == np.float32
    np.testing.assert_array_equal(p.numpy(), ref_p)
    assert not np.array_equal(p.numpy(), p0)


# ---- gradient clipping -------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    gs = [RNG.standard_normal((3, 2)), RNG.standard_normal(4)]
    ps = [nn.Parameter(gg.zeros(g.shape, dtype=gg.float64)) for g in gs]
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for p, tp, g in zip(ps, tps, gs):
        p.grad, tp.grad = gg.tensor(g), torch.tensor(g)
    total = optim.clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-12)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_edge_cases():
    p = nn.Parameter(gg.zeros(2))
    assert optim.clip_grad_norm_([p], 1.0).item() == 0.0  # no gradients
    p.grad = gg.tensor([np.inf, 1.0])
    with pytest.raises(gg.GpugradError, match="non-finite"):
        optim.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    p.grad = gg.tensor([3.0, 4.0])
    assert optim.clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(np.linalg.norm(p.grad.numpy()), 1.0, rtol=1e-5)


# ---- schedulers ----------------------------------------------------------------------------------------


def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("name,kw,torch_name,torch_kw", [
    ("StepLR", dict(step_size=3, gamma=0.5), "StepLR", dict(step_size=3, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01), "CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
    ("LinearWarmup", dict(warmup_steps=5, start_factor=0.2), "LinearLR",
     dict(start_factor=0.2, end_factor=1.0, total_iters=5)),
])
def test_schedulers_match_torch(name, kw, torch_name, torch_kw):
    torch = pytest.importorskip("torch")
    p = nn.Parameter(gg.zeros(1))
    opt = optim.SGD([p], lr=0.3)
    sched = getattr(lr_scheduler, name)(opt, **kw)
    tp = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=0.3)
    tsched = getattr(torch.optim.lr_scheduler, torch_name)(topt, **torch_kw)
    mine, theirs = _lrs(sched, opt, 18), _lrs(tsched, topt, 18)
    np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-15)
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_scheduler_formulas_and_resume():
    p = nn.Parameter(gg.zeros(1))
    opt = optim.Adam([p], lr=1.0)
    warm = lr_scheduler.LinearWarmup(opt, warmup_steps=4, start_factor=0.0)
    assert _lrs(warm, opt, 6) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    opt2 = optim.SGD([nn.Parameter(gg.zeros(1))], lr=2.0)
    cos = lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    for _ in range(4):
        cos.step()
    state = cos.state_dict()
    opt3 = optim.SGD([nn.Parameter(gg.zeros(1))], lr=2.0)
    cos2 = lr_scheduler.CosineAnnealingLR(opt3, T_max=10)
    cos2.load_state_dict(state)
    cos.step()
    cos2.step()
    assert cos2.get_last_lr() == cos.get_last_lr() == [pytest.approx(1 + math.cos(math.pi / 2))]
    with pytest.raises(gg.ArgumentError):
        lr_scheduler.StepLR(opt, step_size=0)


# ---- CUDA kernels ------------------------------------------------------------------------------------------


GPU_CASES = [
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True)),
    ("sgd", dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.1, nesterov=False)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.5, centered=True)),
    ("rmsprop", dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False)),
    ("adam", dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=False, amsgrad=True)),
    ("adam", dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=True, amsgrad=False)),
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("rule,hyper", GPU_CASES)
def test_cuda_kernel_steps_match_numpy_reference(rule, hyper, dtype):
    """The fused kernel updates the parameter and its state exactly as the NumPy reference (same
    operations in the same order; a tolerance of a few ulps guards against libm differences)."""
    import cupy

    from gpugrad.backends import backend_for

    B = backend_for("cuda:0")
    n = 1000 + 37
    sdt = np.float64 if dtype == "float64" else np.float32
    p_cpu = RNG.standard_normal(n).astype(dtype)
    p_gpu = cupy.asarray(p_cpu)

    def state(xp, on):
        if rule == "sgd":
            return {"buf": xp.zeros(n, sdt) if hyper["momentum"] else None}
        if rule == "rmsprop":
            return {"square_avg": xp.zeros(n, sdt), "grad_avg": xp.zeros(n, sdt) if hyper["centered"] else None,
                    "buf": xp.zeros(n, sdt) if hyper["momentum"] else None}
        return {"exp_avg": xp.zeros(n, sdt), "exp_avg_sq": xp.zeros(n, sdt),
                "max_exp_avg_sq": xp.zeros(n, sdt) if hyper["amsgrad"] else None}

    s_cpu, s_gpu = state(np, "cpu"), state(cupy, "gpu")
    for step in range(1, 4):
        g = RNG.standard_normal(n).astype(dtype)
        h = {k: v for k, v in hyper.items() if k not in ("centered", "amsgrad")}
        if rule == "sgd":
            h["first"] = step == 1
        if rule == "adam":
            h["step"] = step
        npb.optimizer_step(rule, p_cpu, g, s_cpu, h)
        B.optimizer_step(rule, p_gpu, cupy.asarray(g), s_gpu, h)
    tol = dict(float64=1e-13, float32=1e-6, float16=2e-3)[dtype]
    np.testing.assert_allclose(cupy.asnumpy(p_gpu).astype(np.float64), p_cpu.astype(np.float64), rtol=tol, atol=tol)
    for k, v in s_cpu.items():
        if v is not None:
            np.testing.assert_allclose(cupy.asnumpy(s_gpu[k]), v, rtol=tol, atol=tol, err_msg=k)


@pytest.mark.gpu
def test_gpu_optimizer_uses_one_fused_launch_per_parameter():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to("cuda")
    opt = optim.Adam(model.parameters(), lr=0.01)
    model(gg.randn(3, 4, device="cuda")).sum().backward()
    gg.cuda.reset_counters()
    opt.step()
    assert gg.cuda.counters()["launches"] == 4  # one fused kernel per parameter tensor
