"""The run's device and the peer libraries found in this process.

Peers are optional imports: a missing one is a skipped column with a note, never an error.
:class:`Env` moves host inputs to each library's arrays on the run's device and back.

Example::

    env = Env("cpu", detect_peers("cpu"))
    x = env.gg(np.ones(3, np.float32), requires_grad=True)
    host(x)        # numpy.ndarray
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpugrad.bench.core import PEERS


@dataclass
class Peer:
    """Whether a peer library can run on this device, its version, or why not."""

    name: str
    available: bool
    version: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"available": self.available}
        if self.version:
            d["version"] = self.version
        if self.reason:
            d["reason"] = self.reason
        return d


def _try_import(name: str) -> tuple[Any, str | None]:
    try:
        return importlib.import_module(name), None
    except ImportError as exc:
        return None, f"not installed ({exc.__class__.__name__}: {exc})"
    except Exception as exc:  # a broken install (missing shared library, ...) is a skip, not a crash
        return None, f"failed to import ({exc.__class__.__name__}: {exc})"


def detect_peers(device: str, wanted: Iterable[str] | None = None) -> dict[str, Peer]:
    """Which peers can run on ``device`` ("cpu" or "cuda:N"); ``wanted`` limits the set.

    Example: ``detect_peers("cpu")["torch"].available``.
    """
    gpu = device.startswith("cuda")
    names = list(PEERS) if wanted is None else [n for n in PEERS if n in set(wanted)]
    found: dict[str, Peer] = {}
    for name in names:
        if name == "numpy":
            found[name] = _numpy_peer(gpu)
        elif name == "torch":
            found[name] = _torch_peer(gpu, device)
        elif name in ("jax", "jax.jit"):
            found[name] = _jax_peer(name, gpu)
        elif name == "autograd":
            found[name] = _autograd_peer(gpu)
    return found


def _numpy_peer(gpu: bool) -> Peer:
    if not gpu:
        return Peer("numpy", True, np.__version__)
    cupy, why = _try_import("cupy")
    if cupy is None:
        return Peer("numpy", False, reason=f"the hand-written version runs on CuPy on a GPU; CuPy {why}")
    return Peer("numpy", True, f"cupy {cupy.__version__}")


def _torch_peer(gpu: bool, device: str) -> Peer:
    torch, why = _try_import("torch")
    if torch is None:
        return Peer("torch", False, reason=f"{why}; pip install torch")
    version = torch.__version__
    if gpu:
        if not torch.cuda.is_available():
            return Peer("torch", False, version, f"torch {version} has no usable CUDA (a CPU-only build?)")
        index = int(device.split(":")[1])
        if index >= torch.cuda.device_count():
            return Peer("torch", False, version, f"torch sees {torch.cuda.device_count()} GPU(s), not {device}")
    return Peer("torch", True, version)


def _jax_peer(name: str, gpu: bool) -> Peer:
    jax, why = _try_import("jax")
    if jax is None:
        return Peer(name, False, reason=f"{why}; pip install jax")
    version = jax.__version__
    if gpu:
        try:
            devices = jax.devices("gpu")
        except Exception as exc:
            return Peer(name, False, version, f"jax {version} has no GPU backend ({exc.__class__.__name__}); "
                                              "pip install 'jax[cuda12]'")
        if not devices:
            return Peer(name, False, version, "jax sees no GPU")
    return Peer(name, True, version)


def _autograd_peer(gpu: bool) -> Peer:
    autograd, why = _try_import("autograd")
    if autograd is None:
        return Peer("autograd", False, reason=f"{why}; pip install autograd")
    try:
        from importlib.metadata import version as _dist_version

        version = _dist_version("autograd")
    except Exception:
        version = getattr(autograd, "__version__", "unknown")
    if gpu:
        return Peer("autograd", False, version, "HIPS autograd runs on NumPy only (CPU)")
    return Peer("autograd", True, version)


class Env:
    """The device of a run and conversions from host arrays to each library's arrays there.

    Example: ``Env("cpu").th(np.ones(2, np.float32), requires_grad=True)`` is a torch leaf.
    """

    def __init__(self, device: str, peers: dict[str, Peer] | None = None) -> None:
        self.device = device
        self.gpu = device.startswith("cuda")
        self.index = int(device.split(":")[1]) if self.gpu else 0
        if self.gpu:
            import gpugrad

            self.emulated = gpugrad.cuda.is_emulated()
        else:
            self.emulated = False
        self.peers = peers or {}
        if self.gpu:
            import cupy

            self.xp: Any = cupy
        else:
            self.xp = np

    # ---- gpugrad ---------------------------------------------------------------------------
    def gg(self, a: np.ndarray, requires_grad: bool = False) -> Any:
        """A gpugrad tensor on the run's device holding a copy of ``a`` (dtype kept)."""
        import gpugrad as gg

        return gg.tensor(np.array(a, copy=True), device=self.device, requires_grad=requires_grad)

    # ---- PyTorch -----------------------------------------------------------------------------
    @property
    def torch(self) -> Any:
        import torch

        return torch

    @property
    def torch_device(self) -> str:
        return self.device if self.gpu else "cpu"

    def th(self, a: np.ndarray, requires_grad: bool = False) -> Any:
        """A torch tensor on the run's device holding a copy of ``a``."""
        torch = self.torch
        t = torch.from_numpy(np.array(a, copy=True)).to(self.torch_device)
        if requires_grad:
            t.requires_grad_(True)
        return t

    # ---- JAX ---------------------------------------------------------------------------------
    def jax_precise(self, fn: Any) -> Any:
        """``fn`` run under ``jax.default_matmul_precision("float32")`` on a GPU, where JAX would
        otherwise compute float32 products in TF32 (the other libraries here do not)."""
        if not self.gpu:
            return fn
        import jax

        def call(*args: Any, **kwargs: Any) -> Any:
            with jax.default_matmul_precision("float32"):
                return fn(*args, **kwargs)

        return call

    def jx(self, a: np.ndarray) -> Any:
        """A JAX array on the run's device (JAX keeps float64 only with jax_enable_x64)."""
        import jax

        dev = jax.devices("gpu")[self.index] if self.gpu else jax.devices("cpu")[0]
        return jax.device_put(np.array(a, copy=True), dev)

    # ---- hand-written (NumPy on the CPU, CuPy on a GPU) ----------------------------------------
    def hand(self, a: np.ndarray) -> Any:
        """A NumPy (CPU) or CuPy (GPU) array holding a copy of ``a``."""
        return self.xp.array(a, copy=True)

    def synchronize(self) -> None:
        """Wait for queued GPU work (no-op on the CPU)."""
        if self.gpu:
            import cupy

            cupy.cuda.Device(self.index).synchronize()
            if self.peers.get("torch") is not None and self.peers["torch"].available:
                self.torch.cuda.synchronize(self.index)


def host(x: Any) -> np.ndarray:
    """A NumPy copy of an array from any library (gpugrad, torch, JAX, CuPy, NumPy, scalars).

    Example: ``host(torch.ones(2))`` is ``array([1., 1.], dtype=float32)``.
    """
    if isinstance(x, np.ndarray):
        return x
    from gpugrad.tensor import Tensor

    if isinstance(x, Tensor):
        return x.numpy()
    module = type(x).__module__
    if module.startswith("torch"):
        return x.detach().cpu().numpy()
    if module.startswith("cupy"):
        return x.get()
    return np.asarray(x)
