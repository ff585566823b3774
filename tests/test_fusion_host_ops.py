"""The host kernels of cross-entropy (gpugrad.fusion.host_ops): the rule's loss to a few ulp, its
gradient from the same kept values bit for bit, and the rule itself wherever they decline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad.backends import lowerings
from gpugrad.fusion import host, host_ops
from gpugrad.ops import nn as N

RNG = np.random.default_rng(5)
F = gg.nn.functional
KEYS = [("cross_entropy", "forward"), ("cross_entropy", "vjp")]


def _without_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in KEYS:
        monkeypatch.delitem(lowerings.CPU, key)


def _loss_and_grad(logits: np.ndarray, labels: np.ndarray, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    x = gg.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, gg.tensor(labels), **kw)
    loss.backward()
    return loss.numpy(), x.grad.numpy()


def _counting(monkeypatch: pytest.MonkeyPatch, keys: list) -> dict:
    """Counts, per kind of call ("forward", "vjp"), the calls the kernels of ``keys`` took (did not
    decline)."""
    assert host.available(), "these tests need the host C++ compiler (g++), as CI has"
    taken = {key[1]: 0 for key in keys}
    for key in keys:
        kernel = lowerings.CPU[key]

        def counting(*args: Any, _kernel: Any = kernel, _what: str = key[1]) -> Any:
            got = _kernel(*args)
            if got is not NotImplemented:
                taken[_what] += 1
            return got

        monkeypatch.setitem(lowerings.CPU, key, counting)
    return taken


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict:
    return _counting(monkeypatch, KEYS)


# (rows, classes): short rows in one block of the kernel and in several with a partial last one
# (kernels/gg_cross_entropy_host.h, GG_CE_BLOCK elements), one class, rows longer than a block
SHAPES = [(96, 13), (301, 10), (50, 1), (3, 2500)]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_kernels_give_the_rules_loss_and_gradient(counted: dict, monkeypatch: pytest.MonkeyPatch, dt: Any,
                                                      reduction: str, shape: tuple) -> None:
    rows, classes = shape
    logits = (RNG.normal(size=shape) * 4).astype(dt)
    logits[1] += 500  # a large common offset: the row max is subtracted first
    labels = RNG.integers(0, classes, rows)
    loss, grad = _loss_and_grad(logits, labels, reduction=reduction)
    assert counted == {"forward": 1, "vjp": 1}
    _without_kernels(monkeypatch)
    want_loss, want_grad = _loss_and_grad(logits, labels, reduction=reduction)
    tol = 1e-6 if dt == np.float32 else 1e-14
    assert loss.dtype == want_loss.dtype and grad.dtype == want_grad.dtype == dt
    np.testing.assert_allclose(loss, want_loss, rtol=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=10 * tol, atol=tol * np.abs(want_grad).max())


def test_the_backward_kernel_is_the_rule_on_the_same_kept_values(counted: dict) -> None:
    logits = RNG.normal(size=(40, 7)).astype(np.float32)
    labels = RNG.integers(0, 7, 40)
    x = gg.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, gg.tensor(labels))
    node = loss.grad_fn
    params = node.params
    assert N.ROW_LSE in params  # kept by the forward kernel, in the rule's form
    g = np.asarray(np.float32(0.75))
    copy = dict(params)
    got = host_ops.ce_vjp(None, g, (logits, None), None, params, (True, False))
    want = N.CrossEntropy.vjp(N.CROSS_ENTROPY, gg.backends.backend_for("cpu"), g, (logits, None), None, copy,
                              (True, False))
    np.testing.assert_array_equal(got[0], want[0])
    assert N.ROW_LSE not in params and N.ROW_LSE not in copy  # taken by the backward, kernel's or rule's


@pytest.mark.parametrize("kernels", [True, False])
def test_a_finished_loss_keeps_nothing_the_size_of_the_logits(monkeypatch: pytest.MonkeyPatch, kernels: bool) -> None:
    if not kernels:
        _without_kernels(monkeypatch)
    x = gg.tensor(RNG.normal(size=(64, 50)).astype(np.float32), requires_grad=True)
    labels = gg.tensor(RNG.integers(0, 50, 64))
    loss = F.cross_entropy(x, labels)
    params = loss.grad_fn.params
    assert params[N.ROW_LSE][0].shape == (64, 50)  # exp(x - max), kept for the backward
    loss.backward(retain_graph=True)
    assert N.ROW_LSE not in params and N.LABEL_AT not in params
    first = x.grad.numpy().copy()
    x.grad = None
    loss.backward()  # a retained graph's second backward: the softmax again, from the saved logits
    np.testing.assert_allclose(x.grad.numpy(), first, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("row", [[np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [np.nan, 0.0, 1.0],
                                 [-np.inf, 2.0, -np.inf]])
def test_non_finite_rows_follow_the_rule(counted: dict, monkeypatch: pytest.MonkeyPatch, row: list) -> None:
    logits = np.array([[1.0, 2.0, 3.0], row, [0.5, -0.5, 0.0]])
    labels = np.array([0, 1, 2])
    with np.errstate(all="ignore"):
        loss, grad = _loss_and_grad(logits, labels)
        assert counted["forward"] == 1
        _without_kernels(monkeypatch)
        want_loss, want_grad = _loss_and_grad(logits, labels)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-14)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-14, atol=1e-300)


def test_what_the_kernels_decline_runs_as_the_rule(counted: dict) -> None:
    logits = RNG.normal(size=(12, 5))
    labels = RNG.integers(0, 5, 12)
    y = gg.tensor(labels)
    w = gg.tensor(RNG.uniform(0.5, 2.0, 5))
    cases = [dict(weight=w), dict(label_smoothing=0.1), dict(reduction="none"), dict(ignore_index=int(labels[0]))]
    for kw in cases:
        x = gg.tensor(logits, requires_grad=True)
        F.cross_entropy(x, y, **kw).sum().backward()
    x = gg.tensor(logits.astype(np.float16), requires_grad=True)
    F.cross_entropy(x, y).backward()
    x = gg.tensor(np.asfortranarray(logits), requires_grad=True)  # not C-contiguous
    F.cross_entropy(x, y).backward()
    x = gg.tensor(logits, requires_grad=True)
    F.cross_entropy(x, gg.tensor(gg.softmax(gg.tensor(logits), -1).numpy())).backward()  # probabilities
    assert counted == {"forward": 0, "vjp": 0}


def test_no_compiled_code_runs_the_rule(counted: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.Settings, "enabled", False)  # GPUGRAD_FUSION_CC=0
    x = gg.tensor(RNG.normal(size=(8, 4)), requires_grad=True)
    F.cross_entropy(x, gg.tensor(RNG.integers(0, 4, 8))).backward()
    assert counted == {"forward": 0, "vjp": 0} and np.isfinite(x.grad.numpy()).all()


@given(m=st.integers(1, 30), c=st.integers(1, 40), dt=st.sampled_from([np.float32, np.float64]),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_any_shape_gives_the_rules_loss(m: int, c: int, dt: Any, scale: float) -> None:
    rng = np.random.default_rng(m * 100 + c)
    logits = (rng.normal(size=(m, c)) * scale).astype(dt)
    labels = rng.integers(0, c, m)
    params = {"smoothing": 0.0, "weight": None, "reduction": "mean", "out_shape": (m,), "labels": None,
              "valid": None, "raw_labels": labels, "ignore_index": -100, "dtype": np.dtype(dt), "denom": None,
              "grad_denom": None, "none_ignored": True}
    B = gg.backends.backend_for("cpu")
    got = host_ops.ce_forward(B, [logits, None], dict(params))
    assert got is not NotImplemented
    want = N.CROSS_ENTROPY.forward(B, [logits, None], dict(params))
    tol = 2e-6 if dt == np.float32 else 1e-14
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- layer normalisation ----------------------------------------------------------------------

LN_KEYS = [("layer_norm", "forward"), ("layer_norm", "vjp")]


@pytest.fixture
def ln_counted(monkeypatch: pytest.MonkeyPatch) -> dict:
    return _counting(monkeypatch, LN_KEYS)


def _ln(x: np.ndarray, shape: tuple, w: Any, b: Any, g: np.ndarray) -> list:
    """Layer norm's output and the gradients of x, w and b (None where not given)."""
    xt = gg.tensor(x, requires_grad=True)
    wt = None if w is None else gg.tensor(w, requires_grad=True)
    bt = None if b is None else gg.tensor(b, requires_grad=True)
    y = F.layer_norm(xt, shape, wt, bt, 1e-5)
    y.backward(gg.tensor(g))
    return [y.numpy(), xt.grad.numpy(), *(None if t is None else t.grad.numpy() for t in (wt, bt))]


