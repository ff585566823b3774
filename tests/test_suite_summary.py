"""The test session's summary line about PyTorch comparisons skipped where PyTorch is missing."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


NO_TORCH = """
import importlib.abc, sys


class NoTorch(importlib.abc.MetaPathFinder):  # as on a machine without PyTorch
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")


sys.meta_path.insert(0, NoTorch())
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


def test_missing_torch_is_reported_in_one_summary_line():
    tests = ["tests/test_optim_more.py::test_adagrad_matches_rule_and_torch", "tests/test_utils_data.py::test_samplers"]
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *tests], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "compare with PyTorch" in line]
    assert lines == ["4 tests that compare with PyTorch were skipped because PyTorch is not installed; to run "
                     "them: pip install torch --index-url https://download.pytorch.org/whl/cpu"]


def test_no_summary_line_when_nothing_was_skipped_for_torch():
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_utils_data.py::test_samplers"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "compare with PyTorch" not in proc.stdout
