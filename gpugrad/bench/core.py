"""What a benchmark is made of: cases, one implementation per library, and the registry.

A :class:`Workload` is a family of :class:`Case` objects (one per size/dtype) plus, for each
library, a *builder* that turns a case and its input sets into an :class:`Impl`: a ``step(i)``
that runs one forward+backward (or training step) on input set ``i``, and ``outputs()`` that
returns host copies of what the last step computed (loss, gradients) for the correctness gate.

Every builder receives the same inputs, made once on the host from a seeded generator, so the
libraries compute the same function on the same numbers. The hand-written NumPy builder doubles
as the reference: run in float64 on the same inputs, its outputs are what every library's
float32 (or float16) results are compared with before anything is timed.

Example (a new workload, registered under the name "square")::

    def cases(s):
        return [Case("square", "n=1K f32", {"n": 1024}, size=1024)]

    def inputs(case, rng, k):
        return {"x": rng.standard_normal(case.params["n"]).astype(np.float32)}

    register(Workload("square", "elementwise", "sum(x*x) fwd+bwd", cases, inputs,
                      builders=grad_builders(spec)))      # gpugrad.bench.patterns
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The libraries a row can hold, in table order. "numpy" is the hand-written NumPy version of
# each workload (forward and backward by hand); on a GPU the same code runs on CuPy.
LIBRARIES: tuple[str, ...] = ("gpugrad", "torch", "jax", "jax.jit", "autograd", "numpy")
PEERS: tuple[str, ...] = LIBRARIES[1:]


class Skip(Exception):
    """Raised by a builder (or a workload's ``needs``) when a library cannot run a case.

    The message is the reason printed in the table's notes, e.g. ``Skip("needs gpugrad.nn
    (not in this build)")``.
    """


@dataclass(frozen=True)
class Case:
    """One measured configuration of a workload.

    ``flops`` and ``bytes`` are per step, used for TFLOP/s and GB/s; ``bytes`` counts the
    traffic of the workload's ops run one kernel per op, forward and backward, each op reading
    its inputs once and writing its output once (see each workload's docstring), and
    ``bytes_floor`` the least any implementation must move (inputs read once, gradients written
    once). ``per`` divides the step time for the reported unit (100 for "us/op" over 100 ops).

    Example: ``Case("matmul", "n=512 f32", {"n": 512, "dtype": "float32"}, size=512, flops=6 * 512**3)``.
    """

    workload: str
    label: str
    params: Mapping[str, Any]
    size: float | None = None
    flops: float | None = None
    bytes: float | None = None
    bytes_floor: float | None = None
    per: int = 1
    unit: str = "ms"
    dtype: str = "float32"
    series: str = ""  # cases sharing a series form one time-vs-size curve in the plot
    size_label: str = "size"  # what ``size`` counts, for the plot's x axis

    @property
    def key(self) -> str:
        return f"{self.workload}/{self.label}"


@dataclass
class Impl:
    """One library's runnable version of one case.

    ``step(i)`` runs one step on input set ``i`` and returns something the timer can wait on
    (JAX arrays are blocked on; other libraries may return None). ``outputs()`` returns host
    NumPy arrays of the last step's results, keyed like the reference's.
    """

    step: Callable[[int], Any]
    outputs: Callable[[], dict[str, np.ndarray]]


Builder = Callable[["Case", Any, "Inputs"], Impl]


@dataclass
class Inputs:
    """The host inputs of one case: ``sets`` (rotated between steps) and ``shared`` (constant:
    initial parameters, weights), all NumPy arrays."""

    sets: list[dict[str, np.ndarray]]
    shared: dict[str, np.ndarray] = field(default_factory=dict)

    def astype_float64(self) -> Inputs:
        """A float64 copy of the floating inputs (integers untouched), for the reference run."""

        def up(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in d.items()}

        return Inputs([up(s) for s in self.sets], up(self.shared))

    @property
    def set_bytes(self) -> int:
        return int(sum(v.nbytes for v in self.sets[0].values())) if self.sets else 0


@dataclass
class Workload:
    """A family of cases with one builder per library.

    ``cases(settings)`` lists the cases for a run (``settings.quick``, ``settings.gpu``);
    ``inputs(case, rng, k)`` makes input set ``k``; ``shared(case, rng)`` makes the constant
    inputs; ``needs()`` returns a reason gpugrad cannot run this workload in this build
    (e.g. gpugrad.nn missing), or None.
    """

    name: str
    family: str
    title: str
    cases: Callable[[Any], list[Case]]
    inputs: Callable[[Case, np.random.Generator, int], dict[str, np.ndarray]]
    builders: dict[str, Builder]
    shared: Callable[[Case, np.random.Generator], dict[str, np.ndarray]] | None = None
    needs: Callable[[], str | None] | None = None
    notes: str = ""

    def gpugrad_reason(self) -> str | None:
        return self.needs() if self.needs is not None else None


WORKLOADS: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Add a workload to the registry used by ``gpugrad bench`` and the pytest-benchmark suites."""
    if workload.name in WORKLOADS:
        raise ValueError(f"workload {workload.name!r} registered twice")
    WORKLOADS[workload.name] = workload
    return workload


def tolerance(dtype: str | np.dtype) -> float:
    """The largest accepted ``||out - ref|| / ||ref||`` against the float64 reference.

    float32 arithmetic lands far under 1e-4 on these workloads (TF32 matmuls, near 3e-4, fail on
    purpose: they are not the same computation); float16 is given 1e-2, float64 1e-9.
    """
    kind = np.dtype(dtype)
    if kind == np.float64:
        return 1e-9
    if kind == np.float16:
        return 1e-2
    return 1e-4


def compare(got: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray], tol: float) -> tuple[bool, float, str]:
    """Compare every output with the reference: ``(passed, worst relative error, message)``.

    The error of one output is ``||got - ref|| / ||ref||`` in float64 (absolute when the reference
    is all zeros); NaN, a missing key or a wrong shape fails.
    """
    worst = 0.0
    worst_key = ""
    for key, r in ref.items():
        if key not in got:
            return False, float("inf"), f"output {key!r} missing"
        g = np.asarray(got[key], dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            return False, float("inf"), f"output {key!r} has shape {g.shape}, expected {r.shape}"
        if not np.all(np.isfinite(g)):
            return False, float("inf"), f"output {key!r} has NaN or Inf"
        denom = float(np.linalg.norm(r))
        err = float(np.linalg.norm(g - r)) / (denom if denom > 0 else 1.0)
        if err > worst or not worst_key:
            worst, worst_key = err, key
    if worst > tol:
        return False, worst, f"{worst_key}: relative error {worst:.2e} > {tol:.0e}"
    return True, worst, ""