def _ln_case(shape: tuple, k: int, dt: Any, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 3 + 1).astype(dt)
    inner = shape[len(shape) - k:]
    w = rng.normal(size=inner).astype(dt)
    b = rng.normal(size=inner).astype(dt)
    g = rng.normal(size=shape).astype(dt)
    return x, inner, w, b, g


def _assert_ln_close(got: list, want: list, dt: Any) -> None:
    tol = 2e-5 if dt == np.float32 else 1e-12  # the row sums are added in another order
    for a, e in zip(got, want):
        if e is None:
            assert a is None
            continue
        assert a.dtype == e.dtype == dt and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(1.0, np.abs(e).max()))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k", [((8, 32, 64), 1), ((5, 3, 4), 2), ((7,), 1), ((300, 3), 1), ((2, 5), 2)])
@pytest.mark.parametrize("affine", ["wb", "w", "b", ""])
def test_layer_norm_kernels_give_the_rules_values_and_gradients(ln_counted: dict, monkeypatch: pytest.MonkeyPatch,
                                                                 dt: Any, shape: tuple, k: int, affine: str) -> None:
    x, inner, w, b, g = _ln_case(shape, k, dt)
    w = w if "w" in affine else None
    b = b if "b" in affine else None
    got = _ln(x, inner, w, b, g)
    assert ln_counted == {"forward": 1, "vjp": 1}
    for key in LN_KEYS:
        monkeypatch.delitem(lowerings.CPU, key)
    _assert_ln_close(got, _ln(x, inner, w, b, g), dt)
    assert ln_counted == {"forward": 1, "vjp": 1}


