"""The fused nn ops (gpugrad.ops.nn) and gpugrad.nn.functional: values and gradients against
PyTorch (when importable), gradients against finite differences in float64 (gg.gradcheck),
forward-mode tangents against finite differences (gg.jvp), and second-order gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.backends import numpy_backend as npb
from gpugrad.ops import nn as N

RNG = np.random.default_rng(1234)


def t64(shape, rg=True, scale=1.0):
    return gg.tensor(RNG.standard_normal(shape) * scale, requires_grad=rg)


def check_jvp(f, xs, eps=1e-6, rtol=1e-5, atol=1e-7):
    """gg.jvp of f at xs along random tangents equals central differences."""
    ts = [gg.tensor(RNG.standard_normal(x.shape)) for x in xs]
    _, tout = gg.jvp(f, [gg.tensor(x.numpy()) for x in xs], ts)
    plus = f(*[gg.tensor(x.numpy() + eps * t.numpy()) for x, t in zip(xs, ts)]).numpy()
    minus = f(*[gg.tensor(x.numpy() - eps * t.numpy()) for x, t in zip(xs, ts)]).numpy()
    np.testing.assert_allclose(tout.numpy(), (plus - minus) / (2 * eps), rtol=rtol, atol=atol)


def check_second_order(f, xs):
    """Gradients taken with create_graph (the rules run on tensors) equal the fast-path ones and
    are themselves differentiable correctly: gradcheck of x -> <grad f(x), r>."""
    fast = [gg.tensor(x.numpy(), requires_grad=True) for x in xs]
    f(*fast).backward()
    slow = [gg.tensor(x.numpy(), requires_grad=True) for x in xs]
    f(*slow).backward(create_graph=True)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-10, atol=1e-12)

    def g(*args):
        out = f(*args)
        grads = gg.grad(lambda *a: f(*a), argnums=tuple(range(len(args))))(*args)
        r = [gg.tensor(np.cos(np.arange(gr.size).reshape(gr.shape))) for gr in grads]
        del out
        return sum((gr * ri).sum() for gr, ri in zip(grads, r))
    assert gg.gradcheck(g, xs, atol=1e-5, rtol=1e-4)


def projected(f, shape_seed=0):
    """x -> sum(f(x) * R) with a fixed random R: one backward pass checks the whole Jacobian's action."""
    cache = {}

    def g(*args):
        out = f(*args)
        if out.shape not in cache:
            cache[out.shape] = gg.tensor(np.random.default_rng(shape_seed).standard_normal(out.shape))
        return (out * cache[out.shape]).sum()
    return g


# ---- im2col / col2im ------------------------------------------------------------------------------


def pull_back_both(y, ty, torch):
    """Backpropagate the same random cotangent through a gpugrad output and its PyTorch twin."""
    r = RNG.standard_normal(tuple(y.shape))
    (y * gg.tensor(r)).sum().backward()
    (ty * torch.tensor(r)).sum().backward()


def naive_im2col(x, k, s, p, d, value=0.0):
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = k, s, p, d
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)
    n, c, h, w = xp.shape
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, oh, ow, c, kh, kw), x.dtype)
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    out[:, i, j, :, a, b] = xp[:, :, i * sh + a * dh, j * sw + b * dw]
    return out


geometry = st.fixed_dictionaries({
    "n": st.integers(1, 2), "c": st.integers(1, 3), "h": st.integers(1, 7), "w": st.integers(1, 7),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "sh": st.integers(1, 3), "sw": st.integers(1, 3),
    "pt": st.integers(0, 2), "pb": st.integers(0, 2), "pl": st.integers(0, 2), "pr": st.integers(0, 2),
    "dh": st.integers(1, 2), "dw": st.integers(1, 2),
})


def _fits(g):
    return (g["h"] + g["pt"] + g["pb"] >= g["dh"] * (g["kh"] - 1) + 1
            and g["w"] + g["pl"] + g["pr"] >= g["dw"] * (g["kw"] - 1) + 1)


