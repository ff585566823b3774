"""An emulated CUDA device: gpugrad's real CUDA backend and real kernels, run on the CPU.

For testing GPU code paths where there is no GPU (CI machines). While the emulator is on,
``import cupy`` gives a stand-in for CuPy (the subset of CuPy's names it implements, each with
CuPy's signature and rules) whose arrays live in emulated device memory, and whose
``RawModule``/``RawKernel`` compile CUDA source for the host and launch it with a GPU's
semantics (threads of a block concurrent at barriers, poisoned shared and fresh memory, real
atomics, CUDA's launch limits, argument types checked against the kernel's parameters).
gpugrad's ``device="cuda"`` then runs on it unchanged, and so does user code written for CuPy.

Switch it on before the first CUDA use:

* ``GPUGRAD_CUDA_EMULATOR=1`` in the environment (read at ``import gpugrad``): kernels come from
  the in-tree CMake build (``build/kernels``) when it exists, else are compiled for the host on
  first use (cached in ``~/.cache/gpugrad/cuda-emulator``);
* ``GPUGRAD_CUDA_EMULATOR=<folder>``: kernels come from that CMake build folder (``build/kernels``);
* or in code: ``from gpugrad.testing import cuda_emulator; cuda_emulator.enable()``.

Example::

    import os; os.environ["GPUGRAD_CUDA_EMULATOR"] = "1"
    import gpugrad as gg
    x = gg.randn(1000, device="cuda", requires_grad=True)
    gg.tanh(x).sum().backward()
    gg.cuda.is_emulated(), gg.cuda.counters()["launches"]

It is for tests and for counting what a GPU would pay (:func:`counters`), never for speed; its
elapsed times are host times. ``GPUGRAD_EMULATOR_SANITIZE=address|thread`` compiles every kernel
with that sanitizer (run the process under it: ``python -m gpugrad.testing.cuda_emulator.sanitize``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path
from typing import Any

_STATE: dict[str, Any] = {"enabled": False, "modules": None, "saved": {}, "finder": None}
_PREFIXES = ("cupy", "cupyx")


def _repo_kernel_dir() -> Path | None:
    path = Path(__file__).resolve().parents[3] / "build" / "kernels"
    return path if (path / "emu_index.json").is_file() else None


def _resolve_kernel_dir(spec: str | os.PathLike | None) -> Path | None:
    if spec is None or str(spec) in ("", "1", "on", "true", "yes"):
        return _repo_kernel_dir()
    path = Path(spec)
    if not (path / "emu_index.json").is_file():
        raise RuntimeError(f"GPUGRAD_CUDA_EMULATOR={spec}: no emulated kernel build there (expected emu_index.json "
                           "and libgg_emu.so from `cmake -S . -B build && cmake --build build`, in build/kernels)")
    return path


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import cupy`` / ``import cupyx`` give the emulator's modules."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] not in _PREFIXES or not _STATE["enabled"]:
            return None
        mods = _module_tree()
        if fullname not in mods:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> Any:
        return _module_tree()[spec.name]

    def exec_module(self, module: Any) -> None:
        return None


def _module_tree() -> dict:
    if _STATE["modules"] is None:
        from gpugrad.testing.cuda_emulator._modules import build_tree

        _STATE["modules"] = build_tree()
    return _STATE["modules"]


def enable(kernels: str | os.PathLike | None = None, *, check_nvrtc: bool | None = None) -> None:
    """Switch the emulated device on: from now on ``import cupy`` gives its stand-in.

    ``kernels``: a CMake build's ``build/kernels`` folder with the prebuilt host kernels (default:
    the source tree's, if built; otherwise kernels are compiled for the host on first use).
    ``check_nvrtc``: compile every run-time source with NVRTC as CuPy would, when NVRTC is
    installed (default: on unless ``GPUGRAD_EMULATOR_NVRTC=0``).
    """
    from gpugrad.testing.cuda_emulator import _kernels

    _kernels.Config.kernel_dir = _resolve_kernel_dir(kernels)
    if check_nvrtc is not None:
        _kernels.Config.check_nvrtc = check_nvrtc
    _kernels.Config.sanitize = os.environ.get("GPUGRAD_EMULATOR_SANITIZE", "")
    if _STATE["enabled"]:
        return
    _STATE["enabled"] = True
    for name in list(sys.modules):
        if name.split(".")[0] in _PREFIXES:
            _STATE["saved"][name] = sys.modules.pop(name)
    if _STATE["finder"] is None:
        _STATE["finder"] = _Finder()
    sys.meta_path.insert(0, _STATE["finder"])
    _forget_cuda_backends()


def disable() -> None:
    """Switch the emulated device off and give ``import cupy`` back to whatever it was."""
    if not _STATE["enabled"]:
        return
    _STATE["enabled"] = False
    for name in [n for n in sys.modules if n.split(".")[0] in _PREFIXES]:
        del sys.modules[name]
    sys.modules.update(_STATE["saved"])
    _STATE["saved"] = {}
    if _STATE["finder"] in sys.meta_path:
        sys.meta_path.remove(_STATE["finder"])
    _forget_cuda_backends()


def _forget_cuda_backends() -> None:
    try:
        from gpugrad.backends import _BACKENDS
    except ImportError:
        return
    for key in [k for k in _BACKENDS if k != "cpu"]:
        del _BACKENDS[key]


def is_enabled() -> bool:
    return _STATE["enabled"]


def counters() -> dict[str, int]:
    """What the emulated device has done since :func:`reset_counters`: ``launches``, ``bytes``
    (read and written by those kernels), ``syncs`` (host-device synchronisations),
    ``compilations`` (run-time compilations of kernel source), and ``h2d_bytes``,
    ``d2h_bytes``, ``allocations``."""
    from gpugrad.testing.cuda_emulator._device import COUNTERS

    return COUNTERS.as_dict()


def reset_counters() -> None:
    from gpugrad.testing.cuda_emulator._device import reset_counters as _reset

    _reset()


def info() -> dict[str, Any]:
    """What the emulator runs with (for ``gpugrad info`` and benchmark labels)."""
    from gpugrad.testing.cuda_emulator import _kernels, nvrtc

    return {"enabled": _STATE["enabled"], "kernel_dir": str(_kernels.Config.kernel_dir or ""),
            "nvrtc": nvrtc.location(), "nvrtc_version": nvrtc.version(), "sanitize": _kernels.Config.sanitize,
            "cache_dir": str(_kernels.cache_dir())}


def from_environment() -> None:
    """Switch on when ``GPUGRAD_CUDA_EMULATOR`` is set (called at ``import gpugrad``)."""
    spec = os.environ.get("GPUGRAD_CUDA_EMULATOR", "")
    if spec and spec.lower() not in ("0", "off", "false", "no"):
        enable(spec)
