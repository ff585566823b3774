"""Kernel loading and launching for the CUDA backend: the ahead-of-time build (CMake's fatbins
and their manifest), NVRTC compilation through ``cupy.RawModule`` otherwise, one cache per
backend, and the one place a kernel is launched and counted.

Example::

    k = B.load_kernel("gg_sum_rows_f32_f32", cg.handwritten_source("reduce.cu"))
    B._launch(k, grid, block, args)   # counts the launch and its arrays' bytes
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gpugrad.backends import cuda_codegen as cg
from gpugrad.backends.cuda.geometry import grid_for


def aot_dir() -> Path | None:
    """Where the CMake build's fatbins and manifest are: ``$GPUGRAD_AOT_DIR``, else
    ``build/kernels`` in a source checkout; None when neither holds a manifest (or
    ``GPUGRAD_AOT_DIR`` is set to an empty string, which turns the ahead-of-time path off)."""
    env = os.environ.get("GPUGRAD_AOT_DIR")
    if env is not None:
        path = Path(env) if env else None
    else:
        path = Path(__file__).resolve().parents[3] / "build" / "kernels"
    if path is not None and (path / "manifest.json").is_file():
        return path
    return None


class Kernels:
    """CupyBackend's kernel cache and launcher (state: ``_aot_dir``, ``_aot``, ``_aot_units``,
    ``_modules``, ``_kernels``, ``counters``; set by CupyBackend.__init__)."""

    def _read_manifest(self) -> dict:
        if self._aot_dir is None:
            return {}
        try:
            return json.loads((self._aot_dir / "manifest.json").read_text())["kernels"]
        except (OSError, ValueError, KeyError):
            return {}

    def _module(self, unit: str) -> Any:
        mod = self._modules.get(unit)
        if mod is None:
            with self.device:
                mod = self.cp.RawModule(path=str(self._aot_dir / f"{unit}.fatbin"))
            self._modules[unit] = mod
        return mod

    def _aot_entry(self, name: str, source: str) -> Any:
        """The manifest entry of kernel ``name`` when the ahead-of-time build holds this very
        source (and its fatbin was built), else None."""
        entry = self._aot.get(name)
        if entry is None or entry["hash"] != cg.source_hash(source, True):
            return None
        if entry["unit"] not in self._aot_units:
            self._aot_units[entry["unit"]] = (self._aot_dir / f"{entry['unit']}.fatbin").is_file()
        return entry if self._aot_units[entry["unit"]] else None

    def _op_kernel(self, key: tuple, render: Any, op: Any, *variant: Any) -> Any:
        """The kernel rendered by ``render(op, *variant)`` (forward or backward), loaded once per key."""
        kernel = self._kernels.get(key)
        if kernel is None:
            name, src = render(op, *variant)
            kernel = self.load_kernel(name, cg.standalone_source(op, src))
            self._kernels[key] = kernel
        return kernel

    def load_kernel(self, name: str, source: str) -> Any:
        """The kernel ``name`` of ``source``: from the ahead-of-time fatbin when the manifest
        lists it with this source's hash, else compiled by NVRTC (cached by CuPy on disk).
        Loaded once per name and source (the fused chains' kernels ask at every launch)."""
        got = self._kernels.get(("load", name))
        if got is not None and (got[0] is source or got[0] == source):
            return got[1]
        kernel = self._load(name, source)
        self._kernels[("load", name)] = (source, kernel)
        return kernel

    def _load(self, name: str, source: str) -> Any:
        entry = self._aot_entry(name, source)
        if entry is not None:
            self.aot_loaded += 1
            return self._module(entry["unit"]).get_function(name)
        key = ("module", source)
        mod = self._modules.get(key)
        if mod is None:
            with self.device:
                mod = self.cp.RawModule(code=cg.runtime_code(source), options=cg.runtime_options())
            self._modules[key] = mod
            self.runtime_compiled += 1
            self.counters["compilations"] += 1
        with self.device:
            return mod.get_function(name)

    def _handwritten(self, filename: str, name: str) -> Any:
        kernel = self._kernels.get(name)
        if kernel is None:
            kernel = self.load_kernel(name, cg.handwritten_source(filename))
            self._kernels[name] = kernel
        return kernel

    @property
    def launches(self) -> int:
        """Kernels (and CuPy library calls) this backend has launched (see gg.cuda.counters)."""
        return self.counters["launches"]

    def _launch(self, kernel: Any, grid: int, block: int, args: tuple) -> None:
        kernel((grid,), (block,), args)
        c = self.counters
        c["launches"] += 1
        nd = self._nd
        c["bytes"] += sum(a.nbytes for a in args if isinstance(a, nd))

    def _grid(self, n: int) -> int:
        return grid_for(n, self._max_grid)