@settings(max_examples=60, deadline=None)
@given(geometry)
def test_im2col_matches_naive_and_col2im_is_its_transpose(g):
    if not _fits(g):
        return
    x = RNG.standard_normal((g["n"], g["c"], g["h"], g["w"]))
    args = ((g["kh"], g["kw"]), (g["sh"], g["sw"]), ((g["pt"], g["pb"]), (g["pl"], g["pr"])), (g["dh"], g["dw"]))
    cols = npb.im2col(x, *args)
    np.testing.assert_array_equal(cols, naive_im2col(x, *args).transpose(3, 4, 5, 0, 1, 2))
    assert cols.flags.c_contiguous
    c = RNG.standard_normal(cols.shape)
    back = npb.col2im(c, x.shape, *args)
    assert back.shape == x.shape
    # adjoint identity <im2col(x), c> == <x, col2im(c)>
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-10)


@settings(max_examples=60, deadline=None)
@given(geometry)
def test_pool_primitives_match_naive_windows(g):
    if not _fits(g) or 2 * max(g["pt"], g["pb"]) > g["dh"] * (g["kh"] - 1) + 1 \
            or 2 * max(g["pl"], g["pr"]) > g["dw"] * (g["kw"] - 1) + 1:
        return  # PyTorch's rule: padding at most half the window, so no window is all padding
    x = RNG.standard_normal((g["n"], g["c"], g["h"], g["w"]))
    x.ravel()[RNG.integers(0, x.size)] = x.ravel()[0]  # a tie now and then
    args = ((g["kh"], g["kw"]), (g["sh"], g["sw"]), ((g["pt"], g["pb"]), (g["pl"], g["pr"])), (g["dh"], g["dw"]))
    win = naive_im2col(x, *args, value=-np.inf)  # (N, OH, OW, C, kh, kw)
    win = win.reshape(win.shape[:4] + (-1,)).transpose(0, 3, 1, 2, 4)  # (N, C, OH, OW, K)
    np.testing.assert_array_equal(npb.pool2d(x, *args, "max"), win.max(-1))
    zero_win = naive_im2col(x, *args).reshape(win.shape[0], *win.shape[2:4], win.shape[1], -1).transpose(0, 3, 1, 2, 4)
    np.testing.assert_allclose(npb.pool2d(x, *args, "sum"), zero_win.sum(-1), rtol=1e-12, atol=1e-12)
    idx = npb.pool_argmax(x, *args)
    np.testing.assert_array_equal(idx, win.argmax(-1))  # the first maximum
    gout = RNG.standard_normal(idx.shape)
    scattered = npb.pool_scatter(gout, idx, x.shape, *args)
    t = RNG.standard_normal(x.shape)
    gathered = npb.pool_gather(t, idx, *args)
    np.testing.assert_allclose(np.sum(scattered * t), np.sum(gout * gathered), rtol=1e-10)  # adjoint pair
    tw = naive_im2col(t, *args).reshape(zero_win.shape[0], *zero_win.shape[2:4], zero_win.shape[1], -1)
    np.testing.assert_array_equal(gathered, np.take_along_axis(tw.transpose(0, 3, 1, 2, 4), idx[..., None], -1)[..., 0])


def test_max_pool_nan_follows_torch():
    torch = pytest.importorskip("torch")
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = F.max_pool2d(X, 2), torch.nn.functional.max_pool2d(tx, 2)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_array_equal(X.grad.numpy(), tx.grad.numpy())


def test_im2col_col2im_ops_gradcheck_and_jvp():
    args = ((2, 2), (1, 2), ((1, 0), (0, 1)), (1, 1))
    x = t64((1, 2, 4, 3))
    assert gg.gradcheck(lambda x: gg.ops.im2col(x, *args), (x,))
    c = t64(tuple(gg.ops.im2col(x, *args).shape))
    assert gg.gradcheck(lambda c: gg.ops.col2im(c, x.shape, *args), (c,))
    check_jvp(lambda x: gg.ops.im2col(x, *args), [x])
    check_jvp(lambda c: gg.ops.col2im(c, (1, 2, 4, 3), *args), [c])


# ---- conv2d ----------------------------------------------------------------------------------------

CONV_CASES = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
    dict(padding="same", dilation=2),
    dict(padding="valid", stride=3),
    dict(groups=2, padding=1),
]


