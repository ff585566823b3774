"""The 8x8 handwritten digits that ship with scikit-learn (1,797 images, 10 classes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpugrad.errors import GpugradError


class MissingDependency(GpugradError):
    """An optional dependency needed for this command is not installed."""


@dataclass
class DigitsSplit:
    """Train/test arrays: images scaled to [0, 1] as float32 (N, 64), labels int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """Load and split the digits (stratified, fixed by ``seed``), scaling pixels 0..16 to 0..1.

    Example: ``split = load_digits(); split.x_train.shape  # (1437, 64)``
    """
    try:
        from sklearn.datasets import load_digits as _sk_load
    except ImportError:
        raise MissingDependency(
            "the digits dataset needs scikit-learn: pip install 'gpugrad[examples]' (or pip install scikit-learn)"
        ) from None
    data = _sk_load()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):  # stratified: the same fraction of every class in the test set
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test_idx.append(idx[: int(round(len(idx) * test_fraction))])
    test = np.sort(np.concatenate(test_idx))
    train = np.setdiff1d(np.arange(len(y)), test)
    return DigitsSplit(x[train], y[train], x[test], y[test])