@pytest.mark.parametrize("row", [[np.nan, 1.0, 2.0], [np.inf, 1.0, 2.0], [3.0, 3.0, 3.0], [1e4, 1e4 + 1, 1e4 + 2]])
def test_layer_norm_kernels_follow_the_rule_on_special_rows(ln_counted: dict, monkeypatch: pytest.MonkeyPatch,
                                                            row: list) -> None:
    # a NaN or inf spreads over its row only; a constant row has rstd 1/sqrt(eps); a large offset
    # is taken off before the squares (two passes, as the rule)
    x = np.array([row, [0.5, -1.0, 2.0]], np.float64)
    w, b, g = np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]), np.arange(6.0).reshape(2, 3) - 2
    got = _ln(x, (3,), w, b, g)
    assert ln_counted == {"forward": 1, "vjp": 1}
    for key in LN_KEYS:
        monkeypatch.delitem(lowerings.CPU, key)
    with np.errstate(invalid="ignore"):  # the rule's NumPy warns of inf - inf (compiled code does not)
        want = _ln(x, (3,), w, b, g)
    for a, e in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-9)


def test_what_the_layer_norm_kernels_decline_runs_as_the_rule(ln_counted: dict) -> None:
    x, inner, w, b, g = _ln_case((6, 8), 1, np.float32)
    _ln(x.astype(np.float16), inner, w.astype(np.float16), b.astype(np.float16), g.astype(np.float16))
    assert ln_counted == {"forward": 0, "vjp": 0}  # float16: the rule's float32 statistics
    xt = gg.tensor(np.ascontiguousarray(x.T).T, requires_grad=True)  # not C-contiguous
    F.layer_norm(xt, inner, gg.tensor(w), gg.tensor(b)).sum().backward()
    assert ln_counted == {"forward": 0, "vjp": 0} and np.isfinite(xt.grad.numpy()).all()
    xt = gg.tensor(x, requires_grad=True)
    F.layer_norm(xt, inner, gg.tensor(w), gg.tensor(b)).sum().backward()  # g: a broadcast view of 1
    assert ln_counted["forward"] == 1


def test_layer_norm_without_compiled_code_runs_the_rule(ln_counted: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.Settings, "enabled", False)  # GPUGRAD_FUSION_CC=0
    x, inner, w, b, g = _ln_case((4, 5), 1, np.float64)
    got = _ln(x, inner, w, b, g)
    assert ln_counted == {"forward": 0, "vjp": 0}
    assert gg.gradcheck(lambda x: F.layer_norm(x, inner, gg.tensor(w), gg.tensor(b)),
                        [gg.tensor(x, requires_grad=True)])
    assert np.isfinite(got[1]).all()