@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    groups = kw.get("groups", 1)
    x = RNG.standard_normal((2, 4, 7, 6))
    w = RNG.standard_normal((6, 4 // groups, 3, 2))
    b = RNG.standard_normal(6)
    X, W, B = (gg.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(X, W, B, **kw)
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    pull_back_both(y, ty, torch)
    for mine, ref in ((X, tx), (W, tw), (B, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=1e-10, atol=1e-12)


conv_geometry = st.fixed_dictionaries({
    "n": st.integers(1, 2), "c": st.integers(1, 3), "f": st.integers(1, 3), "h": st.integers(3, 8),
    "w": st.integers(3, 8), "k": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "padding": st.tuples(st.integers(0, 2), st.integers(0, 2)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)), "bias": st.booleans(),
})


@settings(max_examples=30, deadline=None)
@given(conv_geometry)
def test_conv2d_random_geometries_match_torch_float32(g):
    torch = pytest.importorskip("torch")
    if any(g[s] + 2 * g["padding"][i] < g["dilation"][i] * (g["k"][i] - 1) + 1 for i, s in enumerate("hw")):
        return
    x = RNG.standard_normal((g["n"], g["c"], g["h"], g["w"])).astype(np.float32)
    w = RNG.standard_normal((g["f"], g["c"]) + g["k"]).astype(np.float32)
    b = RNG.standard_normal(g["f"]).astype(np.float32) if g["bias"] else None
    kw = dict(stride=g["stride"], padding=g["padding"], dilation=g["dilation"])
    X, W = gg.tensor(x, requires_grad=True), gg.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = F.conv2d(X, W, None if b is None else gg.tensor(b), **kw)
    ty = torch.nn.functional.conv2d(tx, tw, None if b is None else torch.tensor(b), **kw)
    assert y.dtype == np.float32 and y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
                                dict(groups=2)])
def test_conv2d_gradcheck_jvp_second_order(kw):
    groups = kw.get("groups", 1)
    x = t64((2, 2, 5, 4))
    w = t64((2, 2 // groups, 2, 3))
    b = t64((2,))
    f = lambda x, w, b: F.conv2d(x, w, b, **kw)  # noqa: E731
    assert gg.gradcheck(f, (x, w, b))
    check_jvp(f, [x, w, b])
    check_second_order(projected(f), (x, w, b))


def test_conv2d_unbatched_and_errors():
    x = gg.randn(3, 5, 5)
    w = gg.randn(4, 3, 3, 3)
    assert F.conv2d(x, w, padding=1).shape == (4, 5, 5)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        F.conv2d(gg.randn(2, 3, 5, 5), gg.randn(4, 2, 3, 3))
    with pytest.raises(gg.ShapeError, match="does not fit"):
        F.conv2d(gg.randn(1, 3, 2, 2), w)
    with pytest.raises(gg.DTypeError, match="float64"):
        F.conv2d(gg.randn(1, 3, 5, 5), gg.randn(4, 3, 3, 3, dtype=gg.float64))
    with pytest.raises(gg.ArgumentError, match="stride"):
        F.conv2d(gg.randn(1, 3, 5, 5), w, stride=0)
    with pytest.raises(gg.ArgumentError, match="same"):
        F.conv2d(gg.randn(1, 3, 5, 5), w, stride=2, padding="same")


# ---- pooling ---------------------------------------------------------------------------------------

POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0)),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
]


@pytest.mark.parametrize("kw", POOL_CASES + [dict(kernel_size=2, stride=1, dilation=2),
                                             dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2))])
