"""gpugrad.scipy.stats: every method's values equal to scipy.stats' (with broadcasting, off the
support and for invalid parameters), gradients against finite differences in float64 and against
torch.distributions, and the errors for arguments without a derivative."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.scipy.stats as S
from gpugrad.errors import ArgumentError, GpugradError, GraphError

RNG = np.random.default_rng(11)


def U(lo: float, hi: float, shape: tuple = (4,)) -> np.ndarray:
    return RNG.uniform(lo, hi, shape)


# (distribution, method, arguments, indices of the arguments differentiated)
CASES = [
    ("norm", m, lambda: (U(-2, 2), U(-1, 1), U(0.5, 2)), (0, 1, 2))
    for m in ("pdf", "logpdf", "cdf", "logcdf", "sf", "logsf")
] + [
    ("norm", "entropy", lambda: (U(-1, 1), U(0.5, 2)), (0, 1)),
    ("t", "pdf", lambda: (U(-3, 3), U(1.5, 8), U(-1, 1), U(0.5, 2)), (0, 1, 2, 3)),
    ("t", "logpdf", lambda: (U(-3, 3), U(1.5, 8), U(-1, 1), U(0.5, 2)), (0, 1, 2, 3)),
    ("t", "cdf", lambda: (U(-3, 3), U(1.5, 8), U(-1, 1), U(0.5, 2)), (0, 2, 3)),
    ("t", "logcdf", lambda: (U(-3, 3), U(1.5, 8), U(-1, 1), U(0.5, 2)), (0, 2, 3)),
    ("t", "entropy", lambda: (U(1.5, 8), U(-1, 1), U(0.5, 2)), (0, 2)),
    ("chi2", "pdf", lambda: (U(0.3, 6), U(1.5, 6)), (0, 1)),
    ("chi2", "logpdf", lambda: (U(0.3, 6), U(1.5, 6), U(-0.2, 0.2), U(0.5, 2)), (0, 1, 2, 3)),
    ("chi2", "cdf", lambda: (U(0.3, 6), U(1.5, 6)), (0,)),
    ("chi2", "logcdf", lambda: (U(0.3, 6), U(1.5, 6), 0.0, U(0.5, 2)), (0, 3)),
    ("chi2", "entropy", lambda: (U(1.5, 6),), (0,)),
    ("gamma", "pdf", lambda: (U(0.3, 6), U(1.2, 5)), (0, 1)),
    ("gamma", "logpdf", lambda: (U(0.3, 6), U(1.2, 5), U(-0.2, 0.2), U(0.5, 2)), (0, 1, 2, 3)),
    ("gamma", "cdf", lambda: (U(0.3, 6), U(1.2, 5)), (0,)),
    ("gamma", "logcdf", lambda: (U(0.3, 6), U(1.2, 5), 0.1, U(0.5, 2)), (0, 3)),
    ("gamma", "entropy", lambda: (U(1.2, 5), 0.0, U(0.5, 2)), (0, 2)),
    ("beta", "pdf", lambda: (U(0.1, 0.9), U(1.2, 4), U(1.2, 4)), (0, 1, 2)),
    ("beta", "logpdf", lambda: (U(0.1, 0.9), U(1.2, 4), U(1.2, 4)), (0, 1, 2)),
    ("beta", "cdf", lambda: (U(0.1, 0.9), U(1.2, 4), U(1.2, 4)), (0,)),
    ("beta", "logcdf", lambda: (U(0.1, 0.9), U(1.2, 4), U(1.2, 4)), (0,)),
    ("beta", "entropy", lambda: (U(1.2, 4), U(1.2, 4)), (0, 1)),
    ("poisson", "pmf", lambda: (np.array([0.0, 1, 3, 6]), U(0.5, 5)), (1,)),
    ("poisson", "logpmf", lambda: (np.array([0.0, 1, 3, 6]), U(0.5, 5)), (1,)),
    ("poisson", "cdf", lambda: (np.array([0.0, 1.5, 3, 6]), U(0.5, 5)), (1,)),
    ("poisson", "logcdf", lambda: (np.array([0.0, 1.5, 3, 6]), U(0.5, 5)), (1,)),
    ("poisson", "entropy", lambda: (U(0.5, 30),), (0,)),
]


def _call(dist: str, method: str, args: tuple, on: tuple) -> gg.Tensor:
    targs = [gg.tensor(a) if i in on else a for i, a in enumerate(args)]
    return getattr(getattr(S, dist), method)(*targs)


@pytest.mark.parametrize("dist, method, make, diff", CASES, ids=[f"{c[0]}.{c[1]}" for c in CASES])
def test_values_match_scipy_and_gradients_match_finite_differences(dist, method, make, diff):
    args = make()
    want = getattr(getattr(ss, dist), method)(*args)
    got = _call(dist, method, args, diff)
    assert isinstance(got, gg.Tensor)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-13)
    # plain NumPy in: SciPy's own result
    np.testing.assert_array_equal(getattr(getattr(S, dist), method)(*args), want)

    def f(*ts):
        full = list(args)
        for i, t in zip(diff, ts):
            full[i] = t
        return getattr(getattr(S, dist), method)(*full)

    leaves = [gg.tensor(np.asarray(args[i], dtype=np.float64), requires_grad=True) for i in diff]
    assert gg.gradcheck(f, leaves, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dist, method, make, diff", [c for c in CASES if c[1] in ("logpdf", "logcdf", "entropy")],
                         ids=[f"{c[0]}.{c[1]}" for c in CASES if c[1] in ("logpdf", "logcdf", "entropy")])
def test_second_derivatives(dist, method, make, diff):
    args = [np.asarray(a, dtype=np.float64) for a in make()]
    i = diff[-1]

    def first(v):
        def f(u):
            full = list(args)
            full[i] = u
            return getattr(getattr(S, dist), method)(*full).sum()
        return gg.grad(f)(v)

    assert gg.gradcheck(first, (gg.tensor(args[i], requires_grad=True),), rtol=1e-4, atol=1e-6)


shapes = st.sampled_from([(), (1,), (3,), (2, 1), (1, 3), (2, 3)])


@given(sx=shapes, s1=shapes, s2=shapes, dist=st.sampled_from(["norm", "gamma", "t", "beta"]),
       seed=st.integers(0, 2**16))
def test_broadcasting_matches_scipy(sx, s1, s2, dist, seed):
    rng = np.random.default_rng(seed)
    if dist == "norm":
        args = (rng.normal(size=sx), rng.normal(size=s1), rng.uniform(0.5, 2, s2))
    elif dist == "gamma":
        args = (rng.uniform(0.2, 5, sx), rng.uniform(1.1, 4, s1), 0.0, rng.uniform(0.5, 2, s2))
    elif dist == "t":
        args = (rng.normal(size=sx), rng.uniform(1.5, 6, s1), 0.0, rng.uniform(0.5, 2, s2))
    else:
        args = (rng.uniform(0.1, 0.9, sx), rng.uniform(1.1, 4, s1), rng.uniform(1.1, 4, s2))
    d = getattr(S, dist)
    tensors = [gg.tensor(a, requires_grad=True) if isinstance(a, np.ndarray) else a for a in args]
    out = d.logpdf(*tensors)
    want = getattr(ss, dist).logpdf(*args)
    assert out.shape == np.shape(want)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10)
    out.sum().backward()
    for t, a in zip(tensors, args):
        if isinstance(t, gg.Tensor):
            assert t.grad.shape == np.shape(a)


def test_off_the_support_and_invalid_parameters_follow_scipy():
    cases = [
        (S.gamma.logpdf, ss.gamma.logpdf, (np.array([-1.0, 0.0, 2.0]), np.array([1.0, 1.0, 2.0]))),
        (S.gamma.cdf, ss.gamma.cdf, (np.array([-1.0, 0.0, 2.0]), 2.0)),
        (S.chi2.logpdf, ss.chi2.logpdf, (np.array([-1.0, 0.0, 2.0]), np.array([2.0, 2.0, 3.0]))),
        (S.beta.logpdf, ss.beta.logpdf, (np.array([-0.5, 0.0, 0.5, 1.0, 1.5]), 1.0, 2.0)),
        (S.beta.cdf, ss.beta.cdf, (np.array([-0.5, 0.0, 0.5, 1.0, 1.5]), 2.0, 3.0)),
        (S.norm.logpdf, ss.norm.logpdf, (np.array([0.5, 0.5]), 0.0, np.array([1.0, -1.0]))),
        (S.t.pdf, ss.t.pdf, (np.array([0.5, 0.5]), np.array([3.0, -1.0]))),
        (S.poisson.logpmf, ss.poisson.logpmf, (np.array([-1.0, 0.0, 1.5, 2.0]), 2.0)),
        (S.poisson.pmf, ss.poisson.pmf, (np.array([0.0, 1.0]), 0.0)),
        (S.poisson.cdf, ss.poisson.cdf, (np.array([-1.0, 0.0, 2.7]), 2.0)),
    ]
    for mine, theirs, args in cases:
        got = mine(gg.tensor(args[0]), *args[1:])
        np.testing.assert_allclose(got.numpy(), theirs(*args), rtol=1e-12, equal_nan=True)
    # gradients stay finite where the value is off the support (the unused branch contributes 0)
    for fn in (lambda x: S.gamma.pdf(x, 2.0).sum(), lambda x: S.gamma.logpdf(x, 2.0)[1],
               lambda x: S.beta.logpdf(x, 2.0, 3.0)[1]):
        g = gg.grad(fn)(np.array([-1.0, 0.5]))
        assert np.isfinite(g).all() and g[0] == 0


def test_dirichlet_values_and_gradients():
    alpha = U(1.2, 3.0, (3,))
    x = RNG.dirichlet(alpha, size=4).T  # components along the first axis, as SciPy
    for method in ("pdf", "logpdf"):
        np.testing.assert_allclose(getattr(S.dirichlet, method)(gg.tensor(x), alpha).numpy(),
                                   getattr(ss.dirichlet, method)(x, alpha), rtol=1e-12)
        np.testing.assert_allclose(getattr(S.dirichlet, method)(gg.tensor(x[:2]), alpha).numpy(),
                                   getattr(ss.dirichlet, method)(x[:2], alpha), rtol=1e-12)
    np.testing.assert_allclose(S.dirichlet.entropy(gg.tensor(alpha)).numpy(), ss.dirichlet.entropy(alpha), rtol=1e-12)
    assert gg.gradcheck(lambda a: S.dirichlet.logpdf(x, a), (gg.tensor(alpha, requires_grad=True),), rtol=1e-5)
    assert gg.gradcheck(lambda a: S.dirichlet.entropy(a), (gg.tensor(alpha, requires_grad=True),), rtol=1e-5)
    # in x along the simplex: the first K - 1 components determine the last
    assert gg.gradcheck(lambda v: S.dirichlet.pdf(v, alpha), (gg.tensor(x[:2, :1].copy(), requires_grad=True),),
                        rtol=1e-5)
    with pytest.raises(ArgumentError, match="simplex"):
        S.dirichlet.logpdf(gg.tensor(x * 1.1), alpha)
    with pytest.raises(ArgumentError, match="greater than 0"):
        S.dirichlet.logpdf(gg.tensor(x), -alpha)


def _spd(n: int) -> np.ndarray:
    m = RNG.standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


def _sym(c):
    return 0.5 * (c + c.T)


@pytest.mark.parametrize("x_shape", [(4,), (5, 4), (2, 3, 4)])
def test_multivariate_normal_values_and_gradients(x_shape):
    cov, mean = _spd(4), RNG.standard_normal(4)
    x = RNG.standard_normal(x_shape)
    for method in ("pdf", "logpdf"):
        got = getattr(S.multivariate_normal, method)(gg.tensor(x), mean, cov)
        want = getattr(ss.multivariate_normal, method)(x, mean, cov)
        assert got.shape == np.shape(want)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert gg.gradcheck(lambda v, m, c: S.multivariate_normal.logpdf(v, m, _sym(c)),
                        [gg.tensor(a, requires_grad=True) for a in (x, mean, cov)], rtol=1e-5)
    np.testing.assert_allclose(S.multivariate_normal.entropy(gg.tensor(mean), cov).numpy(),
                               ss.multivariate_normal.entropy(mean, cov), rtol=1e-12)
    assert gg.gradcheck(lambda c: S.multivariate_normal.entropy(mean, _sym(c)), (gg.tensor(cov, requires_grad=True),))


def test_multivariate_normal_parameter_forms_and_singular_covariance():
    x = RNG.standard_normal((3, 2))
    for mean, cov in [(None, 2.0), (np.zeros(2), np.array([1.0, 3.0])), (1.5, 2.0)]:
        xx = x if np.size(cov) == 2 else x[:, 0]  # dimension 1: a 1-D x holds points
        np.testing.assert_allclose(S.multivariate_normal.logpdf(gg.tensor(xx), mean, cov).numpy(),
                                   ss.multivariate_normal.logpdf(xx, mean, cov), rtol=1e-12)
    cov = np.zeros((4, 4))
    cov[0, 0], cov[1, 1] = 1.0, 2.0
    mean = RNG.standard_normal(4)
    inside = np.concatenate([RNG.standard_normal(2), mean[2:]])
    for point in (inside, RNG.standard_normal(4)):
        np.testing.assert_allclose(
            S.multivariate_normal.logpdf(gg.tensor(point), mean, cov, allow_singular=True).numpy(),
            ss.multivariate_normal.logpdf(point, mean, cov, allow_singular=True), rtol=1e-12)
    np.testing.assert_allclose(S.multivariate_normal.entropy(gg.tensor(mean), cov).numpy(),
                               ss.multivariate_normal.entropy(mean, cov), rtol=1e-12)

    def f(x2, m):
        return S.multivariate_normal.logpdf(gg.concatenate([x2, m[2:]]), m, cov, allow_singular=True)

    assert gg.gradcheck(f, [gg.tensor(inside[:2], requires_grad=True), gg.tensor(mean, requires_grad=True)])
    with pytest.raises(GraphError, match="cov"):
        gg.grad(lambda c: S.multivariate_normal.logpdf(inside, mean, c, allow_singular=True))(cov)
    with pytest.raises(GpugradError, match="cholesky"):
        S.multivariate_normal.logpdf(gg.tensor(inside), mean, cov)


def test_arguments_without_a_derivative_refuse_to_be_differentiated():
    with pytest.raises(GraphError, match="df"):
        gg.grad(lambda df: S.t.cdf(0.3, df))(3.0)
    with pytest.raises(GraphError, match="a"):
        gg.grad(lambda a: S.gamma.cdf(0.3, a))(3.0)
    with pytest.raises(GraphError, match="k"):
        gg.grad(lambda k: S.poisson.pmf(k, 2.0))(3.0)
    with pytest.raises(GraphError, match="random draws"):
        gg.grad(lambda a: S.dirichlet.rvs(a).sum())(np.ones(3))
    assert S.dirichlet.rvs(np.ones(3), size=2).shape == (2, 3)


# ---- against torch.distributions ---------------------------------------------------------------


def test_log_densities_and_entropies_match_torch_distributions():
    torch = pytest.importorskip("torch")
    D = torch.distributions
    x, loc, scale = U(-2, 2), U(-1, 1), U(0.5, 2)
    pos, a, b, df = U(0.2, 5), U(1.2, 4), U(1.2, 4), U(1.5, 6)
    frac = U(0.1, 0.9)
    k = np.array([0.0, 1, 3, 6])
    cases = [
        (lambda x, loc, scale: S.norm.logpdf(x, loc, scale), lambda x, loc, scale: D.Normal(loc, scale).log_prob(x),
         (x, loc, scale)),
        (lambda x, loc, scale: S.norm.cdf(x, loc, scale), lambda x, loc, scale: D.Normal(loc, scale).cdf(x),
         (x, loc, scale)),
        (lambda loc, scale: S.norm.entropy(loc, scale), lambda loc, scale: D.Normal(loc, scale).entropy(),
         (loc, scale)),
        (lambda x, df, loc, scale: S.t.logpdf(x, df, loc, scale),
         lambda x, df, loc, scale: D.StudentT(df, loc, scale).log_prob(x), (x, df, loc, scale)),
        (lambda df, scale: S.t.entropy(df, 0.0, scale), lambda df, scale: D.StudentT(df, 0.0, scale).entropy(),
         (df, scale)),
        (lambda x, df: S.chi2.logpdf(x, df), lambda x, df: D.Chi2(df).log_prob(x), (pos, df)),
        (lambda x, a, scale: S.gamma.logpdf(x, a, 0.0, scale),
         lambda x, a, scale: D.Gamma(a, 1 / scale).log_prob(x), (pos, a, scale)),
        (lambda a, scale: S.gamma.entropy(a, 0.0, scale), lambda a, scale: D.Gamma(a, 1 / scale).entropy(),
         (a, scale)),
        (lambda x, a, b: S.beta.logpdf(x, a, b), lambda x, a, b: D.Beta(a, b).log_prob(x), (frac, a, b)),
        (lambda a, b: S.beta.entropy(a, b), lambda a, b: D.Beta(a, b).entropy(), (a, b)),
        (lambda mu: S.poisson.logpmf(k, mu), lambda mu: D.Poisson(mu).log_prob(torch.tensor(k)), (pos,)),
    ]
    for mine, theirs, args in cases:
        targs = [torch.tensor(v, requires_grad=True) for v in args]
        ty = theirs(*targs)
        g = RNG.standard_normal(ty.shape)
        (ty * torch.tensor(g)).sum().backward()
        y = mine(*[gg.tensor(v) for v in args])
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        grads = gg.grad(lambda *vs, mine=mine, g=g: (mine(*vs) * g).sum(), tuple(range(len(args))))(*args)
        for ours, t in zip(grads, targs):
            want = np.zeros_like(ours) if t.grad is None else t.grad.numpy()  # None: no dependence (entropy on loc)
            np.testing.assert_allclose(ours, want, rtol=1e-8, atol=1e-10)


def test_dirichlet_and_multivariate_normal_match_torch():
    torch = pytest.importorskip("torch")
    D = torch.distributions
    alpha = U(1.2, 3.0, (3,))
    x = RNG.dirichlet(alpha, size=2)  # torch: components along the last axis
    ta = torch.tensor(alpha, requires_grad=True)
    (D.Dirichlet(ta).log_prob(torch.tensor(x)).sum() + D.Dirichlet(ta).entropy()).backward()
    ours = gg.grad(lambda a: S.dirichlet.logpdf(x.T, a).sum() + S.dirichlet.entropy(a))(alpha)
    np.testing.assert_allclose(ours, ta.grad.numpy(), rtol=1e-9)

    cov, mean, pts = _spd(3), RNG.standard_normal(3), RNG.standard_normal((4, 3))
    tc, tm, tx = (torch.tensor(v, requires_grad=True) for v in (cov, mean, pts))
    dist = D.MultivariateNormal(tm, covariance_matrix=tc)
    (dist.log_prob(tx).sum() + dist.entropy()).backward()
    gx, gm, gc = gg.grad(lambda p, m, c: S.multivariate_normal.logpdf(p, m, c).sum()
                         + S.multivariate_normal.entropy(m, c), (0, 1, 2))(pts, mean, cov)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(gm, tm.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(gc, tc.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.gpu
def test_distributions_on_cuda_match_the_cpu():
    x, loc, scale = U(-2, 2, (32,)), U(-1, 1, (32,)), U(0.5, 2, (32,))
    cov, pts = _spd(3), RNG.standard_normal((8, 3))
    calls = [
        lambda dev: S.norm.logcdf(gg.tensor(x, device=dev, requires_grad=True), loc, scale),
        lambda dev: S.t.cdf(gg.tensor(x, device=dev, requires_grad=True), 4.0),
        lambda dev: S.gamma.logpdf(gg.tensor(np.abs(x) + 0.1, device=dev, requires_grad=True), 2.5),
        lambda dev: S.beta.cdf(gg.tensor(np.abs(x) / 2.1, device=dev, requires_grad=True), 2.0, 3.0),
        lambda dev: S.poisson.logpmf(np.arange(32.0) % 5, gg.tensor(scale, device=dev, requires_grad=True)),
        lambda dev: S.multivariate_normal.logpdf(gg.tensor(pts, device=dev, requires_grad=True), None,
                                                 gg.tensor(cov, device=dev)),
    ]
    for make in calls:
        yc, yh = make("cuda"), make("cpu")
        np.testing.assert_allclose(yc.numpy(), yh.numpy(), rtol=1e-10)
