"""Differentiable distributions of ``scipy.stats``, as HIPS autograd's ``autograd.scipy.stats``:
``norm t chi2 gamma beta poisson dirichlet multivariate_normal``, each with the methods SciPy has
among pdf (pmf) logpdf (logpmf) cdf logcdf entropy (norm also sf and logsf), SciPy's signatures
(``loc``, ``scale``, ``df``, ``a``, ``b``, ``mu``, ``alpha``, ``mean``, ``cov``, ``allow_singular``),
SciPy's values on plain arrays and differentiable gpugrad computations on tensors.

Example::

    import gpugrad as gg
    from gpugrad.scipy import stats
    gg.grad(lambda s: stats.t.logpdf(x, 4.0, 0.0, s).sum())(1.5)
"""

from gpugrad.scipy.stats import beta, chi2, dirichlet, gamma, multivariate_normal, norm, poisson, t

__all__ = ["beta", "chi2", "dirichlet", "gamma", "multivariate_normal", "norm", "poisson", "t"]