def test_max_pool2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 3, 7, 8))
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = F.max_pool2d(X, **kw), torch.nn.functional.max_pool2d(tx, **kw)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    pull_back_both(y, ty, torch)
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_max_pool2d_ties_go_to_the_first_maximum_like_torch():
    torch = pytest.importorskip("torch")
    x = np.maximum(RNG.standard_normal((1, 2, 6, 6)), 0).astype(np.float32)  # many tied zeros after a ReLU
    x[0, 0, :2, :2] = 1.0
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    F.max_pool2d(X, 3, stride=1).sum().backward()
    torch.nn.functional.max_pool2d(tx, 3, stride=1).sum().backward()
    np.testing.assert_array_equal(X.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("kw", POOL_CASES + [dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                             dict(kernel_size=2, stride=2, padding=1, ceil_mode=True,
                                                  count_include_pad=False),
                                             dict(kernel_size=3, divisor_override=4)])
def test_avg_pool2d_matches_torch(kw):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 3, 7, 8))
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = F.avg_pool2d(X, **kw), torch.nn.functional.avg_pool2d(tx, **kw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    pull_back_both(y, ty, torch)
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=2, stride=1, dilation=2),
                                dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_pooling_gradcheck_and_jvp(kw):
    # distinct values, far apart: max pooling is differentiable there
    x = gg.tensor(RNG.permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) * 0.1, requires_grad=True)
    assert gg.gradcheck(lambda x: F.max_pool2d(x, **kw), (x,), eps=1e-4)
    check_jvp(lambda x: F.max_pool2d(x, **kw), [x], eps=1e-4)
    assert gg.gradcheck(lambda x: F.avg_pool2d(x, **{k: v for k, v in kw.items() if k != "dilation"}), (x,))
    check_jvp(lambda x: F.avg_pool2d(x, **{k: v for k, v in kw.items() if k != "dilation"}), [x])
    assert gg.gradcheck(lambda x: N.avg_pool2d(x, 2, 1, 0, dilation=2), (x,))  # gpugrad's dilation extension
    check_second_order(projected(lambda x: F.max_pool2d(x, **kw)), (x,))
    check_second_order(projected(lambda x: F.avg_pool2d(x, 2)), (x,))


def test_pooling_errors():
    with pytest.raises(gg.ArgumentError, match="half"):
        F.max_pool2d(gg.randn(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(gg.ShapeError, match="3-D .* or 4-D"):
        F.max_pool2d(gg.randn(4, 4), 2)
    with pytest.raises(gg.ArgumentError, match="return_indices"):
        F.max_pool2d(gg.randn(1, 1, 4, 4), 2, return_indices=True)
    assert F.avg_pool2d(gg.randn(2, 4, 4), 2).shape == (2, 2, 2)


# ---- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,norm", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((3, 5), (5,))])
def test_layer_norm_matches_torch(shape, norm):
    torch = pytest.importorskip("torch")
    x, w, b = RNG.standard_normal(shape), RNG.standard_normal(norm), RNG.standard_normal(norm)
    X, W, B = (gg.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y, ty = F.layer_norm(X, norm, W, B, eps=1e-3), torch.nn.functional.layer_norm(tx, norm, tw, tb, eps=1e-3)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    pull_back_both(y, ty, torch)
    for mine, ref in ((X, tx), (W, tw), (B, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_layer_norm_gradcheck_jvp_second_order_and_float16():
    x, w, b = t64((3, 2, 4)), t64((2, 4)), t64((2, 4))
    f = lambda x, w, b: F.layer_norm(x, (2, 4), w, b)  # noqa: E731
    assert gg.gradcheck(f, (x, w, b))
    assert gg.gradcheck(lambda x: F.layer_norm(x, 4), (x,))
    check_jvp(f, [x, w, b])
    check_second_order(projected(f), (x, w, b))
    h = gg.tensor(RNG.standard_normal((4, 8)).astype(np.float16) * 30, requires_grad=True)
    y = F.layer_norm(h, 8)
    assert y.dtype == np.float16
    ref = F.layer_norm(gg.tensor(h.numpy().astype(np.float64)), 8).numpy()
    np.testing.assert_allclose(y.numpy(), ref, atol=5e-3)
    y.sum().backward()
    assert h.grad.dtype == np.float16 and np.all(np.isfinite(h.grad.numpy()))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
def test_batch_norm_train_and_eval_match_torch(shape):
    torch = pytest.importorskip("torch")
    x, w, b = RNG.standard_normal(shape) * 2 + 1, RNG.standard_normal(3), RNG.standard_normal(3)
    rm, rv = np.zeros(3), np.ones(3)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    RM, RV = gg.tensor(rm), gg.tensor(rv)
    for step in range(2):
        X, W, B = (gg.tensor(a, requires_grad=True) for a in (x + step, w, b))
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x + step, w, b))
        y = F.batch_norm(X, RM, RV, W, B, training=True, momentum=0.1, eps=1e-5)
        ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=True, momentum=0.1, eps=1e-5)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        pull_back_both(y, ty, torch)
        for mine, ref in ((X, tx), (W, tw), (B, tb)):
            np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(RM.numpy(), trm.numpy(), rtol=1e-12)
        np.testing.assert_allclose(RV.numpy(), trv.numpy(), rtol=1e-12)
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = F.batch_norm(X, RM, RV, gg.tensor(w), gg.tensor(b), training=False)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, torch.tensor(w), torch.tensor(b), training=False)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_batch_norm_gradcheck_jvp_second_order():
    x, w, b = t64((4, 2, 3)), t64((2,)), t64((2,))
    train = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    assert gg.gradcheck(train, (x, w, b))
    check_jvp(train, [x, w, b])
    check_second_order(projected(train), (x, w, b))
    rm, rv = gg.tensor(RNG.standard_normal(2)), gg.tensor(RNG.random(2) + 0.5)
    ev = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False)  # noqa: E731
    assert gg.gradcheck(ev, (x, w, b))
    check_jvp(ev, [x, w, b])
    with pytest.raises(gg.ShapeError, match="more than 1 value per channel"):
        F.batch_norm(gg.randn(1, 3), None, None, training=True)


