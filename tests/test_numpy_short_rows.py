"""The NumPy backend's max/min over short rows (columns folded) equals NumPy's reduction."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.backends import numpy_backend as nb
from gpugrad.backends import portable


# (small ones take the transposed copy; past portable._SHORT_ROW_TRANSPOSE elements, columns or folds)
@pytest.mark.parametrize("shape", [(256, 10), (64, 3, 7), (300, 33), (128, 96), (128, 95), (1000, 2),
                                   (30000, 10), (2800, 95), (9, 3000, 12)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("keepdims", [True, False])
def test_short_row_max_and_min_equal_numpy(shape: tuple, dtype: type, keepdims: bool) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x.flat[5] = np.nan  # propagates, as NumPy's
        x.flat[40] = -np.inf
    last = len(shape) - 1
    for axis in (-1, last, (last,)):
        for ours, theirs, ufunc in ((nb.amax, np.amax, np.maximum), (nb.amin, np.amin, np.minimum)):
            assert portable.short_row_extremum(ufunc, x, axis, keepdims) is not None  # the folded path ran
            got, want = ours(x, axis, keepdims), np.asarray(theirs(x, axis=axis, keepdims=keepdims))
            assert got.shape == want.shape and got.dtype == want.dtype
            assert np.array_equal(got, want, equal_nan=True)


def test_long_rows_few_rows_and_other_axes_are_numpys() -> None:
    x = np.ones((8, 10), np.float32)  # too few rows to gain
    assert portable.short_row_extremum(np.maximum, x, -1, True) is None
    y = np.ones((512, 200), np.float32)  # a long row: NumPy's reduction is as fast
    assert portable.short_row_extremum(np.maximum, y, -1, True) is None
    assert portable.short_row_extremum(np.maximum, y.T, 0, True) is None  # not the last axis
    assert portable.short_row_extremum(np.maximum, y, None, False) is None


def test_softmax_and_cross_entropy_over_few_classes_match_the_reference() -> None:
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((300, 10)) * 5
    labels = rng.integers(0, 10, 300)
    x = gg.tensor(logits, requires_grad=True)
    loss = gg.nn.functional.cross_entropy(x, gg.tensor(labels))
    loss.backward()
    shifted = logits - logits.max(-1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    want = -np.mean(np.log(p[np.arange(300), labels]))
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    onehot = np.zeros_like(p)
    onehot[np.arange(300), labels] = 1
    np.testing.assert_allclose(x.grad.numpy(), (p - onehot) / 300, rtol=1e-10, atol=1e-15)
