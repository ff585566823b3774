"""gpugrad.scipy.special: values equal to SciPy's, gradients (first and second order, reverse and
forward mode) against finite differences in float64 and against torch.special where it has the
function, broadcasting with hypothesis, and the errors for arguments without a derivative."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.scipy.special as S
from gpugrad.errors import ArgumentError, GraphError

RNG = np.random.default_rng(7)

# name -> (low, high, torch.special name or None, torch differentiates it)
UNARY = {
    "erf": (-3.0, 3.0, "erf", True),
    "erfc": (-3.0, 3.0, "erfc", True),
    "erfinv": (-0.95, 0.95, "erfinv", True),
    "erfcinv": (0.05, 1.95, None, False),
    "expit": (-4.0, 5.0, "expit", True),
    "logit": (0.05, 0.95, "logit", True),
    "ndtr": (-4.0, 4.0, "ndtr", True),
    "log_ndtr": (-6.0, 4.0, "log_ndtr", True),
    "i0": (-6.0, 6.0, "i0", True),
    "i1": (-6.0, 6.0, "i1", True),
    "j0": (0.2, 20.0, "bessel_j0", False),
    "j1": (-20.0, 20.0, "bessel_j1", False),
    "y0": (0.2, 20.0, "bessel_y0", False),
    "y1": (0.2, 20.0, "bessel_y1", False),
    "gamma": (0.3, 4.0, None, False),
    "gammaln": (0.3, 6.0, "gammaln", True),
    "digamma": (0.3, 6.0, "digamma", True),
    "psi": (0.3, 6.0, "digamma", True),
    "rgamma": (0.3, 4.0, None, False),
}


def _points(lo: float, hi: float, shape: tuple = (5,)) -> np.ndarray:
    return RNG.uniform(lo, hi, shape)


def _t(x: np.ndarray, grad: bool = True) -> gg.Tensor:
    return gg.tensor(x, requires_grad=grad)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values_match_scipy_and_keep_float32(name):
    lo, hi, _, _ = UNARY[name]
    x = _points(lo, hi, (3, 4))
    fn = getattr(S, name)
    got = fn(gg.tensor(x))
    assert isinstance(got, gg.Tensor) and got.dtype == np.float64
    np.testing.assert_allclose(got.numpy(), getattr(sp, name)(x), rtol=1e-12, atol=1e-300)
    x32 = x.astype(np.float32)
    got32 = fn(gg.tensor(x32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32.numpy(), getattr(sp, name)(x32.astype(np.float64)), rtol=2e-5, atol=1e-6)
    # plain arrays go to SciPy itself (NumPy in, NumPy out)
    plain = fn(x)
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(plain, getattr(sp, name)(x))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients_first_and_second_order(name):
    lo, hi, _, _ = UNARY[name]
    fn = getattr(S, name)
    x = _points(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo))
    assert gg.gradcheck(fn, (_t(x),), atol=1e-6, rtol=1e-5)
    # second order: the derivative is itself differentiable
    assert gg.gradcheck(lambda v: gg.grad(lambda u: fn(u).sum())(v), (_t(x),), atol=1e-6, rtol=1e-4)
    # forward mode agrees with reverse mode
    _, tangent = gg.jvp(fn, (x,), (np.ones_like(x),))
    np.testing.assert_allclose(tangent, gg.grad(lambda v: fn(v).sum())(x), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(n for n, v in UNARY.items() if v[2]))
def test_unary_values_and_gradients_match_torch(name):
    torch = pytest.importorskip("torch")
    lo, hi, tname, differentiable = UNARY[name]
    x = _points(lo, hi, (2, 3))
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.special, tname)(tx)
    y = getattr(S, name)(_t(x))
    tol = 1e-10 if differentiable else 1e-7  # torch's Bessel J and Y are accurate to ~3e-8 only
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    if differentiable:
        g = RNG.standard_normal(x.shape)
        (ty * torch.tensor(g)).sum().backward()
        ours = gg.grad(lambda v: (getattr(S, name)(v) * g).sum())(x)
        np.testing.assert_allclose(ours, tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_gammasgn_values_and_zero_gradient():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 3.0])
    np.testing.assert_array_equal(S.gammasgn(gg.tensor(x)).numpy(), sp.gammasgn(x))
    np.testing.assert_array_equal(gg.grad(lambda v: S.gammasgn(v).sum())(x), np.zeros(5))


# ---- functions with an order or parameters ------------------------------------------------


def test_polygamma_jn_yn_iv_ive_match_scipy_and_finite_differences():
    x = _points(0.4, 6.0)
    for n in (0, 1, 2, 3):
        np.testing.assert_allclose(S.polygamma(n, gg.tensor(x)).numpy(), sp.polygamma(n, x), rtol=1e-12)
        assert gg.gradcheck(lambda v, n=n: S.polygamma(n, v), (_t(x),), rtol=1e-5)
    for fname in ("jn", "yn"):
        for n in (-2, 0, 1, 3):
            fn = getattr(S, fname)
            np.testing.assert_allclose(fn(n, gg.tensor(x)).numpy(), getattr(sp, fname)(n, x), rtol=1e-11, atol=1e-14)
            assert gg.gradcheck(lambda v, fn=fn, n=n: fn(n, v), (_t(x),), rtol=1e-5)
    orders = np.array([0.0, 1.0, 2.5, -1.5, 7.0])
    for fname in ("iv", "ive"):
        fn = getattr(S, fname)
        np.testing.assert_allclose(fn(orders, gg.tensor(x)).numpy(), getattr(sp, fname)(orders, x), rtol=1e-12)
        assert gg.gradcheck(lambda v, fn=fn: fn(orders, v), (_t(x),), rtol=1e-5)
        assert gg.gradcheck(lambda v, fn=fn: gg.grad(lambda u: fn(orders, u).sum())(v), (_t(x),), rtol=1e-4)
    # an array of integer orders broadcasts against x
    n = np.array([[0], [2]])
    np.testing.assert_allclose(S.jn(n, gg.tensor(x)).numpy(), sp.jn(n, x), rtol=1e-11)


def test_polygamma_and_gammainc_match_torch():
    torch = pytest.importorskip("torch")
    x = _points(0.4, 5.0, (4,))
    a = _points(0.7, 3.0, (4,))
    for n in (1, 2):
        tx = torch.tensor(x, requires_grad=True)
        torch.special.polygamma(n, tx).sum().backward()
        np.testing.assert_allclose(gg.grad(lambda v, n=n: S.polygamma(n, v).sum())(x), tx.grad.numpy(), rtol=1e-9)
    for name in ("gammainc", "gammaincc"):
        tx = torch.tensor(x, requires_grad=True)
        ty = getattr(torch.special, name)(torch.tensor(a), tx)
        ty.sum().backward()
        np.testing.assert_allclose(getattr(S, name)(a, gg.tensor(x)).numpy(), ty.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(gg.grad(lambda v, name=name: getattr(S, name)(a, v).sum())(x), tx.grad.numpy(),
                                   rtol=1e-9)
    ta = torch.tensor(a + 2, requires_grad=True)
    torch.special.multigammaln(ta, 3).sum().backward()
    np.testing.assert_allclose(gg.grad(lambda v: S.multigammaln(v, 3).sum())(a + 2), ta.grad.numpy(), rtol=1e-9)


def test_beta_family_and_incomplete_functions_gradients():
    a, b = _points(0.6, 4.0), _points(0.6, 4.0)
    x = _points(0.05, 0.95)
    for name in ("beta", "betaln"):
        fn = getattr(S, name)
        np.testing.assert_allclose(fn(gg.tensor(a), b).numpy(), getattr(sp, name)(a, b), rtol=1e-12)
        assert gg.gradcheck(fn, (_t(a), _t(b)), rtol=1e-5)
        assert gg.gradcheck(lambda u, v, fn=fn: gg.grad(lambda p, q: fn(p, q).sum(), (0, 1))(u, v), (_t(a), _t(b)),
                            rtol=1e-4)
    np.testing.assert_allclose(S.betainc(a, b, gg.tensor(x)).numpy(), sp.betainc(a, b, x), rtol=1e-12)
    assert gg.gradcheck(lambda v: S.betainc(a, b, v), (_t(x),), rtol=1e-5)
    assert gg.gradcheck(lambda v: gg.grad(lambda u: S.betainc(a, b, u).sum())(v), (_t(x),), rtol=1e-4)
    y = _points(0.2, 6.0)
    for name in ("gammainc", "gammaincc"):
        fn = getattr(S, name)
        np.testing.assert_allclose(fn(a, gg.tensor(y)).numpy(), getattr(sp, name)(a, y), rtol=1e-12)
        assert gg.gradcheck(lambda v, fn=fn: fn(a, v), (_t(y),), rtol=1e-5)
    m = _points(3.0, 6.0, (2, 3))
    for d in (1, 2, 4):
        np.testing.assert_allclose(S.multigammaln(gg.tensor(m), d).numpy(), sp.multigammaln(m, d), rtol=1e-12)
        assert gg.gradcheck(lambda v, d=d: S.multigammaln(v, d), (_t(m),), rtol=1e-5)


shapes = st.sampled_from([(), (1,), (3,), (2, 1), (1, 3), (2, 3)])


@given(sa=shapes, sb=shapes, sx=shapes, seed=st.integers(0, 2**16))
def test_broadcasting_of_the_parameters(sa, sb, sx, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.7, 3.0, sa), rng.uniform(0.7, 3.0, sb)
    x = rng.uniform(0.1, 0.9, sx)
    want = sp.betainc(a, b, x)
    got = S.betainc(a, b, gg.tensor(x))
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    gx = gg.grad(lambda v: S.betainc(a, b, v).sum())(x)
    assert np.shape(gx) == np.shape(x)
    density = np.broadcast_to(x ** (a - 1) * (1 - x) ** (b - 1) / sp.beta(a, b), np.shape(want))
    np.testing.assert_allclose(gx, _sum_to(density, np.shape(x)), rtol=1e-10)
    ga, gb = gg.grad(lambda p, q: S.betaln(p, q).sum(), (0, 1))(a, b)
    full = np.broadcast_shapes(np.shape(a), np.shape(b))
    np.testing.assert_allclose(ga, _sum_to(np.broadcast_to(sp.digamma(a) - sp.digamma(a + b), full), np.shape(a)),
                               rtol=1e-12)
    np.testing.assert_allclose(gb, _sum_to(np.broadcast_to(sp.digamma(b) - sp.digamma(a + b), full), np.shape(b)),
                               rtol=1e-12)


def _sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g.reshape(shape)


# ---- logsumexp --------------------------------------------------------------------------------


@given(shape=st.sampled_from([(4,), (3, 4), (2, 3, 2)]), keepdims=st.booleans(), data=st.data())
def test_logsumexp_matches_scipy_with_axes_and_weights(shape, keepdims, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    a = rng.standard_normal(shape)
    axis = data.draw(st.sampled_from([None, 0, -1, tuple(range(len(shape)))]))
    weights = data.draw(st.sampled_from(["none", "positive", "mixed"]))
    b = None if weights == "none" else rng.uniform(0.2, 2.0, shape)
    kw = {"axis": axis, "keepdims": keepdims}
    if weights == "mixed":
        b = b * np.where(rng.random(shape) < 0.3, -1, 1)
        value, sign = S.logsumexp(gg.tensor(a), b=b, return_sign=True, **kw)
        want_value, want_sign = sp.logsumexp(a, b=b, return_sign=True, **kw)
        np.testing.assert_allclose(value.numpy(), want_value, rtol=1e-12)
        np.testing.assert_array_equal(sign.numpy(), want_sign)
        assert gg.gradcheck(lambda v: S.logsumexp(v, b=b, return_sign=True, **kw)[0], (_t(a),), rtol=1e-5)
        return
    got = S.logsumexp(gg.tensor(a), b=b, **kw)
    np.testing.assert_allclose(got.numpy(), sp.logsumexp(a, b=b, **kw), rtol=1e-12)
    assert gg.gradcheck(lambda v: S.logsumexp(v, b=b, **kw), (_t(a),), rtol=1e-5)
    if b is not None:  # differentiable in the weights too
        assert gg.gradcheck(lambda w: S.logsumexp(a, b=w, **kw), (_t(b),), rtol=1e-5)
    _, tangent = gg.jvp(lambda v: S.logsumexp(v, b=b, **kw), (a,), (np.ones(shape),))
    np.testing.assert_allclose(tangent, np.ones_like(tangent), rtol=1e-12)  # weights sum to one


def test_logsumexp_matches_torch():
    torch = pytest.importorskip("torch")
    a = RNG.standard_normal((3, 5))
    ta = torch.tensor(a, requires_grad=True)
    torch.logsumexp(ta, dim=1).sum().backward()
    np.testing.assert_allclose(gg.grad(lambda v: S.logsumexp(v, axis=1).sum())(a), ta.grad.numpy(), rtol=1e-12)


# ---- errors and dispatch ------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda p: S.gammainc(p, 1.5),
    lambda p: S.gammaincc(p, 1.5),
    lambda p: S.betainc(p, 2.0, 0.3),
    lambda p: S.betainc(2.0, p, 0.3),
    lambda p: S.iv(p, 1.5),
    lambda p: S.ive(p, 1.5),
    lambda p: S.polygamma(p, 1.5),
    lambda p: S.jn(p, 1.5),
])
def test_arguments_without_a_derivative_refuse_to_be_differentiated(call):
    with pytest.raises(GraphError, match="no gradient with respect to"):
        gg.grad(lambda p: call(p).sum())(2.0)
    with pytest.raises(GraphError, match="no gradient with respect to"):
        gg.jvp(lambda p: call(p), (2.0,), (1.0,))
    call(gg.tensor(2.0))  # fine as a constant


def test_bad_orders_and_domains_are_clear_errors():
    with pytest.raises(ArgumentError, match="integer"):
        S.jn(1.5, gg.tensor([1.0, 2.0]))
    with pytest.raises(ArgumentError, match="integer"):
        S.yn(np.array([1.0, 0.5]), gg.tensor([1.0, 2.0]))
    with pytest.raises(ArgumentError, match="a > \\(d - 1\\) / 2"):
        S.multigammaln(gg.tensor([0.5, 3.0]), 3)
    with pytest.raises(AttributeError, match="scipy.special.zeta"):
        S.zeta  # noqa: B018


def test_sequences_holding_tensors_take_the_gpugrad_path():
    x = gg.tensor([0.3, 1.2], requires_grad=True)
    out = S.logsumexp([x, 2 * x], axis=0)
    assert isinstance(out, gg.Tensor)
    out.sum().backward()
    w = np.exp(np.stack([x.numpy(), 2 * x.numpy()]) - out.numpy())
    np.testing.assert_allclose(x.grad.numpy(), w[0] + 2 * w[1], rtol=1e-6)


def test_import_gpugrad_does_not_import_scipy():
    code = "import sys, gpugrad; assert 'scipy' not in sys.modules, sorted(m for m in sys.modules if 'scipy' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_scipy_is_a_clear_import_error():
    code = ("import sys; sys.modules['scipy'] = None\n"
            "try:\n    import gpugrad.scipy\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "pip install 'gpugrad[scipy]'" in out


# ---- GPU ------------------------------------------------------------------------------------------


WITH_PARAMETERS = {
    "jn": (lambda v: S.jn(2, v), 0.3, 5.0),
    "yn": (lambda v: S.yn(2, v), 0.3, 5.0),
    "polygamma": (lambda v: S.polygamma(2, v), 0.3, 5.0),
    "iv": (lambda v: S.iv(1.5, v), 0.3, 5.0),
    "betainc": (lambda v: S.betainc(2.0, 3.0, v), 0.05, 0.95),
    "gammainc": (lambda v: S.gammainc(2.0, v), 0.3, 5.0),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(UNARY) + sorted(WITH_PARAMETERS))
def test_special_functions_on_cuda_match_the_cpu(name):
    if name in WITH_PARAMETERS:
        fn, lo, hi = WITH_PARAMETERS[name]
    else:
        fn, (lo, hi) = getattr(S, name), UNARY[name][:2]
    x = _points(lo, hi, (64,))
    for dtype, rtol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        xc = gg.tensor(x.astype(dtype), device="cuda", requires_grad=True)
        xh = gg.tensor(x.astype(dtype), requires_grad=True)
        yc, yh = fn(xc), fn(xh)
        assert yc.device.startswith("cuda") and yc.dtype == yh.dtype
        np.testing.assert_allclose(yc.numpy(), yh.numpy(), rtol=rtol, atol=rtol)
        yc.sum().backward()
        yh.sum().backward()
        np.testing.assert_allclose(xc.grad.numpy(), xh.grad.numpy(), rtol=rtol, atol=rtol)