def test_layer_norm_kernels_pass_gradcheck(ln_counted: dict) -> None:
    x, inner, w, b, _ = _ln_case((3, 4, 5), 2, np.float64)
    ts = [gg.tensor(a, requires_grad=True) for a in (x, w, b)]
    assert gg.gradcheck(lambda x, w, b: F.layer_norm(x, inner, w, b), ts)
    assert ln_counted["vjp"] > 0


@given(lead=st.lists(st.integers(1, 6), min_size=0, max_size=2), inner=st.lists(st.integers(1, 40), min_size=1,
       max_size=2), dt=st.sampled_from([np.float32, np.float64]))
def test_layer_norm_kernels_on_any_shape(lead: list, inner: list, dt: Any) -> None:
    shape = (*lead, *inner)
    x, inner_t, w, b, g = _ln_case(shape, len(inner), dt, seed=sum(shape))
    B = gg.backends.backend_for("cpu")
    params = {"axes": tuple(range(len(lead), len(shape))), "eps": 1e-5}
    got = host_ops.ln_forward(B, [x, w, b], params)
    assert got is not NotImplemented
    _assert_ln_close([got], [N.LAYER_NORM.forward(B, [x, w, b], params)], dt)
    needs = (True, True, True)
    got = host_ops.ln_vjp(B, g, (x, w, None), None, params, needs)
    _assert_ln_close(list(got), list(N.LAYER_NORM.vjp(B, g, (x, w, None), None, params, needs)), dt)


# ---- embedding ------------------------------------------------------------------------------------


@pytest.fixture
def emb_counted(monkeypatch: pytest.MonkeyPatch) -> dict:
    return _counting(monkeypatch, [("embedding", "vjp")])


def _emb_grad(idx: np.ndarray, w: np.ndarray, g: np.ndarray, pad: Any = None) -> np.ndarray:
    wt = gg.tensor(w, requires_grad=True)
    F.embedding(gg.tensor(idx), wt, padding_idx=pad).backward(gg.tensor(g))
    return wt.grad.numpy()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("pad", [None, 3, -1])
@pytest.mark.parametrize("idx_shape", [(8, 32), (5,), (2, 3, 4)])
def test_embedding_kernel_adds_each_row_in_order(emb_counted: dict, monkeypatch: pytest.MonkeyPatch, dt: Any,
                                                 pad: Any, idx_shape: tuple) -> None:
    rng = np.random.default_rng(7)
    v, d = 10, 6
    idx = rng.integers(0, v, idx_shape)
    idx.flat[:3] = 3  # the padding row, repeated
    w = rng.normal(size=(v, d)).astype(dt)
    g = rng.normal(size=(*idx_shape, d)).astype(dt)
    got = _emb_grad(idx, w, g, pad)
    assert emb_counted == {"vjp": 1}
    want = np.zeros((v, d), dt)  # np.add.at's order: each occurrence after the last
    skip = None if pad is None else pad % v
    for i, r in enumerate(idx.ravel()):
        if r != skip:
            want[r] += g.reshape(-1, d)[i]
    np.testing.assert_array_equal(got, want)
    monkeypatch.delitem(lowerings.CPU, ("embedding", "vjp"))
    tol = 1e-6 if dt == np.float32 else 1e-14
    np.testing.assert_allclose(_emb_grad(idx, w, g, pad), want, rtol=tol, atol=tol)


def test_embedding_kernel_declines_an_index_changed_out_of_range(emb_counted: dict) -> None:
    idx = np.array([0, 2, 1])
    wt = gg.tensor(np.ones((3, 2)), requires_grad=True)
    y = F.embedding(idx, wt)
    idx[1] = 7  # the caller's array, changed after the forward checked it
    with pytest.raises(IndexError):  # the rule's NumPy refuses it; nothing is written out of bounds
        y.backward(gg.tensor(np.ones((3, 2))))
    assert emb_counted == {"vjp": 0}


def test_embedding_kernel_declines_other_index_types(emb_counted: dict) -> None:
    w = np.arange(12.0).reshape(4, 3)
    got = _emb_grad(np.array([1, 1, 3], np.int32), w, np.ones((3, 3)))
    assert emb_counted == {"vjp": 0}
    np.testing.assert_array_equal(got, [[0, 0, 0], [2, 2, 2], [0, 0, 0], [1, 1, 1]])


# ---- max pooling ----------------------------------------------------------------------------------

POOL_KEYS = [("max_pool2d", "vjp")]  # (the forward is the rule's: see host_ops)


