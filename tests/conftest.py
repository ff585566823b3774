"""Shared test configuration: hypothesis profiles and the ``gpu`` marker."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import gpugrad as gg

# CI runs on 2 cores: keep example counts modest; GPUGRAD_HYPOTHESIS=thorough explores more.
settings.register_profile(
    "ci", max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("GPUGRAD_HYPOTHESIS", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gg.cuda.is_available():
        return
    try:
        import cupy  # noqa: F401

        reason = "needs an NVIDIA GPU: CuPy is installed but no GPU is usable here"
    except ImportError:
        reason = "needs an NVIDIA GPU and CuPy (pip install cupy-cuda12x); neither is available here"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


TORCH_CPU_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def _skipped_for_torch(report: pytest.TestReport) -> bool:
    """A test skipped by ``pytest.importorskip("torch")`` (a comparison with PyTorch)."""
    longrepr = report.longrepr
    return isinstance(longrepr, tuple) and len(longrepr) == 3 and "could not import 'torch'" in str(longrepr[2])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> Any:
    """One line, after pytest's own summary, saying how many PyTorch comparisons were skipped and
    how to run them."""
    yield
    skipped = sum(1 for r in terminalreporter.stats.get("skipped", []) if _skipped_for_torch(r))
    if skipped:
        terminalreporter.write_line(f"{skipped} tests that compare with PyTorch were skipped because PyTorch is not "
                                    f"installed; to run them: {TORCH_CPU_INSTALL}", yellow=True)
