"""The rest of torch.nn's staples under the same names: activation and loss modules, Conv1d, 1-d
pooling, AdaptiveAvgPool2d, ModuleDict and nn.utils, against PyTorch (float64, copied weights):
constructor defaults, state_dict keys, values and gradients."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad import nn
from tests.torch_parity import RNG, compare_module, copy_from_torch

NEW_CLASSES = ["Softmax", "LogSoftmax", "LeakyReLU", "SiLU", "Softplus", "Identity", "CrossEntropyLoss", "MSELoss",
               "L1Loss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "Conv1d", "MaxPool1d", "AvgPool1d",
               "AdaptiveAvgPool2d", "ModuleList", "ModuleDict", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell",
               "GRUCell"]


def _defaults(cls):
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if k not in ("self", "args", "kwargs", "device", "dtype")}


@pytest.mark.parametrize("name", NEW_CLASSES)
def test_constructor_arguments_and_defaults_match_torch(name):
    torch = pytest.importorskip("torch")
    mine, theirs = _defaults(getattr(nn, name)), _defaults(getattr(torch.nn, name))
    if name in ("RNN", "LSTM", "GRU"):  # torch declares them through *args; compare with its documentation
        theirs = {"RNN": dict(input_size=inspect.Parameter.empty, hidden_size=inspect.Parameter.empty, num_layers=1,
                              nonlinearity="tanh", bias=True, batch_first=False, dropout=0.0, bidirectional=False),
                  "LSTM": dict(input_size=inspect.Parameter.empty, hidden_size=inspect.Parameter.empty, num_layers=1,
                               bias=True, batch_first=False, dropout=0.0, bidirectional=False, proj_size=0),
                  "GRU": dict(input_size=inspect.Parameter.empty, hidden_size=inspect.Parameter.empty, num_layers=1,
                              bias=True, batch_first=False, dropout=0.0, bidirectional=False)}[name]
    assert list(mine) == list(theirs)
    assert mine == theirs


@pytest.mark.parametrize("make", [
    lambda ns: ns.Softmax(dim=1), lambda ns: ns.LogSoftmax(dim=-1), lambda ns: ns.LeakyReLU(),
    lambda ns: ns.LeakyReLU(0.3), lambda ns: ns.SiLU(), lambda ns: ns.Softplus(),
    lambda ns: ns.Softplus(beta=2.0, threshold=1.0), lambda ns: ns.Identity(3, x=1),
])
def test_activation_modules_match_torch(make):
    torch = pytest.importorskip("torch")
    compare_module(make(nn), make(torch.nn), RNG.standard_normal((3, 4)) * 3)


def test_softmax_without_dim_follows_torch_legacy_choice():
    torch = pytest.importorskip("torch")
    for shape in [(4,), (2, 3), (2, 3, 4), (2, 2, 2, 2)]:
        x = RNG.standard_normal(shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_allclose(nn.Softmax()(gg.tensor(x)).numpy(),
                                       torch.nn.Softmax()(torch.tensor(x)).numpy(), rtol=1e-12)
    with pytest.warns(UserWarning, match="dim="):
        nn.LogSoftmax()(gg.ones(3))


def _loss_inputs(name):
    x = RNG.standard_normal((5, 4))
    if name in ("CrossEntropyLoss", "NLLLoss"):
        return x, np.array([0, 3, 1, 1, 2])
    if name == "BCELoss":
        return 1 / (1 + np.exp(-x)), RNG.uniform(size=(5, 4))
    return x, RNG.uniform(size=(5, 4))


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_match_torch(name, reduction):
    torch = pytest.importorskip("torch")
    mine, theirs = getattr(nn, name)(reduction=reduction), getattr(torch.nn, name)(reduction=reduction)
    x, t = _loss_inputs(name)
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = mine(X, gg.tensor(t)), theirs(tx, torch.tensor(t))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    r = RNG.standard_normal(tuple(ty.shape))
    (y * gg.tensor(r)).sum().backward()
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert repr(mine).startswith(name)


def test_weighted_losses_buffers_and_options_match_torch():
    torch = pytest.importorskip("torch")
    w, pw = RNG.uniform(0.5, 2, 4), RNG.uniform(0.5, 2, 4)
    cases = [
        (nn.CrossEntropyLoss(weight=gg.tensor(w), ignore_index=1, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), ignore_index=1, label_smoothing=0.1), "CrossEntropyLoss"),
        (nn.NLLLoss(weight=w), torch.nn.NLLLoss(weight=torch.tensor(w)), "NLLLoss"),
        (nn.BCELoss(weight=gg.tensor(w)), torch.nn.BCELoss(weight=torch.tensor(w)), "BCELoss"),
        (nn.BCEWithLogitsLoss(weight=gg.tensor(w), pos_weight=gg.tensor(pw)),
         torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(pw)), "BCEWithLogitsLoss"),
    ]
    for mine, theirs, name in cases:
        assert list(mine.state_dict()) == list(theirs.state_dict())
        x, t = _loss_inputs(name)
        X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = mine(X, gg.tensor(t)), theirs(tx, torch.tensor(t))
        np.testing.assert_allclose(y.item(), ty.item(), rtol=1e-10)
        y.backward()
        ty.backward()
        np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert list(nn.MSELoss().state_dict()) == [] and list(nn.CrossEntropyLoss().state_dict()) == []


def test_legacy_size_average_and_reduce_map_like_torch():
    torch = pytest.importorskip("torch")
    for size_average, reduce in [(False, None), (None, False), (True, True), (False, True)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert nn.MSELoss(size_average, reduce).reduction == torch.nn.MSELoss(size_average, reduce).reduction
    with pytest.raises(gg.ArgumentError):
        nn.L1Loss(reduction="average")


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(dilation=2, groups=2, bias=False),
                                dict(padding="same"), dict(padding="valid", stride=(2,))])
def test_conv1d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Conv1d(4, 6, 3, **kw).double()
    mine = nn.Conv1d(4, 6, 3, **kw).double()
    copy_from_torch(mine, theirs)
    compare_module(mine, theirs, RNG.standard_normal((2, 4, 9)))
    compare_module(mine, theirs, RNG.standard_normal((4, 7)))  # unbatched


def test_conv1d_default_init_bounds():
    gg.manual_seed(0)
    conv = nn.Conv1d(8, 16, 5)
    bound = 1 / np.sqrt(8 * 5)
    assert conv.weight.shape == (16, 8, 5)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.bias.numpy()).max() <= bound


@pytest.mark.parametrize("make", [
    lambda ns: ns.MaxPool1d(2), lambda ns: ns.MaxPool1d(3, stride=2, padding=1),
    lambda ns: ns.MaxPool1d(2, dilation=2, ceil_mode=True),
    lambda ns: ns.AvgPool1d(3), lambda ns: ns.AvgPool1d(3, 2, 1),
    lambda ns: ns.AvgPool1d(3, 2, 1, count_include_pad=False, ceil_mode=True),
])
def test_pool1d_matches_torch(make):
    torch = pytest.importorskip("torch")
    m, t = make(nn), make(torch.nn)
    compare_module(m, t, RNG.standard_normal((2, 3, 11)))
    compare_module(m, t, RNG.standard_normal((3, 8)))


@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 5), ow=st.sampled_from([1, 3, 4, None]))
def test_adaptive_avg_pool2d_matches_torch(h, w, oh, ow):
    torch = pytest.importorskip("torch")
    compare_module(nn.AdaptiveAvgPool2d((oh, ow)), torch.nn.AdaptiveAvgPool2d((oh, ow)),
                   RNG.standard_normal((2, 3, h, w)))


def test_adaptive_avg_pool2d_int_and_unbatched():
    torch = pytest.importorskip("torch")
    compare_module(nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1), RNG.standard_normal((3, 5, 7)))
    x = gg.randn(2, 3, 4, 4)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 2).numpy(), F.avg_pool2d(x, 2).numpy(), rtol=1e-6)
    with pytest.raises(gg.ShapeError):
        F.adaptive_avg_pool2d(gg.randn(4, 4), 2)


def test_module_dict_registers_and_names_like_torch():
    torch = pytest.importorskip("torch")
    mine = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.Conv1d(1, 2, 3)})
    mine["c"] = nn.LSTM(2, 2)
    theirs = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 3), "b": torch.nn.Conv1d(1, 2, 3)})
    theirs["c"] = torch.nn.LSTM(2, 2)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert list(mine) == ["a", "b", "c"] and "b" in mine and len(mine) == 3
    assert list(mine.keys()) == ["a", "b", "c"] and isinstance(mine["a"], nn.Linear)
    popped = mine.pop("b")
    assert isinstance(popped, nn.Conv1d) and list(mine) == ["a", "c"]
    assert [n for n, _ in mine.named_parameters()][:2] == ["a.weight", "a.bias"]
    mine.update([("d", nn.ReLU())])
    assert list(mine) == ["a", "c", "d"]
    mine.clear()
    assert len(mine) == 0 and list(mine.parameters()) == []
    with pytest.raises(gg.GpugradError, match="Module"):
        mine["x"] = 3


def test_nn_utils_clip_grad_norm_and_value_match_torch():
    torch = pytest.importorskip("torch")
    grads = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
    mine = [gg.zeros(g.shape, dtype=gg.float64, requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(mine, theirs, grads):
        p.grad, tp.grad = gg.tensor(g), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(mine, 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-12)
    for p, tp in zip(mine, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)
    nn.utils.clip_grad_value_(mine, 0.1)
    torch.nn.utils.clip_grad_value_(theirs, 0.1)
    for p, tp in zip(mine, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)
    assert nn.utils.clip_grad_norm_ is gg.optim.clip_grad_norm_
