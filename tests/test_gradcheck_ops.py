"""Every op's reverse-mode gradient against central finite differences, in float64, over
shapes drawn by hypothesis (scalars, zero-size edges, broadcasting, keepdims, negative axes,
non-contiguous inputs)."""

from __future__ import annotations

import pytest
from hypothesis import given

import gpugrad as gg
from tests.op_specs import SPECS, Spec, to_tensors


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_gradcheck(spec: Spec) -> None:
    @given(spec.strategy)
    def check(case):  # noqa: ANN001, ANN202
        inputs = to_tensors(case)
        assert gg.gradcheck(lambda *xs: spec.fn(*xs, **case.kwargs), inputs, eps=1e-6, atol=1e-7, rtol=1e-5)

    check()
