"""gpugrad.scipy.signal.convolve (HIPS autograd's generalized convolution) and
gpugrad.scipy.integrate.odeint (adjoint gradients): values against SciPy, gradients against
finite differences, closed forms and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate as si
import scipy.signal as ss
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.numpy as gnp
from gpugrad.errors import ArgumentError, ShapeError
from gpugrad.scipy.integrate import odeint
from gpugrad.scipy.signal import convolve
from tests.numeric import fd_grad

RNG = np.random.default_rng(5)


def leaf(a):
    return gg.tensor(a, requires_grad=True)


# ---- convolve ---------------------------------------------------------------------------------


@given(na=st.lists(st.integers(1, 5), min_size=1, max_size=2), data=st.data(),
       mode=st.sampled_from(["full", "valid", "same"]))
def test_convolve_matches_scipy_and_finite_differences(na, data, mode):
    nb = data.draw(st.lists(st.integers(1, 5), min_size=len(na), max_size=len(na)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    a, b = rng.standard_normal(na), rng.standard_normal(nb)
    fits = all(x <= y for x, y in zip(na, nb)) or all(y <= x for x, y in zip(na, nb))
    if mode == "valid" and not fits:
        with pytest.raises(ShapeError, match="valid"):
            convolve(gg.tensor(a), b, mode=mode)
        return
    got = convolve(gg.tensor(a), gg.tensor(b), mode=mode)
    np.testing.assert_allclose(got.numpy(), ss.convolve(a, b, mode=mode, method="direct"), atol=1e-12)
    np.testing.assert_allclose(convolve(a, b, mode=mode), got.numpy(), atol=1e-15)  # arrays in, arrays out
    assert gg.gradcheck(lambda x, y: convolve(x, y, mode=mode), (leaf(a), leaf(b)), rtol=1e-5)


def test_convolve_generalized_axes_against_loops():
    a35, a34, a342 = RNG.standard_normal((3, 5)), RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4, 2))
    a2543, a24232 = RNG.standard_normal((2, 5, 4, 3)), RNG.standard_normal((2, 4, 2, 3, 2))
    for mode in ("valid", "full"):
        np.testing.assert_allclose(convolve(a35, a34, axes=([1], [0]), mode=mode)[1, 2],
                                   ss.convolve(a35[1], a34[:, 2], mode))
        np.testing.assert_allclose(convolve(a35, a34, axes=([], []), dot_axes=([0], [0]), mode=mode),
                                   np.tensordot(a35, a34, axes=([0], [0])))
        np.testing.assert_allclose(convolve(a35, a342, axes=([1], [2]), dot_axes=([0], [0]), mode=mode)[2],
                                   sum(ss.convolve(a35[i], a342[i, 2], mode) for i in range(3)))
        want = sum(ss.convolve(a2543[i, :, :, j], a24232[i, 2, :, j, :], mode) for i in range(2) for j in range(3))
        got = convolve(a2543, a24232, axes=([1, 2], [2, 4]), dot_axes=([0, 3], [0, 3]), mode=mode)[2]
        np.testing.assert_allclose(got, want)
    for axes in [([0], [0]), ([1], [1]), ([0], [1]), ([1, 0], [1, 0])]:
        for mode in ("full", "valid", "same"):
            a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 2))
            assert gg.gradcheck(lambda x, y, axes=axes, mode=mode: convolve(x, y, axes=axes, mode=mode),
                                (leaf(a), leaf(b)), rtol=1e-5)
    a, b = RNG.standard_normal((3, 3, 2)), RNG.standard_normal((3, 2, 3))
    f = lambda x, y: convolve(x, y, axes=([1], [1]), dot_axes=([0], [2]), mode="same")  # noqa: E731
    assert gg.gradcheck(f, (leaf(a), leaf(b)), rtol=1e-5)
    proj = RNG.standard_normal(f(a, b).shape)  # second order through a projection of the gradient
    assert gg.gradcheck(lambda x, y: sum((g * p).sum() for g, p in zip(
        gg.grad(lambda u, v: (f(u, v) * proj).sum() ** 2, (0, 1))(x, y), (a, b))), (leaf(a), leaf(b)), rtol=1e-4)


def test_convolve_matches_torch_conv1d():
    torch = pytest.importorskip("torch")
    x, w = RNG.standard_normal((2, 9)), RNG.standard_normal((2, 4))  # two channels summed (dot axis 0)
    g = RNG.standard_normal(12)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    # full convolution = correlation with the flipped kernel over the input padded by k - 1
    ty = torch.nn.functional.conv1d(tx[None], torch.flip(tw, [1])[None], padding=3)[0, 0]
    (ty * torch.tensor(g)).sum().backward()
    f = lambda a, b: convolve(a, b, axes=([1], [1]), dot_axes=([0], [0]), mode="full")  # noqa: E731
    np.testing.assert_allclose(f(gg.tensor(x), w).numpy(), ty.detach().numpy(), rtol=1e-12)
    gx, gw = gg.grad(lambda a, b: (f(a, b) * g).sum(), (0, 1))(x, w)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-12)


def test_convolve_errors():
    with pytest.raises(ArgumentError, match="mode"):
        convolve(gg.tensor(np.ones(3)), np.ones(2), mode="wrap")
    with pytest.raises(ShapeError, match="dot axes"):
        convolve(gg.tensor(np.ones((3, 2))), np.ones((4, 2)), axes=([1], [1]), dot_axes=([0], [0]))


@pytest.mark.gpu
def test_convolve_on_cuda_matches_the_cpu():
    a, b = RNG.standard_normal((3, 8)), RNG.standard_normal((3, 3))
    for mode in ("full", "valid", "same"):
        ac, ah = gg.tensor(a, device="cuda", requires_grad=True), leaf(a)
        yc = convolve(ac, gg.tensor(b, device="cuda"), axes=([1], [1]), dot_axes=([0], [0]), mode=mode)
        yh = convolve(ah, b, axes=([1], [1]), dot_axes=([0], [0]), mode=mode)
        np.testing.assert_allclose(yc.numpy(), yh.numpy(), rtol=1e-12)
        yc.sum().backward()
        yh.sum().backward()
        np.testing.assert_allclose(ac.grad.numpy(), ah.grad.numpy(), rtol=1e-12)


# ---- odeint -----------------------------------------------------------------------------------

TIGHT = {"rtol": 1e-11, "atol": 1e-11}


def test_odeint_gradients_match_the_closed_form_of_linear_decay():
    # y' = -k y: y(t_i) = y0 exp(-k (t_i - t_0))
    y0, k = np.array([1.0, 2.0]), 0.7
    t = np.array([0.0, 0.5, 1.2])

    def decay(y, tt, rate):
        return -rate * y

    got = odeint(decay, gg.tensor(y0), t, (k,), **TIGHT).numpy()
    np.testing.assert_allclose(got, y0 * np.exp(-k * (t - t[0]))[:, None], rtol=1e-9)
    loss = lambda y, tt, r: odeint(decay, y, tt, (r,), **TIGHT)[-1].sum()  # noqa: E731
    gy, gt, gk = gg.grad(loss, (0, 1, 2))(y0, t, k)
    e = np.exp(-k * (t[-1] - t[0]))
    np.testing.assert_allclose(gy, [e, e], rtol=1e-8)
    np.testing.assert_allclose(gk, -(t[-1] - t[0]) * e * y0.sum(), rtol=1e-7)
    np.testing.assert_allclose(gt, [k * e * y0.sum(), 0.0, -k * e * y0.sum()], rtol=1e-7, atol=1e-9)


def dynamics(y, t, args):
    w, b = args  # a nested argument structure: a tuple of arrays
    return gnp.tanh(gnp.dot(w, y) + b) - gnp.sqrt(t) * y


def test_odeint_matches_scipy_and_finite_differences():
    y0, t = RNG.standard_normal(3), np.linspace(0.1, 0.6, 4)
    w, b = 0.5 * RNG.standard_normal((3, 3)), RNG.standard_normal(3)
    got = odeint(dynamics, gg.tensor(y0), t, ((w, b),), **TIGHT).numpy()
    np.testing.assert_allclose(got, si.odeint(dynamics, y0, t, ((w, b),), **TIGHT), rtol=1e-12)
    proj = RNG.standard_normal(got.shape)

    def loss(y, tt, ww, bb):
        return (odeint(dynamics, y, tt, ((ww, bb),), **TIGHT) * proj).sum()

    grads = gg.grad(loss, (0, 1, 2, 3))(y0, t, w, b)
    args = [y0, t, w, b]
    for i, g in enumerate(grads):
        def plain(v, i=i):
            full = [v if j == i else args[j] for j in range(4)]
            return float((si.odeint(dynamics, full[0], full[1], ((full[2], full[3]),), **TIGHT) * proj).sum())
        np.testing.assert_allclose(g, fd_grad(plain, args[i].copy()), rtol=1e-5, atol=1e-7)


def test_odeint_second_derivative():
    y0, k = np.array([0.3]), 0.8

    def logistic(y, t, r):
        return r * y * (1 - y)

    t = np.array([0.0, 0.7, 1.5])

    def first(r):
        return gg.grad(lambda rr: odeint(logistic, y0, t, (rr,), **TIGHT)[-1, 0])(r)

    # closed form: y(t) = 1 / (1 + (1/y0 - 1) exp(-r t)); check d2y/dr2 by differences of the exact derivative
    c = 1 / y0[0] - 1

    def exact_first(r):
        e = np.exp(-r * t[-1])
        return c * t[-1] * e / (1 + c * e) ** 2

    np.testing.assert_allclose(first(k), exact_first(k), rtol=1e-6)
    second = gg.grad(first)(k)
    np.testing.assert_allclose(second, (exact_first(k + 1e-5) - exact_first(k - 1e-5)) / 2e-5, rtol=1e-5)


def test_odeint_errors():
    with pytest.raises(ArgumentError, match="full_output"):
        odeint(lambda y, t: -y, gg.tensor([1.0]), np.array([0.0, 1.0]), full_output=True)
    with pytest.raises(ShapeError, match="1-D"):
        odeint(lambda y, t: -y, gg.tensor([1.0]), np.array([[0.0, 1.0]]))