@pytest.fixture
def pool_counted(monkeypatch: pytest.MonkeyPatch) -> dict:
    return _counting(monkeypatch, POOL_KEYS)


def _pool(x: np.ndarray, g_seed: int = 1, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    xt = gg.tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, **kw)
    g = np.random.default_rng(g_seed).normal(size=y.shape).astype(x.dtype)
    y.backward(gg.tensor(g))
    return y.numpy(), xt.grad.numpy()


def _pool_input(shape: tuple, dt: Any, layout: str, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=shape).astype(dt)
    if layout == "channels-first":  # a convolution's output: (C, N, H, W) storage
        return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    return x


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NCHW", "channels-first"])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=3),
                                dict(kernel_size=(2, 3), stride=(1, 2)), dict(kernel_size=3, stride=1),
                                dict(kernel_size=2, stride=2, dilation=2)],
                         ids=["2x2", "3x3/3", "2x3/1,2", "3x3/1 overlapping", "2x2 dilated"])
def test_max_pool_kernels_give_the_rules_values_and_gradient(pool_counted: dict, monkeypatch: pytest.MonkeyPatch,
                                                             dt: Any, layout: str, kw: dict) -> None:
    x = _pool_input((3, 4, 11, 13), dt, layout)
    got = _pool(x, **kw)
    assert pool_counted == {"vjp": 1}
    for key in POOL_KEYS:
        monkeypatch.delitem(lowerings.CPU, key)
    want = _pool(x, **kw)
    np.testing.assert_array_equal(got[0], want[0])  # the same maxima
    tol = 1e-6 if dt == np.float32 else 1e-15  # overlapping windows add in another order
    np.testing.assert_allclose(got[1], want[1], rtol=tol, atol=tol)
    if kw.get("stride", kw["kernel_size"]) == kw["kernel_size"] and "dilation" not in kw:
        np.testing.assert_array_equal(got[1], want[1])  # disjoint windows: each input gets one value


def test_max_pool_kernels_follow_the_rule_on_ties_nans_and_infs(pool_counted: dict,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # ties: the first maximum; NaNs: the last NaN; -inf windows: their first tap
    x = np.array([[[[1.0, 1.0, np.nan, 2.0, -np.inf, -np.inf],
                    [0.0, 1.0, 3.0, np.nan, -np.inf, -np.inf],
                    [np.inf, 5.0, -0.0, 0.0, 2.0, 2.0],
                    [5.0, np.inf, 0.0, -0.0, 2.0, 2.0]]]])
    got = _pool(x, kernel_size=2)
    assert pool_counted == {"vjp": 1}
    for key in POOL_KEYS:
        monkeypatch.delitem(lowerings.CPU, key)
    want = _pool(x, kernel_size=2)
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(e))


def test_what_the_max_pool_kernels_decline_runs_as_the_rule(pool_counted: dict) -> None:
    x = _pool_input((2, 3, 9, 9), np.float64, "NCHW")
    for kw in (dict(kernel_size=2, padding=1), dict(kernel_size=2, ceil_mode=True)):
        _pool(x, **kw)  # padding, or a last window past the input
    _pool(x.astype(np.float16), kernel_size=2)
    wide = gg.tensor(np.repeat(x, 2, axis=3), requires_grad=True)
    F.max_pool2d(wide[..., ::2], 2).sum().backward()  # a strided view: rows not contiguous
    assert pool_counted == {"vjp": 0}
    np.testing.assert_array_equal(wide.grad.numpy()[..., 1::2], 0)
    xt = gg.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 2).sum().backward()  # g: a broadcast view of 1 (rows of stride 0)
    assert pool_counted == {"vjp": 0}


def test_max_pool_kernels_pass_gradcheck(pool_counted: dict) -> None:
    x = gg.tensor(_pool_input((2, 2, 6, 7), np.float64, "channels-first"), requires_grad=True)
    assert gg.gradcheck(lambda x: F.max_pool2d(x, 2, 1), [x])
    assert pool_counted["vjp"] > 0


def test_layer_norm_kernels_decline_a_weight_swapped_after_the_forward(ln_counted: dict) -> None:
    # .data can be replaced without a version bump: the rule broadcasts a one-element weight, the
    # kernel (which reads cols of them) must decline, not read past it
    x, inner, w, b, g = _ln_case((3, 64), 1, np.float32)
    xt, wt = gg.tensor(x, requires_grad=True), gg.tensor(w, requires_grad=True)
    y = F.layer_norm(xt, inner, wt)
    wt.data = np.full(1, 2.0, np.float32)
    y.backward(gg.tensor(g))
    assert ln_counted == {"forward": 1, "vjp": 0}
    assert wt.grad.shape == (1,) and np.isfinite(xt.grad.numpy()).all()