# ---- embedding, dropout ---------------------------------------------------------------------------


def test_embedding_matches_torch_with_repeats_and_padding_idx():
    torch = pytest.importorskip("torch")
    w = RNG.standard_normal((7, 4))
    idx = np.array([[0, 3, 3, 6], [2, 0, 1, 3]])
    W, tw = gg.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = F.embedding(gg.tensor(idx), W, padding_idx=3)
    ty = torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=3)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    pull_back_both(y, ty, torch)
    np.testing.assert_allclose(W.grad.numpy(), tw.grad.numpy(), rtol=1e-12)
    assert np.all(W.grad.numpy()[3] == 0)


def test_embedding_gradcheck_jvp_and_errors():
    w = t64((5, 3))
    idx = np.array([1, 1, 4, 0])
    assert gg.gradcheck(lambda w: F.embedding(idx, w), (w,))
    check_jvp(lambda w: F.embedding(idx, w), [w])
    with pytest.raises(gg.ArgumentError, match=r"\[0, 5\)"):
        F.embedding(np.array([5]), w)
    with pytest.raises(gg.DTypeError, match="integers"):
        F.embedding(np.array([1.0]), w)


def test_dropout_mask_scaling_seed_and_eval():
    x = gg.ones(200, 100, requires_grad=True)
    gg.manual_seed(7)
    y = F.dropout(x, 0.3, training=True)
    vals = np.unique(y.numpy())
    np.testing.assert_allclose(sorted(vals), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((y.numpy() == 0).mean() - 0.3) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # the gradient is the scaled mask
    gg.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.3).numpy(), y.numpy())  # repeatable
    assert F.dropout(x, 0.3, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0)
    with pytest.raises(gg.ArgumentError):
        F.dropout(x, 1.5)


def test_dropout_op_gradcheck_and_jvp():
    def seeded(x):  # the same mask at every evaluation
        gg.manual_seed(3)
        return F.dropout(x, 0.4)

    x = t64((6, 5))
    assert gg.gradcheck(seeded, (x,))
    check_jvp(seeded, [x])
    check_second_order(projected(seeded), (x,))


def test_pool_scatter_gather_ops_gradcheck_and_jvp():
    args = ((2, 2), (1, 2), ((1, 0), (0, 1)), (1, 1))
    x = t64((1, 2, 4, 5))
    idx = npb.pool_argmax(x.numpy(), *args)
    g = t64(idx.shape)
    assert gg.gradcheck(lambda g: gg.ops.pool_scatter(g, idx, x.shape, *args), (g,))
    assert gg.gradcheck(lambda x: gg.ops.pool_gather(x, idx, *args), (x,))
    check_jvp(lambda g: gg.ops.pool_scatter(g, idx, (1, 2, 4, 5), *args), [g])
    check_jvp(lambda x: gg.ops.pool_gather(x, idx, *args), [x])


