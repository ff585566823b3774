"""The CUDA backend's structure: every public method is placed on the backend's GPU (ON_DEVICE)
or declared host-only, and with several GPUs each of them runs with that GPU current.

The emulated machine has one GPU, so a second one is stood in for by a recording device object
(what ``cupy.cuda.Device`` is to CuPy: a context manager making its GPU current).
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import numpy as np
import pytest

from gpugrad.backends.cuda import backend as cuda_backend


def test_every_public_method_is_placed_or_declared_host_only() -> None:
    cls = cuda_backend.CupyBackend
    public = {name for name in dir(cls) if not name.startswith("_")
              and isinstance(inspect.getattr_static(cls, name), (types.FunctionType, staticmethod, property))}
    declared = set(cuda_backend.ON_DEVICE) | set(cuda_backend.HOST_ONLY)
    assert public - declared == set(), "new public methods must be listed in ON_DEVICE or HOST_ONLY"
    assert declared - public == set(), "ON_DEVICE / HOST_ONLY name methods that do not exist"
    assert len(cuda_backend.ON_DEVICE) == len(set(cuda_backend.ON_DEVICE))


class RecordingDevice:
    """Stands in for ``cupy.cuda.Device(n)``: counts how often it is made current."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.entered = 0
        self.depth = 0

    def __enter__(self) -> RecordingDevice:
        self.entered += 1
        self.depth += 1
        self.real.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.depth -= 1
        self.real.__exit__(*exc)


@pytest.mark.gpu
def test_with_several_gpus_every_entry_point_runs_on_its_gpu(monkeypatch: Any) -> None:
    import cupy as cp

    monkeypatch.setattr(cp.cuda.runtime, "getDeviceCount", lambda: 2)
    B = cuda_backend.CupyBackend(0)
    assert all(name in vars(B) for name in cuda_backend.ON_DEVICE)  # placed at construction
    monkeypatch.undo()

    B = cuda_backend.CupyBackend(0)
    assert not any(name in vars(B) for name in cuda_backend.ON_DEVICE)  # one GPU: nothing wrapped
    rec = RecordingDevice(B.device)
    cuda_backend.place_on_device(B, rec)
    seen = []

    def check(result: Any) -> Any:
        seen.append(rec.entered)
        assert rec.depth == 0
        return result

    x = check(B.from_host(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)))
    y = check(B.exp(x))  # the op table's names run through ew_forward
    check(B.sum(y, 0))
    check(B.lowerings[("softmax", "forward")](B, [x], {"axis": 1}))  # a registered kernel: public methods
    check(B.lowerings[("softmax", "vjp")](B, x, (None,), y, {"axis": 1}, (True,)))
    check(B.im2col(x.reshape(1, 1, 3, 4), (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1)))
    check(B.to_host(y))
    assert seen == sorted(seen) and all(b > a for a, b in zip([0, *seen], seen)), seen
