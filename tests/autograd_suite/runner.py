"""Fetch HIPS autograd's test suite (release 1.9.1, from its source distribution on PyPI) and run
it against gpugrad through the name mapping in ``shim/`` (autograd.numpy -> gpugrad.numpy, ...).

Nothing of autograd is kept in this repository: the sdist is downloaded with pip into a cache
folder (``$GPUGRAD_AUTOGRAD_SUITE_DIR``, default ``~/.cache/gpugrad/autograd-1.9.1``) and only
its ``tests/`` folder is extracted there.

Counting. A test is *applicable* unless it exercises autograd's internals, which gpugrad does
not have (boxes, vector spaces, the tracer, defining primitives): those are listed in
:data:`INTERNALS` with the reason. Tests autograd itself skips (xarray not installed) are not
counted. Deliberate differences (where autograd departs from NumPy, or from gpugrad's documented
rules) are listed in :data:`DIFFERENCES` and count as failures. ``test_scipy.py`` maps
autograd.scipy onto ``gpugrad.scipy`` (were that package missing, its tests would be reported as
pending rather than counted).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "1.9.1"
HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim"
REPO = HERE.parents[1]

INTERNALS = {
    "test_vspaces.py": "autograd's vector-space classes",
    "test_tests.py": "defines primitives with autograd.extend.defvjp to test check_grads itself",
    "test_logic.py::test_no_vjp_def": "autograd.tracer.primitive",
    "test_logic.py::test_no_jvp_def": "autograd.tracer.primitive",
    "test_logic.py::test_unimplemented_falseyness": "autograd.core.primitive_vjps",
    "test_misc.py::test_const_graph": "the tracer's graph caching (const_graph)",
    "test_misc.py::test_const_graph_args": "autograd.tracer.primitive",
    "test_wrappers.py::test_deprecated_defgrad_wrapper": "autograd.core.primitive",
    "test_wrappers.py::test_deprecated_defvjp_wrapper": "autograd.core.primitive",
    "test_wrappers.py::test_deprecated_defvjp_is_zero_wrapper": "autograd.core.primitive",
    "test_wrappers.py::test_wrapped_name_and_docs": "the names and docstrings autograd.wrap_util gives its wrappers",
}

DIFFERENCES = {
    "test_fft.py::test_rfftn_odd_not_implemented": "expects NotImplementedError: gpugrad differentiates rfftn of "
                                                   "odd sizes",
    "test_graphs.py::test_assignment_raises_error": "x[i] = v on a leaf being differentiated raises InplaceError "
                                                    "(a RuntimeError, as PyTorch), not TypeError",
    "test_linalg.py::test_pinv": "uses autograd.numpy.linalg's private helpers _dot and T",
    "test_wrappers.py::test_custom_where_dtypes": "np.where of Python scalars returns a 0-d array, as NumPy "
                                                  "(autograd returns the scalar)",
    "test_scipy.py::test_sqrtm": "gpugrad.scipy.linalg.sqrtm differentiates real square roots only: a matrix whose "
                                 "principal root is complex raises (autograd returns a complex result)",
}


@dataclass
class Result:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # test id -> first line of the error
    skipped: list[str] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # test_scipy while gpugrad.scipy is missing

    @property
    def applicable(self) -> int:
        return len(self.passed) + len(self.failed)

    @property
    def rate(self) -> float:
        return len(self.passed) / self.applicable if self.applicable else 0.0


def cache_dir() -> Path:
    env = os.environ.get("GPUGRAD_AUTOGRAD_SUITE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "gpugrad" / f"autograd-{VERSION}"


def fetch(timeout: float = 180.0) -> Path:
    """The extracted ``tests/`` folder of autograd's sdist (downloaded once, then cached).

    Raises RuntimeError saying why when the download is impossible (no network, no pip).
    """
    root = cache_dir()
    tests = root / "tests"
    if (tests / "test_numpy.py").is_file():
        return tests
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"autograd=={VERSION}", "-d", tmp, "-q"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"pip download of autograd=={VERSION} failed: {exc}") from None
        archives = list(Path(tmp).glob("autograd-*.tar.gz"))
        if proc.returncode != 0 or not archives:
            raise RuntimeError(f"pip download of autograd=={VERSION} failed: {proc.stderr.strip()[-300:]}")
        staging = Path(tempfile.mkdtemp(dir=root))
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.split("/")[1:2] == ["tests"] and (m.isfile() or m.isdir())]
            tar.extractall(staging, members=members, filter="data")
        extracted = staging / f"autograd-{VERSION}" / "tests"
        if tests.exists():  # another process finished first
            return tests
        extracted.rename(tests)
    return tests


def scipy_available() -> bool:
    proc = subprocess.run([sys.executable, "-c", "import gpugrad.scipy"], capture_output=True,
                          env=_env(), cwd=str(REPO))
    return proc.returncode == 0


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("GPUGRAD_CUDA_EMULATOR", None)  # the suite runs on the CPU backend
    return env


def _category(test_id: str, table: dict) -> str | None:
    file = test_id.split("::")[0]
    base = test_id.split("[")[0]
    for key in (test_id, base, file):
        if key in table:
            return table[key]
    return None


def run(tests: Path, timeout: float = 900.0) -> Result:
    """Run the suite in a subprocess and sort every test into the categories above."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", "-c", os.devnull,
               "--rootdir", str(tests), f"--junitxml={report}", "-o", "junit_family=xunit1", "-W", "ignore",
               "--continue-on-collection-errors"]
        subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=str(tests))
        tree = ET.parse(report)
    have_scipy = scipy_available()
    result = Result()
    for case in tree.iter("testcase"):
        file = case.get("file") or (case.get("classname", "").split(".")[-1] + ".py")
        test_id = f"{Path(file).name}::{case.get('name')}"
        problem = next((c for c in case if c.tag in ("failure", "error")), None)
        if any(c.tag == "skipped" for c in case):
            result.skipped.append(test_id)
        elif _category(test_id, INTERNALS):
            result.internal.append(test_id)
        elif test_id.startswith("test_scipy.py") and not have_scipy:
            result.pending.append(test_id)
        elif problem is None:
            result.passed.append(test_id)
        else:
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            result.failed[test_id] = message[0][:160] if message else problem.tag
    return result


def summary(result: Result) -> str:
    lines = [f"HIPS autograd {VERSION} test suite on gpugrad: {len(result.passed)}/{result.applicable} applicable "
             f"tests pass ({100 * result.rate:.1f}%); {len(result.internal)} exercise autograd internals (not "
             f"counted), {len(result.skipped)} skipped by autograd itself"]
    if result.pending:
        lines.append("  pending: test_scipy.py (89 tests in autograd 1.9.1) waits for gpugrad.scipy; not counted until "
                     "that package exists")
    for test_id, message in sorted(result.failed.items()):
        reason = _category(test_id, DIFFERENCES)
        lines.append(f"  FAILED {test_id}: " + (f"deliberate difference: {reason}" if reason else message))
    return "\n".join(lines)