# ---- losses ------------------------------------------------------------------------------------------

CE_CASES = [
    dict(),
    dict(label_smoothing=0.1),
    dict(ignore_index=2),
    dict(ignore_index=2, label_smoothing=0.2, reduction="sum"),
    dict(reduction="none"),
    dict(weight=True),
    dict(weight=True, label_smoothing=0.3, ignore_index=1),
    dict(weight=True, reduction="none", label_smoothing=0.1),
]


@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 2, 2), (5,)])
@pytest.mark.parametrize("kw", CE_CASES)
def test_cross_entropy_labels_match_torch(shape, kw):
    torch = pytest.importorskip("torch")
    kw = dict(kw)
    c = shape[0] if len(shape) == 1 else shape[1]
    x = RNG.standard_normal(shape) * 2
    labels_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    y = RNG.integers(0, c, labels_shape)
    if "ignore_index" in kw and y.ndim:
        y.reshape(-1)[0] = kw["ignore_index"]
    if kw.pop("weight", False):
        wv = RNG.random(c) + 0.5
        kw_g, kw_t = dict(kw, weight=gg.tensor(wv)), dict(kw, weight=torch.tensor(wv))
    else:
        kw_g, kw_t = kw, kw
    X, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = F.cross_entropy(X, gg.tensor(y), **kw_g)
    tout = torch.nn.functional.cross_entropy(tx, torch.tensor(y), **kw_t)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    pull_back_both(out, tout, torch)
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(label_smoothing=0.2), dict(reduction="sum"), dict(weight=True),
                                dict(reduction="none", label_smoothing=0.1)])
