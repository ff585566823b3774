"""gpugrad.backends.host_memory: large temporaries freed and allocated again each step stay
mapped (glibc's malloc thresholds), and GPUGRAD_MALLOC_TUNING=0 leaves malloc alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_STEPS = """
import resource
import numpy as np
import gpugrad.backends.numpy_backend  # (the CPU backend tunes malloc when it loads)
from gpugrad.backends import host_memory

def step():
    arrays = [np.ones(1 << 18, np.float32) for _ in range(4)]  # 1 MiB each, freed together
    del arrays

for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(host_memory.tuned(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(tuning: str) -> tuple[bool, int]:
    env = {**os.environ, "GPUGRAD_MALLOC_TUNING": tuning}
    out = subprocess.run([sys.executable, "-c", _STEPS], env=env, capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                    reason="glibc's malloc only")
def test_freed_temporaries_are_reused_not_faulted_in_again() -> None:
    tuned, faults = _run("1")
    assert tuned and faults < 50  # 20 steps x 4 MiB: 20,480 pages if each step faulted them in
    untouched, faults_default = _run("0")
    assert not untouched and faults_default > 1000  # glibc's defaults hand them back every step
