"""erf for NumPy arrays, accurate to about one ulp in float64.

NumPy has no erf ufunc and gpugrad's only runtime dependency is NumPy, so this evaluates the
piecewise rational approximations of Sun's fdlibm (the published coefficients of its ``s_erf.c``:
[0, 0.84375), [0.84375, 1.25), [1.25, 1/0.35), [1/0.35, 6), and 1 beyond), vectorised with masks.
SciPy's ufunc is used instead when SciPy is importable (same accuracy, faster).
"""

from __future__ import annotations

import numpy as np

_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e01,
       -6.23753324503260060396e01, -1.62396669462573470355e02, -1.84605092906711035994e02,
       -8.12874355063065934246e01, -9.81432934416914548592e00)
_SA = (1.0, 1.96512716674392571292e01, 1.37657754143519042600e02, 4.34565877475229228821e02,
       6.45387271733267880336e02, 4.29008140027567833386e02, 1.08635005541779435134e02,
       6.57024977031928170135e00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e01,
       -1.60636384855821916062e02, -6.37566443368389627722e02, -1.02509513161107724954e03,
       -4.83519191608651397019e02)
_SB = (1.0, 3.03380607434824582924e01, 3.25792512996573918826e02, 1.53672958608443695994e03,
       3.19985821950859553908e03, 2.55305040643316442583e03, 4.74528541206955367215e02,
       -2.24409524465858183362e01)


def _poly(coefs: tuple[float, ...], z: np.ndarray) -> np.ndarray:
    """Horner evaluation of coefs[0] + coefs[1] z + coefs[2] z^2 + ..."""
    acc = np.full_like(z, coefs[-1])
    for c in coefs[-2::-1]:
        acc = acc * z + c
    return acc


def erf_fdlibm(x: np.ndarray) -> np.ndarray:
    """erf of a float array, computed in float64 and returned in the input's float dtype."""
    x = np.asarray(x)
    out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    xd = x.astype(np.float64, copy=False)
    a = np.abs(xd)
    res = np.ones_like(a)  # |x| >= 6 (and inf): erf is 1 to double precision

    m = a < 0.84375
    if m.any():
        t = a[m]
        z = t * t
        res[m] = t + t * (_poly(_PP, z) / _poly(_QQ, z))
    m = (a >= 0.84375) & (a < 1.25)
    if m.any():
        s = a[m] - 1.0
        res[m] = _ERX + _poly(_PA, s) / _poly(_QA, s)
    m = (a >= 1.25) & (a < 6.0)
    if m.any():
        t = a[m]
        s = 1.0 / (t * t)
        low = t < 1.0 / 0.35
        ratio = np.where(low, _poly(_RA, s) / _poly(_SA, s), _poly(_RB, s) / _poly(_SB, s))
        # Split t into a head with 21 significant bits so that -t*t is formed exactly.
        head = (t.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)
        r = np.exp(-head * head - 0.5625) * np.exp((head - t) * (head + t) + ratio)
        res[m] = 1.0 - r / t
    res[np.isnan(a)] = np.nan
    return np.copysign(res, xd).astype(out_dtype, copy=False)


def scipy_special(name: str) -> object | None:
    """A ufunc from scipy.special, imported on first use (SciPy takes ~150 ms to import, too much
    for ``import gpugrad``); None when SciPy is absent."""
    if name not in _SCIPY:
        try:
            import scipy.special

            _SCIPY[name] = getattr(scipy.special, name)
        except ImportError:  # pragma: no cover - depends on the environment
            _SCIPY[name] = None
    return _SCIPY[name]


_SCIPY: dict[str, object | None] = {}


def erf(x: np.ndarray) -> np.ndarray:
    """erf(x) elementwise, keeping a float input's dtype (SciPy's ufunc when installed: faster,
    and it agrees with the NumPy version to about one ulp)."""
    fast = scipy_special("erf")
    if fast is not None:
        x = np.asarray(x)
        if x.dtype.kind not in "fc":  # complex stays complex (SciPy's erf is holomorphic there)
            x = x.astype(np.float64)
        return fast(x)
    return erf_fdlibm(x)