def test_layer_norm_kernel_without_the_inputs_gradient(ln_counted: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    x, inner, w, b, g = _ln_case((4, 16), 1, np.float64)
    wt, bt = gg.tensor(w, requires_grad=True), gg.tensor(b, requires_grad=True)
    F.layer_norm(gg.tensor(x), inner, wt, bt).backward(gg.tensor(g))  # x needs no gradient
    assert ln_counted == {"forward": 1, "vjp": 1}
    got = wt.grad.numpy(), bt.grad.numpy()
    for key in LN_KEYS:
        monkeypatch.delitem(lowerings.CPU, key)
    wt.grad = bt.grad = None
    F.layer_norm(gg.tensor(x), inner, wt, bt).backward(gg.tensor(g))
    _assert_ln_close(list(got), [wt.grad.numpy(), bt.grad.numpy()], np.float64)


def test_layer_norm_backward_of_a_broadcast_gradient_is_the_rules(ln_counted: dict,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    x, inner, w, b, _ = _ln_case((5, 8), 1, np.float64)
    xt = gg.tensor(x, requires_grad=True)
    F.layer_norm(xt, inner, gg.tensor(w), gg.tensor(b)).sum().backward()  # g: a broadcast view of 1
    assert ln_counted == {"forward": 1, "vjp": 0}
    got = xt.grad.numpy()
    for key in LN_KEYS:
        monkeypatch.delitem(lowerings.CPU, key)
    xt.grad = None
    F.layer_norm(xt, inner, gg.tensor(w), gg.tensor(b)).sum().backward()
    np.testing.assert_array_equal(got, xt.grad.numpy())


def test_embedding_kernel_declines_what_it_cannot_index_directly(emb_counted: dict) -> None:
    w = np.arange(12.0).reshape(4, 3)
    wt = gg.tensor(w, requires_grad=True)
    idx = np.array([0, 2, 1])
    y = F.embedding(idx, wt)
    idx[1] = -1  # changed after the forward: the rule wraps it (NumPy's indexing), the kernel declines
    y.backward(gg.tensor(np.ones((3, 3))))
    np.testing.assert_array_equal(wt.grad.numpy(), [[1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 1, 1]])
    wt.grad = None
    for idx in (np.array([0, 9, 1, 9, 2, 9, 3, 9])[::2], np.array([0, 1, 2, 3])[::-1]):  # views, not contiguous
        wt.grad = None
        F.embedding(idx, wt).backward(gg.tensor(np.ones((4, 3))))
        np.testing.assert_array_equal(wt.grad.numpy(), np.ones((4, 3)))
    wt.grad = None
    F.embedding(np.array([0, 1, 1]), wt).sum().backward()  # a broadcast gradient
    np.testing.assert_array_equal(wt.grad.numpy(), [[1, 1, 1], [2, 2, 2], [0, 0, 0], [0, 0, 0]])
    assert emb_counted == {"vjp": 0}


def test_max_pool_kernel_takes_a_channels_first_gradient(pool_counted: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    x = _pool_input((3, 4, 8, 10), np.float32, "NCHW")
    gc = np.random.default_rng(2).normal(size=(4, 3, 4, 5)).astype(np.float32)

    def grad() -> np.ndarray:
        xt = gg.tensor(x, requires_grad=True)
        gg.transpose(F.max_pool2d(xt, 2), (1, 0, 2, 3)).backward(gg.tensor(gc))  # g reaches it transposed
        return xt.grad.numpy()

    got = grad()
    assert pool_counted == {"vjp": 1}
    monkeypatch.delitem(lowerings.CPU, ("max_pool2d", "vjp"))
    np.testing.assert_array_equal(got, grad())


def test_max_pool_kernel_declines_padding(pool_counted: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    x = _pool_input((1, 1, 6, 6), np.float64, "NCHW")  # windows inside the input, but padded
    got = _pool(x, kernel_size=2, stride=4, padding=1)
    assert pool_counted == {"vjp": 0}
    monkeypatch.delitem(lowerings.CPU, ("max_pool2d", "vjp"))
    np.testing.assert_array_equal(got[1], _pool(x, kernel_size=2, stride=4, padding=1)[1])
