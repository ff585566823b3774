"""gpugrad.scipy.linalg: cholesky, solve_triangular, solve_sylvester, solve_banded and sqrtm equal
to SciPy's, with gradients (reverse, forward, second order) against finite differences and
PyTorch's torch.linalg."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.scipy.linalg as L
from gpugrad.errors import GpugradError, ShapeError

RNG = np.random.default_rng(3)


def spd(n: int, batch: tuple = ()) -> np.ndarray:
    m = RNG.standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def sym(a):
    return 0.5 * (a + gg.swapaxes(a, -1, -2))


def leaf(a):
    return gg.tensor(a, requires_grad=True)


def second_order(f, args, rtol=1e-4):
    """gradcheck of a random projection of the gradient of sum(f(...)**2): one backward per check."""
    proj = [RNG.standard_normal(np.shape(a)) for a in args]
    n = len(args)

    def projected_gradient(*xs):
        gs = gg.grad(lambda *us: (f(*us) ** 2).sum(), tuple(range(n)))(*xs)
        gs = gs if isinstance(gs, tuple) else (gs,)
        return sum((g * p).sum() for g, p in zip(gs, proj))

    return gg.gradcheck(projected_gradient, [leaf(a) for a in args], rtol=rtol)


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_cholesky_values_and_gradients(lower, batch):
    a = spd(3, batch)
    got = L.cholesky(gg.tensor(a), lower=lower).numpy()
    want = np.linalg.cholesky(a)
    np.testing.assert_allclose(got, want if lower else np.swapaxes(want, -1, -2), rtol=1e-12)
    if not batch:
        np.testing.assert_array_equal(L.cholesky(a, lower=lower), sl.cholesky(a, lower=lower))  # SciPy on arrays
    f = lambda m: L.cholesky(sym(m), lower=lower)  # noqa: E731
    assert gg.gradcheck(f, (leaf(a),), rtol=1e-5)
    assert second_order(f, [a])
    # forward mode agrees with reverse mode: <J t, g> = <t, J^T g>
    t, g = RNG.standard_normal(a.shape), RNG.standard_normal(a.shape)
    _, jt = gg.jvp(f, (a,), (t,))
    vjp_g = gg.vjp(f, a)[1](g)
    np.testing.assert_allclose(np.sum(jt * g), np.sum(np.asarray(vjp_g[0] if isinstance(vjp_g, tuple) else vjp_g) * t),
                               rtol=1e-10)


def test_cholesky_matches_torch():
    torch = pytest.importorskip("torch")
    a = spd(4)
    g = RNG.standard_normal((4, 4))
    ta = torch.tensor(a, requires_grad=True)
    (torch.linalg.cholesky(ta) * torch.tensor(g)).sum().backward()
    ours = gg.grad(lambda m: (L.cholesky(m, lower=True) * g).sum())(a)
    np.testing.assert_allclose(ours, ta.grad.numpy(), rtol=1e-10, atol=1e-12)


@given(n=st.integers(1, 4), k=st.sampled_from([None, 1, 3]), trans=st.sampled_from([0, 1, 2, "N", "T", "C"]),
       lower=st.booleans(), unit=st.booleans(), seed=st.integers(0, 2**16))
def test_solve_triangular_matches_scipy_and_finite_differences(n, k, trans, lower, unit, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n)) + 3 * np.eye(n)
    b = rng.standard_normal((n,) if k is None else (n, k))
    kw = {"trans": trans, "lower": lower, "unit_diagonal": unit}
    np.testing.assert_allclose(L.solve_triangular(gg.tensor(a), b, **kw).numpy(), sl.solve_triangular(a, b, **kw),
                               rtol=1e-12)
    f = lambda m, v: L.solve_triangular(m, v, **kw)  # noqa: E731
    assert gg.gradcheck(f, (leaf(a), leaf(b)), rtol=1e-5)
    assert second_order(f, [a, b])
    ta, tb = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    _, jt = gg.jvp(f, (a, b), (ta, tb))
    eps = 1e-6
    fd = (sl.solve_triangular(a + eps * ta, b + eps * tb, **kw) - sl.solve_triangular(a - eps * ta, b - eps * tb, **kw))
    np.testing.assert_allclose(jt, fd / (2 * eps), rtol=1e-5, atol=1e-7)


def test_solve_triangular_batches_and_torch():
    torch = pytest.importorskip("torch")
    a = np.tril(RNG.standard_normal((2, 3, 3))) + 3 * np.eye(3)
    b = RNG.standard_normal((2, 3, 2))
    got = L.solve_triangular(gg.tensor(a), b, lower=True)
    np.testing.assert_allclose(got.numpy(), np.linalg.solve(a, b), rtol=1e-12)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    g = RNG.standard_normal(b.shape)
    (torch.linalg.solve_triangular(ta, tb, upper=False) * torch.tensor(g)).sum().backward()
    ga, gb = gg.grad(lambda m, v: (L.solve_triangular(m, v, lower=True) * g).sum(), (0, 1))(a, b)
    np.testing.assert_allclose(ga, ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-10)


def test_solve_sylvester_and_sqrtm():
    a, b, q = RNG.standard_normal((3, 3)) + 2 * np.eye(3), RNG.standard_normal((2, 2)) + 2 * np.eye(2), \
        RNG.standard_normal((3, 2))
    np.testing.assert_allclose(L.solve_sylvester(gg.tensor(a), b, q).numpy(), sl.solve_sylvester(a, b, q), rtol=1e-12)
    assert gg.gradcheck(L.solve_sylvester, (leaf(a), leaf(b), leaf(q)), rtol=1e-5)
    m = spd(3)
    np.testing.assert_allclose(L.sqrtm(gg.tensor(m)).numpy(), sl.sqrtm(m), rtol=1e-10)
    assert gg.gradcheck(L.sqrtm, (leaf(m),), rtol=1e-5)
    assert second_order(L.sqrtm, [m])
    _, jt = gg.jvp(L.sqrtm, (m,), (np.eye(3),))
    x = sl.sqrtm(m)
    np.testing.assert_allclose(x @ jt + jt @ x, np.eye(3), atol=1e-10)  # X dX + dX X = dA
    nonsym = RNG.standard_normal((3, 3)) + 3 * np.eye(3)  # a real square root of a non-symmetric matrix
    assert gg.gradcheck(L.sqrtm, (leaf(nonsym),), rtol=1e-5)
    with pytest.raises(GpugradError, match="complex"):
        L.sqrtm(gg.tensor(np.diag([1.0, -1.0])))


def test_solve_banded_values_and_gradients():
    for lu in [(1, 1), (2, 0), (0, 2)]:
        ab = RNG.standard_normal((sum(lu) + 1, 5))
        ab[lu[1]] += 4.0
        for b in (RNG.standard_normal(5), RNG.standard_normal((5, 2))):
            np.testing.assert_allclose(L.solve_banded(lu, gg.tensor(ab), b).numpy(), sl.solve_banded(lu, ab, b),
                                       rtol=1e-12)
            f = lambda m, v, lu=lu: L.solve_banded(lu, m, v)  # noqa: E731
            assert gg.gradcheck(f, (leaf(ab), leaf(b)), rtol=1e-5)
            assert second_order(f, [ab, b])


def test_errors_name_the_function():
    with pytest.raises(GpugradError, match="cholesky"):
        L.cholesky(gg.tensor(np.diag([1.0, -1.0])))
    with pytest.raises(ShapeError, match="square"):
        L.cholesky(gg.tensor(np.ones((2, 3))))
    with pytest.raises(ShapeError, match="incompatible"):
        L.solve_triangular(gg.tensor(np.eye(3)), np.ones(2))
    with pytest.raises(GpugradError, match="trans"):
        L.solve_triangular(gg.tensor(np.eye(2)), np.ones(2), trans="X")


@pytest.mark.gpu
def test_linalg_on_cuda_matches_the_cpu():
    a, b = spd(4), RNG.standard_normal((4, 2))
    for f in (lambda m, v: L.cholesky(m, lower=True) @ v, lambda m, v: L.solve_triangular(m, v, lower=True),
              lambda m, v: L.sqrtm(m) @ v):
        mc, vc = gg.tensor(a, device="cuda", requires_grad=True), gg.tensor(b, device="cuda", requires_grad=True)
        mh, vh = leaf(a), leaf(b)
        yc, yh = f(mc, vc), f(mh, vh)
        np.testing.assert_allclose(yc.numpy(), yh.numpy(), rtol=1e-10)
        yc.sum().backward()
        yh.sum().backward()
        np.testing.assert_allclose(mc.grad.numpy(), mh.grad.numpy(), rtol=1e-9, atol=1e-12)
