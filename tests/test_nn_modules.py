"""gpugrad.nn modules: PyTorch's default initialisations (from gpugrad's seeded generators),
forward/backward against the same PyTorch layer holding the same weights, train/eval behaviour,
state_dict naming and strict loading, device/dtype moves."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad import nn
from tests.torch_parity import RNG, compare_module, copy_from_torch

# ---- initialisation -------------------------------------------------------------------------------


def test_linear_and_conv_default_init_bounds_and_statistics():
    gg.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.numpy()
    assert w.dtype == np.float32 and w.shape == (300, 400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound  # U(-b, b) has std b / sqrt(3)
    assert np.abs(lin.bias.numpy()).max() <= bound
    conv = nn.Conv2d(6, 8, (3, 5), groups=2)
    fan_in = 3 * 3 * 5
    assert conv.weight.shape == (8, 3, 3, 5)
    assert np.abs(conv.weight.numpy()).max() <= 1 / math.sqrt(fan_in)
    assert np.abs(conv.bias.numpy()).max() <= 1 / math.sqrt(fan_in)


def test_other_default_inits():
    gg.manual_seed(1)
    emb = nn.Embedding(1000, 64, padding_idx=3)
    e = emb.weight.numpy()
    assert abs(e.mean()) < 0.01 and abs(e.std() - 1) < 0.01
    assert np.all(e[3] == 0)
    ln, bn = nn.LayerNorm(5), nn.BatchNorm2d(4)
    for m in (ln, bn):
        np.testing.assert_array_equal(m.weight.numpy(), 1)
        np.testing.assert_array_equal(m.bias.numpy(), 0)
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.dtype == np.int64
    mha = nn.MultiHeadAttention(8, 2)
    bound = math.sqrt(6 / (8 + 24))
    assert np.abs(mha.in_proj_weight.numpy()).max() <= bound
    np.testing.assert_array_equal(mha.in_proj_bias.numpy(), 0)
    np.testing.assert_array_equal(mha.out_proj.bias.numpy(), 0)


def test_same_seed_same_init_different_seed_different_init():
    def build(seed):
        gg.manual_seed(seed)
        return nn.Sequential(nn.Linear(5, 7), nn.Conv2d(1, 2, 3), nn.Embedding(4, 3))

    a, b, c = build(3), build(3), build(4)
    for (na, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy(), err_msg=na)
        assert not np.array_equal(pa.numpy(), pc.numpy())


def test_factory_kwargs_dtype():
    lin = nn.Linear(3, 2, dtype=gg.float64)
    assert lin.weight.dtype == np.float64 and lin.bias.dtype == np.float64
    assert nn.LayerNorm(3, dtype=gg.float64).weight.dtype == np.float64


# ---- layers against PyTorch ---------------------------------------------------------------------------


def test_linear_conv_pool_layers_match_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)
    pairs = [
        (nn.Linear(4, 3), tnn.Linear(4, 3).double(), RNG.standard_normal((5, 4))),
        (nn.Linear(4, 3, bias=False), tnn.Linear(4, 3, bias=False).double(), RNG.standard_normal((2, 5, 4))),
        (nn.Conv2d(2, 4, 3, stride=2, padding=1), tnn.Conv2d(2, 4, 3, stride=2, padding=1).double(),
         RNG.standard_normal((2, 2, 7, 6))),
        (nn.Conv2d(4, 4, (2, 3), dilation=(1, 2), groups=2, bias=False),
         tnn.Conv2d(4, 4, (2, 3), dilation=(1, 2), groups=2, bias=False).double(), RNG.standard_normal((1, 4, 6, 8))),
        (nn.Sequential(nn.Conv2d(1, 3, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2, 1), nn.Flatten(),
                       nn.Linear(12, 5), nn.Tanh(), nn.Linear(5, 2), nn.Sigmoid(), nn.GELU()),
         tnn.Sequential(tnn.Conv2d(1, 3, 3, padding="same"), tnn.ReLU(), tnn.MaxPool2d(2), tnn.AvgPool2d(2, 1),
                        tnn.Flatten(), tnn.Linear(12, 5), tnn.Tanh(), tnn.Linear(5, 2), tnn.Sigmoid(),
                        tnn.GELU()).double(), RNG.standard_normal((3, 1, 6, 6))),
        (nn.LayerNorm((3, 4)), tnn.LayerNorm((3, 4)).double(), RNG.standard_normal((2, 3, 4))),
    ]
    for mine, theirs, x in pairs:
        with torch.no_grad():
            for p in theirs.parameters():
                p.add_(torch.randn_like(p) * 0.1)  # make weight/bias non-trivial (LayerNorm's ones/zeros)
        mine.double()
        copy_from_torch(mine, theirs)
        compare_module(mine, theirs, x)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dims", [1, 2])
def test_batchnorm_train_eval_running_stats_match_torch(dims, momentum):
    torch = pytest.importorskip("torch")
    mine = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(3, momentum=momentum).double()
    theirs = (torch.nn.BatchNorm1d if dims == 1 else torch.nn.BatchNorm2d)(3, momentum=momentum).double()
    shape = (6, 3, 4) if dims == 1 else (4, 3, 3, 2)
    for step in range(3):
        x = RNG.standard_normal(shape) * (step + 1) + step
        compare_module(mine, theirs, x)
    for name, buf in mine.named_buffers():
        np.testing.assert_allclose(buf.numpy(), dict(theirs.named_buffers())[name].numpy(), rtol=1e-12, err_msg=name)
    assert mine.num_batches_tracked.item() == 3
    mine.eval()
    theirs.eval()
    x = RNG.standard_normal(shape)
    compare_module(mine, theirs, x)
    before = mine.running_mean.numpy().copy()
    mine(gg.tensor(x))
    np.testing.assert_array_equal(mine.running_mean.numpy(), before)  # eval does not update
    assert mine.num_batches_tracked.item() == 3
    if dims == 1:
        compare_module(mine, theirs, RNG.standard_normal((5, 3)))  # (N, C) inputs too


def test_batchnorm_without_running_stats_and_errors():
    bn = nn.BatchNorm2d(2, track_running_stats=False, affine=False)
    assert "running_mean" not in bn.state_dict() and list(bn.parameters()) == []
    bn.eval()
    y = bn(gg.randn(4, 2, 3, 3))  # batch statistics even in eval
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-5)
    with pytest.raises(gg.ShapeError, match="channels"):
        nn.BatchNorm2d(3)(gg.randn(2, 2, 3, 3))
    with pytest.raises(gg.ShapeError, match="4-D"):
        nn.BatchNorm2d(3)(gg.randn(2, 3))


def test_embedding_and_dropout_modules():
    torch = pytest.importorskip("torch")
    mine, theirs = nn.Embedding(6, 3, padding_idx=0).double(), torch.nn.Embedding(6, 3, padding_idx=0).double()
    copy_from_torch(mine, theirs)
    idx = np.array([[0, 1, 5], [5, 5, 2]])
    y, ty = mine(gg.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_array_equal(mine.weight.grad.numpy(), theirs.weight.grad.numpy())
    drop = nn.Dropout(0.5)
    x = gg.ones(50, 50)
    assert (drop(x).numpy() == 0).any()
    drop.eval()
    assert drop(x) is x


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_self_attention_causal_matches_torch(batch_first):
    torch = pytest.importorskip("torch")
    e, h, length, n = 8, 2, 5, 3
    theirs = torch.nn.MultiheadAttention(e, h, batch_first=batch_first).double()
    mine = nn.MultiHeadAttention(e, h, batch_first=batch_first).double()
    with torch.no_grad():
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    copy_from_torch(mine, theirs)
    shape = (n, length, e) if batch_first else (length, n, e)
    x = RNG.standard_normal(shape)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=torch.float64)
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, w = mine(X, X, X, is_causal=True)
    ty, tw = theirs(tx, tx, tx, attn_mask=causal)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-9, atol=1e-11)
    r = RNG.standard_normal(shape)
    (y * gg.tensor(r)).sum().backward()
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-11)
    tp = dict(theirs.named_parameters())
    for name, p in mine.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-8, atol=1e-11, err_msg=name)
    y2, none = mine(X, X, X, attn_mask=np.triu(np.ones((length, length), bool), 1), need_weights=False)
    assert none is None
    np.testing.assert_allclose(y2.numpy(), y.numpy(), rtol=1e-12)  # boolean mask: True = not allowed


def test_multihead_cross_attention_with_key_padding_mask_matches_torch():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.MultiheadAttention(6, 3, batch_first=True).double()
    mine = nn.MultiHeadAttention(6, 3, batch_first=True).double()
    copy_from_torch(mine, theirs)
    q, kv = RNG.standard_normal((2, 4, 6)), RNG.standard_normal((2, 5, 6))
    kpm = np.zeros((2, 5), bool)
    kpm[0, 3:] = True
    y, w = mine(gg.tensor(q), gg.tensor(kv), gg.tensor(kv), key_padding_mask=gg.tensor(kpm),
                average_attn_weights=False)
    ty, tw = theirs(torch.tensor(q), torch.tensor(kv), torch.tensor(kv), key_padding_mask=torch.tensor(kpm),
                    average_attn_weights=False)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-9, atol=1e-11)
    with pytest.raises(gg.ArgumentError, match="divisible"):
        nn.MultiHeadAttention(6, 4)


def test_tiny_decoder_block_trains():
    """The pieces the CLI's GPT uses (token + position embeddings, causal attention, LayerNorm, GELU MLP)
    compose, and a few AdamW steps lower the loss on a fixed batch."""
    gg.manual_seed(0)
    vocab, e, length = 11, 16, 6

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(e), nn.LayerNorm(e)
            self.attn = nn.MultiHeadAttention(e, 2, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.GELU(), nn.Linear(4 * e, e))

        def forward(self, x):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, is_causal=True, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, e), nn.Embedding(length, e)
            self.blocks = nn.ModuleList([Block(), Block()])
            self.head = nn.Linear(e, vocab)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(np.arange(idx.shape[1]))
            for b in self.blocks:
                x = b(x)
            return self.head(x)

    model = GPT()
    assert len(list(model.parameters())) == 2 + 2 * 12 + 2  # embeddings, 2 blocks (LN, LN, attention, MLP), head
    tokens = gg.randint(0, vocab, (4, length + 1))
    x, y = tokens[:, :-1], tokens[:, 1:]
    opt = gg.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # causality: changing a later token does not change earlier logits
    a = x.numpy().copy()
    b = a.copy()
    b[:, -1] = (b[:, -1] + 1) % vocab
    model.eval()
    la, lb = model(gg.tensor(a)).numpy(), model(gg.tensor(b)).numpy()
    np.testing.assert_allclose(la[:, :-1], lb[:, :-1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(la[:, -1], lb[:, -1])


# ---- the Module protocol -------------------------------------------------------------------------------


def test_state_dict_keys_match_torch():
    torch = pytest.importorskip("torch")
    mine = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3),
                         nn.LayerNorm(3), nn.Embedding(3, 2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(8, 3), torch.nn.LayerNorm(3),
                                 torch.nn.Embedding(3, 2))
    assert list(mine.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert mine.state_dict()[k].shape == tuple(v.shape), k
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in theirs.named_parameters()]


def test_load_state_dict_strict_errors_change_nothing():
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    good = {k: np.ones(v.shape, np.float32) for k, v in before.items()}
    bad_shape = dict(good, **{"1.weight": np.ones((2, 5), np.float32)})
    with pytest.raises(gg.ShapeError, match=r"'1\.weight'.*\(2, 5\).*\(2, 4\)"):
        m.load_state_dict(bad_shape)
    missing = {k: v for k, v in good.items() if k != "0.bias"}
    with pytest.raises(gg.GpugradError, match=r"missing keys \['0\.bias'\]"):
        m.load_state_dict(missing)
    with pytest.raises(gg.GpugradError, match=r"unexpected keys \['extra'\]"):
        m.load_state_dict(dict(good, extra=np.zeros(1)))
    for k, v in m.state_dict().items():  # nothing was copied by the failed loads
        np.testing.assert_array_equal(v.numpy(), before[k])
    result = m.load_state_dict(dict(missing, extra=np.zeros(1)), strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(m[0].weight.numpy(), 1)
    np.testing.assert_array_equal(m[0].bias.numpy(), before["0.bias"])
    w = m[0].weight
    m.load_state_dict({k: gg.tensor(v) for k, v in good.items()})
    assert m[0].weight is w  # loaded in place: optimisers keep their references


def test_parameters_buffers_modules_and_shared_weights():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin, nn.BatchNorm1d(3))
    assert len(list(m.parameters())) == 4  # the shared Linear counted once
    assert [n for n, _ in m.named_buffers()] == ["3.running_mean", "3.running_var", "3.num_batches_tracked"]
    assert len(list(m.modules())) == 4 and len(list(m.children())) == 4
    assert isinstance(lin.weight, gg.Tensor) and lin.weight.is_leaf and lin.weight.requires_grad
    assert "Linear(in_features=3, out_features=3, bias=True)" in repr(m)
    with pytest.raises(gg.GpugradError, match="Parameter"):
        lin.weight = gg.zeros(3, 3)
    p = nn.Parameter(gg.ones(2))
    assert p.requires_grad and "Parameter containing" in repr(p)


def test_train_eval_zero_grad_and_to_dtype():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    m.train()
    m(gg.randn(3, 2)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    w = m[0].weight
    opt = gg.optim.SGD(m.parameters(), lr=0.1)
    m.to(gg.float64)
    assert m[0].weight is w and w.dtype == np.float64
    m.eval()
    m(gg.randn(3, 2, dtype=gg.float64)).sum().backward()
    opt.step()  # the optimiser made before .to() still updates the same parameters
    assert w.dtype == np.float64


def test_to_cuda_without_gpu_raises_device_error(no_cuda):
    with pytest.raises(gg.DeviceError):
        nn.Linear(2, 2).to("cuda")


@pytest.mark.gpu
def test_modules_on_gpu_match_cpu():
    gg.manual_seed(0)
    cpu = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 2 * 2, 3), nn.LayerNorm(3))
    gpu = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 2 * 2, 3), nn.LayerNorm(3))
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    assert all(p.device == "cuda:0" for p in gpu.parameters())
    x = RNG.standard_normal((2, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 2])
    for model, dev in ((cpu, "cpu"), (gpu, "cuda")):
        loss = F.cross_entropy(model(gg.tensor(x, device=dev)), gg.tensor(y, device=dev))
        loss.backward()
    np.testing.assert_allclose(gpu[0].weight.grad.numpy(), cpu[0].weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (name, a), (_, b) in zip(cpu.state_dict().items(), gpu.state_dict().items()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
