"""Recurrent layers and cells against PyTorch's (same weights, float64): outputs, final states
and the gradients of the input, the initial state and every parameter, for each combination of
num_layers, bidirectional, batch_first, bias and (un)batched input; plus state_dict names,
initialisation, dropout, errors, gradcheck and forward mode."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn
from tests.torch_parity import RNG, compare_module, copy_from_torch

KINDS = ["RNN", "LSTM", "GRU"]


def _pair(kind, **kw):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(**kw).double()
    mine = getattr(nn, kind)(**kw).double()
    copy_from_torch(mine, theirs)
    return mine, theirs


def _initial(kind, layers, batch):
    shape = (layers,) + ((batch,) if batch else ()) + (5,)
    h0 = RNG.standard_normal(shape)
    return (h0, RNG.standard_normal(shape)) if kind == "LSTM" else h0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias",
                         [(1, False, False, True), (2, False, True, True), (1, True, False, False),
                          (2, True, True, True), (3, True, False, True)])
def test_sequence_layers_match_torch(kind, num_layers, bidirectional, batch_first, bias):
    mine, theirs = _pair(kind, input_size=3, hidden_size=5, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, bidirectional=bidirectional)
    x = RNG.standard_normal((2, 4, 3) if batch_first else (4, 2, 3))
    compare_module(mine, theirs, x)  # zero initial state
    states = num_layers * (2 if bidirectional else 1)
    compare_module(mine, theirs, x, _initial(kind, states, 2))


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_and_relu_rnn_match_torch(kind):
    mine, theirs = _pair(kind, input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    compare_module(mine, theirs, RNG.standard_normal((6, 3)), _initial(kind, 4, None))
    compare_module(mine, theirs, RNG.standard_normal((1, 3)))  # one time step
    if kind == "RNN":
        mine, theirs = _pair("RNN", input_size=3, hidden_size=5, nonlinearity="relu", num_layers=2)
        compare_module(mine, theirs, RNG.standard_normal((4, 2, 3)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias,batched", [(True, True), (False, True), (True, False)])
def test_cells_match_torch(kind, bias, batched):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    theirs = getattr(torch.nn, kind + "Cell")(3, 5, bias=bias).double()
    mine = getattr(nn, kind + "Cell")(3, 5, bias=bias).double()
    copy_from_torch(mine, theirs)
    x = RNG.standard_normal((4, 3) if batched else (3,))
    h = RNG.standard_normal((4, 5) if batched else (5,))
    compare_module(mine, theirs, x)
    compare_module(mine, theirs, x, (h, RNG.standard_normal(h.shape)) if kind == "LSTM" else h)


def test_state_dict_names_order_and_shapes_match_torch():
    torch = pytest.importorskip("torch")
    for kind in KINDS:
        kw = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
        mine, theirs = getattr(nn, kind)(**kw), getattr(torch.nn, kind)(**kw)
        assert [(k, v.shape) for k, v in mine.state_dict().items()] == [
            (k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
        cell, tcell = getattr(nn, kind + "Cell")(3, 4, bias=False), getattr(torch.nn, kind + "Cell")(3, 4, bias=False)
        assert list(cell.state_dict()) == list(tcell.state_dict())


def test_default_initialisation_is_uniform_in_one_over_sqrt_hidden():
    gg.manual_seed(0)
    lstm = nn.LSTM(20, 100, num_layers=2)
    bound = 1 / math.sqrt(100)
    values = np.concatenate([p.numpy().ravel() for p in lstm.parameters()])
    assert values.dtype == np.float32
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.02 * bound
    gg.manual_seed(0)
    again = nn.LSTM(20, 100, num_layers=2)
    for a, b in zip(lstm.parameters(), again.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_dropout_between_layers_only_in_training():
    torch = pytest.importorskip("torch")
    mine, theirs = _pair("GRU", input_size=3, hidden_size=5, num_layers=2, dropout=0.5)
    x = RNG.standard_normal((4, 2, 3))
    mine.eval()
    theirs.eval()
    compare_module(mine, theirs, x)  # eval: dropout off, as torch
    mine.train()
    gg.manual_seed(3)
    a, _ = mine(gg.tensor(x))
    gg.manual_seed(3)
    b, _ = mine(gg.tensor(x))
    mine.eval()
    c, _ = mine(gg.tensor(x))
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # repeatable with the seed
    assert not np.allclose(a.numpy(), c.numpy())
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(3, 4, dropout=0.2)
    del torch


def test_errors():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(gg.ShapeError, match="input_size=3"):
        lstm(gg.randn(5, 2, 7))
    with pytest.raises(gg.ShapeError, match="2-D .* or 3-D"):
        lstm(gg.randn(3))
    with pytest.raises(gg.ShapeError, match=r"h_0 must have shape \(2, 2, 4\)"):
        lstm(gg.randn(5, 2, 3), (gg.zeros(1, 2, 4), gg.zeros(1, 2, 4)))
    with pytest.raises(gg.ArgumentError, match="pair"):
        lstm(gg.randn(5, 2, 3), gg.zeros(2, 2, 4))
    with pytest.raises(gg.ArgumentError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(gg.ArgumentError, match="hidden_size"):
        nn.GRU(3, 0)
    with pytest.raises(gg.ArgumentError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(gg.ShapeError, match="hidden state"):
        nn.GRUCell(3, 4)(gg.randn(2, 3), gg.zeros(3, 4))
    with pytest.raises(gg.DTypeError):
        nn.RNN(3, 4)(gg.tensor(np.zeros((2, 1, 3), np.int64)))


def test_gradcheck_and_forward_mode_through_an_lstm():
    gg.manual_seed(0)
    lstm = nn.LSTM(2, 3, num_layers=2, bidirectional=True).double()
    x = gg.randn(3, 1, 2, dtype=gg.float64, requires_grad=True)

    def f(v):
        out, (h, c) = lstm(v)
        return (out * out).sum() + h.sum() + c.sum()

    assert gg.gradcheck(f, [x])
    t = gg.randn(3, 1, 2, dtype=gg.float64)
    _, tangent = gg.jvp(f, (x.detach(),), (t,))
    g = gg.grad(f)(x.detach())
    np.testing.assert_allclose(tangent.item(), (g * t).sum().item(), rtol=1e-10)


def test_lstm_learns_to_remember_the_first_input():
    """A small LSTM trained with Adam learns to output the sign of the first step of a sequence."""
    gg.manual_seed(0)
    rng = np.random.default_rng(0)
    lstm, head = nn.LSTM(1, 8, batch_first=True), nn.Linear(8, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = gg.optim.Adam(params, lr=0.05)
    loss_fn = nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(100):
        x = rng.standard_normal((16, 5, 1)).astype(np.float32)
        y = (x[:, 0, :] > 0).astype(np.float32)
        out, _ = lstm(gg.tensor(x))
        loss = loss_fn(head(out[:, -1]), gg.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.25 < 0.5 < np.mean(losses[:10])


@pytest.mark.parametrize("kind,layers", list(itertools.product(KINDS, [1, 2])))
def test_carrying_the_state_over_two_chunks_equals_one_pass(kind, layers):
    gg.manual_seed(2)
    m = getattr(nn, kind)(3, 4, num_layers=layers).double()
    x = gg.randn(6, 2, 3, dtype=gg.float64)
    full, last = m(x)
    first, state = m(x[:3])
    second, state = m(x[3:], state)
    np.testing.assert_allclose(gg.cat([first, second], dim=0).numpy(), full.numpy(), rtol=1e-12)
    for a, b in zip(state if kind == "LSTM" else [state], last if kind == "LSTM" else [last]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", KINDS)
def test_recurrent_layers_on_gpu_match_cpu(kind):
    gg.manual_seed(0)
    cpu = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    gpu = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    x = RNG.standard_normal((2, 4, 3))
    results = []
    for model, dev in ((cpu, "cpu"), (gpu, "cuda")):
        out, _ = model(gg.tensor(x, device=dev))
        (out * out).sum().backward()
        results.append((out.numpy(), {n: p.grad.numpy() for n, p in model.named_parameters()}))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-10)
    for name, g in results[0][1].items():
        np.testing.assert_allclose(results[1][1][name], g, rtol=1e-9, atol=1e-12, err_msg=name)
