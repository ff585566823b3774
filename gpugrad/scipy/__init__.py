"""Differentiable SciPy, as HIPS autograd's ``autograd.scipy``: ``special``, ``stats``, ``linalg``,
``signal.convolve`` and ``integrate.odeint``.

Each function is SciPy's on NumPy arrays and numbers (NumPy in, NumPy out) and a differentiable
gpugrad computation on Tensors, so code written for SciPy works inside ``gg.grad``::

    import gpugrad as gg
    import gpugrad.scipy.stats as stats

    g = gg.grad(lambda mu: stats.norm.logpdf(2.0, mu, 1.5).sum())(0.5)   # (2 - 0.5) / 1.5**2

SciPy is needed here only: ``pip install 'gpugrad[scipy]'``.
"""

try:
    import scipy  # noqa: F401  (only the top-level package: its submodules load on first use)
except ImportError as _exc:
    raise ImportError("gpugrad.scipy needs SciPy: pip install 'gpugrad[scipy]' (or pip install scipy)") from _exc

from gpugrad.scipy import integrate, linalg, signal, special, stats  # noqa: E402

__all__ = ["integrate", "linalg", "signal", "special", "stats"]
