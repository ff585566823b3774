"""Second order for every op: the Hessian-vector product computed forward-over-reverse
(jvp of grad) and reverse-over-reverse (grad of <grad, v>) against finite differences of the
gradient. This exercises every rule evaluated with differentiable ops (create_graph)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import gpugrad as gg
from tests.op_specs import SPECS, Spec

SMOOTH = [s for s in SPECS if s.smooth]


@pytest.mark.parametrize("spec", SMOOTH, ids=lambda s: s.name)
def test_hessian_vector_products(spec: Spec) -> None:
    @given(spec.strategy)
    def check(case):  # noqa: ANN001, ANN202
        rng = np.random.default_rng(11)
        xs = tuple(np.array(a, dtype=np.float64) for a in case.arrays)
        out_shape = spec.fn(*[gg.as_tensor(x) for x in xs], **case.kwargs).shape
        w = rng.normal(size=out_shape)
        vs = tuple(rng.normal(size=x.shape) for x in xs)
        argnums = tuple(range(len(xs)))

        def loss(*ys):  # noqa: ANN002, ANN202
            return gg.sum(spec.fn(*ys, **case.kwargs) * w)

        grad = gg.grad(loss, argnums)
        eps = 1e-5
        plus = grad(*[x + eps * v for x, v in zip(xs, vs)])
        minus = grad(*[x - eps * v for x, v in zip(xs, vs)])
        fd = [(p - m) / (2 * eps) for p, m in zip(plus, minus)]

        fwd_over_rev = gg.jvp(grad, xs, vs)[1]

        def directional(*ys):  # noqa: ANN002, ANN202
            gs = gg.grad(loss, argnums)(*ys)
            return sum(gg.sum(g * v) for g, v in zip(gs, vs))

        rev_over_rev = gg.grad(directional, argnums)(*xs)
        for a, b, c in zip(fwd_over_rev, rev_over_rev, fd):
            np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(b, c, rtol=1e-4, atol=1e-5)

    check()