def test_cross_entropy_probabilities_match_torch(kw):
    torch = pytest.importorskip("torch")
    kw = dict(kw)
    x = RNG.standard_normal((4, 3, 2))
    p = RNG.random((4, 3, 2))
    p /= p.sum(1, keepdims=True)
    if kw.pop("weight", False):
        wv = RNG.random(3) + 0.5
        kw_g, kw_t = dict(kw, weight=gg.tensor(wv)), dict(kw, weight=torch.tensor(wv))
    else:
        kw_g, kw_t = kw, kw
    X, P = gg.tensor(x, requires_grad=True), gg.tensor(p, requires_grad=True)
    tx, tp = torch.tensor(x, requires_grad=True), torch.tensor(p, requires_grad=True)
    out = F.cross_entropy(X, P, **kw_g)
    tout = torch.nn.functional.cross_entropy(tx, tp, **kw_t)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(P.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_cross_entropy_gradcheck_jvp_second_order():
    x = t64((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    for kw in (dict(), dict(label_smoothing=0.2, ignore_index=1), dict(reduction="none"),
               dict(weight=gg.tensor(RNG.random(4) + 0.5), label_smoothing=0.1)):
        f = lambda x, kw=kw: F.cross_entropy(x, y, **kw)  # noqa: E731
        assert gg.gradcheck(f, (x,))
        check_jvp(f, [x])
        check_second_order(projected(f), (x,))
    p = gg.tensor(RNG.random((5, 4)), requires_grad=True)
    fp = lambda x, p: F.cross_entropy(x, p, label_smoothing=0.1)  # noqa: E731
    assert gg.gradcheck(fp, (x, p))
    check_jvp(fp, [x, p])


def test_cross_entropy_edge_cases_and_errors():
    x = gg.tensor([[0.0, -np.inf, 1.0]], requires_grad=True)  # a masked class: no NaN
    loss = F.cross_entropy(x, gg.tensor([2]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(x.grad.numpy()))
    z = gg.randn(2, 3, requires_grad=True)
    all_ignored = F.cross_entropy(z, gg.tensor([-100, -100]))
    assert np.isnan(all_ignored.item())  # 0/0, as PyTorch
    all_ignored.backward()
    np.testing.assert_array_equal(z.grad.numpy(), 0)  # but a zero gradient, as PyTorch
    with pytest.raises(gg.ArgumentError, match=r"\[0, 3\)"):
        F.cross_entropy(gg.randn(2, 3), gg.tensor([0, 3]))
    with pytest.raises(gg.ShapeError, match=r"\(2,\)"):
        F.cross_entropy(gg.randn(2, 3), gg.tensor([0, 1, 2]))
    with pytest.raises(gg.ArgumentError, match="reduction"):
        F.cross_entropy(gg.randn(2, 3), gg.tensor([0, 1]), reduction="avg")
    with pytest.raises(gg.ArgumentError, match="label_smoothing"):
        F.cross_entropy(gg.randn(2, 3), gg.tensor([0, 1]), label_smoothing=1.5)
    half = F.cross_entropy(gg.randn(4, 3, dtype=gg.float16), gg.tensor([0, 1, 2, 0]))
    assert half.dtype == np.float16


def test_other_losses_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = RNG.standard_normal((4, 3))
    t = RNG.standard_normal((4, 3))
    p = 1 / (1 + np.exp(-x))
    yb = (RNG.random((4, 3)) > 0.5).astype(np.float64)
    w = RNG.random((4, 3))
    pw = RNG.random(3) + 0.5
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    labels = np.array([0, 2, 1, 2])
    cases = [
        (lambda a: F.mse_loss(a, gg.tensor(t)), lambda a: tf.mse_loss(a, torch.tensor(t)), x),
        (lambda a: F.mse_loss(a, gg.tensor(t), reduction="sum"),
         lambda a: tf.mse_loss(a, torch.tensor(t), reduction="sum"), x),
        (lambda a: F.l1_loss(a, gg.tensor(t)), lambda a: tf.l1_loss(a, torch.tensor(t)), x),
        (lambda a: F.binary_cross_entropy(a, gg.tensor(yb)), lambda a: tf.binary_cross_entropy(a, torch.tensor(yb)), p),
        (lambda a: F.binary_cross_entropy(a, gg.tensor(yb), weight=gg.tensor(w), reduction="none"),
         lambda a: tf.binary_cross_entropy(a, torch.tensor(yb), weight=torch.tensor(w), reduction="none"), p),
        (lambda a: F.binary_cross_entropy_with_logits(a, gg.tensor(yb)),
         lambda a: tf.binary_cross_entropy_with_logits(a, torch.tensor(yb)), x * 10),
        (lambda a: F.binary_cross_entropy_with_logits(a, gg.tensor(yb), pos_weight=gg.tensor(pw), reduction="sum"),
         lambda a: tf.binary_cross_entropy_with_logits(a, torch.tensor(yb), pos_weight=torch.tensor(pw),
                                                       reduction="sum"), x),
        (lambda a: F.nll_loss(a, gg.tensor(labels)), lambda a: tf.nll_loss(a, torch.tensor(labels)), logp),
        (lambda a: F.nll_loss(a, gg.tensor(labels), ignore_index=2, reduction="sum"),
         lambda a: tf.nll_loss(a, torch.tensor(labels), ignore_index=2, reduction="sum"), logp),
        (lambda a: F.nll_loss(a, gg.tensor(labels), weight=gg.tensor(pw)),
         lambda a: tf.nll_loss(a, torch.tensor(labels), weight=torch.tensor(pw)), logp),
    ]
    for mine, ref, inp in cases:
        A, ta = gg.tensor(inp, requires_grad=True), torch.tensor(inp, requires_grad=True)
        out, tout = mine(A), ref(ta)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_allclose(A.grad.numpy(), ta.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_composite_losses_gradcheck():
    x, t = t64((3, 2)), gg.tensor(RNG.random((3, 2)))
    p = gg.tensor(RNG.random((3, 2)) * 0.8 + 0.1, requires_grad=True)
    assert gg.gradcheck(lambda x: F.mse_loss(x, t), (x,))
    assert gg.gradcheck(lambda p: F.binary_cross_entropy(p, t), (p,))
    assert gg.gradcheck(lambda x: F.binary_cross_entropy_with_logits(x, t, pos_weight=gg.tensor([2.0, 0.5])), (x,))
    assert gg.gradcheck(lambda x: F.nll_loss(x, np.array([1, 0, 1])), (x,))
    check_jvp(lambda x: F.binary_cross_entropy_with_logits(x, t), [x])


# ---- linear, activations, attention ---------------------------------------------------------------


def test_linear_activations_softmax_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x, w, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((5, 4)), RNG.standard_normal(5)
    np.testing.assert_allclose(F.linear(gg.tensor(x), gg.tensor(w), gg.tensor(b)).numpy(),
                               tf.linear(torch.tensor(x), torch.tensor(w), torch.tensor(b)).numpy(), rtol=1e-12)
    for mine, ref in ((F.relu, tf.relu), (F.sigmoid, torch.sigmoid), (F.tanh, torch.tanh), (F.gelu, tf.gelu),
                      (lambda a: F.gelu(a, "tanh"), lambda a: tf.gelu(a, approximate="tanh")),
                      (lambda a: F.softmax(a, dim=1), lambda a: tf.softmax(a, dim=1)),
                      (lambda a: F.log_softmax(a, dim=-1), lambda a: tf.log_softmax(a, dim=-1))):
        np.testing.assert_allclose(mine(gg.tensor(x)).numpy(), ref(torch.tensor(x)).numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(gg.ShapeError, match="features"):
        F.linear(gg.randn(2, 3), gg.randn(5, 4))


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float", "scale"])
def test_scaled_dot_product_attention_matches_torch(mask):
    torch = pytest.importorskip("torch")
    q, k, v = RNG.standard_normal((2, 3, 5, 4)), RNG.standard_normal((2, 3, 6, 4)), RNG.standard_normal((2, 3, 6, 2))
    kw_g, kw_t = {}, {}
    if mask == "causal":
        kw_g = kw_t = {"is_causal": True}
    elif mask == "bool":
        m = RNG.random((5, 6)) > 0.3
        m[:, 0] = True
        kw_g, kw_t = {"attn_mask": gg.tensor(m)}, {"attn_mask": torch.tensor(m)}
    elif mask == "float":
        m = RNG.standard_normal((3, 5, 6))
        kw_g, kw_t = {"attn_mask": gg.tensor(m)}, {"attn_mask": torch.tensor(m)}
    elif mask == "scale":
        kw_g = kw_t = {"scale": 0.3}
    Q, K, V = (gg.tensor(a, requires_grad=True) for a in (q, k, v))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(Q, K, V, **kw_g)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **kw_t)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    pull_back_both(out, tout, torch)
    for mine, ref in ((Q, tq), (K, tk), (V, tv)):
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=1e-8, atol=1e-11)


def test_attention_gradcheck_and_errors():
    q, k, v = t64((2, 3, 2)), t64((2, 3, 2)), t64((2, 3, 2))
    f = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    assert gg.gradcheck(f, (q, k, v))
    check_jvp(f, [q, k, v])
    with pytest.raises(gg.ArgumentError, match="not both"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(gg.ShapeError, match="incompatible"):
        F.scaled_dot_product_attention(q, t64((2, 3, 5)), v)


def test_numpy_backend_where_is_bit_exact():
    """The branch-free select behind relu/maximum/clip on the CPU equals np.where bit for bit."""
    rng = np.random.default_rng(0)
    for dt, ui in ((np.float32, np.uint32), (np.float64, np.uint64), (np.float16, np.uint16)):
        x = rng.standard_normal((64, 80)).astype(dt)
        x.ravel()[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0]
        y = rng.standard_normal((64, 80)).astype(dt)
        c = x > 0
        zero, one = np.asarray(0, dt), np.asarray(1, dt)
        for args in ((c, x, zero), (c, one, zero), (c, x, 0), (c, 0.5, y), (c, x, y), (c[:1], x, y[:1]),
                     (c, x[:1], y), (c.astype(np.int8), x, y), (c, x, y.astype(np.float64))):
            ref, got = np.where(*args), npb.where(*args)
            assert ref.dtype == got.dtype and ref.shape == got.shape
            bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[ref.dtype.itemsize]
            np.testing.assert_array_equal(ref.view(bits), got.view(bits))
        del ui
