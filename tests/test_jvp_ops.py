"""Forward mode for every op: ``gg.jvp`` against central differences along a random tangent,
and the dot-product test <J t, g> = <t, J^T g> tying forward mode to reverse mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import gpugrad as gg
from tests.op_specs import SPECS, Spec


def _call(spec: Spec, kwargs: dict):  # noqa: ANN202
    def f(*xs):  # noqa: ANN001, ANN202
        return spec.fn(*xs, **kwargs)

    return f


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_jvp_matches_finite_differences_and_vjp(spec: Spec) -> None:
    @given(spec.strategy)
    def check(case):  # noqa: ANN001, ANN202
        rng = np.random.default_rng(7)
        xs = [np.array(a, dtype=np.float64) for a in case.arrays]
        ts = [rng.normal(size=a.shape) for a in xs]
        f = _call(spec, case.kwargs)

        out, t_out = gg.jvp(f, tuple(xs), tuple(ts))
        expected = gg.tensor(f(*[gg.as_tensor(x) for x in xs]).numpy()).numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)

        eps = 1e-6
        with gg.no_grad():
            plus = f(*[gg.as_tensor(x + eps * t) for x, t in zip(xs, ts)]).numpy()
            minus = f(*[gg.as_tensor(x - eps * t) for x, t in zip(xs, ts)]).numpy()
        fd = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(t_out, fd, rtol=1e-5, atol=1e-6)

        g = rng.normal(size=np.shape(out))
        _, pullback = gg.vjp(f, *xs)
        cotangents = pullback(g)
        lhs = float(np.sum(np.asarray(t_out) * g))
        rhs = float(sum(np.sum(t * c) for t, c in zip(ts, cotangents)))
        assert np.isclose(lhs, rhs, rtol=1e-9, atol=1e-9), (lhs, rhs)

    check()
